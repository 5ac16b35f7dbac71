import { Spinner } from '@inkjs/ui';
import { Box, Text, useInput } from 'ink';
import { useEffect, useRef, useState, type ReactNode } from 'react';
import type { ClusterManifest } from '../../catalog/manifest.js';
import {
  COMPRESSION_ALGORITHMS,
  validateLevel,
  type CompressionAlgorithm,
} from '../../pipeline/compression.js';
import { formatBytes, formatDuration } from '../../pipeline/progress.js';
import { ClusterWatch, type MemberView } from '../cluster-watch.js';
import { textBar } from '../meter.js';
import type { ClusterRequest } from '../services.js';
import { ErrorView, fit, Form, Frame, label, useApp, useColor } from '../ui.js';

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
        <Running
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

function memberLine(m: MemberView): string {
  const pct = m.state === 'done' ? 100 : m.estimate ? Math.min(99, (100 * m.bytes) / m.estimate) : 0;
  const state = m.state === 'active' ? 'dumping' : m.state;
  return `${fit(m.name, 24)} ${textBar(pct, 20)} ${fit(state, 8)} ${formatBytes(m.bytes)}`;
}

function Running(props: {
  request: ClusterRequest;
  onDone: (m: ClusterManifest) => void;
  onFailed: (e: unknown) => void;
}): ReactNode {
  const { services, nav } = useApp();
  const c = useColor();
  const watch = useRef(new ClusterWatch());
  const [members, setMembers] = useState<MemberView[]>([]);
  const started = useRef(false);
  const callbacks = useRef(props);
  callbacks.current = props;
  useEffect(() => {
    if (started.current) return;
    started.current = true;
    const timer = setInterval(() => setMembers(watch.current.view()), 250);
    nav
      .run((signal) => services.backupCluster(props.request, watch.current, signal))
      .then(
        (m) => callbacks.current.onDone(m),
        (e: unknown) => callbacks.current.onFailed(e),
      )
      .finally(() => clearInterval(timer));
  }, [services, nav, props.request]);
  const done = members.filter((m) => m.state === 'done').length;
  const total = members.reduce((n, m) => n + m.bytes, 0);
  const elapsed = (Date.now() - watch.current.started) / 1000;
  return (
    <Frame title="backup cluster: running" legend="q/ctrl-c stop and quit (asks first)">
      {members.length ? (
        <Box flexDirection="column">
          <Text>
            {done} of {members.length} databases · {formatBytes(total)} dumped ·{' '}
            {formatBytes(elapsed > 0 ? total / elapsed : 0)}/s · {formatDuration(elapsed)}
          </Text>
          {members.slice(0, 14).map((m) => (
            <Text
              key={m.name}
              color={m.state === 'failed' ? c('red') : m.state === 'done' ? c('green') : undefined}
            >
              {memberLine(m)}
            </Text>
          ))}
          {members.length > 14 ? <Text dimColor>… and {members.length - 14} more</Text> : null}
        </Box>
      ) : (
        <Spinner label="Reading the databases and the roles…" />
      )}
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
      <Frame title="backup cluster: failed" legend="enter/esc back to the menu · q quit">
        <ErrorView error={s.error} />
      </Frame>
    );
  const m = s.manifest;
  const ok = m.databases.filter((d) => d.status === 'ok').length;
  return (
    <Frame title="backup cluster: complete" legend="enter/esc back to the menu · q quit">
      <Text color={c('green')} bold>
        Cluster backup {m.status}
      </Text>
      <Text>
        {label('Name')}
        {m.name}
      </Text>
      <Text>
        {label('Databases')}
        {ok} of {m.databases.length}
      </Text>
      <Text>
        {label('Size')}
        {formatBytes(m.totalBytes)}
      </Text>
      <Text>
        {label('Duration')}
        {formatDuration(m.durationSeconds)}
      </Text>
    </Frame>
  );
}
