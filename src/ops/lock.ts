import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import os from 'node:os';
import { DbBackupError, errnoCode } from '../errors.js';

/**
 * A lock file: created with O_EXCL holding "pid host time". A lock whose process is gone (same
 * host, no such pid: killed with -9, a crash) is stale and taken over. Waiting is always bounded.
 * Used around the metrics file; meant for run locks per target too (issue 17).
 */

export class LockBusyError extends DbBackupError {
  constructor(
    readonly file: string,
    readonly holder: LockHolder | undefined,
  ) {
    super(
      `${file} is locked by ${holder ? `process ${holder.pid} on ${holder.host} since ${holder.since}` : 'another process'}`,
      { hint: 'Another dbbackup run holds it; try again when it has finished.' },
    );
  }
}

export interface LockHolder {
  pid: number;
  host: string;
  since: string;
}

export interface LockOptions {
  /** How long to wait for a busy lock (0: fail at once). */
  waitMs: number;
  pollMs?: number;
  /** Told when a stale lock is taken over (to warn the user). */
  onStale?: (holder: LockHolder) => void;
}

export type Release = () => Promise<void>;

export function parseHolder(text: string): LockHolder | undefined {
  const [pid, host, since] = text.split('\n');
  const n = Number(pid);
  return Number.isSafeInteger(n) && n > 0 && host ? { pid: n, host, since: since ?? '?' } : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return errnoCode(err) === 'EPERM';
  }
}

function isStale(holder: LockHolder | undefined): boolean {
  return holder !== undefined && holder.host === os.hostname() && !isAlive(holder.pid);
}

async function readHolder(file: string): Promise<LockHolder | undefined> {
  return parseHolder(await readFile(file, 'utf8').catch(() => ''));
}

async function tryCreate(file: string): Promise<boolean> {
  try {
    const handle = await open(file, 'wx', 0o600);
    await handle.writeFile(`${process.pid}\n${os.hostname()}\n${new Date().toISOString()}\n`);
    await handle.close();
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  }
}

/**
 * Moves a stale lock aside, atomically: if, between reading it and moving it, another process took
 * it over and created a live lock, that live lock is put back (link fails if a third one exists).
 */
async function removeStale(file: string, stale: LockHolder): Promise<void> {
  const aside = `${file}.stale-${randomBytes(4).toString('hex')}`;
  try {
    await rename(file, aside);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  const moved = await readHolder(aside);
  if (moved && (moved.pid !== stale.pid || moved.since !== stale.since))
    await link(aside, file).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}

export async function acquireLock(file: string, opts: LockOptions): Promise<Release> {
  const deadline = Date.now() + opts.waitMs;
  for (;;) {
    if (await tryCreate(file)) return () => unlink(file).catch(() => undefined);
    const holder = await readHolder(file);
    if (holder && isStale(holder)) {
      opts.onStale?.(holder);
      await removeStale(file, holder);
      continue;
    }
    if (Date.now() >= deadline) throw new LockBusyError(file, holder);
    await new Promise((resolve) => setTimeout(resolve, opts.pollMs ?? 25));
  }
}

export async function withLock<T>(file: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  const release = await acquireLock(file, opts);
  try {
    return await fn();
  } finally {
    await release();
  }
}
