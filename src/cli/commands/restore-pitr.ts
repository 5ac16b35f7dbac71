import path from 'node:path';
import { Command, Option } from 'commander';
import type { EncryptionFlags } from '../../crypto/index.js';
import { DbBackupError, UsageError } from '../../errors.js';
import { requireIdentity } from '../../pitr/archive.js';
import { archiveKind } from '../../pitr/binlog/identity.js';
import { serverOsUser, type OsUser } from '../../os/user.js';
import { targetFromFlags, type TargetAction, type TargetFlags } from '../../pitr/recovery.js';
import { pitrPlanLines, pitrReachedLine, pitrRestoredLine, pitrStartHint } from '../../pitr/plan-lines.js';
import { lazyUnlockers } from '../../pitr/wal-keys.js';
import { parseInteger } from '../numbers.js';
import { globals, out } from '../context.js';
import { encryptionFlags, withDecryptOptions } from '../encryption-options.js';
import { progressMode, stepReporter } from '../progress.js';
import { interruptSignal } from '../signals.js';
import { openArchiveStore } from '../archive-options.js';
import { parseTimelineChoice } from '../wal-args.js';
import type { Storage } from '../../storage/storage.js';
import type { PitrRestoreInput } from '../../pitr/restore.js';

interface PitrRestoreOptions extends EncryptionFlags, TargetFlags {
  targetGtid?: string;
  targetPosition?: string;
  clean?: boolean;
  archive?: string;
  envFile?: string;
  dataDir?: string;
  targetTimeline?: string;
  targetAction: TargetAction;
  exclusive?: boolean;
  keepArchiving?: boolean;
  confirm?: boolean;
  force?: boolean;
  start?: boolean;
  port?: string;
  osUser?: string;
  prefetch?: string;
  spoolDir?: string;
  logFile?: string;
  timeout?: string;
  json?: boolean;
  progress?: boolean;
  tablespaceMap?: string[];
}

