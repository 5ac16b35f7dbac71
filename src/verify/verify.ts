import { readMetadata, type BackupMetadata } from '../catalog/metadata.js';
import { readManifest, type ClusterManifest } from '../catalog/manifest.js';
import { SHA256_SUFFIX } from '../catalog/naming.js';
import { EncryptionKeyError } from '../crypto/index.js';
import { errorMessage, IntegrityError, MissingToolError } from '../errors.js';
import { formatBytes } from '../pipeline/progress.js';
import { readAll, type Storage } from '../storage/storage.js';
import { hashStored } from './checksum.js';
import { deepRead, type DeepExpectation, type DeepReport, type UnlockerSource } from './deep.js';

export type BackupState = 'valid' | 'incomplete' | 'corrupt';

/** What `--deep` established about a backup (about every member of a cluster backup). */
export interface DeepSummary {
  encrypted: boolean;
  /** Chunks authenticated, summed over the files; null when not encrypted. */
  chunks: number | null;
  /** Bytes of the dumps after decryption and decompression. */
  dumpBytes: number;
  /** One entry per file read: a single backup has one, a cluster backup globals and each database. */
  files: Array<{ key: string } & Omit<DeepReport, 'sha256' | 'bytes'>>;
}

export interface VerifyResult {
  key: string;
  location: string;
  state: BackupState;
  /** Why the backup is not valid, or what was checked when it is. */
  detail: string;
  sizeBytes: number | null;
  metadata?: BackupMetadata;
  cluster?: ClusterManifest;
  /** Present when a deep check ran to the end (see VerifyOptions.deep). */
  deep?: DeepSummary;
}

export interface VerifyOptions {
  /** Sizes only, no read of the data. */
  quick?: boolean;
  /**
   * Also decrypt (authenticating every chunk), decompress and check that each dump is complete,
   * in the same single read as the checksum. Key and tool problems throw (EncryptionKeyError,
   * MissingToolError): they say nothing about the backup.
   */
  deep?: { unlock: UnlockerSource };
}

function options(mode: boolean | VerifyOptions): VerifyOptions {
  return typeof mode === 'boolean' ? { quick: mode } : mode;
}

function summarize(files: DeepSummary['files']): DeepSummary {
  const encrypted = files.some((f) => f.encrypted);
  return {
    encrypted,
    chunks: encrypted ? files.reduce((n, f) => n + (f.chunks ?? 0), 0) : null,
    dumpBytes: files.reduce((n, f) => n + f.dumpBytes, 0),
    files,
  };
}

/** "124 chunks authenticated, 52.3 MiB decompressed (zstd), dump complete: pg_restore read the data of 12 tables". */
function describeDeep(summary: DeepSummary, single: boolean): string {
  const parts: string[] = [];
  if (summary.chunks !== null) parts.push(`${summary.chunks} chunks authenticated`);
  const compressions = [...new Set(summary.files.map((f) => f.compression))].filter((c) => c !== 'none');
  parts.push(
    compressions.length
      ? `${formatBytes(summary.dumpBytes)} decompressed (${compressions.join(', ')})`
      : `${formatBytes(summary.dumpBytes)} of ${single ? 'dump' : 'dumps'} read`,
  );
  const first = summary.files[0];
  parts.push(single && first ? `dump complete: ${first.completeness}` : 'every dump complete');
  return parts.join(', ');
}

/**
 * The deep read of one file, judged: a content problem becomes the reason the backup is corrupt,
 * but a checksum mismatch, when there is one, is the better explanation and wins.
 */
async function deepJudged(
  storage: Storage,
  key: string,
  location: string,
  expect: DeepExpectation,
  expected: { sha256: string; sizeBytes: number },
  unlock: UnlockerSource,
): Promise<{ report: DeepReport } | { problem: string }> {
  let report: DeepReport;
  try {
    report = await deepRead(storage, key, location, expect, unlock);
  } catch (err) {
    if (err instanceof EncryptionKeyError || err instanceof MissingToolError) throw err;
    // The read stopped early: hash the stored bytes to tell damage after the backup from a bad backup.
    const actual = await hashStored(storage, key).catch(() => undefined);
    if (actual && actual.sha256 !== expected.sha256)
      return {
        problem: `checksum mismatch: expected sha256 ${expected.sha256}, computed ${actual.sha256}`,
      };
    const what = err instanceof IntegrityError ? err.message : `could not be read: ${errorMessage(err)}`;
    return { problem: `${what} (the stored bytes match their checksum: the backup was written this way)` };
  }
  if (report.sha256 !== expected.sha256 || report.bytes !== expected.sizeBytes) {
    return {
      problem: `checksum mismatch: expected sha256 ${expected.sha256}, computed ${report.sha256}`,
    };
  }
  return { report };
}

function fileSummary(key: string, r: DeepReport): DeepSummary['files'][number] {
  const { sha256: _sha, bytes: _bytes, ...rest } = r;
  return { key, ...rest };
}

/**
 * Check one backup against its metadata: presence, size, and (unless quick) the SHA-256 of every
 * stored byte; with `deep`, also its decrypted, decompressed content. Never throws for a bad
 * backup: the result says what is wrong.
 */
