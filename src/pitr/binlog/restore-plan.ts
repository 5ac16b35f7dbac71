import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { BackupMetadata } from '../../catalog/metadata.js';
import type { PhysicalMetadata } from '../../catalog/physical-backup.js';
import { serverFlavorOf } from '../../engines/flavor.js';
import { errnoCode, UsageError } from '../../errors.js';
import type { Storage } from '../../storage/storage.js';
import type { OsUser } from '../../os/user.js';
import {
  applied,
  contains,
  describeState,
  formatGtid,
  parseGtidList,
  stateOf,
  type GtidState,
} from './events.js';
import type { BinlogArchiveIdentity } from './identity.js';
import {
  archivedFiles,
  chainFrom,
  newestOf,
  readBinlogInventory,
  type BinlogInventory,
  type StoredBinlog,
} from './inventory.js';
import { binlogNumber } from './names.js';
import { chainOf, readPhysicalBackups, type PhysicalEntry } from './physical-catalog.js';
import { describeReplayTarget, type ReplayTarget } from './replay.js';

/** A logical backup given to `restore pitr`: where it is and what its metadata says. */
export interface LogicalBase {
  storage: Storage;
  key: string;
  metadata: BackupMetadata;
}

export interface BinlogRestoreInput {
  storage: Storage;
  identity: BinlogArchiveIdentity;
  /** A physical backup's name, `latest`, or a logical backup (resolved by the caller). */
  backup: string;
  logical?: LogicalBase;
  target: ReplayTarget;
  dataDir?: string;
  force: boolean;
  osUser: OsUser;
  port?: number;
}

export interface BinlogRestorePlan {
  archive: string;
  kind: 'physical' | 'logical' | 'cluster';
  base: {
    name: string;
    finishedAt: string;
    /** Full backup first (physical), or the one dump (logical). */
    chain: Array<{ name: string; type: string; storedBytes: number; sha256: string }>;
    binlog: { file: string | null; position: number | null; gtid: string };
  } | null;
  target: string;
  /** Transactions after this GTID state are replayed. */
  replayFrom: string;
  binlogs: { files: string[]; bytes: number; endsOpen: boolean } | null;
  coverage: string;
  dataDir: { path: string; exists: boolean; entries: number; owner: string } | null;
  /** The database a logical backup is restored into (and the binlog replay limited to). */
  database: string | null;
  /** A cluster backup: each database is replayed from its own dump's position. */
  members?: Array<{ database: string; replayFrom: string; startFile: string | null; binlogs: number }>;
  refusals: string[];
  warnings: string[];
}

export interface PlannedRestore {
  plan: BinlogRestorePlan;
  /** Physical: the chain, full first. */
  chain: PhysicalMetadata[];
  binlogs: StoredBinlog[];
  from: GtidState;
  /**
   * Logical backups: each database, the GTID state its dump holds and the binlogs its replay reads
   * (a single-database backup has one; a cluster backup one per database, each from its own dump's
   * position).
   */
  replays?: DatabaseReplay[];
}

export interface DatabaseReplay {
  database: string;
  from: GtidState;
  binlogs: StoredBinlog[];
}

