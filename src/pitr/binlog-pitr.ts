import { memberProperties, readManifest } from '../catalog/manifest.js';
import { readMetadata } from '../catalog/metadata.js';
import type { KeyUnlocker } from '../crypto/index.js';
import type { MysqlEngine } from '../engines/mysql.js';
import { DbBackupError, UsageError } from '../errors.js';
import { resolveClusterArg } from '../restore/locate.js';
import {
  executeRestore,
  prepareRestore,
  type PreparedRestore,
  type RestoreInputs,
  type StepReporter,
} from '../restore/single.js';
import type { CloudSettings } from '../storage/cloud.js';
import type { Storage } from '../storage/storage.js';
import { openLocation } from '../storage/uri.js';
import { planClusterBinlogRestore, type ClusterBase } from './binlog/cluster-plan.js';
import { parseGtidList } from './binlog/events.js';
import type { BinlogArchiveIdentity } from './binlog/identity.js';
import { executeLogicalRestore, type LogicalOutcome } from './binlog/logical.js';
import { isBinlogFileName } from './binlog/names.js';
import type { ReplayTarget } from './binlog/replay.js';
import { executePhysicalRestore, type ExecuteInput, type PhysicalOutcome } from './binlog/restore.js';
import {
  planBinlogRestore,
  type BinlogRestorePlan,
  type LogicalBase,
  type PlannedRestore,
} from './binlog/restore-plan.js';
import type { OsUser } from '../os/user.js';
import { binlogPlanLines } from './plan-lines.js';
import { binlogReadSteps, withReadProgress } from './read-progress.js';
import { parseTargetTime } from './recovery.js';

/*
 * `restore pitr` on a MariaDB binlog archive, for the command and the terminal UI: the base is a
 * physical backup of the archive (phys_…, latest) restored into a new data directory, or a logical
 * backup (one database, or a cluster backup: --from-cluster's members) restored into the server
 * with its binlogs replayed after each dump. The plan (the dry run) is made first; nothing is
 * changed until it is executed.
 */

/** A logical backup given to restore pitr: one dump, or a cluster backup's. */
export type LogicalArg = { kind: 'single'; logical: LogicalBase } | { kind: 'cluster'; cluster: ClusterBase };

/** A physical backup of the archive by name, or the newest one before the target. */
export function isPhysicalArg(backup: string): boolean {
  return /^(latest|phys_[^/]+)$/.test(backup);
}

/** The target of a binlog replay from --target-time, --target-gtid or --target-position (none: the end). */
export function replayTargetOf(o: {
  targetTime?: string;
  targetGtid?: string;
  targetPosition?: string;
}): ReplayTarget {
  const given = [o.targetTime, o.targetGtid, o.targetPosition].filter((v) => v !== undefined).length;
  if (given > 1)
    throw new UsageError(
      'Give at most one target',
      'One of --target-time, --target-gtid, --target-position (none: the end of the archive).',
    );
  if (o.targetTime !== undefined) {
    const t = parseTargetTime(o.targetTime);
    if (/\.\d*[1-9]/.test(o.targetTime))
      throw new UsageError(
        `--target-time "${o.targetTime}" has a fraction of a second`,
        'Binlog events carry whole seconds: give a whole second (transactions stamped at or after it are not replayed), or use --target-gtid / --target-position.',
      );
    return { kind: 'time', ...t };
  }
  if (o.targetGtid !== undefined) {
    const list = parseGtidList(o.targetGtid);
    if (!list || list.length !== 1 || !list[0])
      throw new UsageError(
        `Invalid --target-gtid "${o.targetGtid}"`,
        'One GTID: domain-server-sequence, e.g. 0-1-1345.',
      );
    return { kind: 'gtid', gtid: list[0] };
  }
  if (o.targetPosition !== undefined) {
    const m = /^(.+):(\d+)$/.exec(o.targetPosition);
    if (!m?.[1] || !m[2] || !isBinlogFileName(m[1]))
      throw new UsageError(
        `Invalid --target-position "${o.targetPosition}"`,
        'FILE:POSITION, e.g. mysql-bin.000042:1234 (events before that position are replayed).',
      );
    const position = Number(m[2]);
    if (!Number.isSafeInteger(position) || position < 4 || position > 2 ** 48)
      throw new UsageError(
        `Invalid --target-position: "${m[2]}"`,
        `Use a whole number from 4 to ${2 ** 48}, written in decimal digits.`,
      );
    return { kind: 'position', file: m[1], position };
  }
  return { kind: 'end' };
}

