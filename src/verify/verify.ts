import { bytesMismatch, type BackupMetadata } from '../catalog/metadata.js';
import { baseNameOf, type BaseBackupMetadata } from '../catalog/base-backup.js';
import { verifyBase } from './base.js';
import { physicalNameOf, type PhysicalMetadata } from '../catalog/physical-backup.js';
import { verifyPhysical } from './physical.js';
import { readManifest, type ClusterManifest } from '../catalog/manifest.js';
import { isOwnBackupName, isReferenceName } from '../catalog/ownership.js';
import type { Engine } from '../catalog/naming.js';
import { EncryptionKeyError } from '../crypto/index.js';
import { errorMessage, IntegrityError, MissingToolError } from '../errors.js';
import { formatBytes } from '../pipeline/progress.js';
import type { ReferenceArchive } from '../reference/archive.js';
import {
  readSidecar,
  type ReferenceBackupMetadata,
  type ReferenceClusterMetadata,
  type Sidecar,
} from '../reference/metadata.js';
import type { Storage } from '../storage/storage.js';
import { checkStored, hashStored } from './checksum.js';
import { deepRead, type DeepExpectation, type DeepReport, type UnlockerSource } from './deep.js';

import type { BackupState } from './state.js';
import { asEngine } from '../engines/family.js';

export type { BackupState };

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
  /** Who made the backup, when its metadata (or, for a `.tar.gz`, its name) says so. */
  producer?: Producer;
  /** What the reference tool's metadata says, for the reference's backups. */
  reference?: ReferenceSummary;
  /** Present when a deep check ran to the end (see VerifyOptions.deep). */
  deep?: DeepSummary;
  /** A physical base backup's metadata (base/<name>/ in a WAL archive). */
  base?: BaseBackupMetadata;
  /** A MariaDB physical backup's metadata (physical/<name>/ in a binlog archive). */
  physical?: PhysicalMetadata;
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
    const mismatch = actual && bytesMismatch(expected, actual);
    if (mismatch) return { problem: mismatch };
    const what = err instanceof IntegrityError ? err.message : `could not be read: ${errorMessage(err)}`;
    return { problem: `${what} (the stored bytes match their checksum: the backup was written this way)` };
  }
  const mismatch = bytesMismatch(expected, report);
  return mismatch ? { problem: mismatch } : { report };
}

function fileSummary(key: string, r: DeepReport): DeepSummary['files'][number] {
  const { sha256: _sha, bytes: _bytes, ...rest } = r;
  return { key, ...rest };
}

/** Who made a backup: dbbackup, or the reference tool (the Go dbbackup this one replaces). */
export type Producer = 'dbbackup' | 'reference';

/** What a reference-tool sidecar says about its backup, for listings. */
export interface ReferenceSummary {
  kind: 'single' | 'sample' | 'cluster';
  /** The database of a single backup; null for a cluster archive. */
  database: string | null;
  /** How many databases a cluster archive holds (null for a single backup, or when not recorded). */
  databases: number | null;
  engine: Engine | null;
  /** When the reference wrote its metadata (just after the dump), else the time in the file name. */
  created: Date | null;
}

/** What a stored single file is checked against. */
interface Expected {
  sha256: string;
  sizeBytes: number;
}

type Base = Pick<VerifyResult, 'key' | 'location'>;
type Extras = Pick<VerifyResult, 'metadata' | 'producer' | 'reference'>;

/** The reference tool's `database_type` (postgres, mysql, mariadb) as an engine, if it is one. */
export function referenceEngine(databaseType: string | undefined): Engine | null {
  return asEngine(databaseType);
}

/**
 * When a reference backup was made: its metadata's `timestamp` (RFC 3339, written right after the
 * dump), else the `_YYYYMMDD_HHMMSS` of its file name (the reference's local time), else null.
 */
export function referenceCreated(timestamp: unknown, key: string): Date | null {
  if (typeof timestamp === 'string') {
    const parsed = new Date(timestamp);
    if (Number.isFinite(parsed.getTime())) return parsed;
  }
  const base = key.split('/').pop() ?? key;
  const m = /_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})(?=\.|$)/.exec(base);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const local = new Date(y, mo - 1, d, h, mi, s);
  return Number.isFinite(local.getTime()) ? local : null;
}

