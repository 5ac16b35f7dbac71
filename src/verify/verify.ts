import { readMetadata, type BackupMetadata } from '../catalog/metadata.js';
import { readManifest, type ClusterManifest } from '../catalog/manifest.js';
import { SHA256_SUFFIX } from '../catalog/naming.js';
import { errorMessage } from '../errors.js';
import { readAll, type Storage } from '../storage/storage.js';
import { hashStored } from './checksum.js';

export type BackupState = 'valid' | 'incomplete' | 'corrupt';

export interface VerifyResult {
  key: string;
  location: string;
  state: BackupState;
  /** Why the backup is not valid, or what was checked when it is. */
  detail: string;
  sizeBytes: number | null;
  metadata?: BackupMetadata;
  cluster?: ClusterManifest;
}

/**
 * Check one backup against its metadata: presence, size, and (unless quick) the SHA-256 of every
 * stored byte. Never throws for a bad backup: the result says what is wrong.
 */
export async function verifyBackup(storage: Storage, key: string, quick: boolean): Promise<VerifyResult> {
  const base = { key, location: `${storage.location.replace(/\/$/, '')}/${key}` };
  let metadata: BackupMetadata | undefined;
  try {
    metadata = await readMetadata(storage, key);
  } catch (err) {
    return { ...base, state: 'corrupt', detail: errorMessage(err), sizeBytes: null };
  }
  const stat = await storage.stat(key);
  if (!metadata) {
    return {
      ...base,
      state: 'incomplete',
      detail: 'no metadata (.meta.json): the backup never finished',
      sizeBytes: stat?.size ?? null,
    };
  }
  if (!stat)
    return { ...base, state: 'incomplete', detail: 'the backup data is missing', sizeBytes: null, metadata };
  if (stat.size !== metadata.sizeBytes) {
    return {
      ...base,
      state: 'corrupt',
      detail: `size mismatch: expected ${metadata.sizeBytes} bytes, found ${stat.size}`,
      sizeBytes: stat.size,
      metadata,
    };
  }
  if (quick)
    return { ...base, state: 'valid', detail: 'size matches (quick check)', sizeBytes: stat.size, metadata };
  const actual = await hashStored(storage, key);
  if (actual.sha256 !== metadata.sha256 || actual.bytes !== metadata.sizeBytes) {
    return {
      ...base,
      state: 'corrupt',
      detail: `checksum mismatch: expected sha256 ${metadata.sha256}, computed ${actual.sha256}`,
      sizeBytes: stat.size,
      metadata,
    };
  }
  const sidecar = await sidecarChecksum(storage, key);
  if (sidecar && sidecar !== metadata.sha256) {
    return {
      ...base,
      state: 'corrupt',
      detail: `the ${SHA256_SUFFIX} file disagrees with the metadata`,
      sizeBytes: stat.size,
      metadata,
    };
  }
  return {
    ...base,
    state: 'valid',
    detail: `sha256 ${metadata.sha256.slice(0, 16)}… matches`,
    sizeBytes: stat.size,
    metadata,
  };
}

async function sidecarChecksum(storage: Storage, key: string): Promise<string | undefined> {
  if (!(await storage.stat(key + SHA256_SUFFIX))) return undefined;
  const text = (await readAll(storage, key + SHA256_SUFFIX, 4096)).toString('utf8');
  return /^([0-9a-f]{64})\b/.exec(text)?.[1];
}

/**
 * A cluster backup is valid when its manifest is valid and every member (globals and each database
 * dump) is present with the recorded size and, unless quick, the recorded SHA-256.
 */
export async function verifyCluster(
  storage: Storage,
  name: string,
  quick: boolean,
): Promise<VerifyResult & { databases: number }> {
  const base = { key: `${name}/`, location: `${storage.location.replace(/\/$/, '')}/${name}/` };
  let manifest;
  try {
    manifest = await readManifest(storage, name);
  } catch (err) {
    return { ...base, state: 'corrupt', detail: errorMessage(err), sizeBytes: null, databases: 0 };
  }
  if (!manifest)
    return {
      ...base,
      state: 'incomplete',
      detail: 'no manifest: the cluster backup never finished',
      sizeBytes: null,
      databases: 0,
    };
  const members: Array<[string, number, string]> = [
    [manifest.globals.file, manifest.globals.sizeBytes, manifest.globals.sha256],
  ];
  for (const m of manifest.databases) if (m.file && m.sha256) members.push([m.file, m.sizeBytes, m.sha256]);
  const result = (state: BackupState, detail: string): VerifyResult & { databases: number } => ({
    ...base,
    state,
    detail,
    sizeBytes: manifest.totalBytes,
    databases: manifest.databases.length,
    cluster: manifest,
  });
  for (const [key, size, sha] of members) {
    const stat = await storage.stat(key);
    if (!stat) return result('incomplete', `${key} is missing`);
    if (stat.size !== size)
      return result('corrupt', `${key}: size mismatch: expected ${size} bytes, found ${stat.size}`);
    if (!quick) {
      const actual = await hashStored(storage, key);
      if (actual.sha256 !== sha)
        return result(
          'corrupt',
          `${key}: checksum mismatch: expected sha256 ${sha}, computed ${actual.sha256}`,
        );
    }
  }
  const partial = manifest.status === 'partial' ? ' (partial: some databases failed at backup time)' : '';
  return result(
    'valid',
    `${members.length - 1} databases and globals ${quick ? 'present with the right sizes' : 'match their checksums'}${partial}`,
  );
}

/** A single backup, or a cluster backup when the key names its directory (`cluster_x/`). */
export async function verifyAny(storage: Storage, key: string, quick: boolean): Promise<VerifyResult> {
  return key.endsWith('/')
    ? verifyCluster(storage, key.slice(0, -1), quick)
    : verifyBackup(storage, key, quick);
}
