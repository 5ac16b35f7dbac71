import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { listBackups } from '../../verify/listing.js';
import type { DatabaseEngine } from '../../engines/engine.js';
import { openEngine } from '../../engines/index.js';
import { errorMessage, InterruptedError, UsageError } from '../../errors.js';
import { ByteMeter, formatDuration, type ProgressMode } from '../../pipeline/progress.js';
import { ClusterProgress, progressMode, StepProgress } from '../progress.js';
import {
  executeLegacyClusterRestore,
  isGzipTar,
  prepareLegacyClusterRestore,
  type LegacyClusterInputs,
  type LegacyClusterPlan,
} from '../../restore/legacy-cluster.js';
import {
  executeLegacyMemberRestore,
  prepareLegacyMemberRestore,
  type LegacyMemberInputs,
} from '../../restore/legacy-member.js';
import { describePlan, type RestorePlan } from '../../restore/plan.js';
import {
  engineForBackup,
  executeRestore,
  inspectBackup,
  NOTHING_CHANGED,
  prepareRestore,
  type RestoreInputs,
  type RestoreOutcome,
  type StepReporter,
} from '../../restore/single.js';
import { executeClusterRestore, loadClusterManifest, prepareClusterRestore } from '../../restore/cluster.js';
import { memberProperties } from '../../catalog/manifest.js';
import { isCloudUri } from '../../storage/cloud-uri.js';
import type { Storage } from '../../storage/storage.js';
import type { CloudSettings } from '../../storage/cloud.js';
import { openLocation, openStore, type Location } from '../../storage/uri.js';
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
import { sniff } from '../../pipeline/sniff.js';
import {
  EncryptionKeyError,
  unlockersFromFlags,
  type EncryptionFlags,
  type KeyUnlocker,
} from '../../crypto/index.js';
import { encryptionFlags, withDecryptOptions } from '../encryption-options.js';
import { parseInteger, parseOptionalInteger } from '../numbers.js';
import { interruptSignal } from '../signals.js';
import { DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_SERVER_WAIT_SECONDS } from '../../restore/partial.js';
import type { Engine } from '../../catalog/naming.js';
import type { ConnectionOptions } from '../../engines/connection.js';
import { reportResult } from '../../ops/operation.js';
import { addPitrRestoreCommand } from './restore-pitr.js';
import { prepareLocked } from '../run-locks.js';

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
      const serverWaitMs = serverWait(opts.serverWait);
      const signal = interruptSignal();
      let storage: Storage;
      let key: string;
      let expected: RestoreInputs['expected'];
      let recorded: RestoreInputs['properties'];
      // With --from-cluster, --database names the member (it is not the server's maintenance database then).
      const member = opts.fromCluster ? g.database : undefined;
      if (opts.fromCluster) g.database = undefined;
      if (!opts.fromCluster) {
        if (!backup)
          throw new UsageError(
            'Name the backup to restore',
            'dbbackup restore single <backup> …, or --from-cluster <cluster> --database NAME.',
          );
        ({ storage, key } = await resolveBackupArg(backup, backupDir(g), cloudSettings(g)));
      } else {
        if (!member)
          throw new UsageError(
            '--from-cluster needs --database NAME',
            'Name the database to restore out of the cluster backup.',
          );
        const cluster = await resolveClusterArg(opts.fromCluster, backupDir(g), cloudSettings(g));
        if (await cluster.storage.stat(cluster.name)) {
          // A file, not a cluster directory: the reference tool's cluster_<ts>.tar.gz.
          await restoreReferenceMember(cluster.storage, cluster.name, member, opts, g, {
            signal,
            serverWaitMs,
          });
          return;
        }
        const manifest = await loadClusterManifest(cluster.storage, cluster.name);
        const found = manifest.databases.find((m) => m.database === member);
        const dropped = manifest.dropped?.some((d) => d.database === member);
        if (!found?.file || !found.sha256) {
          throw new UsageError(
            `Database "${member}" is not in ${cluster.name}${found ? ' (its dump failed)' : dropped ? ' (it was dropped while the backup ran)' : ''}`,
            `It holds: ${manifest.databases.map((m) => m.database).join(', ')}.`,
          );
        }
        ({ storage, key } = { storage: cluster.storage, key: found.file });
        expected = { sha256: found.sha256, sizeBytes: found.sizeBytes, database: found.database };
        recorded = memberProperties(found);
      }
      // Keys are read only if the backup turns out to be encrypted (a stray key variable must not break plain restores).
      let unlockers: KeyUnlocker[] | undefined;
      const unlock = async (): Promise<KeyUnlocker[]> => {
        unlockers ??= await unlockersFromFlags(encryptionFlags(opts));
        if (!unlockers.length) {
          throw new EncryptionKeyError(`${key} is encrypted and no key was given`, {
            hint: 'Give --encryption-key-file, --passphrase-file or --identity-file (or set DBBACKUP_ENCRYPTION_KEY).',
          });
        }
        return unlockers;
      };
      const { metadata, reference, detected } = await inspectBackup(storage, key, unlock);
      const needed = engineForBackup(detected, metadata, reference);
      const asked = explicitEngine(g);
      const family = (e: string): string => (e === 'postgres' ? 'postgres' : 'mysql');
      if (asked && family(asked) !== family(needed)) {
        throw new UsageError(
          `${key} is a ${needed === 'postgres' ? 'PostgreSQL' : 'MySQL/MariaDB'} backup, but --db-type is ${asked}`,
          'Omit --db-type: the engine is detected from the backup.',
        );
      }
      const engine = await openEngine(restoreConnection(g, asked ?? needed, opts));
      try {
        const inputs = {
          storage,
          key,
          target: opts.target,
          create: Boolean(opts.create),
          clean: Boolean(opts.clean),
          jobs,
          force: Boolean(opts.force),
          noOwner: opts.owner === false,
          noDbProperties: opts.dbProperties === false,
          properties: recorded,
          workdir: opts.workdir,
          expected,
          unlockers,
          signal,
          serverWaitMs,
        };
        // Run lock on the target database (issue 17).
        const prepared = await prepareLocked({
          confirm: Boolean(opts.confirm),
          server: engine.endpoint,
          guess: [opts.target ?? metadata?.database ?? expected?.database],
          targets: (p) => [p.plan.target],
          prepare: () => prepareRestore(engine, inputs),
        });
        if (signal.aborted) throw new InterruptedError(NOTHING_CHANGED);
        const progress = stepReporter(opts.json ? 'off' : progressMode(opts.progress));
        await runSinglePlan(engine, prepared.plan, opts, (warn) =>
          executeRestore(engine, inputs, prepared, warn, progress),
        );
      } finally {
        await engine.close();
      }
    });

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
      const jobsGiven = opts.jobs !== undefined;
      const jobs = parseOptionalInteger('--jobs', opts.jobs, JOBS) ?? 1;
      const stop: Interruption = { signal: interruptSignal(), serverWaitMs: serverWait(opts.serverWait) };
      const cluster = await resolveClusterArg(backup, backupDir(g), cloudSettings(g));
      const mode = opts.json ? 'off' : progressMode(opts.progress);
      if (await cluster.storage.stat(cluster.name)) {
        await restoreReferenceArchive(cluster.storage, cluster.name, opts, g, jobs, mode, stop);
        return;
      }
      const manifest = await loadClusterManifest(cluster.storage, cluster.name);
      let clusterUnlockers: KeyUnlocker[] | undefined;
      if (manifest.encryption) {
        clusterUnlockers = await unlockersFromFlags(encryptionFlags(opts));
        if (!clusterUnlockers.length) {
          throw new EncryptionKeyError(`${cluster.name} is encrypted and no key was given`, {
            hint: 'Give --encryption-key-file, --passphrase-file or --identity-file.',
          });
        }
        // A wrong key fails here, before anything is changed.
        const keys = clusterUnlockers;
        await sniff(cluster.storage, manifest.globals.file, async () => keys);
      }
      const engine = await openEngine(restoreConnection(g, explicitEngine(g) ?? manifest.engine, opts));
      try {
        const inputs = {
          storage: cluster.storage,
          name: cluster.name,
          include: opts.includeDatabase ?? [],
          cleanCluster: Boolean(opts.cleanCluster),
          jobs: jobsGiven ? jobs : 2,
          force: Boolean(opts.force),
          workdir: opts.workdir,
          unlockers: clusterUnlockers,
          ...stop,
        };
        // Run locks on every database it restores into (issue 17).
        const plan = await prepareLocked({
          confirm: Boolean(opts.confirm),
          server: engine.endpoint,
          guess: [],
          targets: (p) => p.members.map((m) => m.database),
          prepare: () => prepareClusterRestore(engine, inputs),
        });
        if (stop.signal.aborted) throw new InterruptedError(NOTHING_CHANGED);
        await runClusterPlan({
          header: [
            `Cluster backup: ${cluster.storage.location.replace(/\/$/, '')}/${cluster.name} (${plan.manifest.engine} ${plan.manifest.server.version}, ${plan.manifest.startedAt}, ${plan.manifest.status})`,
            `Target:         ${engine.endpoint}`,
            ...(opts.workdir
              ? [`Workdir:        ${opts.workdir} (not needed: every member streams into its restore tool)`]
              : []),
          ],
          plan,
          opts,
          done: `${plan.members.length} databases on ${engine.endpoint}`,
          execute: (progress) =>
            executeClusterRestore(engine, inputs, plan, (l) => out.note(`warning: ${l}`), progress),
          mode,
        });
      } finally {
        await engine.close();
      }
    });

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
  addPitrRestoreCommand(restore);
  return restore;
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
 * The reference tool's `cluster_<ts>.tar.gz` (recognised from its content: gzip → tar): the plan
 * (which reads the whole archive once), then, with --confirm, the restore from a second read.
 */