export function summarizeReferenceSingle(meta: ReferenceBackupMetadata, key: string): ReferenceSummary {
  return {
    kind: meta.backup_type === 'sample' ? 'sample' : 'single',
    database: meta.database,
    databases: null,
    engine: referenceEngine(meta.database_type),
    created: referenceCreated(meta.timestamp, key),
  };
}

export function summarizeReferenceCluster(meta: ReferenceClusterMetadata, key: string): ReferenceSummary {
  const counted = Number(meta.extra_info?.database_count);
  return {
    kind: 'cluster',
    database: null,
    databases: meta.databases?.length ?? (Number.isInteger(counted) ? counted : null),
    // The reference makes cluster backups of PostgreSQL only.
    engine: referenceEngine(meta.database_type ?? 'postgres'),
    created: referenceCreated(meta.timestamp, key),
  };
}

/**
 * What a reference cluster archive is checked against: `extra_info.archive_sha256` and, when
 * recorded, `total_size_bytes` (the archive's size). Without the checksum there is nothing to check.
 */
export function referenceClusterExpectation(
  meta: ReferenceClusterMetadata,
): { sha256: string; sizeBytes: number | null; failed: number } | { problem: string } {
  const sha = meta.extra_info?.archive_sha256;
  if (!sha || !/^[0-9a-f]{64}$/i.test(sha))
    return {
      problem: 'its metadata records no archive_sha256: there is nothing to check the archive against',
    };
  const size = meta.total_size_bytes;
  const failed = Number(meta.extra_info?.failure_count ?? 0);
  return {
    sha256: sha.toLowerCase(),
    sizeBytes: typeof size === 'number' && Number.isInteger(size) && size > 0 ? size : null,
    failed: Number.isInteger(failed) && failed > 0 ? failed : 0,
  };
}

/**
 * Check one backup against its metadata — ours, or the reference tool's `.meta.json` (a single
 * dump or a `cluster_<ts>.tar.gz`): presence, size, and (unless quick) the SHA-256 of every stored
 * byte; with `deep`, also its decrypted, decompressed content. Never throws for a bad backup: the
 * result says what is wrong.
 */
export async function verifyBackup(
  storage: Storage,
  key: string,
  mode: boolean | VerifyOptions,
): Promise<VerifyResult> {
  const opts = options(mode);
  const base = { key, location: `${storage.location.replace(/\/$/, '')}/${key}` };
  let sidecar: Sidecar;
  try {
    sidecar = await readSidecar(storage, key);
  } catch (err) {
    return { ...base, state: 'corrupt', detail: errorMessage(err), sizeBytes: null };
  }
  switch (sidecar.kind) {
    case 'dbbackup':
      return checkSingle(storage, base, sidecar.metadata, opts, {
        metadata: sidecar.metadata,
        producer: 'dbbackup',
      });
    case 'reference':
      return verifyReferenceSingle(storage, base, sidecar.metadata, opts);
    case 'reference-cluster':
      return verifyReferenceCluster(storage, base, sidecar.metadata, opts);
    case 'none':
      return withoutMetadata(storage, base);
  }
}

/** Data without a sidecar. dbbackup never writes a `.tar.gz`: such a file is the reference's. */
async function withoutMetadata(storage: Storage, base: Base): Promise<VerifyResult> {
  const stat = await storage.stat(base.key);
  const reference = base.key.endsWith('.tar.gz');
  return {
    ...base,
    state: 'incomplete',
    detail: reference
      ? 'no metadata (.meta.json): the reference tool writes it after the archive, so nothing shows the archive is complete'
      : isOwnBackupName(base.key) || isReferenceName(base.key)
        ? 'no metadata (.meta.json): the backup never finished'
        : 'no metadata (.meta.json), and not named as dbbackup (or the reference tool) names backups: another program’s file?',
    sizeBytes: stat?.size ?? null,
    ...(reference
      ? {
          producer: 'reference' as const,
          reference: {
            kind: 'cluster' as const,
            database: null,
            databases: null,
            engine: 'postgres' as const,
            created: referenceCreated(undefined, base.key),
          },
        }
      : {}),
  };
}

