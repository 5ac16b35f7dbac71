import { Spinner } from '@inkjs/ui';
import { Box, Text, useInput } from 'ink';
import { useEffect, useRef, useState, type ReactNode } from 'react';
import type { DatabaseInfo } from '../../engines/engine.js';
import { engineFamily } from '../../engines/family.js';
import { validateSampleSpec, type SampleSpec } from '../../backup/sample/index.js';
import {
  COMPRESSION_ALGORITHMS,
  validateLevel,
  type CompressionAlgorithm,
} from '../../pipeline/compression.js';
import { formatBytes, formatDuration } from '../../pipeline/progress.js';
import { BackupMeter, type ProgressFrame } from '../meter.js';
import { Outcome, Running, StepBar, useOperation } from '../operation.js';
import type { BackupOutcome, BackupRequest } from '../services.js';
import {
  ErrorView,
  fit,
  Form,
  Frame,
  type FormField,
  SelectList,
  useApp,
  useTyping,
  label,
  keyFields,
  keyEntryOf,
  describeKeys,
} from '../ui.js';
import { NO_KEY } from '../keys.js';

type Step =
  | { at: 'pick' }
  | { at: 'options'; database: string }
  | { at: 'confirm'; request: BackupRequest }
  | { at: 'running'; request: BackupRequest }
  | { at: 'done'; request: BackupRequest; outcome: BackupOutcome }
  | { at: 'failed'; request: BackupRequest; error: unknown };

/** Backup of one database: pick it, set the options, confirm what will run, watch it, see the result. */
export function BackupScreen(props: { sample?: boolean }): ReactNode {
  const { nav, services } = useApp();
  const kind = props.sample ? 'sample' : 'backup';
  const [step, setStep] = useState<Step>({ at: 'pick' });
  switch (step.at) {
    case 'pick':
      return (
        <DatabasePicker
          title={`${kind}: choose a database`}
          onPick={(database) => setStep({ at: 'options', database })}
          onBack={() => nav.back()}
        />
      );
    case 'options':
      return (
        <Frame
          title={`${kind} ${step.database}: options`}
          legend="↑/↓ field · ←/→ choose · type to edit · enter next · esc back"
        >
          <Form
            fields={[
              ...(props.sample ? SAMPLE_FIELDS : []),
              {
                name: 'compression',
                label: 'Compression',
                value: services.compression.algorithm,
                choices: COMPRESSION_ALGORITHMS,
              },
              {
                name: 'level',
                label: 'Level',
                value: String(services.compression.level),
                help: 'zstd 1-19, gzip 1-9; ignored for none',
              },
              {
                name: 'destination',
                label: 'Destination',
                value: '',
                help: `directory or cloud URI; empty: ${services.destination}`,
              },
              ...(props.sample ? [] : keyFields(undefined, true, services.keyFile)),
            ]}
            onCancel={() => setStep({ at: 'pick' })}
            onSubmit={(v) =>
              setStep({
                at: 'confirm',
                request: {
                  database: step.database,
                  compression: (v.compression ?? 'zstd') as CompressionAlgorithm,
                  level: Number(v.level),
                  destination: v.destination ?? '',
                  keys: props.sample ? NO_KEY : keyEntryOf(v),
                  sample: props.sample ? sampleSpec(v) : undefined,
                },
              })
            }
          />
        </Frame>
      );
    case 'confirm':
      return (
        <Confirm
          request={step.request}
          onBack={() => setStep({ at: 'options', database: step.request.database })}
          onRun={(request) => setStep({ at: 'running', request })}
        />
      );
    case 'running':
      return (
        <BackupRunning
          request={step.request}
          onDone={(outcome) => setStep({ at: 'done', request: step.request, outcome })}
          onFailed={(error) => setStep({ at: 'failed', request: step.request, error })}
        />
      );
    case 'done':
    case 'failed':
      return <Result step={step} onBack={() => nav.back()} />;
  }
}

const SAMPLE_FIELDS: FormField[] = [
  { name: 'strategy', label: 'Sample', value: 'ratio', choices: ['ratio', 'percent', 'count'] },
  {
    name: 'value',
    label: 'Value',
    value: '10',
    help: 'ratio: every Nth row; percent: about N % of rows; count: at most N rows per table',
  },
  { name: 'references', label: 'Keep referenced rows', value: 'yes', choices: ['yes', 'no'] },
];

function sampleSpec(v: Record<string, string>): SampleSpec {
  return {
    strategy: (v.strategy ?? 'ratio') as SampleSpec['strategy'],
    value: Number(v.value),
    keepReferences: v.references !== 'no',
  };
}

function DatabasePicker(props: {
  title: string;
  onPick: (database: string) => void;
  onBack: () => void;
}): ReactNode {
  const { services, nav } = useApp();
  const [databases, setDatabases] = useState<DatabaseInfo[] | undefined>();
  const [error, setError] = useState<unknown>();
  useTyping();
  useEffect(() => {
    services.listDatabases().then(setDatabases, setError);
  }, [services, nav]);
  useInput((_input, key) => {
    if (key.escape) props.onBack();
  });
  return (
    <Frame title={props.title} legend="type to filter · ↑/↓ move · enter choose · esc back · ctrl-c quit">
      {error ? <ErrorView error={error} /> : null}
      {!databases && !error ? <Spinner label={`Reading the databases on ${services.server}…`} /> : null}
      {databases ? (
        <SelectList
          filter
          items={databases.map((d) => ({
            key: d.name,
            label: `${fit(d.name, 50)} ${d.sizeBytes === null ? '?' : formatBytes(d.sizeBytes)}`,
            detail: d.name,
          }))}
          onSelect={(item) => props.onPick(item.key)}
        />
      ) : null}
    </Frame>
  );
}

