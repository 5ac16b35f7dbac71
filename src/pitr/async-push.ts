import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { KeyProtector } from '../crypto/index.js';
import { DbBackupError, errorMessage, StorageError } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { ArchiveIdentity } from './archive.js';
import {
  ensureSpool,
  fileSignature,
  readText,
  releaseLock,
  sleep,
  startHelper,
  takeLock,
  writeAtomic,
} from './spool.js';
import { pushWalFile } from './wal-push.js';

/**
 * Asynchronous archiving, as pgBackRest's: archive_command only hands the segment over and waits
 * for its marker; one long-lived uploader (started on demand, gone after a quiet minute) pushes
 * every `.ready` segment it finds in pg_wal with warm connections, several at once, and writes
 * `ok/<name>` only once the object is durable. A marker carries the file's size and mtime, so a
 * marker for an older file of the same name never acknowledges a new one.
 */

export const UPLOADER = 'uploader';

interface Marker {
  signature: string;
  key: string;
}

/** archive_command's side: wait for the uploader's verdict on `file`. */
export async function handOver(
  file: string,
  o: { spoolDir: string; timeoutMs: number; uploaderArgs: string[] },
): Promise<string> {
  const name = path.basename(file);
  await ensureSpool(o.spoolDir, 'ok', 'error');
  const okFile = path.join(o.spoolDir, 'ok', name);
  const errorFile = path.join(o.spoolDir, 'error', name);
  const signature = await fileSignature(file);
  if (!signature) throw new StorageError(`Cannot read ${file}`);
  const deadline = Date.now() + o.timeoutMs;
  let started = false;
  for (;;) {
    const marker = await readMarker(okFile);
    if (marker?.signature === signature) {
      await rm(okFile, { force: true });
      return `${name} was archived by the uploader as ${marker.key}`;
    }
    const error = await readText(errorFile);
    if (error !== undefined) {
      await rm(errorFile, { force: true });
      throw new DbBackupError(error.trim() || `the uploader could not archive ${name}`, {
        hint: `The async uploader's log is ${path.join(o.spoolDir, `${UPLOADER}.log`)}.`,
      });
    }
    if (!started) {
      // pg_wal is where the segments wait: the uploader finds the rest of the backlog there too.
      await startHelper(
        o.spoolDir,
        UPLOADER,
        ['--pg-wal', path.resolve(path.dirname(file)), ...o.uploaderArgs],
        process.cwd(),
      );
      started = true;
    }
    if (Date.now() > deadline)
      throw new DbBackupError(
        `The async uploader did not archive ${name} within ${Math.round(o.timeoutMs / 1000)} s`,
        {
          hint: `See ${path.join(o.spoolDir, `${UPLOADER}.log`)}; PostgreSQL will try again.`,
        },
      );
    await sleep(20);
  }
}

async function readMarker(file: string): Promise<Marker | undefined> {
  const text = await readText(file);
  if (!text) return undefined;
  try {
    return JSON.parse(text) as Marker;
  } catch {
    return undefined;
  }
}

export interface UploaderOptions {
  storage: Storage;
  identity: ArchiveIdentity;
  protectors: readonly KeyProtector[];
  pgWal: string;
  spoolDir: string;
  concurrency: number;
  idleExitMs: number;
  signal: AbortSignal;
  log: (line: string) => void;
}

/** The files PostgreSQL has marked ready to archive, history files first (a new timeline's first). */
async function readyFiles(pgWal: string): Promise<string[]> {
  const names = (await readdir(path.join(pgWal, 'archive_status')).catch(() => [] as string[]))
    .filter((n) => n.endsWith('.ready'))
    .map((n) => n.slice(0, -'.ready'.length));
  return names.sort(
    (a, b) => Number(b.endsWith('.history')) - Number(a.endsWith('.history')) || a.localeCompare(b),
  );
}

/**
 * The uploader: pushes ready segments until there has been nothing to do for `idleExitMs`. On an
 * interrupt it stops taking work, lets the running pushes roll back (a push is atomic: nothing
 * half-written stays), releases its lock and returns.
 */
export async function runUploader(o: UploaderOptions): Promise<{ pushed: number; failed: number }> {
  await ensureSpool(o.spoolDir, 'ok', 'error');
  const lock = path.join(o.spoolDir, `${UPLOADER}.pid`);
  if (!(await takeLock(lock))) return { pushed: 0, failed: 0 };
  let pushed = 0;
  let failed = 0;
  let idleSince = Date.now();
  const retryAt = new Map<string, number>();
  try {
    while (!o.signal.aborted) {
      const pending: string[] = [];
      for (const name of await readyFiles(o.pgWal)) {
        const marker = await readMarker(path.join(o.spoolDir, 'ok', name));
        const signature = await fileSignature(path.join(o.pgWal, name));
        if (!signature || marker?.signature === signature) continue;
        if ((retryAt.get(name) ?? 0) > Date.now()) continue;
        pending.push(name);
      }
      if (!pending.length) {
        if (Date.now() - idleSince > o.idleExitMs) break;
        await sleep(100);
        continue;
      }
      idleSince = Date.now();
      const queue = [...pending];
      const worker = async (): Promise<void> => {
        for (let name = queue.shift(); name && !o.signal.aborted; name = queue.shift()) {
          const file = path.join(o.pgWal, name);
          const signature = await fileSignature(file);
          try {
            const r = await pushWalFile(o.storage, o.identity, file, o.protectors, o.signal);
            if (signature)
              await writeAtomic(path.join(o.spoolDir, 'ok', name), JSON.stringify({ signature, key: r.key }));
            await rm(path.join(o.spoolDir, 'error', name), { force: true });
            retryAt.delete(name);
            pushed++;
          } catch (err) {
            if (o.signal.aborted) return;
            failed++;
            retryAt.set(name, Date.now() + 5000);
            o.log(`${new Date().toISOString()} ${name}: ${errorMessage(err)}`);
            await writeAtomic(path.join(o.spoolDir, 'error', name), `${errorMessage(err)}\n`);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, o.concurrency) }, worker));
    }
  } finally {
    await releaseLock(lock);
  }
  return { pushed, failed };
}
