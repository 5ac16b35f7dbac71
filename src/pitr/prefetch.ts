import { copyFile, createWriteStream } from 'node:fs';
import { readdir, rename, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { KeyUnlocker } from '../crypto/index.js';
import { errnoCode, errorMessage } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { ArchiveIdentity } from './archive.js';
import { WalNotFoundError } from './errors.js';
import { ensureSpool, readText, releaseLock, sleep, startHelper, takeLock, writeAtomic } from './spool.js';
import { locateWal, readWal } from './wal-fetch.js';
import { parseWalFileName, segmentName, segmentNumber, segmentTimeline } from './wal-names.js';

/**
 * Prefetching for restore_command, which PostgreSQL runs strictly one segment at a time: each
 * `wal fetch` records the segment it was asked for (`get/.want`), and a prefetcher keeps the next
 * few segments of that timeline downloaded, verified and decompressed in `get/`. A fetch that
 * finds its segment there only moves it into place.
 */

export const PREFETCHER = 'prefetcher';
const WANT = '.want';

/** The prefetched copy of `name` moved to `dest`; false when there is none. */
export async function takePrefetched(spoolDir: string, name: string, dest: string): Promise<boolean> {
  const file = path.join(spoolDir, 'get', name);
  try {
    await rename(file, dest);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    if (errnoCode(err) !== 'EXDEV') throw err;
  }
  // The spool on another file system than pg_wal: copy, then drop the spooled copy.
  await promisify(copyFile)(file, dest);
  await unlink(file).catch(() => undefined);
  return true;
}

/** Tells the prefetcher what recovery asked for last, and makes sure one runs. */
export async function wantNext(spoolDir: string, name: string, helperArgs: string[]): Promise<void> {
  if (!parseWalFileName(name) || parseWalFileName(name)?.kind !== 'segment') return;
  await ensureSpool(spoolDir, 'get');
  await writeAtomic(path.join(spoolDir, 'get', WANT), name);
  await startHelper(spoolDir, PREFETCHER, helperArgs, process.cwd());
}

export interface PrefetcherOptions {
  storage: Storage;
  identity: ArchiveIdentity;
  spoolDir: string;
  count: number;
  idleExitMs: number;
  unlockers: () => Promise<readonly KeyUnlocker[]>;
  signal: AbortSignal;
  log: (line: string) => void;
}

/** Keeps `count` segments after the wanted one in `get/`; leaves when recovery has gone quiet. */
export async function runPrefetcher(o: PrefetcherOptions): Promise<number> {
  const get = path.join(o.spoolDir, 'get');
  await ensureSpool(o.spoolDir, 'get');
  const lock = path.join(o.spoolDir, `${PREFETCHER}.pid`);
  if (!(await takeLock(lock))) return 0;
  const segSize = o.identity.walSegmentSize;
  let fetched = 0;
  let lastWant = '';
  let idleSince = Date.now();
  const missing = new Map<string, number>();
  try {
    while (!o.signal.aborted) {
      const want = ((await readText(path.join(get, WANT))) ?? '').trim();
      if (want !== lastWant) {
        lastWant = want;
        idleSince = Date.now();
      }
      if (!parseWalFileName(want)) {
        if (Date.now() - idleSince > o.idleExitMs) break;
        await sleep(100);
        continue;
      }
      const tli = segmentTimeline(want);
      const from = segmentNumber(want, segSize);
      const ahead = Array.from({ length: o.count }, (_, i) =>
        segmentName(tli, from + BigInt(i + 1), segSize),
      );
      // What recovery has passed (or another timeline's) is of no more use.
      for (const n of await readdir(get))
        if (n !== WANT && !ahead.includes(n) && !n.startsWith('.'))
          await rm(path.join(get, n), { force: true });
      let did = false;
      for (const name of ahead) {
        if (o.signal.aborted) break;
        if ((await readdir(get)).includes(name)) continue;
        if ((missing.get(name) ?? 0) > Date.now()) continue;
        try {
          const { object } = await locateWal(o.storage, name);
          const temp = path.join(get, `.${name}.${process.pid}.tmp`);
          try {
            await readWal(
              o.storage,
              object,
              { kind: 'stream', stream: createWriteStream(temp, { mode: 0o600 }) },
              o.unlockers,
            );
            await rename(temp, path.join(get, name));
          } finally {
            await rm(temp, { force: true });
          }
          fetched++;
          did = true;
        } catch (err) {
          // Not archived yet (or the end of the archive): ask again in a while. Anything else is
          // left to the fetch itself, which reports it to PostgreSQL.
          missing.set(name, Date.now() + 1000);
          if (!(err instanceof WalNotFoundError))
            o.log(`${new Date().toISOString()} ${name}: ${errorMessage(err)}`);
          break;
        }
      }
      if (!did) {
        if (Date.now() - idleSince > o.idleExitMs) break;
        await sleep(50);
      }
    }
  } finally {
    await releaseLock(lock);
  }
  return fetched;
}