/** Everything decided before a byte is written: the dry run. */
export async function planBinlogRestore(i: BinlogRestoreInput): Promise<PlannedRestore> {
  const refusals: string[] = [];
  const warnings: string[] = [];
  const inv = await readBinlogInventory(i.storage);
  const entries = i.logical ? [] : await readPhysicalBackups(i.storage);
  const base = i.logical ? logicalBase(i.logical, refusals) : physicalBase(entries, i, refusals);
  const from = stateOf(parseGtidList(base?.binlog?.gtid ?? '') ?? []);
  let binlogs: StoredBinlog[] = [];
  let coverage =
    base && !base.binlog
      ? 'the backup alone: it records no binlog position, so no binlog is replayed'
      : 'not checked';
  let endsOpen = false;
  if (base?.binlog) {
    const start = base.binlog.file ?? startFileFor(inv, from, refusals);
    if (start) {
      const r = binlogsFor(inv, start, i.target, refusals);
      binlogs = r.files;
      coverage = r.coverage;
      endsOpen = r.endsOpen;
    }
  }
  if (i.target.kind === 'gtid' && applied(from, i.target.gtid))
    refusals.push(
      `the backup already contains ${formatGtid(i.target.gtid)} (its GTID state is ${describeState(from)}): choose an older backup`,
    );
  let dataDir: BinlogRestorePlan['dataDir'] = null;
  if (!i.logical) {
    if (!i.dataDir)
      throw new UsageError(
        '--data-dir is required to restore a physical backup',
        'Give an empty or new directory.',
      );
    const d = await dirState(i.dataDir);
    dataDir = { path: path.resolve(i.dataDir), exists: d.exists, entries: d.entries, owner: i.osUser.name };
    if (d.entries > 0 && !i.force)
      refusals.push(
        `${i.dataDir} is not empty (${d.entries} entries): give an empty or new directory, or --force to replace its contents`,
      );
    if (d.running) refusals.push(`a server is running in ${i.dataDir} (mysqld.pid): stop it first`);
  }
  if (i.logical)
    warnings.push(
      `only database ${i.logical.metadata.database} is replayed: row changes by their table, statements (DDL) by the default database they ran in (USE), as mariadb-binlog --database does`,
    );
  if (i.logical && i.logical.metadata.kind !== 'single')
    refusals.push(
      `${i.logical.key} is a ${i.logical.metadata.kind} backup: restore pitr takes a full single-database backup`,
    );
  const plan: BinlogRestorePlan = {
    archive: i.storage.location,
    kind: i.logical ? 'logical' : 'physical',
    base: base
      ? {
          name: base.name,
          finishedAt: base.finishedAt,
          chain: base.chain,
          binlog: base.binlog ?? { file: null, position: null, gtid: '' },
        }
      : null,
    target: describeReplayTarget(i.target),
    replayFrom: describeState(from) || '(nothing: every transaction in the binlogs)',
    binlogs: binlogs.length
      ? {
          files: binlogs.map((b) => `${b.file}${b.partial ? ' (open, stored prefix)' : ''}`),
          bytes: binlogs.reduce((n, b) => n + b.facts.rawBytes, 0),
          endsOpen,
        }
      : null,
    coverage,
    dataDir,
    database: i.logical?.metadata.database ?? null,
    refusals,
    warnings,
  };
  const chain = base?.members ?? [];
  const replays = i.logical ? [{ database: i.logical.metadata.database, from, binlogs }] : undefined;
  return { plan, chain, binlogs, from, replays };
}

interface ChosenBase {
  name: string;
  finishedAt: string;
  chain: Array<{ name: string; type: string; storedBytes: number; sha256: string }>;
  members: PhysicalMetadata[];
  binlog: { file: string | null; position: number | null; gtid: string } | null;
}

function logicalBase(l: LogicalBase, refusals: string[]): ChosenBase {
  const m = l.metadata;
  if (!m.binlog)
    refusals.push(
      `${l.key} records no binlog position (it was taken without binary logging, or by an older dbbackup): it cannot be rolled forward`,
    );
  return {
    name: l.key,
    finishedAt: m.finishedAt,
    chain: [
      { name: l.key, type: `logical ${m.kind} (${m.database})`, storedBytes: m.sizeBytes, sha256: m.sha256 },
    ],
    members: [],
    binlog: m.binlog ?? null,
  };
}

