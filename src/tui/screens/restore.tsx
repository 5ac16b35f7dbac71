import { Spinner } from '@inkjs/ui';
import { Box, Text, useInput } from 'ink';
import { useEffect, useRef, useState, type ReactNode } from 'react';
import type { CatalogEntry } from '../../verify/listing.js';
import { formatBytes, formatDuration } from '../../pipeline/progress.js';
import { DoneLines, Outcome, Running, StepBar, useOperation } from '../operation.js';
import type { RestoreDone, RestorePreview, RestoreRequest } from '../services.js';
import {
  ErrorView,
  Form,
  Frame,
  keyEntryOf,
  keyFields,
  SelectList,
  useApp,
  useTyping,
  useColor,
} from '../ui.js';
import { entryLine } from './archive.js';

type Step =
  | { at: 'pick' }
  | { at: 'options'; key: string; request?: RestoreRequest }
  | { at: 'preview'; request: RestoreRequest; preview?: RestorePreview; error?: unknown }
  | { at: 'running'; preview: RestorePreview }
  | { at: 'done'; preview: RestorePreview; done: RestoreDone }
  | { at: 'failed'; preview: RestorePreview; error: unknown };

const yes = (v: string | undefined): boolean => v === 'yes';
const yn = (b: boolean): string => (b ? 'yes' : 'no');

/**
 * Restore of one backup: pick it (unless the archive manager did), set the target and toggles, see
 * the plan with the CLI's safety checks (checksum, target, tool, space); nothing is changed before
 * the user confirms on that screen.
 */
export function RestoreScreen(props: { backupKey?: string }): ReactNode {
  const { nav, services } = useApp();
  const [step, setStep] = useState<Step>(
    props.backupKey ? { at: 'options', key: props.backupKey } : { at: 'pick' },
  );
  switch (step.at) {
    case 'pick':
      return <BackupPicker onPick={(key) => setStep({ at: 'options', key })} />;
    case 'options': {
      const r = step.request;
      return (
        <Frame
          title={`restore ${step.key}: options`}
          legend="↑/↓ field · ←/→ toggle · type to edit · enter preview · esc back"
        >
          <Form
            fields={[
              {
                name: 'target',
                label: 'Target database',
                value: r?.target ?? '',
                help: 'empty: the database named in the backup',
              },
              {
                name: 'create',
                label: 'Create if missing',
                value: yn(r?.create ?? true),
                choices: ['yes', 'no'],
              },
              {
                name: 'clean',
                label: 'Drop and recreate if it exists',
                value: yn(r?.clean ?? false),
                choices: ['yes', 'no'],
              },
              {
                name: 'jobs',
                label: 'Parallel jobs',
                value: String(r?.jobs ?? 1),
                help: 'pg_restore jobs (custom format)',
              },
              {
                name: 'noOwner',
                label: 'Skip ownership',
                value: yn(r?.noOwner ?? false),
                choices: ['yes', 'no'],
              },
              ...keyFields(r?.keys, false, services.keyFile),
            ]}
            onCancel={() => (props.backupKey ? nav.back() : setStep({ at: 'pick' }))}
            onSubmit={(v) =>
              setStep({
                at: 'preview',
                request: {
                  key: step.key,
                  target: (v.target ?? '').trim(),
                  create: yes(v.create),
                  clean: yes(v.clean),
                  jobs: Number(v.jobs) || 1,
                  noOwner: yes(v.noOwner),
                  keys: keyEntryOf(v),
                },
              })
            }
          />
        </Frame>
      );
    }
    case 'preview':
      return (
        <Preview
          step={step}
          onUpdate={setStep}
          onBack={() => setStep({ at: 'options', key: step.request.key, request: step.request })}
        />
      );
    case 'running':
      return (
        <RestoreRunning
          preview={step.preview}
          onDone={(done) => setStep({ at: 'done', preview: step.preview, done })}
          onFailed={(error) => setStep({ at: 'failed', preview: step.preview, error })}
        />
      );
    case 'done':
    case 'failed':
      return <Result step={step} />;
  }
}

