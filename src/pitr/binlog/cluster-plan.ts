import type { ClusterManifest, ClusterMember } from '../../catalog/manifest.js';
import { binlogFlavor } from '../../engines/flavor.js';
import type { Storage } from '../../storage/storage.js';
import { applied, describeState, formatGtid, parseGtidList, stateOf, type GtidState } from './events.js';
import { readBinlogInventory, type BinlogInventory, type StoredBinlog } from './inventory.js';
import { binlogNumber } from './names.js';
import { describeReplayTarget, type ReplayTarget } from './replay.js';
import {
  binlogsFor,
  startFileFor,
  type BinlogRestorePlan,
  type DatabaseReplay,
  type PlannedRestore,
} from './restore-plan.js';

/**
 * `restore pitr` from a logical cluster backup.
 *
 * Each database of a cluster backup is its own mariadb-dump (up to --parallelism at once), each
 * with its own snapshot: the members are NOT consistent with one another, and each records its own
 * binlog position and GTID state (manifest `databases[].binlog`). So there is no single position to
 * replay the whole server from. Instead every database is rolled forward from its own snapshot:
 * the transactions after that dump's GTID state, up to the (common) target, filtered to that
 * database as `mariadb-binlog --database` does. A transaction that touched two databases between
 * their snapshots is already in the later dump and is replayed only into the earlier one; every
 * database ends at the same target, so the restored databases are consistent with one another at
 * the target. (Dumping all databases in one snapshot would need one mariadb-dump for the whole
 * server, which gives up the per-database files and the parallel dumps.)
 */

export interface ClusterBase {
  storage: Storage;
  /** The cluster backup's name (its directory / prefix). */
  name: string;
  manifest: ClusterManifest;
}

export interface ClusterPitrInput {
  storage: Storage;
  cluster: ClusterBase;
  target: ReplayTarget;
}

interface MemberStart {
  member: ClusterMember;
  from: GtidState;
  start: string;
}

/** Everything decided before a byte is written (the dry run), for a cluster backup. */
export async function planClusterBinlogRestore(i: ClusterPitrInput): Promise<PlannedRestore> {
  const refusals: string[] = [];
  const warnings: string[] = [];
  const m = i.cluster.manifest;
  const inv = await readBinlogInventory(i.storage);
  if (!binlogFlavor(m.engine)?.binlogs)
    refusals.push(`${i.cluster.name} is a ${m.engine} cluster backup: restore pitr replays MariaDB binlogs`);
  const ok = m.databases.filter((d) => d.status === 'ok' && d.file);
  for (const d of m.databases.filter((x) => !ok.includes(x)))
    warnings.push(`database ${d.database} is not in this backup (its dump failed): it is not restored`);
  if (!ok.length) refusals.push(`${i.cluster.name} holds no database dump`);
  const starts = memberStarts(ok, inv, i.target, refusals);
  const earliest = starts.reduce<MemberStart | undefined>(
    (a, s) => (!a || binlogNumber(s.start).n < binlogNumber(a.start).n ? s : a),
    undefined,
  );
  const range = earliest
    ? binlogsFor(inv, earliest.start, i.target, refusals)
    : { files: [] as StoredBinlog[], coverage: 'not covered', endsOpen: false };
  const last = range.files.at(-1);
  const replays: DatabaseReplay[] = starts.map((s) => ({
    database: s.member.database,
    from: s.from,
    binlogs: range.files.filter((b) => binlogNumber(b.file).n >= binlogNumber(s.start).n),
  }));
  for (const s of starts)
    if (last && binlogNumber(s.start).n > binlogNumber(last.file).n)
      refusals.push(
        `database ${s.member.database}'s dump was taken at ${s.start}, after the target: a replay cannot go back in time`,
      );
  if (i.target.kind === 'time' && new Date(m.startedAt) >= i.target.time)
    warnings.push(
      `the backup started at ${m.startedAt}, at or after the target: before anything is restored, each database's binlogs are read and the restore refused if its dump holds a transaction stamped at or after the target`,
    );
  warnings.push(
    'each database is replayed from its own dump: row changes by their table, statements (DDL) by the default database they ran in (USE), as mariadb-binlog --database does; databases created after the backup, and users and grants, are not restored',
  );
  const plan: BinlogRestorePlan = {
    archive: i.storage.location,
    kind: 'cluster',
    base: {
      name: i.cluster.name,
      finishedAt: m.finishedAt,
      chain: ok.map((d) => ({
        name: d.file ?? '',
        type: `logical dump of ${d.database}`,
        storedBytes: d.sizeBytes,
        sha256: d.sha256 ?? '',
      })),
      binlog: {
        file: earliest?.member.binlog?.file ?? earliest?.start ?? null,
        position: earliest?.member.binlog?.position ?? null,
        gtid: earliest?.member.binlog?.gtid ?? '',
      },
    },
    target: describeReplayTarget(i.target),
    replayFrom: 'each database from its own dump (below)',
    binlogs: range.files.length
      ? {
          files: range.files.map((b) => `${b.file}${b.partial ? ' (open, stored prefix)' : ''}`),
          bytes: range.files.reduce((n, b) => n + b.facts.rawBytes, 0),
          endsOpen: range.endsOpen,
        }
      : null,
    coverage: range.coverage,
    dataDir: null,
    database: null,
    members: replays.map((r, n) => ({
      database: r.database,
      replayFrom: describeState(r.from),
      startFile: starts[n]?.start ?? null,
      binlogs: r.binlogs.length,
    })),
    refusals: [...new Set(refusals)],
    warnings,
  };
  return { plan, chain: [], binlogs: range.files, from: earliest?.from ?? new Map(), replays };
}

/** Where each database's replay starts: the binlog file of its dump's snapshot. */
function memberStarts(
  ok: ClusterMember[],
  inv: BinlogInventory,
  t: ReplayTarget,
  refusals: string[],
): MemberStart[] {
  const starts: MemberStart[] = [];
  for (const d of ok) {
    if (!d.binlog) {
      refusals.push(
        `database ${d.database} records no binlog position (the backup was taken without binary logging, or by an older dbbackup): it cannot be rolled forward`,
      );
      continue;
    }
    const from = stateOf(parseGtidList(d.binlog.gtid) ?? []);
    if (t.kind === 'gtid' && applied(from, t.gtid))
      refusals.push(
        `database ${d.database}'s dump already contains ${formatGtid(t.gtid)} (its GTID state is ${describeState(from)}): choose an older backup`,
      );
    if (t.kind === 'position' && d.binlog.file && d.binlog.position !== null) {
      const a = binlogNumber(d.binlog.file).n;
      const b = binlogNumber(t.file).n;
      if (a > b || (a === b && d.binlog.position > t.position))
        refusals.push(
          `database ${d.database}'s dump lies at ${d.binlog.file}:${d.binlog.position}, after the target: a replay cannot go back in time`,
        );
    }
    const start = d.binlog.file ?? startFileFor(inv, from, refusals);
    if (start) starts.push({ member: d, from, start });
  }
  return starts;
}