function physicalBase(
  entries: PhysicalEntry[],
  i: BinlogRestoreInput,
  refusals: string[],
): ChosenBase | undefined {
  let chosen: PhysicalEntry | undefined;
  if (i.backup === 'latest') {
    chosen = [...entries]
      .reverse()
      .find(
        (e) =>
          (e.meta?.binlog || i.target.kind === 'end') &&
          !chainOf(entries, e.name).problem &&
          e.meta &&
          beforeTarget(e.meta, i.target),
      );
    if (!chosen)
      refusals.push(
        entries.some((e) => e.meta)
          ? `no valid physical backup with a binlog position lies before ${describeReplayTarget(i.target)}`
          : 'the archive holds no finished physical backup: run "dbbackup backup physical" first',
      );
  } else {
    chosen = entries.find((e) => e.name === i.backup);
    if (!chosen)
      refusals.push(
        `no physical backup named ${i.backup} in the archive (${entries.map((e) => e.name).join(', ') || 'none'})`,
      );
    else if (chosen.meta && !beforeTarget(chosen.meta, i.target))
      refusals.push(`${chosen.name} lies after the target: a replay cannot go back in time`);
  }
  if (!chosen) return undefined;
  const c = chainOf(entries, chosen.name);
  if (c.problem) refusals.push(`the chain of ${chosen.name} is broken: ${c.problem}`);
  const meta = chosen.meta;
  if (meta && !serverFlavorOf(meta.engine).preparesPhysical)
    refusals.push(
      `${chosen.name} is a MySQL physical backup (xtrabackup): restore pitr prepares MariaDB backups only; restore it by hand (xbstream -x, xtrabackup --prepare, xtrabackup --copy-back)`,
    );
  if (meta && !meta.binlog && i.target.kind !== 'end')
    refusals.push(
      `${chosen.name} records no binlog position: it can be restored as it is (no target), not rolled forward to one (binary logging was off)`,
    );
  const members = c.members.flatMap((m) => (m.meta ? [m.meta] : []));
  return {
    name: chosen.name,
    finishedAt: meta?.finishedAt ?? '?',
    chain: members.map((m) => ({
      name: m.name,
      type: m.backupType,
      storedBytes: m.sizeBytes,
      sha256: m.files[0]?.sha256 ?? '',
    })),
    members,
    binlog: meta?.binlog ?? null,
  };
}

/** Whether a backup's consistency point lies before the target (replay only goes forward). */
function beforeTarget(meta: PhysicalMetadata, t: ReplayTarget): boolean {
  if (!meta.binlog) return t.kind === 'end';
  switch (t.kind) {
    case 'end':
      return true;
    case 'time':
      return new Date(meta.finishedAt) <= t.time;
    case 'gtid':
      return !applied(stateOf(parseGtidList(meta.binlog.gtid) ?? []), t.gtid);
    case 'position': {
      const a = binlogNumber(meta.binlog.file).n;
      const b = binlogNumber(t.file).n;
      return a < b || (a === b && meta.binlog.position <= t.position);
    }
  }
}

/**
 * The binlog holding the first transaction after a GTID state (a logical backup records only
 * that): the oldest file that ends beyond it. Its start must not be beyond the state, or the
 * transactions in between are in a file the archive lacks.
 */
export function startFileFor(inv: BinlogInventory, state: GtidState, refusals: string[]): string | undefined {
  for (const name of archivedFiles(inv)) {
    const b = newestOf(inv, name);
    if (!b) continue;
    const end = stateOf(parseGtidList(b.facts.endGtids) ?? []);
    if (contains(state, end)) continue;
    const start = stateOf(parseGtidList(b.facts.startGtids) ?? []);
    if (!contains(state, start)) {
      refusals.push(
        `the archive's binlogs start at ${name} (GTID state ${b.facts.startGtids || 'empty'}), after the backup's ${describeState(state)}: the binlog before ${name} is missing`,
      );
      return undefined;
    }
    return name;
  }
  const newest = archivedFiles(inv).at(-1);
  if (newest) return newest;
  refusals.push('the archive holds no binlog: run "dbbackup binlog archive" or "binlog stream" first');
  return undefined;
}

