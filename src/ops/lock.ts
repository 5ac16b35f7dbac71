import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import os from 'node:os';
import { DbBackupError, errnoCode } from '../errors.js';

/**
 * A lock file: created with O_EXCL holding "pid host time", then optional `key=value` lines (the
 * holder's process start time, its command, what it locks). A lock whose process is gone (same
 * host, no such pid: killed with -9, a crash; or the pid now belongs to a process started later)
 * is stale and taken over. Waiting is always bounded. Used around the metrics file and for the run
 * locks per target (src/locks/run-lock.ts).
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
  /** The holder's start time in clock ticks since boot (Linux), to tell a reused pid from the holder. */
  start?: string;
  /** What the holder is doing (`backup single`) and what it holds (`backup of shop into /srv/b`). */
  command?: string;
  target?: string;
}

export interface LockOptions {
  /** How long to wait for a busy lock (0: fail at once). */
  waitMs: number;
  pollMs?: number;
  /** Told when a stale lock is taken over (to warn the user). */
  onStale?: (holder: LockHolder) => void;
  /** Written into the lock for whoever finds it busy. */
  command?: string;
  target?: string;
}

export type Release = () => Promise<void>;

export function parseHolder(text: string): LockHolder | undefined {
  const [pid, host, since, ...rest] = text.split('\n');
  const n = Number(pid);
  if (!(Number.isSafeInteger(n) && n > 0 && host)) return undefined;
  const holder: LockHolder = { pid: n, host, since: since ?? '?' };
  for (const line of rest) {
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    if (eq > 0 && (key === 'start' || key === 'command' || key === 'target'))
      holder[key] = line.slice(eq + 1);
  }
  return holder;
}

/** The lock file's text for this process. Values are one line each (newlines become spaces). */
export function holderText(opts: Pick<LockOptions, 'command' | 'target'>, pid = process.pid): string {
  const one = (v: string): string => v.replace(/[\r\n]+/g, ' ');
  const lines = [String(pid), os.hostname(), new Date().toISOString()];
  const start = processStart(pid);
  if (start) lines.push(`start=${start}`);
  if (opts.command) lines.push(`command=${one(opts.command)}`);
  if (opts.target) lines.push(`target=${one(opts.target)}`);
  return `${lines.join('\n')}\n`;
}

/**
 * A process's start time (field 22 of /proc/<pid>/stat, clock ticks since boot); undefined where
 * there is no /proc or no such process. With the pid it names one process for good.
 */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
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

/** Gone, or its pid now names a process that started after the lock was taken (pid reuse). */
export function isStale(holder: LockHolder | undefined): boolean {
  if (holder === undefined || holder.host !== os.hostname()) return false;
  if (!isAlive(holder.pid)) return true;
  const now = holder.start === undefined ? undefined : processStart(holder.pid);
  return now !== undefined && now !== holder.start;
}

async function readHolder(file: string): Promise<LockHolder | undefined> {
  return parseHolder(await readFile(file, 'utf8').catch(() => ''));
}

async function tryCreate(file: string, opts: LockOptions): Promise<boolean> {
  try {
    const handle = await open(file, 'wx', 0o600);
    await handle.writeFile(holderText(opts));
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
    if (await tryCreate(file, opts)) return () => unlink(file).catch(() => undefined);
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