export async function verifyBackup(
  storage: Storage,
  key: string,
  mode: boolean | VerifyOptions,
): Promise<VerifyResult> {
  const { quick, deep } = options(mode);
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
  const corrupt = (detail: string): VerifyResult => ({
    ...base,
    state: 'corrupt',
    detail,
    sizeBytes: stat.size,
    metadata,
  });
  if (stat.size !== metadata.sizeBytes)
    return corrupt(`size mismatch: expected ${metadata.sizeBytes} bytes, found ${stat.size}`);
  if (quick && !deep)
    return { ...base, state: 'valid', detail: 'size matches (quick check)', sizeBytes: stat.size, metadata };
  let summary: DeepSummary | undefined;
  if (deep) {
    const judged = await deepJudged(storage, key, base.location, { kind: 'dump' }, metadata, deep.unlock);
    if ('problem' in judged) return corrupt(judged.problem);
    summary = summarize([fileSummary(key, judged.report)]);
  } else {
    const actual = await hashStored(storage, key);
    if (actual.sha256 !== metadata.sha256 || actual.bytes !== metadata.sizeBytes)
      return corrupt(`checksum mismatch: expected sha256 ${metadata.sha256}, computed ${actual.sha256}`);
  }
  const sidecar = await sidecarChecksum(storage, key);
  if (sidecar && sidecar !== metadata.sha256)
    return corrupt(`the ${SHA256_SUFFIX} file disagrees with the metadata`);
  const matches = `sha256 ${metadata.sha256.slice(0, 16)}… matches`;
  return {
    ...base,
    state: 'valid',
    detail: summary ? `${matches}, ${describeDeep(summary, true)}` : matches,
    sizeBytes: stat.size,
    metadata,
    ...(summary ? { deep: summary } : {}),
  };
}

async function sidecarChecksum(storage: Storage, key: string): Promise<string | undefined> {
  if (!(await storage.stat(key + SHA256_SUFFIX))) return undefined;
  const text = (await readAll(storage, key + SHA256_SUFFIX, 4096)).toString('utf8');
  return /^([0-9a-f]{64})\b/.exec(text)?.[1];
}

/**
 * A cluster backup is valid when its manifest is valid and every member (globals and each database
 * dump) is present with the recorded size and, unless quick, the recorded SHA-256; with `deep`,
 * every member is also decrypted, decompressed and checked complete.
 */
export async function verifyCluster(
  storage: Storage,
  name: string,
  mode: boolean | VerifyOptions,
): Promise<VerifyResult & { databases: number }> {
  const { quick, deep } = options(mode);
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
  const members: Array<{ key: string; sizeBytes: number; sha256: string; expect: DeepExpectation }> = [
    {
      key: manifest.globals.file,
      sizeBytes: manifest.globals.sizeBytes,
      sha256: manifest.globals.sha256,
      expect: { kind: 'globals', engine: manifest.engine },
    },
  ];
  for (const m of manifest.databases)
    if (m.file && m.sha256)
      members.push({ key: m.file, sizeBytes: m.sizeBytes, sha256: m.sha256, expect: { kind: 'dump' } });
  const result = (state: BackupState, detail: string): VerifyResult & { databases: number } => ({
    ...base,
    state,
    detail,
    sizeBytes: manifest.totalBytes,
    databases: manifest.databases.length,
    cluster: manifest,
  });
  const files: DeepSummary['files'] = [];
  for (const member of members) {
    const { key, sizeBytes: size, sha256: sha } = member;
    const stat = await storage.stat(key);
    if (!stat) return result('incomplete', `${key} is missing`);
    if (stat.size !== size)
      return result('corrupt', `${key}: size mismatch: expected ${size} bytes, found ${stat.size}`);
    if (deep) {
      const location = `${storage.location.replace(/\/$/, '')}/${key}`;
      const judged = await deepJudged(storage, key, location, member.expect, member, deep.unlock);
      if ('problem' in judged) return result('corrupt', `${key}: ${judged.problem}`);
      files.push(fileSummary(key, judged.report));
    } else if (!quick) {
      const actual = await hashStored(storage, key);
      if (actual.sha256 !== sha)
        return result(
          'corrupt',
          `${key}: checksum mismatch: expected sha256 ${sha}, computed ${actual.sha256}`,
        );
    }
  }
  const partial = manifest.status === 'partial' ? ' (partial: some databases failed at backup time)' : '';
  const what = `${members.length - 1} databases and globals`;
  if (deep) {
    const summary = summarize(files);
    return {
      ...result('valid', `${what} match their checksums, ${describeDeep(summary, false)}${partial}`),
      deep: summary,
    };
  }
  return result(
    'valid',
    `${what} ${quick ? 'present with the right sizes' : 'match their checksums'}${partial}`,
  );
}

/** A single backup, or a cluster backup when the key names its directory (`cluster_x/`). */
export async function verifyAny(
  storage: Storage,
  key: string,
  mode: boolean | VerifyOptions,
): Promise<VerifyResult> {
  return key.endsWith('/')
    ? verifyCluster(storage, key.slice(0, -1), mode)
    : verifyBackup(storage, key, mode);
}