/** The binlogs a replay from `start` to the target reads, and whether the archive reaches the target. */
export function binlogsFor(
  inv: BinlogInventory,
  start: string,
  t: ReplayTarget,
  refusals: string[],
): { files: StoredBinlog[]; coverage: string; endsOpen: boolean } {
  const chain = chainFrom(inv, start);
  const files = chain.files;
  const gap = chain.gap
    ? `binlog ${chain.gap.missing} is missing from the archive (it resumes at ${chain.gap.resumesAt})`
    : undefined;
  if (!files.length || files[0]?.file !== start) {
    refusals.push(`binlog ${start}, where the backup's position lies, is missing from the archive`);
    return { files: [], coverage: 'not covered', endsOpen: false };
  }
  const last = files.at(-1);
  const lastTime = last?.facts.lastEventTime ?? '?';
  const upTo = (idx: number, why: string) => ({
    files: files.slice(0, idx + 1),
    coverage: why,
    endsOpen: Boolean(files[idx]?.partial),
  });
  switch (t.kind) {
    case 'end':
      if (gap) refusals.push(`${gap}: the replay cannot cross it (give a target before it)`);
      return upTo(
        files.length - 1,
        `to the end of the archive: through ${last?.file ?? '?'}${last?.partial ? ' (open, stored prefix)' : ''}, last event ${lastTime}`,
      );
    case 'time': {
      const idx = files.findIndex(
        (b) => b.facts.lastEventTime !== null && new Date(b.facts.lastEventTime) >= t.time,
      );
      if (idx >= 0)
        return upTo(
          idx,
          `covered: ${files[idx]?.file ?? '?'} holds events at or after the target (its last at ${files[idx]?.facts.lastEventTime ?? '?'})`,
        );
      if (gap) {
        refusals.push(`${gap}: the target lies beyond it`);
        return upTo(files.length - 1, 'not covered');
      }
      if (last && new Date(last.facts.storedAt) >= t.time)
        return upTo(
          files.length - 1,
          `covered: the last transaction (${lastTime}) is before the target, and the archive was current at ${last.facts.storedAt}, after it`,
        );
      refusals.push(
        `the archive ends before ${t.text}: its newest binlog event is at ${lastTime} (stored ${last?.facts.storedAt ?? '?'}); run "dbbackup binlog archive --flush" (or keep "binlog stream" running) and try again`,
      );
      return upTo(files.length - 1, 'not covered');
    }
    case 'gtid': {
      const idx = files.findIndex((b) => applied(stateOf(parseGtidList(b.facts.endGtids) ?? []), t.gtid));
      if (idx >= 0) return upTo(idx, `covered: ${formatGtid(t.gtid)} is in ${files[idx]?.file ?? '?'}`);
      refusals.push(
        gap
          ? `${gap}: ${formatGtid(t.gtid)} lies beyond it`
          : `${formatGtid(t.gtid)} is not in the archive: its binlogs end at ${last?.facts.endGtids ?? '?'}`,
      );
      return upTo(files.length - 1, 'not covered');
    }
    case 'position': {
      const idx = files.findIndex((b) => b.file === t.file);
      const b = files[idx];
      if (b && t.position <= b.facts.rawBytes)
        return upTo(idx, `covered: ${t.file} is archived through byte ${b.facts.rawBytes}`);
      refusals.push(
        b
          ? `${t.file} is archived through byte ${b.facts.rawBytes} only, before position ${t.position}`
          : gap
            ? `${gap}: ${t.file} lies beyond it`
            : `${t.file} is not in the archive after ${start}`,
      );
      return upTo(files.length - 1, 'not covered');
    }
  }
}

async function dirState(dir: string): Promise<{ exists: boolean; entries: number; running: boolean }> {
  const names = await readdir(dir).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return undefined;
    if (errnoCode(err) === 'ENOTDIR') throw new UsageError(`--data-dir ${dir} is not a directory`);
    throw err;
  });
  if (!names) return { exists: false, entries: 0, running: false };
  return { exists: true, entries: names.length, running: names.includes('mysqld.pid') };
}