async function restoreReferenceArchive(
  storage: Storage,
  key: string,
  opts: ClusterRestoreOptions,
  g: GlobalOptions,
  jobs: number,
  mode: ProgressMode,
  stop: Interruption,
): Promise<void> {
  await requireReferenceArchive(storage, key, g);
  const engine = await openEngine(restoreConnection(g, 'postgres', opts));
  try {
    const inputs: LegacyClusterInputs = {
      storage,
      key,
      include: opts.includeDatabase ?? [],
      cleanCluster: Boolean(opts.cleanCluster),
      jobs,
      workdir: opts.workdir,
      force: Boolean(opts.force),
      ...stop,
    };
    const size = (await storage.stat(key))?.size ?? 0;
    const meter = new ByteMeter(stop.signal);
    // The plan reads the whole archive (to list its databases and check it): show how far it got.
    const reading = new StepProgress(mode, `cluster restore: checking ${key}`, () => meter.bytes, size);
    reading.start();
    let plan: LegacyClusterPlan;
    try {
      // Run locks on every database it restores into (issue 17).
      plan = await prepareLocked({
        confirm: Boolean(opts.confirm),
        server: engine.endpoint,
        guess: [],
        targets: (p) => p.members.map((m) => m.database),
        prepare: () => prepareLegacyClusterRestore(engine, inputs, meter),
        // Its plan reads the whole archive: locked after it, not planned twice.
        replan: false,
      });
      reading.stop('done');
    } catch (err) {
      reading.stop(`failed: ${errorMessage(err)}`);
      throw err;
    }
    if (stop.signal.aborted) throw new InterruptedError(NOTHING_CHANGED);
    const first = plan.archive.members[0]?.pgHeader;
    await runClusterPlan({
      header: [
        `Cluster archive: ${plan.source} (reference tool, ${plan.archive.bytes} bytes${first?.serverVersion ? `, PostgreSQL ${first.serverVersion}` : ''}, ${plan.archive.members.length} databases: ${plan.archive.members.map((m) => m.database).join(', ')})`,
        `Checksum:        ${plan.checksum}`,
        `Target:          ${engine.endpoint}`,
      ],
      plan,
      opts,
      format: 'reference-tar',
      done: `${plan.members.length} databases on ${engine.endpoint} from ${plan.source}`,
      execute: (progress) =>
        executeLegacyClusterRestore(engine, inputs, plan, (l) => out.note(`warning: ${l}`), progress),
      mode,
    });
  } finally {
    await engine.close();
  }
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

/** What stops a restore and how long it waits to clean up after a lost server. */
interface Interruption {
  signal: AbortSignal;
  serverWaitMs: number;
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

/** The steps of a single restore (checksum, restore) as a bar on a terminal, or lines with --progress. */
function stepReporter(mode: ProgressMode): StepReporter | undefined {
  if (mode === 'off') return undefined;
  let current: StepProgress | undefined;
  return {
    begin(step, meter, total) {
      // Every byte read while the tool still works: it is building indexes, or running its last statements.
      const restoring = step.startsWith('restoring');
      const phase = (): string | undefined =>
        meter.phase ??
        (restoring && total > 0 && meter.bytes >= total
          ? 'all of the backup read; waiting for the restore tool to finish (indexes, constraints)'
          : undefined);
      current = new StepProgress(mode, `restore: ${step}`, () => meter.bytes, total, process.stderr, phase);
      current.start();
    },
    end(outcome) {
      current?.stop(outcome);
      current = undefined;
    },
  };
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

/** `restore single --from-cluster <reference .tar.gz> --database NAME`: one database out of the archive. */
async function restoreReferenceMember(
  storage: Storage,
  key: string,
  database: string,
  opts: RestoreOptions,
  g: GlobalOptions,
  stop: Interruption,
): Promise<void> {
  await requireReferenceArchive(storage, key, g);
  if (parseInteger('--jobs', opts.jobs, JOBS) > 1)
    out.note('warning: --jobs is ignored here: the dump streams out of the archive with one job');
  const engine = await openEngine(restoreConnection(g, 'postgres', opts));
  try {
    const inputs: LegacyMemberInputs = {
      storage,
      key,
      database,
      target: opts.target,
      create: Boolean(opts.create),
      clean: Boolean(opts.clean),
      force: Boolean(opts.force),
      noOwner: opts.owner === false,
      ...stop,
    };
    // Run lock on the target database (issue 17).
    const prepared = await prepareLocked({
      confirm: Boolean(opts.confirm),
      server: engine.endpoint,
      guess: [opts.target ?? database],
      targets: (p) => [p.plan.target],
      prepare: () => prepareLegacyMemberRestore(engine, inputs, new ByteMeter(stop.signal)),
    });
    if (stop.signal.aborted) throw new InterruptedError(NOTHING_CHANGED);
    await runSinglePlan(engine, prepared.plan, opts, (warn) =>
      executeLegacyMemberRestore(engine, inputs, prepared, warn),
    );
  } finally {
    await engine.close();
  }
}

/**
 * A stored file named as a cluster must be the reference tool's archive (gzip → tar) — or the user
 * hears what it is — and, being PostgreSQL, cannot go to another --db-type.
 */
async function requireReferenceArchive(storage: Storage, key: string, g: GlobalOptions): Promise<void> {
  if (await isGzipTar(storage, key)) {
    const asked = explicitEngine(g);
    if (asked && asked !== 'postgres') {
      throw new UsageError(
        `${key} is a PostgreSQL cluster archive of the reference tool, but --db-type is ${asked}`,
        'Omit --db-type: reference cluster archives are PostgreSQL.',
      );
    }
    return;
  }
  const detected = await sniff(storage, key).catch(() => undefined);
  throw new UsageError(
    `${key} is a file, but not a cluster backup (neither a dbbackup cluster directory nor a reference cluster_<ts>.tar.gz)`,
    detected?.engine
      ? `It is a single dump: restore it with "dbbackup restore single ${key}".`
      : 'Name a dbbackup cluster backup (cluster_<ts>, a directory with manifest.json) or a reference cluster_<ts>.tar.gz.',
  );
}

/** What both kinds of cluster restore plan show: numbered steps, warnings, databases, conflicts. */
interface ClusterPlanView {
  actions: string[];
  warnings: string[];
  members: Array<{ database: string }>;
  existing: string[];
}

/**
 * Shows a cluster restore's plan; without --confirm that is all (a dry run, also as JSON). With it,
 * runs the restore with per-database progress and reports how it went.
 */
async function runClusterPlan(o: {
  header: string[];
  plan: ClusterPlanView;
  opts: { confirm?: boolean; json?: boolean };
  format?: string;
  done: string;
  execute: (progress: ClusterProgress) => Promise<void>;
  mode: ProgressMode;
}): Promise<void> {
  const { plan, opts } = o;
  const lines = [
    ...o.header,
    'Steps:',
    ...plan.actions.map((a, n) => `  ${n + 1}. ${a}`),
    ...plan.warnings.map((w) => `Warning: ${w}`),
  ];
  const databases = plan.members.map((m) => m.database);
  if (!opts.confirm) {
    if (opts.json) {
      out.json({
        dryRun: true,
        ...(o.format ? { format: o.format } : {}),
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
  else out.line(`Cluster restore complete: ${o.done} in ${formatDuration((Date.now() - started) / 1000)}`);
}

/** A cluster backup argument → its store and name: `cluster_x` (in the backup dir), `/dir/cluster_x`, `s3://b/p/cluster_x/`. */
export async function resolveClusterArg(
  arg: string,
  dir: string,
  settings: CloudSettings,
): Promise<{ storage: Storage; name: string }> {
  // A cloud URI's query (?endpoint=http://…) holds slashes of its own: it belongs to the parent.
  const q = isCloudUri(arg) ? arg.indexOf('?') : -1;
  const query = q >= 0 ? arg.slice(q) : '';
  const trimmed = (q >= 0 ? arg.slice(0, q) : arg).replace(/\/+$/, '').replace(/\/manifest\.json$/, '');
  const slash = trimmed.lastIndexOf('/');
  if (slash < 0 || (!isCloudUri(trimmed) && !trimmed.includes('/'))) {
    // A bare name: a file here (a reference cluster_<ts>.tar.gz), else a name in the backup directory.
    if (existsSync(trimmed) && statSync(trimmed).isFile())
      return { storage: await openStore(process.cwd()), name: trimmed };
    return { storage: await openStore(dir), name: trimmed };
  }
  const parent = trimmed.slice(0, slash + 1);
  return {
    storage: await openStore(isCloudUri(trimmed) ? parent + query : path.resolve(parent), settings),
    name: trimmed.slice(slash + 1),
  };
}

export async function resolveBackupArg(arg: string, dir: string, settings: CloudSettings): Promise<Location> {
  if (!arg.includes('/') && !existsSync(arg)) return { storage: await openStore(dir), key: arg };
  return openLocation(arg, settings);
}
