import type { MysqlEngine } from '../../engines/mysql.js';
import { DbBackupError, errorMessage, SafetyError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import { BINLOG_HINT } from './fetch.js';
import { replayBinlogs, type ReplayProgress } from './replay.js';
import type { BinlogRestorePlan, DatabaseReplay, PlannedRestore } from './restore-plan.js';
import { checkReached, decoderCommand, type ExecuteInput } from './restore.js';
import { checkBinlogsFor } from './verify-binlogs.js';

export interface LogicalInput extends ExecuteInput {
  engine: MysqlEngine;
  /** Restores one database's dump (its plan already made), returning whether it created the database. */
  restoreDump: (database: string) => Promise<boolean>;
}

export interface LogicalOutcome {
  databases: Array<{ database: string; replay: ReplayProgress | null }>;
  seconds: number;
}

/**
 * The logical path (a single-database or a cluster backup): the binlogs are checked, then each
 * database's dump is restored into the server (as restore single does) and the binlogs after that
 * dump's own GTID state replayed, limited to that database. If anything fails, every database this
 * restore created is dropped again.
 */
export async function executeLogicalRestore(
  i: LogicalInput,
  planned: PlannedRestore,
): Promise<LogicalOutcome> {
  const { plan, binlogs } = planned;
  if (plan.refusals.length) throw new SafetyError(`Restore refused: ${plan.refusals[0]}`);
  const replays = planned.replays ?? [];
  const started = Date.now();
  await checkBinlogsFor(
    i,
    binlogs,
    replays.map((r) => ({ what: `database ${r.database}`, from: r.from })),
  );
  const client = await i.engine.clientProgram(['mariadb', 'mysql'], ['--binary-mode'], BINLOG_HINT);
  const created: string[] = [];
  const databases: LogicalOutcome['databases'] = [];
  try {
    for (const r of replays) {
      if (await i.restoreDump(r.database)) created.push(r.database);
      i.onStep?.(`Restored the dump into ${r.database}`);
      databases.push({ database: r.database, replay: await replayInto(i, r, client, plan) });
    }
    return { databases, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    for (const d of created) await i.engine.dropDatabase(d).catch(() => undefined);
    const what = created.length
      ? `; the database${created.length > 1 ? 's' : ''} ${created.join(', ')} it created ${created.length > 1 ? 'were' : 'was'} dropped`
      : '';
    if (i.signal?.aborted) throw new DbBackupError(`Interrupted${what}`, { exitCode: ExitCode.Interrupted });
    const e = err instanceof DbBackupError ? err : undefined;
    throw new DbBackupError(`${e ? e.message : errorMessage(err)}${what}`, {
      exitCode: e?.exitCode ?? ExitCode.Failure,
      hint: e?.hint,
      details: e?.details,
      cause: err,
    });
  }
}

async function replayInto(
  i: LogicalInput,
  r: DatabaseReplay,
  client: Awaited<ReturnType<MysqlEngine['clientProgram']>>,
  plan: BinlogRestorePlan,
): Promise<ReplayProgress | null> {
  if (!r.binlogs.length) return null;
  const replay = await replayBinlogs({
    storage: i.storage,
    files: r.binlogs,
    from: r.from,
    target: i.target,
    decoder: await decoderCommand([`--database=${r.database}`]),
    client,
    unlockers: i.unlockers,
    signal: i.signal,
  });
  checkReached(i.target, replay, plan);
  i.onStep?.(
    `Replayed ${replay.applied} transaction(s) into ${r.database} from ${r.binlogs.length} binlog(s)`,
  );
  return replay;
}
