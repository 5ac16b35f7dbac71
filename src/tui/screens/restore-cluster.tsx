import { Spinner } from '@inkjs/ui';
import { Box, Text, useInput } from 'ink';
import { useEffect, useRef, useState, type ReactNode } from 'react';
import { formatBytes, formatDuration } from '../../pipeline/progress.js';
import { ClusterWatch, type MemberView } from '../cluster-watch.js';
import { hasKey } from '../keys.js';
import { DoneLines, MemberList, Outcome, Running, useOperation } from '../operation.js';
import type { ClusterRestoreDone, ClusterRestorePreview, ClusterRestoreRequest } from '../services.js';
import {
  ErrorView,
  fit,
  Form,
  Frame,
  keyEntryOf,
  keyFields,
  label,
  useApp,
  useColor,
  useTerminalSize,
} from '../ui.js';
import { BackupPicker } from './restore.js';

type Step =
  | { at: 'pick' }
  | { at: 'options'; key: string; request?: ClusterRestoreRequest }
  | { at: 'preview'; request: ClusterRestoreRequest; preview?: ClusterRestorePreview; error?: unknown }
  | { at: 'running'; preview: ClusterRestorePreview }
  | { at: 'done'; preview: ClusterRestorePreview; done: ClusterRestoreDone }
  | { at: 'failed'; preview: ClusterRestorePreview; error: unknown };

const globs = (text: string | undefined): string[] =>
  (text ?? '')
    .split(/[\s,]+/)
    .map((g) => g.trim())
    .filter(Boolean);

/** The command line that does the same (a passphrase typed here has no flag: it is named, not shown). */
export function clusterRestoreCommand(r: ClusterRestoreRequest): string {
  const parts = ['dbbackup', 'restore', 'cluster', r.key.replace(/\/+$/, ''), '--jobs', String(r.jobs)];
  if (r.include.length) parts.push('--include-database', r.include.join(','));
  if (r.cleanCluster) parts.push('--clean-cluster');
  if (r.keys.file) parts.push('--encryption-key-file', r.keys.file);
  if (r.keys.passphrase) parts.push('--passphrase-file', '(the passphrase typed)');
  return [...parts, '--confirm'].join(' ');
}

/**
 * Restore of a cluster backup (roles first, then every database), as `restore cluster`: pick it
 * (unless the archive manager did), set the options, read the dry-run plan with its checks (the
 * databases in the way are listed there), and only enter on that screen changes anything.
 */
