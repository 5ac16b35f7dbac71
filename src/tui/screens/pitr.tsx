import { Spinner } from '@inkjs/ui';
import { Box, Text, useInput } from 'ink';
import { useEffect, useRef, useState, type ReactNode } from 'react';
import { formatBytes, formatDuration } from '../../pipeline/progress.js';
import type { TargetAction } from '../../pitr/recovery.js';
import type { KeyEntry } from '../keys.js';
import type { BaseBackupList, PitrDone, PitrPreview, PitrRequest, PitrTargetKind } from '../services.js';
import {
  ErrorView,
  fit,
  Form,
  Frame,
  keyEntryOf,
  keyFields,
  label,
  SelectList,
  useApp,
  useColor,
  useTerminalSize,
} from '../ui.js';

interface Source {
  archive: string;
  keys: KeyEntry;
}

type Step =
  | { at: 'archive'; source?: Source }
  | { at: 'pick'; source: Source }
  | { at: 'options'; source: Source; base: string; request?: PitrRequest }
  | { at: 'preview'; request: PitrRequest; preview?: PitrPreview; error?: unknown }
  | { at: 'running'; preview: PitrPreview }
  | { at: 'done'; preview: PitrPreview; done: PitrDone }
  | { at: 'failed'; preview: PitrPreview; error: unknown };

const TARGET_KINDS: readonly PitrTargetKind[] = ['end', 'time', 'lsn', 'xid', 'name', 'immediate'];
const ACTIONS: readonly TargetAction[] = ['promote', 'pause', 'shutdown'];

/** The command line that does the same, as the CLI spells it. */
export function pitrCommand(r: PitrRequest): string {
  const parts = ['dbbackup', 'restore', 'pitr', r.base, '--archive', r.archive, '--data-dir', r.dataDir];
  const flag = { time: '--target-time', lsn: '--target-lsn', xid: '--target-xid', name: '--target-name' };
  if (r.targetKind === 'immediate') parts.push('--target-immediate');
  else if (r.targetKind !== 'end') parts.push(flag[r.targetKind], JSON.stringify(r.targetValue.trim()));
  if (r.timeline.trim() && r.timeline.trim() !== 'latest') parts.push('--target-timeline', r.timeline.trim());
  if (r.action !== 'promote') parts.push('--target-action', r.action);
  if (!r.inclusive) parts.push('--exclusive');
  if (r.force) parts.push('--force');
  if (r.keys.file) parts.push('--encryption-key-file', r.keys.file);
  return parts.join(' ');
}

/**
 * Point-in-time restore (PostgreSQL) as `restore pitr`: the archive (typed, or pitr.archive from
 * the configuration), a base backup of it (or the latest before the target), the target and the
 * data directory, then the command's dry-run plan — base backup, timelines, whether the archive
 * covers the target, what would refuse it — and only enter on that screen restores.
 */
