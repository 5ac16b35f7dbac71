import picomatch from 'picomatch';
import type { DatabaseEngine } from '../engines/engine.js';
import { DbBackupError, errorMessage, InterruptedError, SafetyError } from '../errors.js';
import { ByteMeter, type ClusterProgressSink } from '../pipeline/progress.js';
import type { KeyUnlocker } from '../crypto/index.js';
import type { Storage } from '../storage/storage.js';
import { restoreGlobals, type ClusterGlobals } from './cluster-globals.js';
import {
  DEFAULT_SERVER_WAIT_SECONDS,
  dropPartial,
  explainLockWait,
  leftInPlace,
  type DropOutcome,
} from './partial.js';
import { NOTHING_CHANGED } from './single.js';

/**
 * The one cluster-restore path, over two sources: dbbackup's own cluster backup (a directory or
 * prefix with manifest.json, cluster-dbbackup.ts) and the reference tool's `cluster_<ts>.tar.gz`
 * (cluster-reference.ts). A source plans what is particular to it (which databases, how they are
 * checked, how each is fed to its restore tool); this module owns what every cluster restore does:
 * the conflicts with databases on the server, roles first, --clean-cluster drops, each database
 * restored or dropped again, progress, the interrupt and the final report.
 */

export interface ClusterRestoreInputs {
  storage: Storage;
  /** The cluster backup's name (its directory or prefix, or the reference archive's key). */
  name: string;
  include: string[];
  cleanCluster: boolean;
  /** Ours: databases restored in parallel. The reference's archive: pg_restore jobs per database. */
  jobs: number;
  force: boolean;
  /**
   * Where temporary files may go. A dbbackup cluster backup never needs one (every member streams
   * into its restore tool), so this is only recorded; reference-tool archives use it for --jobs.
   */
  workdir?: string;
  /** Keys for an encrypted cluster backup. */
  unlockers?: readonly KeyUnlocker[];
  /** SIGINT/SIGTERM: stop the tools, drop the databases being restored, report what was done. */
  signal?: AbortSignal;
  /** How long to wait for an unreachable server to drop a database this restore created. */
  serverWaitMs?: number;
}

/** PostgreSQL databases that always exist on a server and are never dropped. */
export const KEEP = ['postgres', 'template0', 'template1'];

/** A database of a cluster backup as the shared path sees it. */
export interface SourceMember {
  database: string;
  /** For progress: how many bytes its restore reads. */
  sizeBytes?: number | null;
}

/** Restores one selected member; the shared path measures it and judges how it ended. */
export type MemberRestore = (meter: ByteMeter) => Promise<void>;
/** Called by a source for each member it reaches, in its own order (parallel or archive order). */
export type MemberRunner<M> = (m: M, restore: MemberRestore) => Promise<void>;

/** What a source's member restores need from the execution. */
export interface MemberContext {
  /** Databases that existed on the server when planned (the maintenance one is restored into, cleaned). */
  existing: readonly string[];
  warn: (line: string) => void;
  /** Failures of the source itself (a broken archive), named per database. */
  failures: string[];
  /** A database this restore must not touch (not its own): a failure, and never dropped. */
  refuse(database: string, reason: string): void;
}

/** What a source planned, particular to it. */
export interface SourcePlan<M extends SourceMember> {
  /** The plan's first lines: what is restored from where, and onto which server. */
  header: string[];
  /** The `--json` dry run's `format` field, when not ours. */
  format?: string;
  /** The selected members (after --include-database). */
  members: M[];
  /** Steps before the conflicts are dropped (checksums, roles) and after (the databases). */
  stepsBefore: string[];
  stepsAfter: string[];
  warnings: string[];
  /** What the completion line says was restored, e.g. `4 databases on host:5432`. */
  done: string;
  globals: ClusterGlobals;
  /** Checks that read the backup before anything changes (ours: the checksums). */
  verify(progress?: ClusterProgressSink): Promise<void>;
  /** Runs `run` for each member, in the source's own order. */
  restoreMembers(run: MemberRunner<M>, ctx: MemberContext): Promise<void>;
}

