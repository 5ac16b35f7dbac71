import os from 'node:os';
import { readMetadata } from '../catalog/metadata.js';
import type { EncryptionFlags, KeyUnlocker } from '../crypto/index.js';
import { MysqlEngine } from '../engines/mysql.js';
import { DbBackupError, UsageError } from '../errors.js';
import { formatBytes, formatDuration } from '../units.js';
import { parseGtidList } from '../pitr/binlog/events.js';
import { archiveKind, requireBinlogIdentity } from '../pitr/binlog/identity.js';
import { isBinlogFileName } from '../pitr/binlog/names.js';
import type { ReplayTarget } from '../pitr/binlog/replay.js';
import { executeLogicalRestore, executePhysicalRestore } from '../pitr/binlog/restore.js';
import { planBinlogRestore, type BinlogRestorePlan, type LogicalBase } from '../pitr/binlog/restore-plan.js';
import { currentUser, isRoot, userByName, type OsUser } from '../pitr/os-user.js';
import { parseTargetTime } from '../pitr/recovery.js';
import { lazyUnlockers } from '../pitr/wal-keys.js';
import { executeRestore, prepareRestore, type RestoreInputs } from '../restore/single.js';
import { openLocation } from '../storage/uri.js';
import { parseInteger } from './numbers.js';
import { cloudSettings, connectionOptions, explicitEngine, out, type GlobalOptions } from './context.js';
import { encryptionFlags } from './encryption-options.js';
import { interruptSignal } from './signals.js';
import { openArchiveStore } from './archive-options.js';

/** The options of `restore pitr` a binlog archive uses (the command is shared with PostgreSQL). */
export interface BinlogPitrOptions extends EncryptionFlags {
  archive?: string;
  envFile?: string;
  dataDir?: string;
  targetTime?: string;
  targetGtid?: string;
  targetPosition?: string;
  targetLsn?: string;
  targetXid?: string;
  targetName?: string;
  targetImmediate?: boolean;
  targetTimeline?: string;
  exclusive?: boolean;
  keepArchiving?: boolean;
  prefetch?: string;
  confirm?: boolean;
  force?: boolean;
  clean?: boolean;
  start?: boolean;
  port?: string;
  osUser?: string;
  timeout?: string;
  json?: boolean;
}

/**
 * `restore pitr` on a binlog archive (MariaDB): true when it handled the command. On a WAL archive
 * it returns false, after refusing the options only binlog archives understand.
 */
