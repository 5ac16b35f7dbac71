import { IntegrityError } from '../errors.js';
import { CommitGate, HashCounter } from '../pipeline/hash.js';
import { pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import type { Storage } from '../storage/storage.js';
import { putBuffer, readAll } from '../storage/storage.js';
import { metadataKey, readMetadata, sha256Line, writeMetadata, type BackupMetadata } from './metadata.js';
import { SHA256_SUFFIX } from './naming.js';
import { MANIFEST_NAME } from './manifest.js';
import { rmdir } from 'node:fs/promises';

export interface TransferResult {
  key: string;
  bytes: number;
  sha256: string;
  metadata: BackupMetadata | undefined;
}

/**
 * Copy one backup between stores (upload, download, provider to provider), streamed. The bytes are
 * hashed on the way and the copy is committed only if they match the metadata; the sidecars follow,
 * metadata last, so the destination never shows a valid backup whose data is wrong or missing.
 */
export async function copyBackup(
  from: Storage,
  key: string,
  to: Storage,
  toKey = key,
): Promise<TransferResult> {
  const metadata = await readMetadata(from, key);
  const hash = new HashCounter();
  const gate = new CommitGate(async () => {
    if (metadata && (hash.sha256 !== metadata.sha256 || hash.bytes !== metadata.sizeBytes)) {
      throw new IntegrityError(
        `Checksum mismatch while copying ${key}: the source is corrupt (expected ${metadata.sha256}, read ${hash.sha256})`,
        {
          hint: 'Nothing was written to the destination. Verify the source with dbbackup verify-backup.',
        },
      );
    }
  });
  const source = await from.get(key);
  const body = pipeline(source, hash, gate, () => undefined) as unknown as Readable;
  const objectMetadata = metadata
    ? { 'dbbackup-sha256': metadata.sha256, 'dbbackup-database': metadata.database }
    : undefined;
  await to.put(toKey, body, { metadata: objectMetadata });
  if (metadata) {
    await putBuffer(to, toKey + SHA256_SUFFIX, sha256Line(metadata.sha256, toKey.split('/').pop() ?? toKey));
    await writeMetadata(to, toKey, { ...metadata, file: toKey });
  } else if (await from.stat(key + SHA256_SUFFIX)) {
    await putBuffer(to, toKey + SHA256_SUFFIX, await readAll(from, key + SHA256_SUFFIX, 4096));
  }
  return { key: toKey, bytes: hash.bytes, sha256: hash.sha256, metadata };
}

/**
 * Remove a backup so that no crash leaves a state where a listing shows a valid backup whose data
 * is gone: metadata first (the backup turns "incomplete"), then the data, then the checksum file.
 */
export async function deleteBackup(storage: Storage, key: string): Promise<void> {
  if (key.endsWith('/')) {
    await deleteCluster(storage, key);
    return;
  }
  await storage.delete(metadataKey(key));
  await storage.delete(key);
  await storage.delete(key + SHA256_SUFFIX);
}

/** A cluster backup (`cluster_x/`): the manifest first, so it turns incomplete, then every member. */
async function deleteCluster(storage: Storage, prefix: string): Promise<void> {
  await storage.delete(`${prefix}${MANIFEST_NAME}`);
  const members: string[] = [];
  for await (const o of storage.list(prefix)) members.push(o.key);
  for (const key of members) await storage.delete(key);
  // A local directory is left empty; remove it so the listing forgets the cluster entirely.
  const dir = storage.localPath?.(prefix.slice(0, -1));
  if (dir) await rmdir(dir).catch(() => undefined);
}
