import path from 'node:path';
import { Command, Option } from 'commander';
import type { EncryptionFlags } from '../../crypto/index.js';
import { DbBackupError, UsageError } from '../../errors.js';
import { serverOsUser } from '../../os/user.js';
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
  // Loaded here: `restore single` shares this module's command group and needs none of them.
  const [
    { restoreFromBinlogArchive },
    { requireIdentity },
    { planPitrRestore },
    { executePitrRestoreReported },
    { startAndFollow },
    { parseTablespaceMap },
    { restoredServerStart },
  ] = await Promise.all([
    import('../restore-binlog.js'),
    import('../../pitr/archive.js'),
    import('../../pitr/restore.js'),
    import('../../pitr/read-progress.js'),
    import('../../pitr/start.js'),
    import('../../pitr/tablespaces.js'),
    import('../../pitr/isolation.js'),
  ]);
  // A MariaDB binlog archive has its own restore (physical or logical backup, then binlogs).
  if (await restoreFromBinlogArchive(base, opts, g)) return;
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
  const storage = await openArchiveStore(g, opts.archive, opts.envFile);
  const identity = await requireIdentity(storage);
  const flags = encryptionFlags(opts);
  const input = {
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
    osUser: await serverOsUser(opts.osUser, 'postgres'),
    keepArchiving: Boolean(opts.keepArchiving),
    port,
    flags,
    envFile: opts.envFile,
    prefetch: prefetch ? { count: prefetch, spoolDir: opts.spoolDir ?? '' } : undefined,
    unlockers: lazyUnlockers(flags),
    tablespaceMap: parseTablespaceMap(opts.tablespaceMap ?? []),
  };
  const { plan, chosen } = await planPitrRestore(input);
  if (!opts.json) for (const l of pitrPlanLines(plan)) out.line(l);
  if (plan.refusals.length) {
    if (opts.json) out.json({ plan });
    throw new DbBackupError(`Restore refused: ${plan.refusals[0]}`, {
      hint:
        plan.refusals.length > 1 ? `${plan.refusals.length} reasons, listed above.` : 'See the plan above.',
    });
  }
  if (!opts.confirm || !chosen) {
    if (opts.json) out.json({ plan, dryRun: true });
    else out.line('Dry run: nothing was changed. Add --confirm to restore.');
    return;
  }
  const signal = interruptSignal();
  const restored = await executePitrRestoreReported(
    input,
    plan,
    chosen,
    signal,
    stepReporter(opts.json ? 'off' : progressMode(opts.progress), 'restore pitr'),
  );
  if (!opts.json) out.line(pitrRestoredLine(plan.base?.name ?? '?', restored.dataDir, restored.seconds));
  let reached;
  let server;
  if (opts.start && port !== undefined) {
    const logFile = path.resolve(opts.logFile ?? `${restored.dataDir}.log`);
    const start = await restoredServerStart({
      dataDir: restored.dataDir,
      user: input.osUser,
      port,
      keepArchiving: input.keepArchiving,
    });
    if (!opts.json) for (const note of start.notes) out.note(`note: ${note}`);
    reached = await startAndFollow({
      dataDir: restored.dataDir,
      user: input.osUser,
      port,
      action: opts.targetAction,
      logFile,
      timeoutMs: timeoutS * 1000,
      settings: start.settings,
      signal,
    });
    server = { socketDir: start.socketDir, port, listen: '127.0.0.1', logFile };
    if (!opts.json) {
      out.line(pitrReachedLine(reached, port));
      if (reached.state !== 'shut down') printServer(server, input.osUser.name, restored.dataDir);
    }
  } else if (!opts.json)
    out.line(pitrStartHint(input.osUser.name, restored.dataDir, plan.target, opts.targetAction));
  if (opts.json) out.json({ plan, restored, reached, server });
}

/**
 * Where the started copy is: its socket and TCP address were set for this start on the server's
 * command line (src/pitr/isolation.ts), not where the copy's own configuration would put them.
 */
function printServer(
  s: { socketDir: string; port: number; listen: string; logFile: string },
  user: string,
  dataDir: string,
): void {
  out.line(`Socket:    ${s.socketDir} (as ${user}: psql -h ${s.socketDir} -p ${s.port} -d postgres)`);
  out.line(`TCP:       ${s.listen}:${s.port} only; log: ${s.logFile} (no logging collector)`);
  out.line(
    `These settings hold for this start only: pg_ctl start -D ${dataDir} uses the restored configuration again.`,
  );
}
