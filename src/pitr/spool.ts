import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, UsageError } from '../errors.js';
import { installation } from './commands.js';

/**
 * The spool directory shared by the short-lived WAL commands PostgreSQL runs and the long-lived
 * helper processes they start (the async uploader, the fetch prefetcher): markers, a lock per
 * helper, and the helpers' logs. Everything in it is created by the server's OS user.
 */

export async function ensureSpool(dir: string, ...subdirs: string[]): Promise<void> {
  if (!path.isAbsolute(dir)) throw new UsageError(`--spool-dir ${dir} must be an absolute path`);
  for (const sub of ['', ...subdirs]) await mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
}

/** Writes `file` so that a reader never sees it half written. */
export async function writeAtomic(file: string, content: string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, content, { mode: 0o600 });
  await rename(temp, file);
}

export async function readText(file: string): Promise<string | undefined> {
  return readFile(file, 'utf8').catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/** The pid in a lock file, if that process still runs (a lock left by a killed helper is stale). */
export async function lockHolder(lockFile: string): Promise<number | undefined> {
  const pid = Number.parseInt((await readText(lockFile)) ?? '', 10);
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

/** Takes the lock for this process; false when a live process holds it. */
export async function takeLock(lockFile: string): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockFile, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return true;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      if (await lockHolder(lockFile)) return false;
      await rm(lockFile, { force: true });
    }
  }
  return false;
}

export async function releaseLock(lockFile: string): Promise<void> {
  if ((await lockHolder(lockFile)) === process.pid) await rm(lockFile, { force: true });
}

/**
 * Starts `wal <helper> …args` detached (it outlives the command that starts it), with its output
 * appended to `<spool>/<helper>.log`. No-op when the lock shows one running.
 */
export async function startHelper(
  spoolDir: string,
  helper: string,
  args: string[],
  cwd: string,
): Promise<void> {
  if (await lockHolder(path.join(spoolDir, `${helper}.pid`))) return;
  const { node, cli } = installation();
  const log = openSync(path.join(spoolDir, `${helper}.log`), 'a', 0o600);
  try {
    const child = spawn(node, [cli, 'wal', helper, ...args], {
      cwd,
      detached: true,
      stdio: ['ignore', log, log],
    });
    child.unref();
  } finally {
    closeSync(log);
  }
}

/** Size and modification time, for a cheap "is this still the file the marker describes?". */
export async function fileSignature(file: string): Promise<string | undefined> {
  const s = await stat(file).catch(() => undefined);
  return s ? `${s.size}:${Math.floor(s.mtimeMs)}` : undefined;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
