import { Spinner } from '@inkjs/ui';
import { Box, Text, useInput } from 'ink';
import { useEffect, useState, type ReactNode } from 'react';
import { engineFamily } from '../../engines/family.js';
import { formatBytes } from '../../pipeline/progress.js';
import type { TargetAction } from '../../pitr/recovery.js';
import type { KeyEntry } from '../keys.js';
import type {
  BaseBackupList,
  BaseBackupRow,
  PitrDone,
  PitrPreview,
  PitrRequest,
  PitrTargetKind,
} from '../services.js';
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
  type FormField,
} from '../ui.js';
import { PitrResult, PitrRunning } from './pitr-run.js';

interface Source {
  archive: string;
  keys: KeyEntry;
}

/** The base chosen: its name as restore pitr takes it, and whether it is a logical backup (MariaDB). */
interface Base {
  name: string;
  logical: boolean;
}

type Step =
  | { at: 'archive'; source?: Source }
  | { at: 'pick'; source: Source }
  | { at: 'options'; source: Source; base: Base; request?: PitrRequest }
  | { at: 'preview'; base: Base; request: PitrRequest; preview?: PitrPreview; error?: unknown }
  | { at: 'running'; preview: PitrPreview }
  | { at: 'done'; preview: PitrPreview; done: PitrDone }
  | { at: 'failed'; preview: PitrPreview; error: unknown };

/** The targets each kind of archive knows: WAL (PostgreSQL) and binlogs (MariaDB). */
const TARGET_KINDS = {
  wal: ['end', 'time', 'lsn', 'xid', 'name', 'immediate'],
  binlog: ['end', 'time', 'gtid', 'position'],
} as const satisfies Record<string, readonly PitrTargetKind[]>;
const TARGET_HELP = {
  wal: 'time with its offset "2026-12-07 05:33:41+00", LSN 0/15D6B40, xid 4642, or a name',
  binlog: 'a whole second "2026-12-07 05:33:41+00", a GTID 0-1-1345, or mysql-bin.000042:1234',
};
const ACTIONS: readonly TargetAction[] = ['promote', 'pause', 'shutdown'];