export interface ClusterRestorePlan<M extends SourceMember = SourceMember> extends SourcePlan<M> {
  /** Databases that exist on the target server and will be dropped (--clean-cluster) or conflict. */
  existing: string[];
  /** Every numbered step, in order. */
  actions: string[];
}

/**
 * `--include-database` globs as a filter. A plain name (no glob syntax) is a database name the user
 * typed: one too long for the server is a usage error, not "no database matches".
 */
export function includeFilter(engine: DatabaseEngine, include: readonly string[]): (name: string) => boolean {
  for (const pattern of include) if (!picomatch.scan(pattern).isGlob) engine.checkDatabaseName(pattern);
  return include.length ? picomatch([...include]) : () => true;
}

/**
 * Decide everything, change nothing: the source's own plan, then the databases in the way, all
 * listed at once before any change.
 */
export async function planClusterRestore<M extends SourceMember>(
  engine: DatabaseEngine,
  i: ClusterRestoreInputs,
  source: SourcePlan<M>,
): Promise<ClusterRestorePlan<M>> {
  const existing = await conflicts(engine, source.members);
  if (existing.length && !i.cleanCluster) {
    throw new SafetyError(`These databases already exist on ${engine.endpoint}: ${existing.join(', ')}`, {
      hint: 'Nothing was changed. Add --clean-cluster to drop and replace them, or --include-database to restore others.',
    });
  }
  const drops: string[] = [];
  const dropped = existing.filter((d) => !KEEP.includes(d));
  if (dropped.length) drops.push(`terminate sessions and drop ${dropped.join(', ')}`);
  if (existing.some((d) => KEEP.includes(d)))
    drops.push('replace the backed-up objects inside postgres (pg_restore --clean --if-exists)');
  return { ...source, existing, actions: [...source.stepsBefore, ...drops, ...source.stepsAfter] };
}

/** The selected databases that exist on the server (the maintenance database only when it holds user objects). */
async function conflicts(engine: DatabaseEngine, members: readonly SourceMember[]): Promise<string[]> {
  const existing: string[] = [];
  for (const m of members) {
    if (!(await engine.databaseExists(m.database))) continue;
    // The maintenance database always exists: it only conflicts when it holds user objects.
    if (KEEP.includes(m.database) && (await engine.countUserObjects(m.database)) === 0) continue;
    existing.push(m.database);
  }
  return existing;
}

/** Carry out a plan: checks, roles first, drops, every database, (MySQL) the grants again, the report. */
export async function executeClusterRestore<M extends SourceMember>(
  engine: DatabaseEngine,
  i: ClusterRestoreInputs,
  plan: ClusterRestorePlan<M>,
  onWarning: (line: string) => void,
  progress?: ClusterProgressSink,
): Promise<void> {
  const { signal } = i;
  await plan.verify(progress);
  if (signal?.aborted) throw new InterruptedError(NOTHING_CHANGED);
  await restoreGlobals(engine, plan.globals, onWarning, 'first', signal).catch((err: unknown) => {
    if (signal?.aborted)
      throw new InterruptedError(
        `Interrupted while restoring ${plan.globals.label}: some may have been applied; no database was touched`,
      );
    throw err;
  });
  progress?.note(`${plan.globals.label} restored`);
  await dropExisting(engine, plan.existing);
  progress?.begin(plan.members.map((m) => ({ name: m.database, estimate: m.sizeBytes ?? null })));
  const tally = new ClusterTally();
  const run: MemberRunner<M> = async (m, restore) => {
    const meter = new ByteMeter(signal);
    progress?.start(m.database, () => meter.bytes);
    try {
      await restore(meter);
      tally.restored.push(m.database);
      progress?.done(m.database, { bytes: m.sizeBytes ?? undefined });
    } catch (failure) {
      const err = await explainLockWait(engine, m.database, failure);
      // A database this restore created is dropped again: half-restored must not look restored.
      const outcome = await memberOutcome(engine, m.database, i.serverWaitMs);
      tally.failed(m.database, err, outcome, signal);
      progress?.failed(m.database, errorMessage(err));
    }
  };
  try {
    const refuse = (database: string, reason: string): void => {
      progress?.start(database, () => 0);
      tally.failures.push(`${database}: ${reason}`);
      progress?.failed(database, reason);
    };
    await plan.restoreMembers(run, {
      existing: plan.existing,
      warn: onWarning,
      failures: tally.failures,
      refuse,
    });
    if (!signal?.aborted && plan.globals.again) {
      // MySQL/MariaDB table and column grants need their tables: replay the grants now that they exist.
      try {
        await restoreGlobals(engine, plan.globals, onWarning, 'again', signal);
        progress?.note('table and column grants restored');
      } catch (err) {
        tally.failures.push(`table and column grants: ${errorMessage(err)}`);
      }
    }
  } finally {
    progress?.end();
  }
  if (signal?.aborted) throw tally.interrupted(plan.members.map((m) => m.database));
  throwIfFailed(tally.failures, plan.members.length, 'The databases listed failed');
}

