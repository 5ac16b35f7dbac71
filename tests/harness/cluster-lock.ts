import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from './proc.js';
import { pgServer } from './servers.js';

/**
 * Files that restore PostgreSQL globals share one server: a cluster restore in one file brings back
 * the roles another file has just dropped (its globals.sql holds every role of the server). Such
 * files hold this lock for their whole run, so they take turns while everything else runs alongside.
 */
function lockDir(): string {
  return path.join(os.tmpdir(), `dbb-pg-globals-lock-${pgServer().port}`);
}

export async function lockPgGlobals(): Promise<void> {
  const dir = lockDir();
  for (;;) {
    try {
      await mkdir(dir);
      await writeFile(path.join(dir, 'pid'), String(process.pid));
      return;
    } catch {
      // Held: wait, unless its owner is gone (a crashed worker never released it).
      const owner = Number.parseInt(await readFile(path.join(dir, 'pid'), 'utf8').catch(() => ''), 10);
      if (Number.isInteger(owner) && !isAlive(owner)) await rm(dir, { recursive: true, force: true });
      else await sleep(250);
    }
  }
}

export async function unlockPgGlobals(): Promise<void> {
  await rm(lockDir(), { recursive: true, force: true });
}