export function ClusterRestoreScreen(props: { backupKey?: string }): ReactNode {
  const { nav } = useApp();
  const [step, setStep] = useState<Step>(
    props.backupKey ? { at: 'options', key: props.backupKey } : { at: 'pick' },
  );
  switch (step.at) {
    case 'pick':
      return (
        <BackupPicker
          clusters
          title="restore cluster: choose a cluster backup"
          onPick={(key) => setStep({ at: 'options', key })}
        />
      );
    case 'options':
      return (
        <Options
          step={step}
          onCancel={() => (props.backupKey ? nav.back() : setStep({ at: 'pick' }))}
          onSubmit={(request) => setStep({ at: 'preview', request })}
        />
      );
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
        <ClusterRestoreRunning
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

function Options(props: {
  step: Extract<Step, { at: 'options' }>;
  onCancel: () => void;
  onSubmit: (r: ClusterRestoreRequest) => void;
}): ReactNode {
  const { services } = useApp();
  const { key, request: r } = props.step;
  return (
    <Frame
      title="restore cluster: options"
      legend="↑/↓ field · ←/→ toggle · type to edit · enter preview · esc back"
    >
      <Text>
        {label('Backup')}
        {key.replace(/\/+$/, '')}
      </Text>
      <Form
        fields={[
          {
            name: 'include',
            label: 'Only databases',
            value: r?.include.join(' ') ?? '',
            help: 'globs, e.g. shop_*; empty: every database of the backup',
          },
          {
            name: 'clean',
            label: 'Drop and replace existing',
            value: r?.cleanCluster ? 'yes' : 'no',
            choices: ['no', 'yes'],
            help: 'databases of the backup that exist on the server (--clean-cluster)',
          },
          {
            name: 'jobs',
            label: 'At the same time',
            value: String(r?.jobs ?? 2),
            help: 'databases restored at once',
          },
          ...keyFields(r?.keys, false, services.keyFile),
        ]}
        onCancel={props.onCancel}
        onSubmit={(v) =>
          props.onSubmit({
            key,
            include: globs(v.include),
            cleanCluster: v.clean === 'yes',
            jobs: Math.max(1, Math.min(64, Number(v.jobs) || 1)),
            keys: keyEntryOf(v),
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
    services.previewClusterRestore(step.request).then(
      (preview) => onUpdate({ ...step, preview }),
      (error: unknown) => onUpdate({ ...step, error }),
    );
  }, [services, step, onUpdate]);
  useInput((input, key) => {
    if (key.escape || input === 'n') props.onBack();
    else if (step.preview && (key.return || input === 'y'))
      onUpdate({ at: 'running', preview: step.preview });
  });
  const p = step.preview;
  // The plan's lines that fit between the title, the question and the legend.
  const room = Math.max(4, rows - 9);
  return (
    <Frame
      title="restore cluster: plan"
      legend={p ? 'enter/y restore · esc/n back to the options · q quit' : 'esc back to the options · q quit'}
    >
      {!p && !step.error ? <Spinner label="Checking the backup, the server and the databases…" /> : null}
      {step.error ? <ErrorView error={step.error} /> : null}
      {p ? (
        <Box flexDirection="column">
          <Text dimColor>Nothing is changed until you press enter on this screen.</Text>
          {p.lines.slice(0, room).map((l, i) => (
            <Text key={`${i}:${l}`}>{l}</Text>
          ))}
          {p.lines.length > room ? <Text dimColor>… {p.lines.length - room} more lines</Text> : null}
          <Text dimColor>{fit(clusterRestoreCommand(p.request), 200).trim()}</Text>
          <Text color={c('yellow')} bold>
            Restore {p.databases.length} database{p.databases.length === 1 ? '' : 's'}
            {p.existing.length ? ` (replacing ${p.existing.join(', ')})` : ''} now?
          </Text>
        </Box>
      ) : null}
      {step.error && !hasKey(step.request.keys) ? (
        <Text dimColor>An encrypted backup needs its key: esc, then give the key file or passphrase.</Text>
      ) : null}
    </Frame>
  );
}

function ClusterRestoreRunning(props: {
  preview: ClusterRestorePreview;
  onDone: (d: ClusterRestoreDone) => void;
  onFailed: (e: unknown) => void;
}): ReactNode {
  const { services } = useApp();
  const { rows } = useTerminalSize();
  const watch = useRef(new ClusterWatch());
  const [members, setMembers] = useState<MemberView[]>([]);
  useOperation((signal) => services.runClusterRestore(props.preview, watch.current, signal), {
    ...props,
    onTick: () => setMembers(watch.current.view()),
  });
  const done = members.filter((m) => m.state === 'done').length;
  const total = members.reduce((n, m) => n + m.bytes, 0);
  const elapsed = (Date.now() - watch.current.started) / 1000;
  return (
    <Running title="restore cluster: running">
      <DoneLines lines={watch.current.notes.slice(-3)} />
      {members.length ? (
        <MemberList
          members={members}
          header={`${done} of ${members.length} databases · ${formatBytes(total)} read · ${formatDuration(elapsed)}`}
          active="restoring"
          stateWidth={9}
          room={Math.max(3, rows - 10)}
        />
      ) : (
        <Spinner label="Verifying the backup and restoring the roles…" />
      )}
    </Running>
  );
}

function Result(props: { step: Extract<Step, { at: 'done' } | { at: 'failed' }> }): ReactNode {
  const s = props.step;
  if (s.at === 'failed') return <Outcome what="restore cluster" error={s.error} />;
  return (
    <Outcome
      what="restore cluster"
      headline="Cluster restore complete"
      fields={[
        ['Restored', s.done.done],
        ['From', s.preview.request.key.replace(/\/+$/, '')],
        ['Duration', formatDuration(s.done.seconds)],
      ]}
      warnings={s.done.warnings}
    />
  );
}