/**
 * One stored file against its expected size and SHA-256 (and its `.sha256` sidecar, when there is
 * one); with `deep`, its content too. `extras` (metadata, producer) go into every result.
 */
async function checkSingle(
  storage: Storage,
  base: Base,
  expected: Expected,
  { quick, deep }: VerifyOptions,
  extras: Extras,
): Promise<VerifyResult> {
  // The deep read hashes the bytes itself; otherwise the checksum is read unless quick.
  const verdict = await checkStored(storage, base.key, expected, { read: !quick && !deep });
  if (verdict.state !== 'valid')
    return {
      ...base,
      state: verdict.state,
      detail: verdict.problem,
      sizeBytes: verdict.sizeBytes,
      ...extras,
    };
  const valid = (detail: string, more: Partial<VerifyResult> = {}): VerifyResult => ({
    ...base,
    state: 'valid',
    detail,
    sizeBytes: verdict.sizeBytes,
    ...extras,
    ...more,
  });
  if (quick && !deep) return valid('size matches (quick check)');
  const matches = `sha256 ${expected.sha256.slice(0, 16)}… matches${extras.producer === 'reference' ? " the reference tool's metadata" : ''}`;
  if (!deep) return valid(matches);
  const judged = await deepJudged(storage, base.key, base.location, { kind: 'dump' }, expected, deep.unlock);
  if ('problem' in judged)
    return { ...base, state: 'corrupt', detail: judged.problem, sizeBytes: verdict.sizeBytes, ...extras };
  const summary = summarize([fileSummary(base.key, judged.report)]);
  return valid(`${matches}, ${describeDeep(summary, true)}`, { deep: summary });
}

/** A reference single backup (`db_<db>_<ts>.dump`, `.sql.gz`) against its `.meta.json`. */
async function verifyReferenceSingle(
  storage: Storage,
  base: Base,
  meta: ReferenceBackupMetadata,
  opts: VerifyOptions,
): Promise<VerifyResult> {
  const extras: Extras = { producer: 'reference', reference: summarizeReferenceSingle(meta, base.key) };
  if (meta.encrypted) {
    // The reference encrypts after writing the metadata, which keeps describing the plaintext.
    const stat = await storage.stat(base.key);
    return {
      ...base,
      state: 'corrupt',
      detail:
        "encrypted by the reference tool, whose metadata describes the data before encryption: it cannot be verified (and dbbackup cannot decrypt the reference tool's encryption)",
      sizeBytes: stat?.size ?? null,
      ...extras,
    };
  }
  const expected = { sha256: meta.sha256.toLowerCase(), sizeBytes: meta.size_bytes };
  return checkSingle(storage, base, expected, opts, extras);
}

/**
 * A reference `cluster_<ts>.tar.gz` against its `.meta.json`: the archive's size and SHA-256.
 * `--deep` reads the whole archive as a restore's plan does: gzip CRC, tar structure, globals.sql,
 * and the header of every dump — not every dump's data (pg_restore does not read them here).
 */
async function verifyReferenceCluster(
  storage: Storage,
  base: Base,
  meta: ReferenceClusterMetadata,
  { quick, deep }: VerifyOptions,
): Promise<VerifyResult> {
  const extras: Extras = { producer: 'reference', reference: summarizeReferenceCluster(meta, base.key) };
  const stat = await storage.stat(base.key);
  if (!stat)
    return { ...base, state: 'incomplete', detail: 'the archive is missing', sizeBytes: null, ...extras };
  const result = (state: BackupState, detail: string): VerifyResult => ({
    ...base,
    state,
    detail,
    sizeBytes: stat.size,
    ...extras,
  });
  const expected = referenceClusterExpectation(meta);
  if ('problem' in expected) return result('incomplete', expected.problem);
  const sized =
    expected.sizeBytes === null
      ? undefined
      : bytesMismatch({ ...expected, sizeBytes: expected.sizeBytes }, { bytes: stat.size });
  if (sized) return result('corrupt', sized);
  const partial = expected.failed
    ? ` (partial: the reference tool recorded ${expected.failed} database${expected.failed > 1 ? 's' : ''} that failed to dump)`
    : '';
  if (quick && !deep) {
    const checked = expected.sizeBytes === null ? 'present (no size recorded)' : 'size matches';
    return result('valid', `${checked} (quick check)${partial}`);
  }
  const matches = `sha256 ${expected.sha256.slice(0, 16)}… matches the reference tool's metadata`;
  if (deep) {
    const judged = await deepReferenceCluster(storage, base.key, expected.sha256);
    if ('problem' in judged) return result('corrupt', judged.problem);
    return result('valid', `${matches}, ${judged.checked}${partial}`);
  }
  const actual = await hashStored(storage, base.key);
  const mismatch = bytesMismatch({ sha256: expected.sha256, sizeBytes: actual.bytes }, actual);
  if (mismatch) return result('corrupt', mismatch);
  return result('valid', `${matches}${partial}`);
}

