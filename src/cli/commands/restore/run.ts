import type { Engine } from '../../../types.js';
import { unlockersFromFlags, type EncryptionFlags } from '../../../crypto/index.js';
import type { ConnectionOptions } from '../../../engines/connection.js';
import type { DatabaseEngine } from '../../../engines/engine.js';
import { reportResult } from '../../../ops/operation.js';
import { formatDuration, type ProgressMode } from '../../../pipeline/progress.js';
import { ClusterProgress, progressMode, StepProgress, stepReporter } from '../../progress.js';
import type { ClusterRestorePlan } from '../../../restore/cluster.js';
import { DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_SERVER_WAIT_SECONDS } from '../../../restore/partial.js';
import { describePlan, type RestorePlan } from '../../../restore/plan.js';
import { planClusterRestoreFor, planSingleRestore, type RestoreRequest } from '../../../restore/run.js';
import type { RestoreOutcome } from '../../../restore/single.js';
import { openStore } from '../../../storage/uri.js';
import { listBackups } from '../../../verify/listing.js';
import {
  backupDir,
  cloudSettings,
  cloudUri,
  connectionOptions,
  explicitEngine,
  out,
  requireDirectory,
  type GlobalOptions,
} from '../../context.js';
import { printBackupList, withDrills } from '../../backup-list.js';
import { encryptionFlags } from '../../encryption-options.js';
import { parseInteger, parseOptionalInteger } from '../../numbers.js';
import { prepareLocked } from '../../../locks/targets.js';
import { interruptSignal } from '../../signals.js';

/*
 * The actions of `restore single`, `restore cluster` and `restore list`, loaded when one of them
 * runs: restore.ts defines the command group, and `restore pitr` (in the same group) needs none of
 * this (the engines, the restore planners, tar-stream, picomatch: 77 files).
 */

export interface RestoreOptions extends EncryptionFlags {
  fromCluster?: string;
  serverWait?: string;
  lockTimeout?: string;
  target?: string;
  create?: boolean;
  clean?: boolean;
  jobs: string;
  confirm?: boolean;
  force?: boolean;
  owner?: boolean;
  dbProperties?: boolean;
  workdir?: string;
  progress?: boolean;
  json?: boolean;
}

export interface RestoreListOptions {
  json?: boolean;
  cloud?: string;
  verify?: boolean;
}

export interface ClusterRestoreOptions extends EncryptionFlags {
  confirm?: boolean;
  serverWait?: string;
  lockTimeout?: string;
  cleanCluster?: boolean;
  jobs?: string;
  workdir?: string;
  includeDatabase?: string[];
  force?: boolean;
  progress?: boolean;
  json?: boolean;
}

/** pg_restore jobs, databases restored at once. */
const JOBS = { min: 1, max: 256 };

/** `restore single`. */
export async function runSingleRestore(
  backup: string | undefined,
  opts: RestoreOptions,
  g: GlobalOptions,
): Promise<void> {
  const jobs = parseInteger('--jobs', opts.jobs, JOBS);
  // With --from-cluster, --database names the member (it is not the server's maintenance database then).
  const member = opts.fromCluster ? g.database : undefined;
  if (opts.fromCluster) g.database = undefined;
  const planned = await planSingleRestore({
    ...requestFrom(g, opts),
    backup,
    fromCluster: opts.fromCluster,
    member,
    target: opts.target,
    create: Boolean(opts.create),
    clean: Boolean(opts.clean),
    jobs,
    noOwner: opts.owner === false,
    noDbProperties: opts.dbProperties === false,
  });
  try {
    const progress = stepReporter(opts.json ? 'off' : progressMode(opts.progress), 'restore');
    await runSinglePlan(planned.engine, planned.plan, opts, (warn) => planned.execute(warn, progress));
  } finally {
    await planned.engine.close();
  }
}

/** `restore cluster` (its --include-database globs already gathered). */
export async function runClusterRestore(
  backup: string,
  opts: ClusterRestoreOptions,
  g: GlobalOptions,
): Promise<void> {
  const mode = opts.json ? 'off' : progressMode(opts.progress);
  const planned = await planClusterRestoreFor({
    ...requestFrom(g, opts),
    backup,
    include: opts.includeDatabase ?? [],
    cleanCluster: Boolean(opts.cleanCluster),
    jobs: parseOptionalInteger('--jobs', opts.jobs, JOBS),
    onArchiveRead: (key, size, meter) => {
      const reading = new StepProgress(mode, `cluster restore: checking ${key}`, () => meter.bytes, size);
      reading.start();
      return { end: (outcome) => reading.stop(outcome) };
    },
  });
  try {
    await runClusterPlan({
      plan: planned.plan,
      opts,
      execute: (progress) => planned.execute((l) => out.note(`warning: ${l}`), progress),
      mode,
    });
  } finally {
    await planned.engine.close();
  }
}