export function PitrScreen(): ReactNode {
  const [step, setStep] = useState<Step>({ at: 'archive' });
  switch (step.at) {
    case 'archive':
      return <ArchiveForm step={step} onNext={(source) => setStep({ at: 'pick', source })} />;
    case 'pick':
      return (
        <BasePicker
          source={step.source}
          onPick={(base) => setStep({ at: 'options', source: step.source, base })}
          onBack={() => setStep({ at: 'archive', source: step.source })}
        />
      );
    case 'options':
      return (
        <Options
          step={step}
          onBack={() => setStep({ at: 'pick', source: step.source })}
          onNext={(request) => setStep({ at: 'preview', request })}
        />
      );
    case 'preview':
      return (
        <Preview
          step={step}
          onUpdate={setStep}
          onBack={() =>
            setStep({
              at: 'options',
              source: { archive: step.request.archive, keys: step.request.keys },
              base: step.request.base,
              request: step.request,
            })
          }
        />
      );
    case 'running':
      return (
        <Running
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

function ArchiveForm(props: {
  step: Extract<Step, { at: 'archive' }>;
  onNext: (s: Source) => void;
}): ReactNode {
  const { services, nav } = useApp();
  const c = useColor();
  const s = props.step.source;
  return (
    <Frame title="point-in-time restore: archive" legend="↑/↓ field · type to edit · enter next · esc back">
      {services.engine !== 'postgres' ? (
        <Text color={c('yellow')}>
          MariaDB/MySQL replay binlogs: use dbbackup restore pitr on the command line. This is for PostgreSQL.
        </Text>
      ) : null}
      <Form
        fields={[
          {
            name: 'archive',
            label: 'WAL archive',
            value: s?.archive ?? services.pitrArchive ?? '',
            help: services.pitrArchive
              ? 'directory or cloud URI (from the configuration: pitr.archive)'
              : 'directory or cloud URI (set pitr.archive in Settings to have it here)',
          },
          ...keyFields(s?.keys, false, services.keyFile),
        ]}
        onCancel={() => nav.back()}
        onSubmit={(v) => props.onNext({ archive: (v.archive ?? '').trim(), keys: keyEntryOf(v) })}
      />
    </Frame>
  );
}

function baseLine(b: BaseBackupList['bases'][number]): string {
  const ended = b.finishedAt ? b.finishedAt.replace('T', ' ').slice(0, 16) : '?';
  const size = b.sizeBytes === undefined ? '?' : formatBytes(b.sizeBytes);
  return `${fit(b.name, 24)} ${fit(ended, 16)} ${fit(b.timeline === undefined ? '?' : String(b.timeline), 3)} ${fit(size, 10)} ${b.state}`;
}

function BasePicker(props: {
  source: Source;
  onPick: (base: string) => void;
  onBack: () => void;
}): ReactNode {
  const { services } = useApp();
  const [list, setList] = useState<BaseBackupList | undefined>();
  const [error, setError] = useState<unknown>();
  const [detail, setDetail] = useState<string | undefined>();
  const { source } = props;
  useEffect(() => {
    services.listBaseBackups(source.archive, source.keys).then(setList, setError);
  }, [services, source]);
  useInput((_input, key) => {
    if (key.escape) props.onBack();
  });
  const items = list
    ? [
        { key: 'latest', label: 'latest (the newest base backup that ends before the target)' },
        ...list.bases.map((b) => ({ key: b.name, label: baseLine(b), detail: b.detail })),
      ]
    : [];
  return (
    <Frame title="point-in-time restore: base backup" legend="↑/↓ move · enter choose · esc back · q quit">
      <Text dimColor>{list?.location ?? source.archive}</Text>
      {error ? <ErrorView error={error} /> : null}
      {!list && !error ? <Spinner label="Reading the archive: base backups, WAL, timelines…" /> : null}
      {list ? (
        <Box flexDirection="column">
          <Text bold>
            {'  '}
            {fit('BASE BACKUP', 24)} {fit('ENDED (UTC)', 16)} {fit('TL', 3)} {fit('SIZE', 10)} STATE
          </Text>
          <SelectList
            height={10}
            items={items}
            onHighlight={(item) => setDetail(list.bases.find((b) => b.name === item?.key)?.detail)}
            onSelect={(item) => props.onPick(item.key)}
          />
          {detail ? <Text dimColor>{fit(detail, 78).trim()}</Text> : null}
        </Box>
      ) : null}
    </Frame>
  );
}

function Options(props: {
  step: Extract<Step, { at: 'options' }>;
  onBack: () => void;
  onNext: (r: PitrRequest) => void;
}): ReactNode {
  const { source, base, request: r } = props.step;
  return (
    <Frame
      title="point-in-time restore: options"
      legend="↑/↓ field · ←/→ choose · type to edit · enter preview · esc back"
    >
      <Text>
        {label('Base backup')}
        {base}
      </Text>
      <Form
        fields={[
          {
            name: 'kind',
            label: 'Recover to',
            value: r?.targetKind ?? 'time',
            choices: TARGET_KINDS,
            help: 'end of the archive, a time, an LSN, a transaction, a restore point, or the base backup',
          },
          {
            name: 'value',
            label: 'Target',
            value: r?.targetValue ?? '',
            help: 'time with its offset "2026-12-07 05:33:41+00", LSN 0/15D6B40, xid 4642, or a name',
          },
          { name: 'dataDir', label: 'Data directory', value: r?.dataDir ?? '', help: 'empty or new' },
          {
            name: 'timeline',
            label: 'Timeline',
            value: r?.timeline ?? 'latest',
            help: 'latest, current or a number',
          },
          { name: 'action', label: 'At the target', value: r?.action ?? 'promote', choices: ACTIONS },
          {
            name: 'inclusive',
            label: 'Include the target',
            value: r?.inclusive === false ? 'no' : 'yes',
            choices: ['yes', 'no'],
          },
          {
            name: 'force',
            label: 'Replace a non-empty dir',
            value: r?.force ? 'yes' : 'no',
            choices: ['no', 'yes'],
          },
        ]}
        onCancel={props.onBack}
        onSubmit={(v) =>
          props.onNext({
            archive: source.archive,
            keys: source.keys,
            base,
            targetKind: (v.kind ?? 'end') as PitrTargetKind,
            targetValue: v.value ?? '',
            timeline: v.timeline ?? 'latest',
            action: (v.action ?? 'promote') as TargetAction,
            inclusive: v.inclusive !== 'no',
            dataDir: (v.dataDir ?? '').trim(),
            force: v.force === 'yes',
          })
        }
      />
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
  const { rows } = useTerminalSize();
  const { step, onUpdate } = props;
  useEffect(() => {
    if (step.preview || step.error) return;
    services.previewPitr(step.request).then(
      (preview) => onUpdate({ ...step, preview }),
      (error: unknown) => onUpdate({ ...step, error }),
    );
  }, [services, step, onUpdate]);
  const p = step.preview;
  const ok = Boolean(p && p.refusals.length === 0);
  useInput((input, key) => {
    if (key.escape || input === 'n') props.onBack();
    else if (p && ok && (key.return || input === 'y')) onUpdate({ at: 'running', preview: p });
  });
  const room = Math.max(4, rows - 8);
  return (
    <Frame
      title="point-in-time restore: plan"
      legend={
        ok ? 'enter/y restore · esc/n back to the options · q quit' : 'esc back to the options · q quit'
      }
    >
      {!p && !step.error ? <Spinner label="Reading the archive and checking the target…" /> : null}
      {step.error ? <ErrorView error={step.error} /> : null}
      {p ? (
        <Box flexDirection="column">
          <Text dimColor>Nothing is changed until you press enter on this screen.</Text>
          {p.lines.slice(0, room).map((l, i) => (
            <Text key={`${i}:${l}`} color={l.startsWith('REFUSED') ? c('red') : undefined}>
              {l}
            </Text>
          ))}
          {ok ? (
            <Text color={c('yellow')} bold>
              Restore into {p.request.dataDir} now?
            </Text>
          ) : (
            <Text color={c('red')} bold>
              Refused: {p.refusals.length} reason{p.refusals.length === 1 ? '' : 's'} above. Nothing was
              changed.
            </Text>
          )}
        </Box>
      ) : null}
    </Frame>
  );
}

function Running(props: {
  preview: PitrPreview;
  onDone: (d: PitrDone) => void;
  onFailed: (e: unknown) => void;
}): ReactNode {
  const { services, nav } = useApp();
  const [, setTick] = useState(0);
  const started = useRef(Date.now());
  const once = useRef(false);
  const callbacks = useRef(props);
  callbacks.current = props;
  useEffect(() => {
    if (once.current) return;
    once.current = true;
    const timer = setInterval(() => setTick((t) => t + 1), 500);
    nav
      .run((signal) => services.runPitr(props.preview, signal))
      .then(
        (d) => callbacks.current.onDone(d),
        (e: unknown) => callbacks.current.onFailed(e),
      )
      .finally(() => clearInterval(timer));
  }, [services, nav, props.preview]);
  const r = props.preview.request;
  return (
    <Frame title="point-in-time restore: running" legend="q/ctrl-c stop and quit (asks first)">
      <Text>
        {label('Base')}
        {r.base} from {r.archive}
      </Text>
      <Text>
        {label('Into')}
        {r.dataDir}
      </Text>
      <Spinner
        label={`Restoring the base backup (checksum verified as it streams) · ${formatDuration((Date.now() - started.current) / 1000)}`}
      />
    </Frame>
  );
}

function Result(props: { step: Extract<Step, { at: 'done' } | { at: 'failed' }> }): ReactNode {
  const { nav } = useApp();
  const c = useColor();
  useInput((_input, key) => {
    if (key.return || key.escape) nav.back();
  });
  const s = props.step;
  if (s.at === 'failed')
    return (
      <Frame title="point-in-time restore: failed" legend="enter/esc back · q quit">
        <ErrorView error={s.error} />
      </Frame>
    );
  return (
    <Frame title="point-in-time restore: complete" legend="enter/esc back · q quit">
      <Text color={c('green')} bold>
        Restored {s.preview.request.base} into {s.done.dataDir} in {formatDuration(s.done.seconds)}
      </Text>
      <Text>recovery.signal and the recovery settings are written.</Text>
      <Text>{s.done.next}</Text>
    </Frame>
  );
}
