import { DbBackupError, IntegrityError, SafetyError, StorageError, errorMessage } from '../errors.js';
import { CommitGate, HashCounter } from '../pipeline/hash.js';
import { pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import type { Storage } from '../storage/storage.js';
import { putBuffer, readAll } from '../storage/storage.js';
import { bytesMismatch, readMetadata, sha256Line, writeMetadata, type BackupMetadata } from './metadata.js';
import { SHA256_SUFFIX } from './naming.js';
import { ownedFiles } from './ownership.js';
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
    const mismatch = metadata && bytesMismatch(metadata, hash);
    if (mismatch) {
      throw new IntegrityError(`The source ${key} is corrupt (${mismatch}): it was not copied`, {
        hint: 'Nothing was written to the destination. Verify the source with dbbackup verify-backup.',
      });
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

/** What a removal really did, file by file: the files removed, and the one that could not be. */
export interface RemovalReport {
  removed: string[];
  /** The first file whose deletion failed (and what to do about it); the files after it were not attempted. */
  failed?: { file: string; error: string; hint?: string };
}

/**
 * Remove files in order, stopping at the first failure: with metadata (or a manifest) first, a
 * stopped removal leaves the backup "incomplete", never "valid" without its data. A directory's
 * cluster folder left empty is removed too, so the listing forgets it.
 */
export async function removeFiles(storage: Storage, files: readonly string[]): Promise<RemovalReport> {
  const removed: string[] = [];
  for (const file of files) {
    try {
      await storage.delete(file);
    } catch (err) {
      const hint = err instanceof DbBackupError ? err.hint : undefined;
      return { removed, failed: { file, error: errorMessage(err), ...(hint ? { hint } : {}) } };
    }
    removed.push(file);
  }
  for (const dir of new Set(
    files.filter((f) => f.includes('/')).map((f) => f.slice(0, f.lastIndexOf('/'))),
  )) {
    const local = storage.localPath?.(dir);
    if (local) await rmdir(local).catch(() => undefined);
  }
  return { removed };
}

/**
 * Remove a backup — only the files dbbackup wrote (see ownedFiles) — metadata first, then data,
 * then checksum; a cluster backup manifest first, then its members. Throws if any file could not be
 * removed, saying which were.
 */
export async function deleteBackup(storage: Storage, key: string): Promise<RemovalReport> {
  const owned = await ownedFiles(storage, key);
  if (!owned.ours)
    throw new SafetyError(`Not deleting ${key}: ${owned.reason}`, {
      hint: 'dbbackup deletes only what it wrote itself; remove this by hand if you are sure.',
    });
  const report = await removeFiles(storage, owned.files);
  if (report.failed)
    throw new StorageError(`Could not delete ${report.failed.file}: ${report.failed.error}`, {
      hint: report.removed.length
        ? `Removed before the failure: ${report.removed.join(', ')}. The backup is now incomplete; run the command again.`
        : 'Nothing was removed.',
    });
  return report;
}