/** `restore pitr`: registered by restore.ts. */
export function addPitrRestoreCommand(restore: Command): void {
  withDecryptOptions(restore.command('pitr'))
    .description(
      'Point-in-time restore of a base backup plus archived WAL into a new data directory (a dry run that prints the plan unless --confirm)',
    )
    .argument(
      '<base>',
      'base backup name (base_YYYYMMDD_HHMMSS) or "latest"; MariaDB: phys_…, latest, or a logical backup',
    )
    .option('--archive <dir|uri>', 'the WAL archive')
    .option('--env-file <file>', 'credentials for a cloud archive (also used by restore_command)')
    .option('--data-dir <dir>', 'where to restore: empty or new (or --force)')
    .option('--target-time <time>', 'stop at this moment, with its UTC offset ("2026-12-07 05:33:41+00")')
    .option('--target-lsn <lsn>', 'stop at this WAL position (0/15D6B40)')
    .option('--target-xid <xid>', 'stop at this transaction')
    .option('--target-name <name>', 'stop at this restore point (pg_create_restore_point)')
    .option('--target-immediate', 'stop as soon as the base backup is consistent')
    .option('--target-timeline <tli>', 'current, latest (default) or a timeline number')
    .addOption(
      new Option('--target-action <action>', 'what the server does at the target')
        .choices(['promote', 'pause', 'shutdown'])
        .default('promote'),
    )
    .option('--exclusive', 'stop just before the target instead of just after it')
    .option(
      '--keep-archiving',
      'leave archive_mode as in the backup (default: off, so a drill never archives its new timeline)',
    )
    .option('--confirm', 'actually restore (without it, only the plan is printed)')
    .option('--force', 'replace the contents of a non-empty --data-dir')
    .option(
      '--tablespace-map <OID=DIR>',
      'restore a tablespace elsewhere (or OLDDIR=NEWDIR; repeatable); default: its original directory, which must be empty or absent',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--start', 'start the restored server and wait until recovery reaches the target (needs --port)')
    .option('--port <port>', 'port of the restored server')
    .option(
      '--os-user <name>',
      "the server's OS user, owner of the data directory (default: postgres as root, else you)",
    )
    .option('--prefetch <n>', 'restore_command fetches n segments ahead (needs --spool-dir)')
    .option('--spool-dir <dir>', 'where prefetched segments wait (owned by the server user)')
    .option('--log-file <file>', "with --start: the server's log (default: <data-dir>.log)")
    .option('--timeout <seconds>', 'with --start: how long to wait for the target (default 3600)')
    .option('--json', 'print the plan and result as JSON')
    .option('--progress', 'show progress lines even when stderr is not a terminal')
    .option('--no-progress', 'never show progress')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup restore pitr latest --archive /srv/wal-archive --data-dir /srv/pg-restore --target-time "2026-12-07 05:33:41+00"
  dbbackup restore pitr latest --archive /srv/wal-archive --data-dir /srv/pg-restore --target-time "2026-12-07 05:33:41+00" --confirm --start --port 5433
  dbbackup restore pitr base_20261207_050000 --archive s3://bucket/pg-main/ --env-file /etc/dbbackup/s3.env --data-dir /srv/pg-restore --target-immediate --confirm
  dbbackup restore pitr latest --archive /srv/wal-archive --data-dir /srv/pg-restore --tablespace-map 16385=/srv/pg-restore-ts --confirm`,
    )
    .option('--target-gtid <gtid>', 'MariaDB: up to and including this transaction (0-1-1345)')
    .option(
      '--target-position <file:pos>',
      'MariaDB: the binlog events before this position (mysql-bin.000042:1234)',
    )
    .option('--clean', 'MariaDB, from a logical backup: drop and recreate its database first')
    .action(runPitrRestore);
}

/** The plan, printed; with --confirm the restore, and with --start the server followed to the target. */
async function runPitrRestore(base: string, opts: PitrRestoreOptions, cmd: Command): Promise<void> {
  const g = globals(cmd);
  // Only what the plan needs loads before it: `restore single` shares this module's command group,
  // a binlog archive's restore (mysql2) loads for one, and the restore and the server start load
  // beside the plan when --confirm and --start ask for them (issue 13: a dry run loaded 411 files).
  const planning = Promise.all([import('../../pitr/restore.js'), import('../../pitr/tablespaces.js')]);
  const restoring = opts.confirm ? import('../../pitr/read-progress.js') : undefined;
  const starting =
    opts.confirm && opts.start
      ? Promise.all([import('../../pitr/start.js'), import('../../pitr/isolation.js')])
      : undefined;
  for (const p of [planning, restoring, starting]) p?.catch(() => undefined); // awaited below
  const opened = opts.archive ? await openArchiveStore(g, opts.archive, opts.envFile) : undefined;
  if (opened && (await isBinlogArchive(opened, opts))) {
    const { restoreFromBinlogArchive } = await import('../restore-binlog.js');
    return restoreFromBinlogArchive(base, opts, g, opened);
  }
  if (!opts.dataDir)
    throw new UsageError(
      '--data-dir is required',
      'Give an empty or new directory for the restored cluster.',
    );
  const target = targetFromFlags(opts);
  // restore pitr talks to no running server: the global --port is the restored server's.
  const portText = opts.port ?? g.port;
  const port = portText === undefined ? undefined : parseInteger('--port', portText, { min: 1, max: 65535 });
  if (opts.start && port === undefined)
    throw new UsageError(
      '--start needs --port',
      'The restored server must not take the port of the server it came from.',
    );
  if (opts.start && !opts.confirm)
    throw new UsageError('--start needs --confirm', 'Without --confirm nothing is restored.');
  const prefetch =
    opts.prefetch === undefined ? undefined : parseInteger('--prefetch', opts.prefetch, { min: 1, max: 64 });
  if (prefetch && !opts.spoolDir) throw new UsageError('--prefetch needs --spool-dir');
  const timeoutS =
    opts.timeout === undefined ? 3600 : parseInteger('--timeout', opts.timeout, { min: 1, max: 864000 });
  const timelineExplicit = opts.targetTimeline !== undefined;
  const storage = opened ?? (await openArchiveStore(g, opts.archive, opts.envFile));
  // Independent reads side by side (archive.json; the server user's account), their errors in this order.
  const identityRead = requireIdentity(storage);
  const userRead = serverOsUser(opts.osUser, 'postgres');
  userRead.catch(() => undefined); // awaited below
  const identity = await identityRead;
  const osUser = await userRead;
  const flags = encryptionFlags(opts);
  const [{ planPitrRestore, startRestoreChecks }, { parseTablespaceMap }] = await planning;
  const input: PitrRestoreInput = {
    storage,
    archive: opts.archive ?? '',
    identity,
    base,
    target,
    timeline: parseTimelineChoice(opts.targetTimeline, 'latest'),
    timelineExplicit,
    action: opts.targetAction,
    inclusive: !opts.exclusive,
    dataDir: opts.dataDir,
    force: Boolean(opts.force),
    osUser,
    keepArchiving: Boolean(opts.keepArchiving),
    port,
    flags,
    envFile: opts.envFile,
    prefetch: prefetch ? { count: prefetch, spoolDir: opts.spoolDir ?? '' } : undefined,
    unlockers: lazyUnlockers(flags),
    tablespaceMap: parseTablespaceMap(opts.tablespaceMap ?? []),
  };
  // The checks before writing (the restore command run as the server's user: a Node process) start
  // beside the plan, on the other core; a refused plan drops them. Not with --prefetch: they create
  // its spool.
  if (opts.confirm && !input.prefetch) input.checks = startRestoreChecks(input);
  const { plan, chosen } = await planPitrRestore(input);
  if (!opts.json) for (const l of pitrPlanLines(plan)) out.line(l);
  if (plan.refusals.length) {
    if (opts.json) out.json({ plan });
    throw new DbBackupError(`Restore refused: ${plan.refusals[0]}`, {
      hint:
        plan.refusals.length > 1 ? `${plan.refusals.length} reasons, listed above.` : 'See the plan above.',
    });
  }
  if (!opts.confirm || !chosen || !restoring) {
    if (opts.json) out.json({ plan, dryRun: true });
    else out.line('Dry run: nothing was changed. Add --confirm to restore.');
    return;
  }
  const signal = interruptSignal();
  const { executePitrRestoreReported } = await restoring;
  const restored = await executePitrRestoreReported(
    input,
    plan,
    chosen,
    signal,
    stepReporter(opts.json ? 'off' : progressMode(opts.progress), 'restore pitr'),
  );
  if (!opts.json) out.line(pitrRestoredLine(plan.base?.name ?? '?', restored.dataDir, restored.seconds));
  let started: Awaited<ReturnType<typeof startRestored>> | undefined;
  if (starting && port !== undefined)
    started = await startRestored(await starting, {
      opts,
      osUser,
      dataDir: restored.dataDir,
      port,
      timeoutS,
      signal,
    });
  else if (!opts.json)
    out.line(pitrStartHint(input.osUser.name, restored.dataDir, plan.target, opts.targetAction));
  if (opts.json) out.json({ plan, restored, reached: started?.reached, server: started?.server });
}

type StartModules = [typeof import('../../pitr/start.js'), typeof import('../../pitr/isolation.js')];

/** --start: the restored server started as the server's user and followed until recovery reaches the target. */
async function startRestored(
  [{ startAndFollow }, { restoredServerStart }]: StartModules,
  o: {
    opts: PitrRestoreOptions;
    osUser: OsUser;
    dataDir: string;
    port: number;
    timeoutS: number;
    signal: AbortSignal;
  },
): Promise<{ reached: Awaited<ReturnType<StartModules[0]['startAndFollow']>>; server: StartedServer }> {
  const { opts, osUser, dataDir, port } = o;
  const logFile = path.resolve(opts.logFile ?? `${dataDir}.log`);
  const start = await restoredServerStart({
    dataDir,
    user: osUser,
    port,
    keepArchiving: Boolean(opts.keepArchiving),
  });
  if (!opts.json) for (const note of start.notes) out.note(`note: ${note}`);
  const reached = await startAndFollow({
    dataDir,
    user: osUser,
    port,
    action: opts.targetAction,
    logFile,
    timeoutMs: o.timeoutS * 1000,
    settings: start.settings,
    signal: o.signal,
  });
  const server = { socketDir: start.socketDir, port, listen: '127.0.0.1', logFile };
  if (!opts.json) {
    out.line(pitrReachedLine(reached, port));
    if (reached.state !== 'shut down') printServer(server, osUser.name, dataDir);
  }
  return { reached, server };
}

interface StartedServer {
  socketDir: string;
  port: number;
  listen: string;
  logFile: string;
}

/**
 * False on a WAL archive (after refusing MariaDB-only options); on a binlog archive, refuses
 * PostgreSQL-only ones. Reads archive.json's schema only, so that a WAL archive's restore loads
 * nothing of MariaDB's.
 */
async function isBinlogArchive(storage: Storage, opts: PitrRestoreOptions): Promise<boolean> {
  const mariaOnly = opts.targetGtid !== undefined || opts.targetPosition !== undefined || opts.clean;
  if ((await archiveKind(storage)) !== 'binlog') {
    if (mariaOnly)
      throw new UsageError(
        '--target-gtid, --target-position and --clean are for MariaDB binlog archives',
        `${storage.location} is not one.`,
      );
    return false;
  }
  const pgOnly: Array<[unknown, string]> = [
    [opts.targetLsn, '--target-lsn'],
    [opts.targetXid, '--target-xid'],
    [opts.targetName, '--target-name'],
    [opts.targetImmediate, '--target-immediate'],
    [opts.targetTimeline, '--target-timeline'],
    [opts.exclusive, '--exclusive'],
    [opts.keepArchiving, '--keep-archiving'],
    [opts.prefetch, '--prefetch'],
  ];
  const wrong = pgOnly.find(([v]) => v !== undefined && v !== false);
  if (wrong)
    throw new UsageError(
      `${wrong[1]} is for PostgreSQL WAL archives; ${storage.location} is a MariaDB binlog archive`,
      'Targets here: --target-time, --target-gtid or --target-position (none: the end of the archive).',
    );
  return true;
}

/**
 * Where the started copy is: its socket and TCP address were set for this start on the server's
 * command line (src/pitr/isolation.ts), not where the copy's own configuration would put them.
 */
function printServer(s: StartedServer, user: string, dataDir: string): void {
  out.line(`Socket:    ${s.socketDir} (as ${user}: psql -h ${s.socketDir} -p ${s.port} -d postgres)`);
  out.line(`TCP:       ${s.listen}:${s.port} only; log: ${s.logFile} (no logging collector)`);
  out.line(
    `These settings hold for this start only: pg_ctl start -D ${dataDir} uses the restored configuration again.`,
  );
}
