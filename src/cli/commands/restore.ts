import { Command } from 'commander';
import { listBackups } from '../../verify/listing.js';
import type { Engine } from '../../types.js';
import { unlockersFromFlags, type EncryptionFlags } from '../../crypto/index.js';
import type { ConnectionOptions } from '../../engines/connection.js';
import type { DatabaseEngine } from '../../engines/engine.js';
import { UsageError } from '../../errors.js';
import { reportResult } from '../../ops/operation.js';
import { formatDuration, type ProgressMode } from '../../pipeline/progress.js';
import { ClusterProgress, progressMode, StepProgress, stepReporter } from '../progress.js';
import type { ClusterRestorePlan } from '../../restore/cluster.js';
import { DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_SERVER_WAIT_SECONDS } from '../../restore/partial.js';
import { describePlan, type RestorePlan } from '../../restore/plan.js';
import { planClusterRestoreFor, planSingleRestore, type RestoreRequest } from '../../restore/run.js';
import type { RestoreOutcome } from '../../restore/single.js';
import { openStore } from '../../storage/uri.js';
import {
  backupDir,
  cloudSettings,
  cloudUri,
  connectionOptions,
  explicitEngine,
  globals,
  out,
  requireDirectory,
  type GlobalOptions,
} from '../context.js';
import { printBackupList, withDrills } from '../backup-list.js';
import { encryptionFlags, withDecryptOptions } from '../encryption-options.js';
import { parseInteger, parseOptionalInteger } from '../numbers.js';
import { prepareLocked } from '../../locks/targets.js';
import { interruptSignal } from '../signals.js';
import { addPitrRestoreCommand } from './restore-pitr.js';

/** pg_restore jobs, databases restored at once. */
const JOBS = { min: 1, max: 256 };

