import { Spinner } from '@inkjs/ui';
import { Box, Text, useInput } from 'ink';
import { useRef, useState, type ReactNode } from 'react';
import type { ClusterManifest } from '../../catalog/manifest.js';
import {
  COMPRESSION_ALGORITHMS,
  validateLevel,
  type CompressionAlgorithm,
} from '../../pipeline/compression.js';
import { formatBytes, formatDuration } from '../../pipeline/progress.js';
import { ClusterWatch, type MemberView } from '../cluster-watch.js';
import { MemberList, Outcome, Running, useOperation } from '../operation.js';
import type { ClusterRequest } from '../services.js';
import { ErrorView, Form, Frame, label, useApp } from '../ui.js';

type Step =
  | { at: 'options'; request?: ClusterRequest }
  | { at: 'confirm'; request: ClusterRequest }
  | { at: 'running'; request: ClusterRequest }
  | { at: 'done'; manifest: ClusterManifest }
  | { at: 'failed'; request: ClusterRequest; error: unknown };

const globs = (text: string | undefined): string[] =>
  (text ?? '')
    .split(/[\s,]+/)
    .map((g) => g.trim())
    .filter(Boolean);

export function clusterCommand(engine: string, r: ClusterRequest): string {
  const parts = ['dbbackup', '--db-type', engine, '--compression-algo', r.compression];
  if (r.compression !== 'none') parts.push('--compression', String(r.level));
  parts.push('backup', 'cluster', '--cluster-parallelism', String(r.parallelism));
  if (r.include.length) parts.push('--include-database', ...r.include);
  if (r.exclude.length) parts.push('--exclude-database', ...r.exclude);
  return parts.join(' ');
}

/** Backup of every database plus roles/users, as one unit: `backup cluster`, with a bar per database. */
export function ClusterBackupScreen(): ReactNode {
  const { nav, services } = useApp();
  const [step, setStep] = useState<Step>({ at: 'options' });
  switch (step.at) {
    case 'options': {
      const r = step.request;
      return (
        <Frame
          title="backup cluster: options"
          legend="↑/↓ field · ←/→ choose · type to edit · enter next · esc back"
        >
          <Form
            fields={[
              {
                name: 'compression',
                label: 'Compression',
                value: r?.compression ?? services.compression.algorithm,
                choices: COMPRESSION_ALGORITHMS,
              },
              { name: 'level', label: 'Level', value: String(r?.level ?? services.compression.level) },
              {
                name: 'include',
                label: 'Only databases',
                value: r?.include.join(' ') ?? '',
                help: 'globs, e.g. shop_*; empty: all',
              },
              {
                name: 'exclude',
                label: 'Skip databases',
                value: r?.exclude.join(' ') ?? '',
                help: 'globs, e.g. tmp_*',
              },
              {
                name: 'parallelism',
                label: 'At the same time',
                value: String(r?.parallelism ?? 2),
                help: 'databases dumped at once',
              },
            ]}
            onCancel={() => nav.back()}
            onSubmit={(v) =>
              setStep({
                at: 'confirm',
                request: {
                  compression: (v.compression ?? 'zstd') as CompressionAlgorithm,
                  level: Number(v.level),
                  include: globs(v.include),
                  exclude: globs(v.exclude),
                  parallelism: Math.max(1, Math.min(64, Number(v.parallelism) || 1)),
                },
              })
            }
          />
        </Frame>
      );
    }
    case 'confirm':
      return (
        <Confirm
          request={step.request}
          onBack={() => setStep({ at: 'options', request: step.request })}
          onRun={(request) => setStep({ at: 'running', request })}
        />
      );
    case 'running':
      return (
        <ClusterRunning
          request={step.request}
          onDone={(manifest) => setStep({ at: 'done', manifest })}
          onFailed={(error) => setStep({ at: 'failed', request: step.request, error })}
        />
      );
    case 'done':
    case 'failed':
      return <Result step={step} />;
  }
}

function Confirm(props: {
  request: ClusterRequest;
  onBack: () => void;
  onRun: (r: ClusterRequest) => void;
}): ReactNode {
  const { services } = useApp();
  const r = props.request;
  let problem: unknown;
  let level = r.level;
  try {
    level = validateLevel(r.compression, r.compression === 'none' ? undefined : r.level);
  } catch (err) {
    problem = err;
  }
  const request = { ...r, level };
  useInput((input, key) => {
    if (key.escape || input === 'n') props.onBack();
    else if (!problem && (key.return || input === 'y')) props.onRun(request);
  });
  return (
    <Frame
      title="backup cluster: confirm"
      legend={problem ? 'esc back to the options' : 'enter/y run · esc/n back · q quit'}
    >
      <Text>This will run:</Text>
      <Text bold> {clusterCommand(services.engine, request)}</Text>
      <Box flexDirection="column" marginTop={1}>
        <Text>
          {label('Server')}
          {services.server} (every database{r.include.length || r.exclude.length ? ' matching' : ''},
          roles/users and grants)
        </Text>
        <Text>
          {label('Destination')}
          {services.destination}
        </Text>
      </Box>
      {problem ? <ErrorView error={problem} /> : null}
    </Frame>
  );
}

function ClusterRunning(props: {
  request: ClusterRequest;
  onDone: (m: ClusterManifest) => void;
  onFailed: (e: unknown) => void;
}): ReactNode {
  const { services } = useApp();
  const watch = useRef(new ClusterWatch());
  const [members, setMembers] = useState<MemberView[]>([]);
  useOperation((signal) => services.backupCluster(props.request, watch.current, signal), {
    ...props,
    onTick: () => setMembers(watch.current.view()),
  });
  const done = members.filter((m) => m.state === 'done').length;
  const total = members.reduce((n, m) => n + m.bytes, 0);
  const elapsed = (Date.now() - watch.current.started) / 1000;
  return (
    <Running title="backup cluster: running">
      {members.length ? (
        <MemberList
          members={members}
          header={`${done} of ${members.length} databases · ${formatBytes(total)} dumped · ${formatBytes(elapsed > 0 ? total / elapsed : 0)}/s · ${formatDuration(elapsed)}`}
          active="dumping"
          stateWidth={8}
          room={14}
        />
      ) : (
        <Spinner label="Reading the databases and the roles…" />
      )}
    </Running>
  );
}

function Result(props: { step: Extract<Step, { at: 'done' } | { at: 'failed' }> }): ReactNode {
  const s = props.step;
  const legend = 'enter/esc back to the menu · q quit';
  if (s.at === 'failed') return <Outcome what="backup cluster" legend={legend} error={s.error} />;
  const m = s.manifest;
  const ok = m.databases.filter((d) => d.status === 'ok').length;
  return (
    <Outcome
      what="backup cluster"
      legend={legend}
      headline={`Cluster backup ${m.status}`}
      fields={[
        ['Name', m.name],
        ['Databases', `${ok} of ${m.databases.length}`],
        ['Size', formatBytes(m.totalBytes)],
        ['Duration', formatDuration(m.durationSeconds)],
      ]}
    />
  );
}