/** `restore list`. */
export async function runRestoreList(opts: RestoreListOptions, g: GlobalOptions): Promise<void> {
  const where = cloudUri(g, opts.cloud);
  const storage = where ? await openStore(where, cloudSettings(g)) : await openStore(backupDir(g));
  await requireDirectory(storage);
  const verify = Boolean(opts.verify);
  const entries = await withDrills(storage, await listBackups(storage, { verify }));
  printBackupList(storage.location, entries, Boolean(opts.json), verify);
}

/** What every restore request takes from the global flags and its own. */
function requestFrom(
  g: GlobalOptions,
  opts: EncryptionFlags & {
    serverWait?: string;
    lockTimeout?: string;
    confirm?: boolean;
    force?: boolean;
    workdir?: string;
  },
): RestoreRequest {
  return {
    backupDir: backupDir(g),
    cloud: cloudSettings(g),
    askedEngine: explicitEngine(g),
    connection: (engine) => restoreConnection(g, engine, opts),
    confirm: Boolean(opts.confirm),
    force: Boolean(opts.force),
    workdir: opts.workdir,
    keys: () => unlockersFromFlags(encryptionFlags(opts)),
    locked: prepareLocked,
    signal: interruptSignal(),
    serverWaitMs: serverWait(opts.serverWait),
    onNote: (line) => out.note(line),
  };
}

/** The connection a restore uses: its statements give up waiting for another session's lock after --lock-timeout. */
function restoreConnection(
  g: GlobalOptions,
  engine: Engine,
  opts: { lockTimeout?: string },
): ConnectionOptions {
  return {
    ...connectionOptions(g, engine),
    lockTimeoutSeconds:
      parseOptionalInteger('--lock-timeout', opts.lockTimeout, { min: 0, max: 86_400 }) ??
      DEFAULT_LOCK_TIMEOUT_SECONDS,
  };
}

/** `--server-wait <seconds>` in milliseconds (0: drop once, no waiting). */
function serverWait(value: string | undefined): number {
  return (
    (parseOptionalInteger('--server-wait', value, { min: 0, max: 86_400 }) ?? DEFAULT_SERVER_WAIT_SECONDS) *
    1000
  );
}

/** Shows a single restore's plan; without --confirm that is all (a dry run). With it, restores and reports. */
async function runSinglePlan(
  engine: DatabaseEngine,
  plan: RestorePlan,
  opts: { confirm?: boolean; json?: boolean },
  execute: (warn: (line: string) => void) => Promise<RestoreOutcome>,
): Promise<void> {
  reportResult({ database: plan.target, backup: plan.source, bytes: plan.sizeBytes ?? undefined });
  if (!opts.confirm) {
    if (opts.json) out.json({ dryRun: true, plan });
    else {
      for (const line of describePlan(plan)) out.line(line);
      out.line('Dry run: nothing was changed. Add --confirm to restore.');
    }
    return;
  }
  if (!opts.json) for (const line of describePlan(plan)) out.note(line);
  const result = await execute((line) => out.note(`warning: ${line}`));
  if (opts.json) out.json({ dryRun: false, plan, result });
  else
    out.line(
      `Restore complete: "${result.target}" on ${engine.endpoint} from ${plan.source} in ${formatDuration(result.seconds)}`,
    );
}

/**
 * Shows a cluster restore's plan; without --confirm that is all (a dry run, also as JSON). With it,
 * runs the restore with per-database progress and reports how it went.
 */
async function runClusterPlan(o: {
  plan: ClusterRestorePlan;
  opts: { confirm?: boolean; json?: boolean };
  execute: (progress: ClusterProgress) => Promise<void>;
  mode: ProgressMode;
}): Promise<void> {
  const { plan, opts } = o;
  const lines = [
    ...plan.header,
    'Steps:',
    ...plan.actions.map((a, n) => `  ${n + 1}. ${a}`),
    ...plan.warnings.map((w) => `Warning: ${w}`),
  ];
  const databases = plan.members.map((m) => m.database);
  if (!opts.confirm) {
    if (opts.json) {
      out.json({
        dryRun: true,
        ...(plan.format ? { format: plan.format } : {}),
        actions: plan.actions,
        warnings: plan.warnings,
        databases,
        existing: plan.existing,
      });
    } else {
      for (const l of lines) out.line(l);
      out.line('Dry run: nothing was changed. Add --confirm to restore.');
    }
    return;
  }
  for (const l of lines) out.note(l);
  const started = Date.now();
  await o.execute(new ClusterProgress(o.mode, 'cluster restore', 'restoring', 'read'));
  if (opts.json) out.json({ dryRun: false, databases });
  else out.line(`Cluster restore complete: ${plan.done} in ${formatDuration((Date.now() - started) / 1000)}`);
}
