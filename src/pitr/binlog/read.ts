import type { PhysicalMetadata } from '../../catalog/physical-backup.js';
import type { KeyUnlocker } from '../../crypto/index.js';
import { runReadGroup, type ReadSink } from '../../pipeline/filter-group.js';
import type { Storage } from '../../storage/storage.js';
import type { StoredBinlog } from './inventory.js';

/** Decryption for an encrypted object, from keys loaded on first need. */
async function decryptFor(
  encrypted: boolean,
  unlockers: () => Promise<readonly KeyUnlocker[]>,
): Promise<ReturnType<typeof import('../../crypto/index.js').createDecryptStream> | undefined> {
  if (!encrypted) return undefined;
  return (await import('../../crypto/index.js')).createDecryptStream(await unlockers());
}

/**
 * One stored binlog through the read group: its stored bytes checked against their SHA-256 and size,
 * decrypted, decompressed, and the raw bytes against the SHA-256 its name carries.
 */
export async function readStoredBinlog(
  storage: Storage,
  b: StoredBinlog,
  sink: Extract<ReadSink, { kind: 'stream' }>,
  unlockers: () => Promise<readonly KeyUnlocker[]>,
  signal?: AbortSignal,
): Promise<void> {
  const f = b.facts;
  await runReadGroup({
    source: await storage.get(b.dataKey),
    expected: { sha256: f.storedSha256, bytes: f.storedBytes },
    decrypt: await decryptFor(Boolean(f.encryption), unlockers),
    compression: f.compression.algorithm,
    sizeHint: f.rawBytes,
    decodedSha256: f.sha256,
    sink,
    signal,
  });
}

/** One file of a physical backup through the read group (stored SHA-256 and size checked) into `sink`. */
export async function readPhysicalFile(
  storage: Storage,
  meta: PhysicalMetadata,
  file: PhysicalMetadata['files'][number],
  sink: ReadSink,
  unlockers: () => Promise<readonly KeyUnlocker[]>,
  signal?: AbortSignal,
): Promise<void> {
  await runReadGroup({
    source: await storage.get(file.key),
    expected: { sha256: file.sha256, bytes: file.sizeBytes },
    decrypt: await decryptFor(Boolean(meta.encryption), unlockers),
    compression: meta.compression.algorithm,
    sink,
    signal,
  });
}