/**
 * Point-in-time restore as `restore pitr`: the archive (typed, or pitr.archive from the
 * configuration), a backup to start from — PostgreSQL: a base backup of the WAL archive; MariaDB: a
 * physical backup of the binlog archive, or a logical backup (single or cluster) of the backup
 * directory — the target and where to restore, then the command's dry-run plan, and only enter on
 * that screen restores (and, when asked, starts the restored server and waits for its target).
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
          onNext={(request) => setStep({ at: 'preview', base: step.base, request })}
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
              base: step.base,
              request: step.request,
            })
          }
        />
      );
    case 'running':
      return (
        <PitrRunning
          preview={step.preview}
          onDone={(done) => setStep({ at: 'done', preview: step.preview, done })}
          onFailed={(error) => setStep({ at: 'failed', preview: step.preview, error })}
        />
      );
    case 'done':
    case 'failed':
      return <PitrResult {...step} />;
  }
}

function ArchiveForm(props: {
  step: Extract<Step, { at: 'archive' }>;
  onNext: (s: Source) => void;
}): ReactNode {
  const { services, nav } = useApp();
  const s = props.step.source;
  const binlog = engineFamily(services.engine).logArchive === 'binlog';
  return (
    <Frame title="point-in-time restore: archive" legend="↑/↓ field · type to edit · enter next · esc back">
      <Form
        fields={[
          {
            name: 'archive',
            label: binlog ? 'Binlog archive' : 'WAL archive',
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

function baseLine(b: BaseBackupRow, binlog: boolean): string {
  const ended = b.finishedAt ? b.finishedAt.replace('T', ' ').slice(0, 16) : '?';
  const size = b.sizeBytes === undefined ? '?' : formatBytes(b.sizeBytes);
  const name = fit(b.shown ?? b.name, 24);
  if (binlog) return `${name} ${fit(ended, 16)} ${fit(b.kind ?? '', 20)} ${fit(size, 9)} ${b.state}`;
  return `${name} ${fit(ended, 16)} ${fit(b.timeline === undefined ? '?' : String(b.timeline), 3)} ${fit(size, 10)} ${b.state}`;
}

function BasePicker(props: { source: Source; onPick: (base: Base) => void; onBack: () => void }): ReactNode {
  const { services } = useApp();
  const [list, setList] = useState<BaseBackupList | undefined>();
  const [error, setError] = useState<unknown>();
  const [detail, setDetail] = useState<string | undefined>();
  const { source } = props;
  const binlog = engineFamily(services.engine).logArchive === 'binlog';
  useEffect(() => {
    services.listBaseBackups(source.archive, source.keys).then(setList, setError);
  }, [services, source]);
  useInput((_input, key) => {
    if (key.escape) props.onBack();
  });
  const latest = binlog
    ? 'latest (the newest physical backup before the target)'
    : 'latest (the newest base backup that ends before the target)';
  const items = list
    ? [
        { key: 'latest', label: latest },
        ...list.bases.map((b) => ({ key: b.name, label: baseLine(b, binlog), detail: b.detail })),
      ]
    : [];
  const header = binlog
    ? `${fit('BACKUP', 24)} ${fit('ENDED (UTC)', 16)} ${fit('KIND', 20)} ${fit('SIZE', 9)} STATE`
    : `${fit('BASE BACKUP', 24)} ${fit('ENDED (UTC)', 16)} ${fit('TL', 3)} ${fit('SIZE', 10)} STATE`;
  return (
    <Frame
      title={`point-in-time restore: ${binlog ? 'backup' : 'base backup'}`}
      legend="↑/↓ move · enter choose · esc back · q quit"
    >
      <Text dimColor>{list?.location ?? source.archive}</Text>
      {error ? <ErrorView error={error} /> : null}
      {!list && !error ? (
        <Spinner
          label={
            binlog
              ? 'Reading the archive: physical backups, binlogs; the logical backups…'
              : 'Reading the archive: base backups, WAL, timelines…'
          }
        />
      ) : null}
      {list ? (
        <Box flexDirection="column">
          <Text bold>
            {'  '}
            {header}
          </Text>
          <SelectList
            height={10}
            items={items}
            onHighlight={(item) => setDetail(list.bases.find((b) => b.name === item?.key)?.detail)}
            onSelect={(item) =>
              props.onPick({
                name: item.key,
                logical: Boolean(list.bases.find((b) => b.name === item.key)?.logical),
              })
            }
          />
          {detail ? <Text dimColor>{fit(detail, 78).trim()}</Text> : null}
        </Box>
      ) : null}
    </Frame>
  );
}

/** The options of the restore: the target, then where (a data directory, or the server) and how. */
function optionFields(binlog: boolean, base: Base, r: PitrRequest | undefined): FormField[] {
  const kinds = binlog ? TARGET_KINDS.binlog : TARGET_KINDS.wal;
  const yesNo = (name: string, text: string, on: boolean | undefined, help?: string): FormField => ({
    name,
    label: text,
    value: on ? 'yes' : 'no',
    choices: ['no', 'yes'],
    help,
  });
  const target: FormField[] = [
    {
      name: 'kind',
      label: 'Recover to',
      value: r && (kinds as readonly string[]).includes(r.targetKind) ? r.targetKind : 'time',
      choices: kinds,
      help: binlog
        ? 'end of the archive, a time, a transaction (GTID), or a binlog position'
        : 'end of the archive, a time, an LSN, a transaction, a restore point, or the base backup',
    },
    {
      name: 'value',
      label: 'Target',
      value: r?.targetValue ?? '',
      help: TARGET_HELP[binlog ? 'binlog' : 'wal'],
    },
  ];
  if (base.logical)
    return [
      ...target,
      yesNo('clean', 'Drop and recreate', r?.clean, 'each database of the backup first, if it exists'),
    ];
  const start = [
    yesNo(
      'start',
      'Start the server',
      r?.start,
      'start it when restored, and wait until it reaches the target',
    ),
    { name: 'port', label: 'Port', value: r?.port ?? '', help: 'of the restored server (to start it)' },
  ];
  const dir = { name: 'dataDir', label: 'Data directory', value: r?.dataDir ?? '', help: 'empty or new' };
  const force = yesNo('force', 'Replace a non-empty dir', r?.force);
  if (binlog) return [...target, dir, force, ...start];
  return [
    ...target,
    dir,
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
    force,
    ...start,
  ];
}