export async function restoreFromBinlogArchive(
  backup: string,
  opts: BinlogPitrOptions,
  g: GlobalOptions,
): Promise<boolean> {
  const mariaOnly = opts.targetGtid !== undefined || opts.targetPosition !== undefined || opts.clean;
  if (!opts.archive) return false;
  const storage = await openArchiveStore(g, opts.archive, opts.envFile);
  if ((await archiveKind(storage)) !== 'binlog') {
    if (mariaOnly)
      throw new UsageError(
        '--target-gtid, --target-position and --clean are for MariaDB binlog archives',
        `${storage.location} is not one.`,
      );
    return false;
  }
  refusePostgresOptions(opts, storage.location);
  const target = replayTargetOf(opts);
  // --port may land on the global option: for a physical restore it is the restored server's.
  const portText = opts.port ?? g.port;
  const port = portText === undefined ? undefined : parseInteger('--port', portText, { min: 1, max: 65535 });
  const timeoutS =
    opts.timeout === undefined ? 600 : parseInteger('--timeout', opts.timeout, { min: 1, max: 864000 });
  if (opts.start && !opts.confirm)
    throw new UsageError('--start needs --confirm', 'Without --confirm nothing is restored.');
  const identity = await requireBinlogIdentity(storage);
  const flags = encryptionFlags(opts);
  const unlockers = lazyUnlockers(flags);
  const logical = /^(latest|phys_[^/]+)$/.test(backup) ? undefined : await logicalBase(backup, g);
  if (!logical && opts.start && port === undefined)
    throw new UsageError(
      '--start needs --port',
      'The restored server must not take the port of the server it came from.',
    );
  if (logical && (opts.dataDir || opts.start))
    throw new UsageError(
      '--data-dir and --start are for physical backups',
      'A logical backup is restored into the server given by --host/--port (the database must be new, or --clean).',
    );
  const osUser = await serverUser(opts.osUser);
  const planned = await planBinlogRestore({
    storage,
    identity,
    backup,
    logical,
    target,
    dataDir: opts.dataDir,
    force: Boolean(opts.force),
    osUser,
    port,
  });
  const engine = logical ? new MysqlEngine(connectionOptions(g, explicitEngine(g) ?? 'mariadb')) : undefined;
  try {
    const dumpInputs = logical ? await logicalInputs(logical, Boolean(opts.clean), unlockers) : undefined;
    // The dump's own plan (target database free, checksum, tool) is part of the dry run.
    const dumpPlan =
      engine && dumpInputs && !planned.plan.refusals.length
        ? await prepareRestore(engine, dumpInputs)
        : undefined;
    showPlan(planned.plan, dumpPlan?.plan, Boolean(opts.json));
    if (!opts.confirm) {
      if (opts.json) out.json({ plan: planned.plan, dryRun: true });
      else out.line('Dry run: nothing was changed. Add --confirm to restore.');
      return true;
    }
    const signal = interruptSignal();
    const common = {
      storage,
      target,
      osUser,
      port,
      start: Boolean(opts.start),
      unlockers,
      signal,
      timeoutMs: timeoutS * 1000,
      onStep: opts.json ? undefined : (l: string) => out.line(l),
    };
    if (engine && dumpInputs && dumpPlan && logical) {
      const r = await executeLogicalRestore(
        {
          ...common,
          engine,
          database: logical.metadata.database,
          restoreDump: async () => {
            await executeRestore(engine, dumpInputs, dumpPlan, (l) => out.note(`warning: ${l}`));
            return !dumpPlan.plan.targetExists || Boolean(opts.clean);
          },
        },
        planned,
      );
      if (opts.json) out.json({ plan: planned.plan, restored: r });
      else
        out.line(
          `Restored ${logical.key} into ${r.database} and replayed to ${planned.plan.target} in ${formatDuration(r.seconds)}${reachedText(r.replay)}`,
        );
      return true;
    }
    const r = await executePhysicalRestore(common, planned);
    if (opts.json) out.json({ plan: planned.plan, restored: r });
    else {
      out.line(
        `Restored ${planned.plan.base?.name ?? '?'} into ${r.dataDir} in ${formatDuration(r.seconds)}${reachedText(r.replay)}`,
      );
      out.line(
        r.server
          ? `Server started on port ${r.server.port} (pid ${r.server.pid}, socket ${r.server.socket}); configuration ${r.cnf}`
          : `Start it with: mariadbd --defaults-file=${r.cnf}${isRoot() ? ` --user=${osUser.name}` : ''}`,
      );
    }
    return true;
  } finally {
    await engine?.close();
  }
}

/** What the restore of the logical backup under a binlog replay reads: a new database (or --clean). */
async function logicalInputs(
  logical: LogicalBase,
  clean: boolean,
  unlockers: () => Promise<readonly KeyUnlocker[]>,
): Promise<RestoreInputs> {
  return {
    storage: logical.storage,
    key: logical.key,
    create: true,
    clean,
    jobs: 1,
    force: false,
    noOwner: false,
    unlockers: logical.metadata.encryption ? await unlockers() : undefined,
  };
}

/** The options only a PostgreSQL WAL archive understands, refused on a binlog archive. */
function refusePostgresOptions(opts: BinlogPitrOptions, location: string): void {
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
      `${wrong[1]} is for PostgreSQL WAL archives; ${location} is a MariaDB binlog archive`,
      'Targets here: --target-time, --target-gtid or --target-position (none: the end of the archive).',
    );
}

