import path from 'node:path';
import { isCloudUri, maskUri } from '../storage/cloud-uri.js';
import { takeRunLocks, type RunLockTarget } from './run-lock.js';

/**
 * The run-lock targets of the operations, one definition for the CLI (src/cli/run-locks.ts) and the
 * interactive UI, so that a run of either on the same target takes the same lock file.
 */

/** A local path made absolute (two spellings of one directory are one target); a URI masked. */
export function destinationKey(where: string): string {
  return isCloudUri(where) ? maskUri(where) : path.resolve(where);
}

export function backupTarget(database: string, server: string, destination: string): RunLockTarget {
  const what = database === '*' ? 'every database' : `"${database}"`;
  return {
    family: 'backup',
    parts: [server, database, destination],
    description: `backup of ${what} on ${server} into ${destination}`,
  };
}

export function cleanupTarget(destination: string): RunLockTarget {
  return { family: 'cleanup', parts: [destination], description: `cleanup of ${destination}` };
}

export function restoreTarget(server: string, database: string): RunLockTarget {
  return {
    family: 'restore',
    parts: [server, database],
    description: `restore into ${database === '*' ? 'the server' : `"${database}"`} on ${server}`,
  };
}

/** A PostgreSQL point-in-time restore fills a data directory: that is its target. */
export function dataDirTarget(dir: string): RunLockTarget {
  const resolved = path.resolve(dir);
  return {
    family: 'restore',
    parts: ['data directory', resolved],
    description: `restore into ${resolved}`,
  };
}

/**
 * A restore's plan made while holding the locks on the databases it restores into, as the CLI's
 * prepareLocked: locked on the guessed targets, planned, and when the plan names others, locked on
 * those and planned again. Without `confirm` (a preview) nothing is locked.
 */
export async function prepareLocked<T>(o: {
  confirm: boolean;
  server: string;
  guess: ReadonlyArray<string | undefined>;
  targets: (prepared: T) => string[];
  prepare: () => Promise<T>;
  replan?: boolean;
}): Promise<T> {
  if (!o.confirm) return o.prepare();
  const guessed = o.guess.filter((g): g is string => Boolean(g));
  await takeRunLocks(guessed.map((d) => restoreTarget(o.server, d)));
  const prepared = await o.prepare();
  const wanted = o.targets(prepared);
  if (wanted.every((d) => guessed.includes(d))) return prepared;
  await takeRunLocks(wanted.map((d) => restoreTarget(o.server, d)));
  return o.replan === false ? prepared : o.prepare();
}