/** `--deep` of a reference cluster archive: the whole-archive check of `restore cluster`'s plan. */
async function deepReferenceCluster(
  storage: Storage,
  key: string,
  sha256: string,
): Promise<{ checked: string } | { problem: string }> {
  const mismatch = (computed: string): { problem: string } => ({
    problem: `checksum mismatch: expected sha256 ${sha256}, computed ${computed}`,
  });
  let archive: ReferenceArchive;
  try {
    // Loaded here: the tar reader is needed only for a deep check of a reference archive.
    const { scanReferenceArchive } = await import('../reference/archive.js');
    archive = await scanReferenceArchive(storage, key);
  } catch (err) {
    // The read stopped early: hash the stored bytes to tell damage after the backup from a bad archive.
    const actual = await hashStored(storage, key).catch(() => undefined);
    if (actual && actual.sha256 !== sha256) return mismatch(actual.sha256);
    return {
      problem: `${errorMessage(err)} (the stored bytes match their checksum: the archive was written this way)`,
    };
  }
  if (archive.sha256 !== sha256) return mismatch(archive.sha256);
  const bad = archive.unreadable[0];
  if (bad)
    return {
      problem: `${archive.unreadable.length} dump${archive.unreadable.length > 1 ? 's' : ''} unreadable, first ${bad.entry}: ${bad.reason}`,
    };
  return { checked: describeLegacyArchive(archive) };
}

/** "gzip and tar intact, globals.sql and 5 dumps (4 custom, 1 plain SQL) with PostgreSQL headers; …". */
export function describeLegacyArchive(archive: Pick<ReferenceArchive, 'members'>): string {
  const custom = archive.members.filter((m) => m.format === 'custom').length;
  const plain = archive.members.length - custom;
  const kinds = [custom ? `${custom} custom` : '', plain ? `${plain} plain SQL` : ''].filter(Boolean);
  const n = archive.members.length;
  return (
    `gzip and tar intact, globals.sql and ${n} dump${n === 1 ? '' : 's'} (${kinds.join(', ')}) with PostgreSQL headers; ` +
    "the dumps' data is not read to the end for reference cluster archives (restore cluster does that)"
  );
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
    producer: 'dbbackup',
  });
  const files: DeepSummary['files'] = [];
  for (const member of members) {
    const { key } = member;
    const stat = await storage.stat(key);
    if (!stat) return result('incomplete', `${key} is missing`);
    const sized = bytesMismatch(member, { bytes: stat.size });
    if (sized) return result('corrupt', `${key}: ${sized}`);
    if (deep) {
      const location = `${storage.location.replace(/\/$/, '')}/${key}`;
      const judged = await deepJudged(storage, key, location, member.expect, member, deep.unlock);
      if ('problem' in judged) return result('corrupt', `${key}: ${judged.problem}`);
      files.push(fileSummary(key, judged.report));
    } else if (!quick) {
      const mismatch = bytesMismatch(member, await hashStored(storage, key));
      if (mismatch) return result('corrupt', `${key}: ${mismatch}`);
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
  // A physical base backup in a WAL archive (base/<name>/).
  if (baseNameOf(key)) return { ...(await verifyBase(storage, key, options(mode))), producer: 'dbbackup' };
  // A MariaDB physical backup in a binlog archive (physical/<name>/), with its chain.
  if (physicalNameOf(key))
    return { ...(await verifyPhysical(storage, key, options(mode))), producer: 'dbbackup' };
  return key.endsWith('/')
    ? verifyCluster(storage, key.slice(0, -1), mode)
    : verifyBackup(storage, key, mode);
}
