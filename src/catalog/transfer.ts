import { DbBackupError, IntegrityError, SafetyError, StorageError, errorMessage } from '../errors.js';
import {
  NO_COMPRESSION,
  startWriteGroup,
  type WriteGroup,
  type WriteResult,
} from '../pipeline/filter-group.js';
import type { Storage } from '../storage/storage.js';
import { readAll, type PutOptions } from '../storage/storage.js';
import { commitUnit, type Commit } from './commit.js';
import {
  bytesMismatch,
  metadataJson,
  metadataKey,
  readMetadata,
  sha256Line,
  type BackupMetadata,
} from './metadata.js';
import { SHA256_SUFFIX } from './naming.js';
import { MANIFEST_NAME, manifestKey, readManifest } from './manifest.js';
import { ownedFiles } from './ownership.js';
import { rmdir } from 'node:fs/promises';

export interface TransferResult {
  key: string;
  bytes: number;
  sha256: string;
  metadata: BackupMetadata | undefined;
  /** The destination already held this very backup: nothing was written. */
  skipped?: 'identical';
}

export interface TransferOptions {
  /** Replace a different backup already under the destination name (never done silently). */
  overwrite?: boolean;
}

/** What the destination holds under a name, compared with the backup being copied there. */
type Existing = { state: 'absent' } | { state: 'identical' } | { state: 'different'; why: string };

async function sidecarText(storage: Storage, key: string): Promise<string | undefined> {
  if (!(await storage.stat(key))) return undefined;
  return (await readAll(storage, key, 4096)).toString('utf8');
}

/**
 * Same backup = the same size and SHA-256 by both sides' metadata (or, for a backup without
 * metadata, the same size and the same .sha256 text). Anything else under the name, a lone
 * sidecar included, is different.
 */
async function existingAt(
  from: Storage,
  key: string,
  metadata: BackupMetadata | undefined,
  to: Storage,
  toKey: string,
): Promise<Existing> {
  const [data, meta, sum] = await Promise.all(
    [toKey, metadataKey(toKey), toKey + SHA256_SUFFIX].map((k) => to.stat(k)),
  );
  if (!data && !meta && !sum) return { state: 'absent' };
  if (!data) return { state: 'different', why: 'an incomplete backup (its data file is missing)' };
  const theirs = meta ? await readMetadata(to, toKey).catch(() => undefined) : undefined;
  if (metadata) {
    if (!theirs) return { state: 'different', why: 'a backup without valid metadata' };
    const same =
      theirs.sha256 === metadata.sha256 &&
      theirs.sizeBytes === metadata.sizeBytes &&
      data.size === metadata.sizeBytes;
    return same
      ? { state: 'identical' }
      : { state: 'different', why: `a different backup (sha256 ${theirs.sha256})` };
  }
  const source = await from.stat(key);
  const [ours, other] = await Promise.all([
    sidecarText(from, key + SHA256_SUFFIX),
    sidecarText(to, toKey + SHA256_SUFFIX),
  ]);
  return source?.size === data.size && ours !== undefined && ours === other && !meta
    ? { state: 'identical' }
    : { state: 'different', why: 'a different file' };
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
  options: TransferOptions = {},
): Promise<TransferResult> {
  const metadata = await readMetadata(from, key);
  // Never replace what is already there without being told to: the same name from another server
  // (names carry no server identity) or an older run must not vanish behind an exit status of 0.
  const existing = await existingAt(from, key, metadata, to, toKey);
  if (existing.state === 'identical' && !options.overwrite) {
    const size = (await from.stat(key))?.size ?? 0;
    return {
      key: toKey,
      bytes: metadata?.sizeBytes ?? size,
      sha256: metadata?.sha256 ?? '',
      metadata,
      skipped: 'identical',
    };
  }
  if (existing.state === 'different' && !options.overwrite) {
    throw new SafetyError(
      `${to.location.replace(/\/$/, '')}/${toKey} already exists and is ${existing.why}: nothing was copied`,
      { hint: 'Copy to another prefix or directory, or add --overwrite to replace it.' },
    );
  }
  // Replacing: the old metadata goes first, so an interrupted copy leaves an incomplete backup, never
  // the old metadata over the new bytes.
  if (existing.state !== 'absent') await to.delete(metadataKey(toKey));
  const expected = metadata ? { sha256: metadata.sha256, sizeBytes: metadata.sizeBytes } : undefined;
  const objectMetadata = metadata
    ? { 'dbbackup-sha256': metadata.sha256, 'dbbackup-database': metadata.database }
    : undefined;
  // One unit: data, .sha256, metadata last; a failure removes what this copy wrote. Sidecars may
  // replace the old backup's (whose metadata is gone already).
  const sidecar = { noOverwrite: false };
  const copied = await commitUnit([to], {}, async (commit) => {
    const written = await copyObject(commit, from, key, toKey, expected, {
      metadata: objectMetadata,
      noOverwrite: existing.state === 'absent',
    });
    if (metadata) {
      const line = sha256Line(metadata.sha256, toKey.split('/').pop() ?? toKey);
      await commit.putSmall(toKey + SHA256_SUFFIX, line, sidecar);
      await commit.finish(metadataKey(toKey), metadataJson({ ...metadata, file: toKey }), sidecar);
    } else if (await from.stat(key + SHA256_SUFFIX)) {
      await commit.putSmall(toKey + SHA256_SUFFIX, await readAll(from, key + SHA256_SUFFIX, 4096), sidecar);
    }
    return written;
  });
  return { key: toKey, bytes: copied.storedBytes, sha256: copied.storedSha256, metadata };
}