interface RestoreOptions extends EncryptionFlags {
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

export function restoreCommand(): Command {
  const restore = new Command('restore').description('Restore backups');
  addSingleRestore(restore);
  addClusterRestore(restore);
  addRestoreList(restore);
  addPitrRestoreCommand(restore);
  return restore;
}

/** `restore single`: one backup (or one database out of a cluster backup) into a database. */
function addSingleRestore(restore: Command): void {
  withFaultOptions(withDecryptOptions(restore.command('single')))
    .description('Restore one backup into a database (a dry run that prints the plan unless --confirm)')
    .argument(
      '[backup]',
      'backup file: a name in the backup dir, a path, or a cloud URI (s3://bucket/path/file…)',
    )
    .option('--target <database>', 'database to restore into (default: the database named in the metadata)')
    .option('--create', 'create the target database if it does not exist')
    .option('--clean', 'drop and recreate the target database if it exists')
    .option('--jobs <n>', 'parallel pg_restore jobs (PostgreSQL custom format)', '1')
    .option('--confirm', 'actually restore (without it, only the plan is printed)')
    .option('--force', 'skip the checksum check and restore a dump without metadata')
    .option(
      '--no-owner',
      'do not restore ownership and privileges (PostgreSQL): of the objects, and of the database it creates',
    )
    .option(
      '--no-db-properties',
      "create the database with the server's defaults: no recorded encoding, locale, character set, settings, connection limit or comment",
    )
    .option('--workdir <dir>', 'where a temporary decompressed copy goes when --jobs > 1')
    .option(
      '--from-cluster <cluster>',
      "restore one database (--database NAME) out of this cluster backup (or the reference tool's cluster_<ts>.tar.gz)",
    )
    .option('--progress', 'show progress lines even when stderr is not a terminal')
    .option('--no-progress', 'never show progress')
    .option('--json', 'print the plan and result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup restore single --from-cluster cluster_20261126_050000 --database shop --target shop_copy --create --confirm
  dbbackup restore single --from-cluster /old/backups/cluster_20251126_120000.tar.gz --database shop --target shop_copy --create --confirm
  dbbackup restore single ~/db_backups/shop_20261126_050000.dump.zst                       # dry run
  dbbackup restore single ~/db_backups/shop_20261126_050000.dump.zst --target shop_copy --create --confirm
  dbbackup restore single shop_20261126_050000.dump.zst --clean --jobs 4 --confirm`,
    )
    .action(async (backup: string | undefined, opts: RestoreOptions, cmd: Command) => {
      const g = globals(cmd);
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
    });
}

/** `restore cluster`: roles, then every database of a cluster backup (ours or the reference tool's archive). */
function addClusterRestore(restore: Command): void {
  withFaultOptions(withDecryptOptions(restore.command('cluster')))
    .description(
      'Restore a cluster backup: roles/users first, then every database (dry run unless --confirm)',
    )
    .argument(
      '<backup>',
      "cluster backup: a name in the backup dir (cluster_…), a directory, a cloud prefix URI, or the reference tool's cluster_<ts>.tar.gz",
    )
    .option('--confirm', 'actually restore (without it, only the plan is printed)')
    .option(
      '--clean-cluster',
      'terminate sessions and drop the databases that already exist (never postgres, template0, template1)',
    )
    .option(
      '--jobs <n>',
      'dbbackup cluster backups: databases restored at the same time (default 2); reference .tar.gz archives: pg_restore jobs per database (default 1; above 1 each dump is extracted into --workdir first)',
    )
    .option(
      '--workdir <dir>',
      'where a dump is extracted when --jobs > 1 needs a seekable file (default: the system temp dir); nothing is written without --jobs',
    )
    .option(
      '--include-database <glob>',
      'only these databases: repeat the option, or separate globs with commas (db_a,db_b)',
      collectGlobs,
    )
    // The option once took several values (`--include-database a b`) and swallowed the backup after
    // them; its old spelling after the backup still works: extra arguments are more globs.
    .allowExcessArguments()
    .option(
      '--force',
      'skip the checksum verification (reference archives: restore despite a checksum mismatch)',
    )
    .option('--progress', 'show progress lines even when stderr is not a terminal')
    .option('--no-progress', 'never show progress')
    .option('--json', 'print the plan as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup restore cluster cluster_20261126_050000                           # dry run: the plan and any conflicts
  dbbackup restore cluster cluster_20261126_050000 --confirm                 # onto a server without these databases
  dbbackup restore cluster s3://bucket/backups/cluster_20261126_050000/ --clean-cluster --jobs 4 --confirm
  dbbackup restore cluster /old/backups/cluster_20251126_120000.tar.gz       # the reference tool's archive: dry run
  dbbackup restore cluster /old/backups/cluster_20251126_120000.tar.gz --jobs 4 --workdir /srv/tmp --confirm`,
    )
    .action(async (backup: string, opts: ClusterRestoreOptions, cmd: Command) => {
      const g = globals(cmd);
      opts.includeDatabase = includeGlobs(opts.includeDatabase, cmd.args.slice(1));
      const mode = opts.json ? 'off' : progressMode(opts.progress);
      const planned = await planClusterRestoreFor({
        ...requestFrom(g, opts),
        backup,
        include: opts.includeDatabase,
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
    });
}

/** `restore list`: the backups in the backup directory or a cloud location. */
function addRestoreList(restore: Command): void {
  restore
    .command('list')
    .description('List the backups in the backup directory (or --cloud URI) with their state')
    .option('--cloud <uri>', 'list a cloud location instead of the backup directory')
    .option('--verify', 'read every backup and check its SHA-256 (without it: sizes only, "unverified")')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean; cloud?: string; verify?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const where = cloudUri(g, opts.cloud);
      const storage = where ? await openStore(where, cloudSettings(g)) : await openStore(backupDir(g));
      await requireDirectory(storage);
      const verify = Boolean(opts.verify);
      const entries = await withDrills(storage, await listBackups(storage, { verify }));
      printBackupList(storage.location, entries, Boolean(opts.json), verify);
    });
}

/** A bare name that is not a file here is looked up in the backup directory. */
interface ClusterRestoreOptions extends EncryptionFlags {
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

/**
 * One `--include-database` value: globs separated by commas, except commas inside braces, which
 * belong to a glob (`db_{a,b}`).
 */
export function collectGlobs(value: string, previous: string[] = []): string[] {
  const globs: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of value) {
    if (ch === '{') depth++;
    if (ch === '}') depth = Math.max(0, depth - 1);
    if (ch === ',' && depth === 0) {
      globs.push(current);
      current = '';
    } else current += ch;
  }
  globs.push(current);
  const empty = globs.find((g) => !g.trim());
  if (empty !== undefined)
    throw new UsageError(
      `Empty database name in --include-database "${value}"`,
      'Write e.g. --include-database db_a,db_b.',
    );
  return [...previous, ...globs];
}

/** Arguments after the backup are `--include-database` globs in the option's old, multi-value spelling. */
function includeGlobs(given: string[] | undefined, extra: string[]): string[] {
  if (!extra.length) return given ?? [];
  if (!given?.length)
    throw new UsageError(
      `Unexpected argument${extra.length > 1 ? 's' : ''}: ${extra.join(' ')}`,
      'restore cluster takes one backup; name databases with --include-database NAME (repeat it, or separate with commas).',
    );
  out.note(
    `note: ${extra.map((e) => `"${e}"`).join(', ')} taken as --include-database too (write --include-database ${[...given, ...extra].join(',')})`,
  );
  return [...given, ...extra.flatMap((e) => collectGlobs(e))];
}

/** How a restore copes with a lost server and with another session's locks (single and cluster alike). */
function withFaultOptions(cmd: Command): Command {
  return cmd
    .option(
      '--server-wait <seconds>',
      `how long a failed or interrupted restore waits for an unreachable server to drop what it created (default ${DEFAULT_SERVER_WAIT_SECONDS})`,
    )
    .option(
      '--lock-timeout <seconds>',
      `how long dropping, creating and restoring wait for a lock another session holds before giving up and naming that session (default ${DEFAULT_LOCK_TIMEOUT_SECONDS}; 0: no limit)`,
    );
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