/** A logical backup by name or location: a cluster backup (its manifest), else one dump (its metadata). */
export async function resolveLogicalBase(
  arg: string,
  backupDir: string,
  cloud: CloudSettings,
): Promise<LogicalArg> {
  const cluster = await resolveClusterArg(arg, backupDir, cloud);
  const manifest = await readManifest(cluster.storage, cluster.name);
  if (manifest) return { kind: 'cluster', cluster: { ...cluster, manifest } };
  const location = await openLocation(arg, cloud);
  const metadata = await readMetadata(location.storage, location.key);
  if (!metadata)
    throw new UsageError(
      `${arg} is not a physical backup name and has no dbbackup metadata`,
      'Give a physical backup of the archive (phys_…), latest, or a logical backup (single or cluster) made by dbbackup with binary logging on.',
    );
  return { kind: 'single', logical: { storage: location.storage, key: location.key, metadata } };
}

export interface BinlogPitrRequest {
  storage: Storage;
  identity: BinlogArchiveIdentity;
  /** phys_…, latest, or a logical backup's name as given (resolved in `logical`). */
  backup: string;
  logical?: LogicalArg;
  target: ReplayTarget;
  /** A physical backup: where it is restored (empty or new, or `force`). */
  dataDir?: string;
  force: boolean;
  /** A logical backup: drop and recreate each database first. */
  clean: boolean;
  osUser: OsUser;
  /** The restored server's port (a physical backup). */
  port?: number;
  /** Start the restored server on `port` once replayed. */
  start: boolean;
  timeoutMs: number;
  unlockers: () => Promise<readonly KeyUnlocker[]>;
  /** The server a logical backup is restored into; opened only for one. */
  engine: () => MysqlEngine;
}

export type BinlogPitrOutcome =
  { kind: 'physical'; restored: PhysicalOutcome } | { kind: 'logical'; restored: LogicalOutcome };

export interface RunOptions {
  signal?: AbortSignal;
  /** Each step done, in words ("Extracted …", "Replayed …"). */
  onStep?: (line: string) => void;
  /** A warning of a dump's restore. */
  onWarning?: (line: string) => void;
  /** Bytes read of each long step (binlogs checked, backup extracted, binlogs replayed). */
  reporter?: StepReporter;
}

export interface PlannedBinlogPitr {
  planned: PlannedRestore;
  /** Who owns the restored data directory (and runs the server). */
  osUser: OsUser;
  plan: BinlogRestorePlan;
  /** A logical backup: each dump's target and what its restore does there. */
  dumps: string[];
  /** The plan in the words the command prints. */
  lines(): string[];
  execute(run: RunOptions): Promise<BinlogPitrOutcome>;
  /** Closes the connection a logical backup's plan opened. */
  close(): Promise<void>;
}

/** Everything decided before a byte is written (the dry run), and how to carry it out. */
export async function planBinlogPitr(r: BinlogPitrRequest): Promise<PlannedBinlogPitr> {
  const base = r.logical;
  const planned =
    base?.kind === 'cluster'
      ? await planClusterBinlogRestore({ storage: r.storage, cluster: base.cluster, target: r.target })
      : await planBinlogRestore({
          storage: r.storage,
          identity: r.identity,
          backup: r.backup,
          logical: base?.logical,
          target: r.target,
          dataDir: r.dataDir,
          force: r.force,
          osUser: r.osUser,
          port: r.port,
        });
  if (!base) return physical(r, planned);
  const engine = r.engine();
  try {
    return await logical(r, base, planned, engine);
  } catch (err) {
    await engine.close();
    throw err;
  }
}

