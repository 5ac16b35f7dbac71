import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { bytesMismatch, type ExpectedBytes } from '../catalog/metadata.js';
import { SHA256_SUFFIX } from '../catalog/naming.js';
import { HashCounter } from '../pipeline/hash.js';
import type { ByteMeter } from '../pipeline/progress.js';
import { readAll, type Storage } from '../storage/storage.js';

/** SHA-256 and size of a stored object, streamed (memory stays flat whatever the size). */
export async function hashStored(
  storage: Storage,
  key: string,
  meter?: ByteMeter,
): Promise<{ sha256: string; bytes: number }> {
  const hash = new HashCounter();
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  await pipeline([await storage.get(key), ...(meter ? [meter.tap()] : []), hash, sink]);
  return { sha256: hash.sha256, bytes: hash.bytes };
}

/** The checksum in `<key>.sha256` (`sha256sum` format), or undefined when there is no such file. */
export async function sidecarChecksum(storage: Storage, key: string): Promise<string | undefined> {
  if (!(await storage.stat(key + SHA256_SUFFIX))) return undefined;
  let text: string;
  try {
    text = (await readAll(storage, key + SHA256_SUFFIX, 4096)).toString('utf8');
  } catch (err) {
    // Larger than any checksum line: not one.
    if (err instanceof RangeError) return '(not a checksum file: larger than 4 KiB)';
    throw err;
  }
  // Anything that is not a checksum disagrees with the metadata, rather than being ignored.
  return /^([0-9a-f]{64})\b/.exec(text)?.[1] ?? JSON.stringify(text.slice(0, 80));
}

/** The verdict on one stored file: what every command (verify, list, cleanup, restore) says about it. */
export type StoredVerdict =
  | { state: 'valid'; sizeBytes: number; sha256: string | null }
  | { state: 'incomplete' | 'corrupt'; problem: string; sizeBytes: number | null };

/**
 * One stored file against what its metadata records: present, the right size, its `.sha256`
 * sidecar (when there is one) agreeing with the metadata, and — when `read` — the SHA-256 of
 * every stored byte. Size and sidecar cost no read of the data, so a quick check has them too.
 */
export async function checkStored(
  storage: Storage,
  key: string,
  expected: ExpectedBytes,
  opts: { read: boolean; meter?: ByteMeter; sidecar?: boolean },
): Promise<StoredVerdict> {
  const stat = await storage.stat(key);
  if (!stat) return { state: 'incomplete', problem: 'the backup data is missing', sizeBytes: null };
  const bad = (problem: string): StoredVerdict => ({ state: 'corrupt', problem, sizeBytes: stat.size });
  const sized = bytesMismatch(expected, { bytes: stat.size });
  if (sized) return bad(sized);
  if (opts.sidecar !== false) {
    const recorded = await sidecarChecksum(storage, key);
    if (recorded !== undefined && recorded !== expected.sha256)
      return bad(
        `the ${SHA256_SUFFIX} file disagrees with the metadata: it says ${recorded}, the metadata sha256 ${expected.sha256}`,
      );
  }
  if (!opts.read) return { state: 'valid', sizeBytes: stat.size, sha256: null };
  const actual = await hashStored(storage, key, opts.meter);
  const mismatch = bytesMismatch(expected, actual);
  if (mismatch) return bad(mismatch);
  return { state: 'valid', sizeBytes: stat.size, sha256: actual.sha256 };
}