/** The plan on stdout (unless --json); a refused plan ends the command. */
function showPlan(
  plan: BinlogRestorePlan,
  dumpPlan: { target: string; endpoint: string; actions: string[] } | undefined,
  json: boolean,
): void {
  if (!json)
    printPlan(
      plan,
      dumpPlan ? `${dumpPlan.target} on ${dumpPlan.endpoint}: ${dumpPlan.actions.join('; ')}` : undefined,
    );
  if (plan.refusals.length) {
    if (json) out.json({ plan });
    throw new DbBackupError(`Restore refused: ${plan.refusals[0]}`, {
      hint:
        plan.refusals.length > 1 ? `${plan.refusals.length} reasons, listed above.` : 'See the plan above.',
    });
  }
}

function reachedText(
  r: { applied: number; stoppedAt: string | null; last: { gtid: string; time: string } | null } | null,
): string {
  if (!r) return '; no binlog to replay';
  return `; ${r.applied} transaction(s) replayed${r.last ? `, the last ${r.last.gtid} (stamped ${r.last.time})` : ''}${r.stoppedAt ? `; stopped ${r.stoppedAt}` : ''}`;
}

export function replayTargetOf(
  o: Pick<BinlogPitrOptions, 'targetTime' | 'targetGtid' | 'targetPosition'>,
): ReplayTarget {
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
    return {
      kind: 'position',
      file: m[1],
      position: parseInteger('--target-position', m[2], { min: 4, max: 2 ** 48 }),
    };
  }
  return { kind: 'end' };
}

async function logicalBase(arg: string, g: GlobalOptions): Promise<LogicalBase> {
  const location = await openLocation(arg, cloudSettings(g));
  const metadata = await readMetadata(location.storage, location.key);
  if (!metadata)
    throw new UsageError(
      `${arg} is not a physical backup name and has no dbbackup metadata`,
      'Give a physical backup of the archive (phys_…), latest, or a logical backup made by dbbackup backup single with binary logging on.',
    );
  return { storage: location.storage, key: location.key, metadata };
}

async function serverUser(name: string | undefined): Promise<OsUser> {
  const wanted = name ?? (isRoot() ? 'mysql' : undefined);
  if (!wanted) return { ...currentUser(), name: os.userInfo().username };
  const user = await userByName(wanted);
  if (!user)
    throw new UsageError(`There is no OS user "${wanted}"`, "Give the server's OS user with --os-user.");
  return user;
}

function printPlan(p: BinlogRestorePlan, dump: string | undefined): void {
  out.line(`Archive:   ${p.archive} (MariaDB binlog archive)`);
  if (p.base) {
    out.line(
      `Base:      ${p.base.name} (${p.kind}, finished ${p.base.finishedAt}; binlog ${p.base.binlog.file ?? '?'}:${p.base.binlog.position ?? '?'}, GTID ${p.base.binlog.gtid || '-'})`,
    );
    const check = p.kind === 'physical' ? 'verified while it streams in' : 'verified before the restore';
    for (const m of p.base.chain)
      out.line(
        `  chain:   ${m.name} (${m.type}, ${formatBytes(m.storedBytes)}, sha256 ${m.sha256}: ${check})`,
      );
  } else out.line('Base:      none');
  out.line(`Target:    ${p.target}`);
  out.line(`Replay:    transactions after ${p.replayFrom}`);
  out.line(
    p.binlogs
      ? `Binlogs:   ${p.binlogs.files.length} (${p.binlogs.files[0] ?? ''} … ${p.binlogs.files.at(-1) ?? ''}, ${formatBytes(p.binlogs.bytes)}), each checked before the first is applied`
      : 'Binlogs:   none needed',
  );
  out.line(`Coverage:  ${p.coverage}`);
  if (p.dataDir)
    out.line(
      `Data dir:  ${p.dataDir.path} (${p.dataDir.exists ? `exists, ${p.dataDir.entries} entries` : 'will be created'}; owner ${p.dataDir.owner}, mode 0750; configuration in restored.cnf)`,
    );
  if (dump) out.line(`Into:      ${dump}`);
  if (p.database) out.line(`Replay of: database ${p.database} only (mariadb-binlog --database)`);
  for (const w of p.warnings) out.line(`Warning:   ${w}`);
  for (const r of p.refusals) out.line(`REFUSED:   ${r}`);
}