/** The restore's input with `storage` (metered when progress is reported), and its step reporter. */
function inputOf(r: BinlogPitrRequest, run: RunOptions, storage: Storage): ExecuteInput {
  return {
    storage,
    target: r.target,
    osUser: r.osUser,
    port: r.port,
    start: r.start,
    unlockers: r.unlockers,
    timeoutMs: r.timeoutMs,
    onStep: run.onStep,
    signal: run.signal,
  };
}

function physical(r: BinlogPitrRequest, planned: PlannedRestore): PlannedBinlogPitr {
  return {
    planned,
    osUser: r.osUser,
    plan: planned.plan,
    dumps: [],
    lines: () => binlogPlanLines(planned.plan),
    execute: (run) =>
      withReadProgress(r.storage, binlogReadSteps(planned), run.reporter, run.signal, async (storage) => ({
        kind: 'physical' as const,
        restored: await executePhysicalRestore(inputOf(r, run, storage), planned),
      })),
    close: async () => undefined,
  };
}

/**
 * A logical backup: each dump's own plan (target database free, checksum, tool) is part of the dry
 * run; executed, each dump is restored as restore single does, then its binlogs replayed.
 */
async function logical(
  r: BinlogPitrRequest,
  base: LogicalArg,
  planned: PlannedRestore,
  engine: MysqlEngine,
): Promise<PlannedBinlogPitr> {
  const prepared = new Map<string, { inputs: RestoreInputs; prep: PreparedRestore }>();
  if (!planned.plan.refusals.length)
    for (const d of dumpsOf(base, r)) {
      const inputs = await d.inputs();
      prepared.set(d.database, { inputs, prep: await prepareRestore(engine, inputs) });
    }
  const dumps = [...prepared.values()].map(
    ({ prep }) => `${prep.plan.target} on ${prep.plan.endpoint}: ${prep.plan.actions.join('; ')}`,
  );
  return {
    planned,
    osUser: r.osUser,
    plan: planned.plan,
    dumps,
    lines: () => binlogPlanLines(planned.plan, dumps),
    execute: (run) =>
      withReadProgress(
        r.storage,
        binlogReadSteps(planned),
        run.reporter,
        run.signal,
        async (storage, reporter) => {
          const restored = await executeLogicalRestore(
            {
              ...inputOf(r, run, storage),
              engine,
              restoreDump: async (database) => {
                const p = prepared.get(database);
                if (!p) throw new DbBackupError(`No restore plan for database ${database}`);
                const inputs = { ...p.inputs, signal: run.signal };
                await executeRestore(engine, inputs, p.prep, run.onWarning ?? (() => undefined), reporter);
                return !p.prep.plan.targetExists || r.clean;
              },
            },
            planned,
          );
          return { kind: 'logical' as const, restored };
        },
      ),
    close: () => engine.close(),
  };
}

/** Each database's dump and what restore single needs to restore it. */
function dumpsOf(
  base: LogicalArg,
  r: BinlogPitrRequest,
): Array<{ database: string; inputs: () => Promise<RestoreInputs> }> {
  const shared = { create: true, clean: r.clean, jobs: 1, force: false, noOwner: false };
  const keys = async (encrypted: boolean) => (encrypted ? await r.unlockers() : undefined);
  if (base.kind === 'single') {
    const l = base.logical;
    return [
      {
        database: l.metadata.database,
        inputs: async () => ({
          ...shared,
          storage: l.storage,
          key: l.key,
          unlockers: await keys(Boolean(l.metadata.encryption)),
        }),
      },
    ];
  }
  const c = base.cluster;
  return c.manifest.databases.flatMap((m) =>
    m.status === 'ok' && m.file && m.sha256
      ? [
          {
            database: m.database,
            inputs: async () => ({
              ...shared,
              storage: c.storage,
              key: m.file ?? '',
              target: m.database,
              expected: { sha256: m.sha256 ?? '', sizeBytes: m.sizeBytes, database: m.database },
              properties: memberProperties(m),
              unlockers: await keys(Boolean(c.manifest.encryption)),
            }),
          },
        ]
      : [],
  );
}