function Options(props: {
  step: Extract<Step, { at: 'options' }>;
  onBack: () => void;
  onNext: (r: PitrRequest) => void;
}): ReactNode {
  const { services } = useApp();
  const { source, base, request: r } = props.step;
  const binlog = engineFamily(services.engine).logArchive === 'binlog';
  return (
    <Frame
      title="point-in-time restore: options"
      legend="↑/↓ field · ←/→ choose · type to edit · enter preview · esc back"
    >
      <Text>
        {label(base.logical ? 'Backup' : binlog ? 'Physical backup' : 'Base backup', binlog ? 17 : 13)}
        {base.name}
      </Text>
      <Form
        fields={optionFields(binlog, base, r)}
        onCancel={props.onBack}
        onSubmit={(v) =>
          props.onNext({
            archive: source.archive,
            keys: source.keys,
            base: base.name,
            targetKind: (v.kind ?? 'end') as PitrTargetKind,
            targetValue: v.value ?? '',
            timeline: v.timeline ?? 'latest',
            action: (v.action ?? 'promote') as TargetAction,
            inclusive: v.inclusive !== 'no',
            dataDir: (v.dataDir ?? '').trim(),
            force: v.force === 'yes',
            start: v.start === 'yes',
            port: (v.port ?? '').trim(),
            clean: v.clean === 'yes',
          })
        }
      />
    </Frame>
  );
}

/** Rows a line takes in `width` columns. */
const rowsOf = (line: string, width: number): number => Math.max(1, Math.ceil(line.length / width));

function Preview(props: {
  step: Extract<Step, { at: 'preview' }>;
  onUpdate: (s: Step) => void;
  onBack: () => void;
}): ReactNode {
  const { services } = useApp();
  const c = useColor();
  const { rows, columns } = useTerminalSize();
  const [top, setTop] = useState(0);
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
  // What refuses the restore stays in sight; the rest of the plan scrolls above it.
  const pinned = p?.lines.filter((l) => l.startsWith('REFUSED')) ?? [];
  const body = p?.lines.filter((l) => !l.startsWith('REFUSED')) ?? [];
  const width = columns - 1;
  let room = Math.max(3, rows - 9 - pinned.reduce((n, l) => n + rowsOf(l, width), 0));
  const shown: string[] = [];
  for (const l of body.slice(top)) {
    room -= rowsOf(l, width);
    if (room < 0) break;
    shown.push(l);
  }
  const more = body.length - top - shown.length;
  useInput((input, key) => {
    if (key.escape || input === 'n') props.onBack();
    else if (key.downArrow && more > 0) setTop(top + 1);
    else if (key.upArrow && top > 0) setTop(top - 1);
    else if (p && ok && (key.return || input === 'y')) onUpdate({ at: 'running', preview: p });
  });
  const scroll = more > 0 || top > 0 ? ' · ↑/↓ scroll the plan' : '';
  return (
    <Frame
      title="point-in-time restore: plan"
      legend={
        ok
          ? `enter/y restore · esc/n back to the options${scroll} · q quit`
          : `esc back to the options${scroll} · q quit`
      }
    >
      {!p && !step.error ? <Spinner label="Reading the archive and checking the target…" /> : null}
      {step.error ? <ErrorView error={step.error} /> : null}
      {p ? (
        <Box flexDirection="column">
          <Text dimColor>Nothing is changed until you press enter on this screen.</Text>
          {shown.map((l, i) => (
            <Text key={`${top + i}:${l}`}>{l}</Text>
          ))}
          {more > 0 ? <Text dimColor>… {more} more line(s) of the plan (↓)</Text> : null}
          {pinned.map((l) => (
            <Text key={l} color={c('red')}>
              {l}
            </Text>
          ))}
          {ok ? (
            <Text color={c('yellow')} bold>
              Restore into {p.into} now?{p.request.start ? ` Then start it on port ${p.request.port}.` : ''}
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
