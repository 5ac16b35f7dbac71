import { createHash } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DbBackupError, LOCKED_EXIT_CODE } from '../errors.js';
import { acquireLock, LockBusyError, type LockHolder, type Release } from '../ops/lock.js';

/**
 * Run locks: every backup, restore, cleanup and drill holds one lock per target, so two runs of the
 * same job never overlap (a cron job still running when the next one starts, a person restoring
 * into the database a scheduled restore is filling). A second run is refused at once with
 * LOCKED_EXIT_CODE, or waits at most --wait-lock seconds; a lock whose process is gone (kill -9,
 * a crash, a reboot) is taken over with a warning.
 *
 * Locks are files in one local directory, so they serialise the runs of one host (and of the users
 * who share that directory), whatever the destination: two hosts writing to one bucket are not
 * serialised (their backups still never overwrite each other: see src/backup/claim.ts).
 */

export type LockFamily = 'backup' | 'restore' | 'cleanup' | 'drill';

export interface RunLockTarget {
  family: LockFamily;
  /** What identifies the target (server, database, destination…); equal parts, same lock. */
  parts: readonly string[];
  /** In messages: `backup of "shop" on 127.0.0.1:5432 into /srv/backups`. */
  description: string;
}

export interface RunLockSettings {
  dir: string;
  /** How long to wait for a busy lock (--wait-lock); 0: refuse at once. */
  waitMs: number;
  /** Recorded in the lock for whoever finds it busy: `backup single`. */
  command: string;
  /** Told when a stale lock is taken over. */
  onStale?: (holder: LockHolder, target: RunLockTarget) => void;
}

/** A run refused because another run holds the lock on its target. */
export class RunLockedError extends DbBackupError {
  constructor(
    readonly target: RunLockTarget,
    readonly holder: LockHolder | undefined,
    waitedMs: number,
    file: string,
  ) {
    const who = holder
      ? `${holder.command ? `"${holder.command}", ` : ''}process ${holder.pid} on ${holder.host}, running since ${holder.since}`
      : 'another process';
    super(
      `Another dbbackup run holds the lock for the ${target.description} (${who})${waitedMs ? `; waited ${Math.round(waitedMs / 1000)} s` : ''}: this run did not start`,
      {
        exitCode: LOCKED_EXIT_CODE,
        details: [`lock file: ${file}`],
        hint: `Let that run finish, or wait for it with --wait-lock SECONDS. A lock left by a process that is gone is taken over by the next run; this one is held by a live process.`,
      },
    );
  }
}

/** $DBBACKUP_LOCK_DIR, else $XDG_STATE_HOME/dbbackup/locks (~/.local/state/dbbackup/locks). */
export function defaultLockDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DBBACKUP_LOCK_DIR) return env.DBBACKUP_LOCK_DIR;
  const base = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'dbbackup', 'locks');
}

/**
 * `<family>-<readable part>-<hash>.lock`: the hash of every part keeps two targets apart (and any
 * text out of the file name), the readable part lets a person see what a lock is for.
 */
export function lockFileName(target: RunLockTarget): string {
  const hash = createHash('sha256')
    .update(JSON.stringify([target.family, ...target.parts]))
    .digest('hex');
  const readable = (target.parts[target.parts.length - 2] ?? target.parts[0] ?? '')
    .replace(/[^A-Za-z0-9_.-]+/g, '_')
    .slice(0, 40);
  return `${target.family}-${readable ? `${readable}-` : ''}${hash.slice(0, 16)}.lock`;
}

let settings: RunLockSettings = { dir: defaultLockDir(), waitMs: 0, command: 'dbbackup' };
const held = new Map<string, Release>();
let exitHookInstalled = false;

export function configureRunLocks(s: RunLockSettings): void {
  settings = s;
}

/**
 * Takes the lock on `target` for the rest of this run (released by releaseRunLocks, or when the
 * process exits). Taking one this run already holds does nothing.
 */
export async function takeRunLock(target: RunLockTarget): Promise<void> {
  const file = path.join(settings.dir, lockFileName(target));
  if (held.has(file)) return;
  await mkdir(settings.dir, { recursive: true, mode: 0o700 });
  const started = Date.now();
  try {
    const release = await acquireLock(file, {
      waitMs: settings.waitMs,
      pollMs: 200,
      command: settings.command,
      target: target.description,
      onStale: (holder) => settings.onStale?.(holder, target),
    });
    held.set(file, release);
    installExitHook();
  } catch (err) {
    if (err instanceof LockBusyError)
      throw new RunLockedError(target, err.holder, Date.now() - started, file);
    throw err;
  }
}

/** Takes several locks in a fixed order (two runs wanting the same ones cannot each hold half). */
export async function takeRunLocks(targets: readonly RunLockTarget[]): Promise<void> {
  const sorted = [...targets].sort((a, b) => lockFileName(a).localeCompare(lockFileName(b)));
  for (const t of sorted) await takeRunLock(t);
}

export async function releaseRunLocks(): Promise<void> {
  const releases = [...held.values()];
  held.clear();
  await Promise.all(releases.map((r) => r()));
}

/** The lock files this run holds (for tests and messages). */
export function heldRunLocks(): string[] {
  return [...held.keys()];
}

/** A run that ends without releasing (process.exit after a signal's grace period) still removes its locks. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const file of held.keys()) {
      try {
        unlinkSync(file);
      } catch {
        // Already gone.
      }
    }
  });
}