/**
 * Stream one object across through the write group (no compression: the bytes are stored as they
 * are), hashed on the way; with `expected`, the copy is committed only if the bytes match it (the
 * group's gate fails the upload, so nothing appears under the name).
 */
async function copyObject(
  commit: Commit,
  from: Storage,
  key: string,
  toKey: string,
  expected: { sha256: string; sizeBytes: number } | undefined,
  options: PutOptions,
): Promise<WriteResult> {
  const source = await from.get(key);
  const group: WriteGroup = startWriteGroup({
    source,
    compression: NO_COMPRESSION,
    check: () => {
      const copied = group.result();
      const mismatch =
        expected && bytesMismatch(expected, { bytes: copied.storedBytes, sha256: copied.storedSha256 });
      if (mismatch) {
        throw new IntegrityError(`The source ${key} is corrupt (${mismatch}): it was not copied`, {
          hint: 'Nothing was written to the destination under that name. Verify the source with dbbackup verify-backup.',
        });
      }
    },
  });
  await commit.put(toKey, group, options);
  return group.result();
}

export interface ClusterTransferResult {
  name: string;
  files: number;
  bytes: number;
  skipped?: 'identical';
}

/**
 * Copy a cluster backup (`cluster_x/`) as one unit: every file its manifest names (roles, then
 * each database dump), each checked against the manifest's SHA-256 on the way, and the manifest
 * last, so the destination shows a complete cluster or none. Files in the directory that the
 * manifest does not name are not part of the backup and stay behind.
 */
export async function copyCluster(
  from: Storage,
  prefix: string,
  to: Storage,
  options: TransferOptions = {},
): Promise<ClusterTransferResult> {
  const name = prefix.replace(/\/+$/, '');
  const manifest = await readManifest(from, name);
  if (!manifest)
    throw new IntegrityError(
      `${from.location.replace(/\/$/, '')}/${name}/ has no ${MANIFEST_NAME}: it is not a complete cluster backup`,
      {
        hint: 'An interrupted or failed cluster backup cannot be copied; take a new one.',
      },
    );
  const files = [
    { file: manifest.globals.file, sha256: manifest.globals.sha256, bytes: manifest.globals.sizeBytes },
    ...manifest.databases.flatMap((m) =>
      m.status === 'ok' && m.file && m.sha256 ? [{ file: m.file, sha256: m.sha256, bytes: m.sizeBytes }] : [],
    ),
  ];
  for (const f of files) {
    if (!f.file.startsWith(`${name}/`))
      throw new IntegrityError(`Manifest of ${name}/ names ${f.file}, outside the cluster backup`, {
        hint: 'The manifest was edited or damaged; nothing was copied.',
      });
  }
  const manifestText = await readAll(from, manifestKey(name));
  const theirs = (await to.stat(manifestKey(name)))
    ? await readAll(to, manifestKey(name)).catch(() => undefined)
    : undefined;
  const present: string[] = [];
  for await (const o of to.list(`${name}/`)) present.push(o.key);
  if (present.length && !options.overwrite) {
    if (theirs?.equals(manifestText)) {
      const sizes = await Promise.all(files.map(async (f) => (await to.stat(f.file))?.size));
      if (files.every((f, i) => sizes[i] === f.bytes))
        return { name, files: files.length, bytes: manifest.totalBytes, skipped: 'identical' };
    }
    throw new SafetyError(
      `${to.location.replace(/\/$/, '')}/${name}/ already exists and holds ${theirs ? 'a different cluster backup' : 'other files'}: nothing was copied`,
      { hint: 'Copy to another prefix or directory, or add --overwrite to replace it.' },
    );
  }
  // Replacing: the old manifest first, so an interrupted copy leaves an incomplete cluster.
  if (present.length) await to.delete(manifestKey(name));
  // One unit: every member, the manifest last; a failure removes what this copy wrote.
  return commitUnit([to], {}, async (commit) => {
    let bytes = 0;
    for (const f of files) {
      await copyObject(
        commit,
        from,
        f.file,
        f.file,
        { sha256: f.sha256, sizeBytes: f.bytes },
        { noOverwrite: !present.includes(f.file) },
      );
      bytes += f.bytes;
    }
    await commit.finish(manifestKey(name), manifestText, { noOverwrite: false });
    return { name, files: files.length, bytes };
  });
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