/** The command line that does the same: what will run, in the words the CLI documents. */
export function equivalentCommand(engine: string, r: BackupRequest): string {
  const parts = ['dbbackup', '--db-type', engine];
  parts.push('--compression-algo', r.compression);
  if (r.compression !== 'none') parts.push('--compression', String(r.level));
  if (r.sample) {
    parts.push('backup', 'sample', r.database, '--sample-strategy', r.sample.strategy);
    parts.push('--sample-value', String(r.sample.value));
    if (!r.sample.keepReferences) parts.push('--no-keep-references');
  } else parts.push('backup', 'single', r.database);
  const where = r.destination.trim();
  if (/^[a-z0-9]+:\/\//i.test(where)) parts.push('--cloud', where);
  else if (where) parts.push('--backup-dir', where);
  if (r.keys.file) parts.push('--encryption-key-file', r.keys.file);
  if (r.keys.passphrase) parts.push('--passphrase-file', '(the passphrase typed)');
  return parts.join(' ');
}

function Confirm(props: {
  request: BackupRequest;
  onBack: () => void;
  onRun: (r: BackupRequest) => void;
}): ReactNode {
  const { services } = useApp();
  const r = props.request;
  let problem: unknown;
  let level = r.level;
  try {
    level = validateLevel(r.compression, r.compression === 'none' ? undefined : r.level);
    if (r.sample) validateSampleSpec(r.sample.strategy, r.sample.value);
  } catch (err) {
    problem = err;
  }
  const request = { ...r, level };
  useInput((input, key) => {
    if (key.escape || input === 'n') props.onBack();
    else if (!problem && (key.return || input === 'y')) props.onRun(request);
  });
  const tool = engineFamily(services.engine).dumpDescription;
  return (
    <Frame
      title="backup: confirm"
      legend={problem ? 'esc back to the options' : 'enter/y run · esc/n back · q quit'}
    >
      <Text>This will run:</Text>
      <Text bold> {equivalentCommand(services.engine, request)}</Text>
      <Box flexDirection="column" marginTop={1}>
        <Text>
          {label('Database')}
          {r.database} on {services.server} ({tool})
        </Text>
        <Text>
          {label('Compression')}
          {r.compression}
          {r.compression === 'none' ? '' : ` level ${level}`}
        </Text>
        <Text>
          {label('Encryption')}
          {describeKeys(r.keys)}
        </Text>
        <Text>
          {label('Destination')}
          {r.destination.trim() || services.destination}
        </Text>
      </Box>
      {problem ? <ErrorView error={problem} /> : null}
    </Frame>
  );
}

function BackupRunning(props: {
  request: BackupRequest;
  onDone: (o: BackupOutcome) => void;
  onFailed: (e: unknown) => void;
}): ReactNode {
  const { services } = useApp();
  const [frame, setFrame] = useState<ProgressFrame | undefined>();
  const [note, setNote] = useState<string | undefined>();
  const meter = useRef<BackupMeter | undefined>(undefined);
  const { request } = props;
  useOperation(
    (signal) =>
      request.sample
        ? services.backupSample(request, setNote, signal)
        : services.backupSingle(
            request,
            (source, estimate) => {
              meter.current = new BackupMeter(source, estimate);
            },
            signal,
          ),
    {
      ...props,
      onTick: () => {
        if (meter.current) setFrame(meter.current.frame());
      },
    },
  );
  return (
    <Running title={`${request.sample ? 'sample' : 'backup'} ${request.database}: running`}>
      {frame ? (
        <StepBar percent={frame.percent}>
          <Text>
            {frame.produced} dumped, {frame.stored} stored · {frame.rate} · {frame.elapsed} · ETA {frame.left}
          </Text>
        </StepBar>
      ) : (
        <Spinner label={note ?? 'Checking the server, the tools and the destination…'} />
      )}
    </Running>
  );
}

function Result(props: {
  step: Extract<Step, { at: 'done' } | { at: 'failed' }>;
  onBack: () => void;
}): ReactNode {
  const s = props.step;
  const what = `backup ${s.request.database}`;
  const legend = 'enter/esc back to the menu · q quit';
  if (s.at === 'failed') return <Outcome what={what} legend={legend} onBack={props.onBack} error={s.error} />;
  return (
    <Outcome
      what={what}
      legend={legend}
      onBack={props.onBack}
      headline="Backup complete"
      fields={[
        ...s.outcome.locations.map((l) => ['File', l] as const),
        ['Size', formatBytes(s.outcome.metadata.sizeBytes)],
        ['SHA-256', s.outcome.metadata.sha256],
        ['Duration', formatDuration(s.outcome.metadata.durationSeconds)],
      ]}
    />
  );
}
