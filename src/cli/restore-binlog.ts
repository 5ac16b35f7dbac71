import { MysqlEngine } from '../engines/mysql.js';
import { DbBackupError, UsageError } from '../errors.js';
import {
  isPhysicalArg,
  planBinlogPitr,
  replayTargetOf,
  resolveLogicalBase,
  type PlannedBinlogPitr,
} from '../pitr/binlog-pitr.js';
import { requireBinlogIdentity } from '../pitr/binlog/identity.js';
import type { BinlogRestorePlan } from '../pitr/binlog/restore-plan.js';
import { isRoot, serverOsUser } from '../os/user.js';
import { lazyUnlockers } from '../pitr/wal-keys.js';
import { binlogOutcomeLines } from '../pitr/plan-lines.js';
import type { EncryptionFlags } from '../crypto/index.js';
import type { Storage } from '../storage/storage.js';
import { parseInteger } from './numbers.js';
import {
  backupDir,
  cloudSettings,
  connectionOptions,
  explicitEngine,
  out,
  type GlobalOptions,
} from './context.js';
import { encryptionFlags } from './encryption-options.js';
import { progressMode, stepReporter } from './progress.js';
import { interruptSignal } from './signals.js';

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
  progress?: boolean;
}

/**
 * `restore pitr` on a binlog archive (MariaDB), once restore-pitr.ts found one (and refused the
 * options only WAL archives understand): this module loads only then, with mysql2 (~90 files).
 */
export async function restoreFromBinlogArchive(
  backup: string,
  opts: BinlogPitrOptions,
  g: GlobalOptions,
  storage: Storage,
): Promise<void> {
  const target = replayTargetOf(opts);
  // --port may land on the global option: for a physical restore it is the restored server's.
  const portText = opts.port ?? g.port;
  const port = portText === undefined ? undefined : parseInteger('--port', portText, { min: 1, max: 65535 });
  const timeoutS =
    opts.timeout === undefined ? 600 : parseInteger('--timeout', opts.timeout, { min: 1, max: 864000 });
  if (opts.start && !opts.confirm)
    throw new UsageError('--start needs --confirm', 'Without --confirm nothing is restored.');
  const identity = await requireBinlogIdentity(storage);
  const unlockers = lazyUnlockers(encryptionFlags(opts));
  const base = isPhysicalArg(backup)
    ? undefined
    : await resolveLogicalBase(backup, backupDir(g), cloudSettings(g));
  if (!base && opts.start && port === undefined)
    throw new UsageError(
      '--start needs --port',
      'The restored server must not take the port of the server it came from.',
    );
  if (base && (opts.dataDir || opts.start))
    throw new UsageError(
      '--data-dir and --start are for physical backups',
      'A logical backup is restored into the server given by --host/--port (each database must be new, or --clean).',
    );
  const planned = await planBinlogPitr({
    storage,
    identity,
    backup,
    logical: base,
    target,
    dataDir: opts.dataDir,
    force: Boolean(opts.force),
    clean: Boolean(opts.clean),
    osUser: await serverOsUser(opts.osUser, 'mysql'),
    port,
    start: Boolean(opts.start),
    timeoutMs: timeoutS * 1000,
    unlockers,
    engine: () => new MysqlEngine(connectionOptions(g, explicitEngine(g) ?? 'mariadb')),
  });
  try {
    if (planOrRefuse(planned, opts)) await execute(planned, opts);
  } finally {
    await planned.close();
  }
}

/** Carries out the plan and says what was done. */
async function execute(planned: PlannedBinlogPitr, opts: BinlogPitrOptions): Promise<void> {
  const r = await planned.execute({
    signal: interruptSignal(),
    onStep: opts.json ? undefined : (l: string) => out.line(l),
    onWarning: (l) => out.note(`warning: ${l}`),
    reporter: stepReporter(opts.json ? 'off' : progressMode(opts.progress), 'restore pitr'),
  });
  if (opts.json) out.json({ plan: planned.plan, restored: r.restored });
  else for (const l of binlogOutcomeLines(planned.plan, r, planned.osUser.name, isRoot())) out.line(l);
}

/** Prints the plan; throws its refusals; false on a dry run (nothing more to do). */
function planOrRefuse(planned: PlannedBinlogPitr, opts: BinlogPitrOptions): boolean {
  const p: BinlogRestorePlan = planned.plan;
  if (!opts.json) for (const l of planned.lines()) out.line(l);
  if (p.refusals.length) {
    if (opts.json) out.json({ plan: p });
    throw new DbBackupError(`Restore refused: ${p.refusals[0]}`, {
      hint: p.refusals.length > 1 ? `${p.refusals.length} reasons, listed above.` : 'See the plan above.',
    });
  }
  if (!opts.confirm) {
    if (opts.json) out.json({ plan: p, dryRun: true });
    else out.line('Dry run: nothing was changed. Add --confirm to restore.');
    return false;
  }
  return true;
}