/** --clean-cluster: the databases in the way are dropped (never the maintenance ones); a lock is explained. */
export async function dropExisting(engine: DatabaseEngine, existing: readonly string[]): Promise<void> {
  for (const db of existing) {
    if (KEEP.includes(db)) continue;
    await engine.forceDropDatabase(db).catch(async (err: unknown) => {
      throw await explainLockWait(engine, db, err);
    });
  }
}

/** What a database whose restore failed became: dropped (verified), or left in place, said truthfully. */
export async function memberOutcome(
  engine: DatabaseEngine,
  database: string,
  serverWaitMs: number | undefined,
): Promise<DropOutcome> {
  // The maintenance database is restored into, never dropped.
  if (KEEP.includes(database)) return { dropped: false, line: leftInPlace(database) };
  return dropPartial(engine, database, serverWaitMs ?? DEFAULT_SERVER_WAIT_SECONDS * 1000);
}

/** How the databases of a cluster restore ended, for the final report or the one line of an interrupt. */
export class ClusterTally {
  readonly restored: string[] = [];
  readonly failures: string[] = [];
  /** Stopped by the interrupt, with what became of each. */
  private readonly stopped: string[] = [];
  private readonly left: string[] = [];
  private readonly ended: string[] = [];

  failed(database: string, err: unknown, outcome: DropOutcome, signal: AbortSignal | undefined): void {
    this.ended.push(database);
    if (!outcome.dropped) this.left.push(database);
    if (signal?.aborted) this.stopped.push(database);
    else this.failures.push(`${database}: ${errorMessage(err)} ${outcome.line}`);
  }

  /** One line: what was restored, what was stopped (and dropped or not), what was never started. */
  interrupted(all: readonly string[]): InterruptedError {
    const done = new Set([...this.restored, ...this.ended]);
    const notStarted = all.filter((d) => !done.has(d));
    const stoppedDropped = this.stopped.filter((d) => !this.left.includes(d));
    const stoppedLeft = this.stopped.filter((d) => this.left.includes(d));
    const parts = [
      'the cluster restore was stopped and its processes ended',
      `restored: ${list(this.restored)}`,
      ...(stoppedDropped.length ? [`stopped and dropped: ${list(stoppedDropped)}`] : []),
      ...(stoppedLeft.length ? [`stopped and NOT dropped (drop them yourself): ${list(stoppedLeft)}`] : []),
      ...(this.failures.length ? [`failed: ${this.failures.length}`] : []),
      `not restored: ${list(notStarted)}`,
    ];
    return new InterruptedError(`Interrupted: ${parts.join('; ')}`, { details: this.failures });
  }
}

function list(names: readonly string[]): string {
  return names.length ? names.join(', ') : 'none';
}

/** A cluster restore goes on past a failed database; at the end the failures, if any, are the error. */
export function throwIfFailed(failures: string[], total: number, what: string): void {
  if (!failures.length) return;
  throw new DbBackupError(`Cluster restore failed for ${failures.length} of ${total} databases`, {
    details: failures,
    hint: `${what}; the others were restored. Fix the cause and restore those with --include-database.`,
  });
}