/** A backup of the archive to restore: single backups, or (`clusters`) cluster backups only. */
export function BackupPicker(props: {
  onPick: (key: string) => void;
  clusters?: boolean;
  title?: string;
}): ReactNode {
  const { services, nav } = useApp();
  const [entries, setEntries] = useState<CatalogEntry[] | undefined>();
  const [error, setError] = useState<unknown>();
  const clusters = Boolean(props.clusters);
  useTyping();
  useEffect(() => {
    services
      .listArchive()
      .then((list) => setEntries(list.filter((e) => e.key.endsWith('/') === clusters)), setError);
  }, [services, nav, clusters]);
  useInput((_input, key) => {
    if (key.escape) nav.back();
  });
  return (
    <Frame
      title={props.title ?? 'restore: choose a backup'}
      legend="type to filter · ↑/↓ move · enter choose · esc back · ctrl-c quit"
    >
      <Text dimColor>{services.destination}</Text>
      {error ? <ErrorView error={error} /> : null}
      {!entries && !error ? <Spinner label="Listing the backups…" /> : null}
      {entries ? (
        <SelectList
          filter
          height={12}
          items={entries.map((e) => ({ key: e.key, label: entryLine(e, e.state), detail: e.database ?? '' }))}
          onSelect={(item) => props.onPick(item.key)}
        />
      ) : null}
    </Frame>
  );
}

function Preview(props: {
  step: Extract<Step, { at: 'preview' }>;
  onUpdate: (s: Step) => void;
  onBack: () => void;
}): ReactNode {
  const { services } = useApp();
  const c = useColor();
  const { step, onUpdate } = props;
  useEffect(() => {
    if (step.preview || step.error) return;
    services.previewRestore(step.request).then(
      (preview) => onUpdate({ ...step, preview }),
      (error: unknown) => onUpdate({ ...step, error }),
    );
  }, [services, step, onUpdate]);
  useInput((input, key) => {
    if (key.escape || input === 'n') props.onBack();
    else if (step.preview && (key.return || input === 'y'))
      onUpdate({ at: 'running', preview: step.preview });
  });
  return (
    <Frame
      title="restore: preview (nothing changed yet)"
      legend={
        step.preview
          ? 'enter/y restore · esc/n back to the options · q quit'
          : 'esc back to the options · q quit'
      }
    >
      {!step.preview && !step.error ? (
        <Spinner label="Checking the backup, the target and the tools…" />
      ) : null}
      {step.error ? <ErrorView error={step.error} /> : null}
      {step.preview ? (
        <Box flexDirection="column">
          {step.preview.lines.slice(0, 14).map((l, i) => (
            <Text key={`${i}:${l}`}>{l}</Text>
          ))}
          <Text color={c('yellow')} bold>
            Restore into "{step.preview.plan.target}" now?
          </Text>
        </Box>
      ) : null}
    </Frame>
  );
}

interface StepState {
  name: string;
  bytes: () => number;
  total: number;
}

function RestoreRunning(props: {
  preview: RestorePreview;
  onDone: (d: RestoreDone) => void;
  onFailed: (e: unknown) => void;
}): ReactNode {
  const { services } = useApp();
  const current = useRef<StepState | undefined>(undefined);
  const finished = useRef<string[]>([]);
  useOperation(
    (signal) =>
      services.runRestore(
        props.preview,
        {
          begin: (name, bytes, total) => {
            current.current = { name, bytes, total };
          },
          end: (outcome) => {
            if (current.current) finished.current.push(`${current.current.name}: ${outcome}`);
            current.current = undefined;
          },
        },
        signal,
      ),
    props,
  );
  const s = current.current;
  const bytes = s ? s.bytes() : 0;
  const pct = s && s.total > 0 ? Math.min(100, (100 * bytes) / s.total) : 0;
  return (
    <Running title={`restore into ${props.preview.plan.target}: running`}>
      <DoneLines lines={finished.current} />
      {s ? (
        <StepBar name={s.name} percent={pct} detail={`${formatBytes(bytes)} of ${formatBytes(s.total)}`} />
      ) : (
        <Spinner label="Working…" />
      )}
    </Running>
  );
}

function Result(props: { step: Extract<Step, { at: 'done' } | { at: 'failed' }> }): ReactNode {
  const s = props.step;
  if (s.at === 'failed') return <Outcome what="restore" error={s.error} />;
  return (
    <Outcome
      what="restore"
      headline="Restore complete"
      fields={[
        ['Database', s.done.target],
        ['From', s.preview.plan.source],
        ['Duration', formatDuration(s.done.seconds)],
      ]}
      warnings={s.done.warnings}
    />
  );
}
