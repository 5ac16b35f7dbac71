import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { HashCounter } from '../pipeline/hash.js';
import type { ByteMeter } from '../pipeline/progress.js';
import type { Storage } from '../storage/storage.js';

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
