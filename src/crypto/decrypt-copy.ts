import { pipeline } from 'node:stream';
import {
  metadataKey,
  readMetadata,
  sha256Line,
  writeMetadata,
  type BackupMetadata,
} from '../catalog/metadata.js';
import { SHA256_SUFFIX } from '../catalog/naming.js';
import { createDecryptStream, type KeyUnlocker } from './index.js';
import { IntegrityError } from '../errors.js';
import { CommitGate, HashCounter } from '../pipeline/hash.js';
import { putBuffer, type Storage } from '../storage/storage.js';
import { checkUnlocks, readStoredHeader } from './stored-header.js';

export interface DecryptedCopy {
  /** Key of the plaintext copy: the backup's name without `.enc`. */
  key: string;
  bytes: number;
  sha256: string;
  /** Chunks that authenticated. */
  chunks: number;
  metadata: BackupMetadata | undefined;
}

/** `shop_….dump.zst.enc` → `shop_….dump.zst`. */
export function decryptedName(key: string): string {
  return key.endsWith('.enc') ? key.slice(0, -'.enc'.length) : `${key}.decrypted`;
}

/**
 * Copies an encrypted backup as its decrypted (still compressed) dump, streamed: the stored bytes
 * are checked against the metadata's SHA-256 on the way and every chunk is authenticated before the
 * copy is committed, so a damaged backup leaves nothing behind. The copy gets its own `.sha256` and
 * metadata (encryption null, new size and checksum), metadata last, so it is a valid, ordinary
 * backup. Returns undefined, copying nothing, when the backup is not encrypted.
 */
export async function copyDecrypted(
  from: Storage,
  key: string,
  to: Storage,
  unlockers: readonly KeyUnlocker[],
  /** Replace a file of the decrypted copy's name; otherwise one there fails the copy, untouched. */
  overwrite = false,
): Promise<DecryptedCopy | undefined> {
  const location = `${from.location.replace(/\/$/, '')}/${key}`;
  const header = await readStoredHeader(from, key);
  if (!header) return undefined;
  await checkUnlocks(location, header, unlockers, 'decrypting it');
  const metadata = await readMetadata(from, key);
  const stored = new HashCounter();
  const decrypt = createDecryptStream(unlockers);
  const plain = new HashCounter();
  const gate = new CommitGate(async () => {
    if (metadata && (stored.sha256 !== metadata.sha256 || stored.bytes !== metadata.sizeBytes)) {
      throw new IntegrityError(
        `Checksum mismatch while copying ${key}: the source is corrupt (expected ${metadata.sha256}, read ${stored.sha256})`,
        { hint: 'Nothing was written. Verify the source with dbbackup verify-backup.' },
      );
    }
  });
  pipeline(await from.get(key), stored, decrypt, plain, gate, () => undefined);
  const toKey = decryptedName(key);
  if (overwrite) await to.delete(metadataKey(toKey));
  await to.put(toKey, gate, { noOverwrite: !overwrite });
  await putBuffer(to, toKey + SHA256_SUFFIX, sha256Line(plain.sha256, toKey.split('/').pop() ?? toKey));
  if (metadata) {
    await writeMetadata(to, toKey, {
      ...metadata,
      file: toKey,
      encryption: null,
      sizeBytes: plain.bytes,
      sha256: plain.sha256,
    });
  }
  return { key: toKey, bytes: plain.bytes, sha256: plain.sha256, chunks: decrypt.chunks, metadata };
}
