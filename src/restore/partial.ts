import { setTimeout as sleep } from 'node:timers/promises';
import type { DatabaseEngine } from '../engines/engine.js';
import { ConnectionError, DbBackupError, errorMessage, InterruptedError } from '../errors.js';

/**
 * What a failed or interrupted restore does with the database it created: drop it, and say so only
 * once the server confirms it is gone. A server that stopped mid-restore (a crash, `pg_ctl stop -m
 * immediate`) usually comes back within seconds; the drop is retried while it does, for a bounded
 * time (`--server-wait`), and otherwise the database is named as left behind, with what to do.
 */

/** How long a restore waits for an unreachable server to come back to drop what it created. */
export const DEFAULT_SERVER_WAIT_SECONDS = 60;

export interface DropOutcome {
  dropped: boolean;
  /** One sentence for the user: what happened to the database. */
  line: string;
}

/** The server cannot be reached or dropped the connection (stopped, restarting, in recovery). */
export function serverUnreachable(err: unknown): boolean {
  if (err instanceof ConnectionError) return true;
  return /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|ENOENT|Connection terminated|connection (lost|closed|reset)|terminating connection|shutting down|starting up|in recovery|not yet accepting|server closed the connection|PROTOCOL_CONNECTION_LOST|server has gone away|Lost connection/i.test(
    errorMessage(err),
  );
}

/**
 * Drops `name` (terminating the sessions still in it: they are the stopped restore's) and checks it
 * is gone. Retries while the server is unreachable, with a growing pause, until `waitMs` has passed.
 */
export async function dropPartial(
  engine: DatabaseEngine,
  name: string,
  waitMs: number,
): Promise<DropOutcome> {
  const deadline = Date.now() + waitMs;
  let pause = 250;
  let last: unknown;
  for (;;) {
    try {
      // A restore tool that creates its database (pg_restore --create) may have failed before it did.
      if (!(await engine.databaseExists(name)))
        return { dropped: true, line: `Database "${name}" was not created (nothing to drop).` };
      await engine.forceDropDatabase(name);
      if (!(await engine.databaseExists(name)))
        return { dropped: true, line: `The partially restored database "${name}" was dropped.` };
      last = new Error('it still exists after DROP DATABASE');
      break;
    } catch (err) {
      last = err;
      if (!serverUnreachable(err) && !stillInUse(err)) break;
    }
    if (Date.now() + pause > deadline) break;
    await sleep(pause);
    pause = Math.min(pause * 2, 2000);
  }
  const waited = serverUnreachable(last)
    ? ` (the server was unreachable for ${Math.round(waitMs / 1000)} s)`
    : '';
  return {
    dropped: false,
    line: `The partially restored database "${name}" on ${engine.endpoint} was NOT dropped${waited}: ${firstLine(last)}. It holds an incomplete restore: drop it once the server is reachable (DROP DATABASE ${engine.quoteIdentifier(name)}), or restore again with --clean.`,
  };
}

/**
 * A session of the stopped restore had not exited yet: PostgreSQL's DROP DATABASE waits 5 s for
 * terminated backends, and one rolling back a large COPY on a loaded server can take longer (seen
 * once in CI). The next try terminates and drops again.
 */
function stillInUse(err: unknown): boolean {
  return /being accessed by other users/i.test(errorMessage(err));
}

function firstLine(err: unknown): string {
  return (errorMessage(err).split('\n')[0] ?? '').replace(/\.$/, '');
}

/** The server gave up waiting for a lock another session holds (or sessions are in the way of a drop). */
export function isLockWait(err: unknown): boolean {
  return /lock timeout|Lock wait timeout exceeded|being accessed by other users/i.test(errorMessage(err));
}

/** How long a restore's statements wait for another session's lock before giving up (--lock-timeout). */
export const DEFAULT_LOCK_TIMEOUT_SECONDS = 60;

/**
 * A failure caused by another session's lock, with that session named: who holds a lock on
 * `database` or is connected to it (id, user, state, since when, last query). Other failures as they are.
 */
export async function explainLockWait(
  engine: DatabaseEngine,
  database: string,
  err: unknown,
): Promise<unknown> {
  if (!isLockWait(err)) return err;
  const holders = await engine
    .lockHolders(database)
    .catch((e: unknown) => [`(the sessions could not be listed: ${errorMessage(e)})`]);
  const lines = holders.length ? holders : ['(no other session holds it any more)'];
  if (err instanceof DbBackupError) {
    err.details.push(`Other sessions on "${database}":`, ...lines.map((l) => `  ${l}`));
    return err;
  }
  return new DbBackupError(`Another session holds a lock on database "${database}": ${errorMessage(err)}`, {
    details: lines,
    hint: 'End that session (or wait for it), then run the restore again; --lock-timeout sets how long to wait.',
    cause: err,
  });
}

/** A database the restore did not create is never dropped; what it may hold now is said plainly. */
export function leftInPlace(name: string): string {
  return `Database "${name}" existed before this restore and was left in place: it may hold part of the backup now (restore again with --clean to replace it).`;
}

const NOT_DROPPED_HINT =
  'The database named above holds an incomplete restore: drop it (or restore again with --clean) once the server is reachable.';

/**
 * The error a failed restore ends with: the original one with what happened to the database, or,
 * when a signal stopped it, one line saying what was stopped and cleaned up (exit 130).
 */
export function restoreFailure(
  err: unknown,
  o: { signal?: AbortSignal; stopped: string; outcome: string | undefined; notDropped?: boolean },
): unknown {
  if (o.signal?.aborted) {
    return new InterruptedError(
      `Interrupted: ${o.stopped}.${o.outcome ? ` ${o.outcome}` : ''}`,
      o.notDropped ? { hint: NOT_DROPPED_HINT } : {},
    );
  }
  if (!o.outcome) return err;
  const known = err instanceof DbBackupError ? err : undefined;
  // A hint written for the failure alone ("nothing was kept") must not contradict a database left behind.
  if (known && !o.notDropped) {
    known.details.push(o.outcome);
    return known;
  }
  return new DbBackupError(errorMessage(err), {
    details: [...(known?.details ?? []), o.outcome],
    hint: o.notDropped ? NOT_DROPPED_HINT : known?.hint,
    exitCode: known?.exitCode ?? 1,
    cause: err,
  });
}
