import zlib from 'node:zlib';
import { detectDump, type DetectedFormat } from '../catalog/format.js';
import type { Storage } from '../storage/storage.js';
import { decryptPrefix, isEncrypted, type KeyUnlocker } from '../crypto/index.js';
import { detectCompression } from './compression.js';

const RAW_PREFIX = 256 * 1024;
const WANT = 64 * 1024;

/**
 * Read just enough of a stored backup to tell its compression, engine and format from content. An
 * encrypted backup is decrypted in memory for this when `unlock` gives keys (a wrong or missing key
 * fails here, before anything is changed); without keys only `encrypted: true` is known.
 */
export async function sniff(
  storage: Storage,
  key: string,
  unlock?: () => Promise<readonly KeyUnlocker[]>,
): Promise<DetectedFormat> {
  const stream = await storage.get(key, { start: 0, end: RAW_PREFIX - 1 });
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  let raw: Buffer = Buffer.concat(chunks);
  const encrypted = isEncrypted(raw);
  if (encrypted) {
    if (!unlock) return { encrypted, compression: 'none', engine: null, format: null };
    raw = (await decryptPrefix(raw, await unlock())).plaintext;
  }
  const compression = detectCompression(raw);
  const head = compression === 'none' ? raw : await inflatePrefix(raw, compression);
  return { encrypted, compression, ...detectDump(head) };
}

/** Decompress a prefix of a compressed stream, keeping what came out before the data ran short. */
async function inflatePrefix(raw: Buffer, compression: 'gzip' | 'zstd'): Promise<Buffer> {
  const inflater = compression === 'gzip' ? zlib.createGunzip() : zlib.createZstdDecompress();
  const out: Buffer[] = [];
  let total = 0;
  return new Promise((resolve) => {
    const finish = (): void => resolve(Buffer.concat(out));
    inflater.on('data', (chunk: Buffer) => {
      out.push(chunk);
      total += chunk.length;
      if (total >= WANT) {
        inflater.removeAllListeners('data');
        inflater.destroy();
        finish();
      }
    });
    inflater.on('error', finish); // a cut-off stream: what we have is enough to classify
    inflater.on('end', finish);
    inflater.on('close', finish);
    inflater.end(raw);
  });
}
