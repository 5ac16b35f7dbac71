import { TEMP_MARKER } from '../storage/local/local.js';
import type { Storage } from '../storage/storage.js';
import { META_SUFFIX, SHA256_SUFFIX, isSidecar, looksLikeBackup, sidecarOwner } from '../catalog/naming.js';
import { verifyAny, type BackupState, type Producer, type VerifyResult } from './verify.js';
import { MANIFEST_NAME } from '../catalog/manifest.js';
import { IntegrityError, errorMessage } from '../errors.js';

/**
 * What a listing knows about a backup: `valid` only when the SHA-256 of every stored byte was checked
 * (`list backups --verify`, or cleanup for the backups it relies on); `unverified` when the size
 * (and the `.sha256` sidecar) match the metadata but the data was not read — a flipped byte does not
 * change a size, so such a backup is not called valid.
 */
export type CatalogState = BackupState | 'unverified';

export interface ListOptions {
  /** Read every backup in full and check its SHA-256; otherwise sizes only (no data read). */
  verify?: boolean;
}
import { baseRetentionGroup } from '../catalog/base-backup.js';
import { physicalRetentionGroup } from '../catalog/physical-backup.js';
import { isReferenceClusterName } from '../reference/naming.js';

/** The reference tool's names live in src/reference/naming.ts. */
export { isReferenceClusterName };

/** A WAL archive's identity file (src/pitr/archive.ts): its base/ directory holds base backups. */
const ARCHIVE_FILE = 'archive.json';

export interface CatalogEntry {
  key: string;
  /** Retention group: engine, server and database (null without metadata). */
  group: string | null;
  database: string | null;
  engine: string | null;
  created: Date | null;
  sizeBytes: number | null;
  state: CatalogState;
  detail: string;
  /** Who made it (dbbackup, or the reference tool this one replaces); null when nothing says. */
  producer: Producer | null;
  /** single, sample, cluster, base (a physical base backup in a WAL archive), physical (MariaDB, in a binlog archive); null without metadata. */
  kind: 'single' | 'sample' | 'cluster' | 'base' | 'physical' | null;
}

/**
 * Every backup in a store with its state: unverified (metadata present and size matches, data not
 * read) or, with `verify`, valid (every byte matches its SHA-256); incomplete (no metadata, data
 * missing, leftover temporary file) or corrupt (metadata invalid, size or checksum wrong). One
 * damaged backup (a manifest naming files outside its directory, metadata too large to be metadata)
 * is listed as corrupt; the others are listed as usual.
 * The reference tool's backups (`db_<db>_<ts>.dump`/`.sql.gz`, `cluster_<ts>.tar.gz`, each with its
 * own `.meta.json`) are listed too, with `producer: 'reference'` and no retention group: retention
 * rules (cleanup) leave them alone.
 */
export async function listBackups(storage: Storage, opts: ListOptions = {}): Promise<CatalogEntry[]> {
  const keys = await listKeys(storage);
  const entries: CatalogEntry[] = [];
  for (const [key, info] of keys) {
    const base = key.split('/').pop() ?? key;
    if (base.startsWith(TEMP_MARKER)) {
      entries.push({
        key,
        group: null,
        database: null,
        engine: null,
        created: info.modified,
        sizeBytes: info.size,
        state: 'incomplete',
        detail: 'leftover temporary file of an interrupted write',
        producer: null,
        kind: null,
      });
    }
  }
  for (const key of backupCandidates(keys)) {
    const result = await checkEntry(storage, key, Boolean(opts.verify));
    entries.push(catalogEntry(result, fileTime(keys, key), Boolean(opts.verify)));
  }
  return entries.sort((a, b) => (b.created?.getTime() ?? 0) - (a.created?.getTime() ?? 0));
}

/**
 * One backup checked (sizes only, or in full). A damaged backup that stops the check (an invalid
 * manifest, oversized metadata) is that backup's problem: it is corrupt, and the listing goes on.
 */
async function checkEntry(storage: Storage, key: string, full: boolean): Promise<VerifyResult> {
  try {
    return await verifyAny(storage, key, !full);
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    const location = `${storage.location.replace(/\/$/, '')}/${key}`;
    return { key, location, state: 'corrupt', detail: errorMessage(err), sizeBytes: null };
  }
}

/** A checked backup as a listing entry; `fallbackTime` dates it when no metadata does. */
export function catalogEntry(result: VerifyResult, fallbackTime: Date | null, full: boolean): CatalogEntry {
  const { group, database, engine, kind } = describeResult(result);
  return {
    key: result.key,
    group,
    database,
    engine,
    created: createdOf(result) ?? fallbackTime,
    sizeBytes: result.sizeBytes,
    state: result.state === 'valid' && !full ? 'unverified' : result.state,
    detail: result.detail,
    producer: result.producer ?? null,
    kind,
  };
}

/** Group, database, engine and kind, from whichever metadata the backup has. */
export function describeResult(
  r: Pick<VerifyResult, 'metadata' | 'cluster' | 'reference' | 'base' | 'physical'>,
): Pick<CatalogEntry, 'group' | 'database' | 'engine' | 'kind'> {
  const { metadata: meta, cluster, reference, base, physical } = r;
  if (physical)
    return {
      group: physicalRetentionGroup(physical),
      database: physical.parent ? `(physical incremental on ${physical.parent})` : '(physical full)',
      engine: physical.engine,
      kind: 'physical',
    };
  if (base)
    return {
      group: baseRetentionGroup(base),
      database: base.parent ? `(physical ${base.backupType} on ${base.parent})` : '(cluster, physical)',
      engine: 'postgres',
      kind: 'base',
    };
  if (meta)
    return { group: retentionGroup(meta), database: meta.database, engine: meta.engine, kind: meta.kind };
  if (cluster)
    return {
      group: `${cluster.engine} ${cluster.connection.host}:${cluster.connection.port} (cluster)`,
      database: clusterLabel(cluster.databases.length),
      engine: cluster.engine,
      kind: 'cluster',
    };
  if (reference)
    return {
      // No group: retention never plans (or deletes) the reference tool's backups.
      group: null,
      database: reference.kind === 'cluster' ? clusterLabel(reference.databases) : reference.database,
      engine: reference.engine,
      kind: reference.kind,
    };
  return { group: null, database: null, engine: null, kind: null };
}

function clusterLabel(databases: number | null): string {
  return databases === null ? '(cluster)' : `(cluster: ${databases} databases)`;
}

/** The backup's own time, from its metadata. */
function createdOf(
  r: Pick<VerifyResult, 'metadata' | 'cluster' | 'reference' | 'base' | 'physical'>,
): Date | null {
  if (r.metadata) return new Date(r.metadata.startedAt);
  if (r.physical) return new Date(r.physical.finishedAt);
  if (r.base) return new Date(r.base.finishedAt);
  if (r.cluster) return new Date(r.cluster.startedAt);
  return r.reference?.created ?? null;
}

/** Without metadata: the newest file of a cluster backup, or the data file's (or a sidecar's) time. */
function fileTime(keys: Map<string, { modified: Date }>, key: string): Date | null {
  return key.endsWith('/')
    ? newestUnder(keys, key)
    : (keys.get(key)?.modified ??
        keys.get(`${key}${SHA256_SUFFIX}`)?.modified ??
        keys.get(`${key}${META_SUFFIX}`)?.modified ??
        null);
}

/**
 * A cluster backup without a manifest (unfinished, or a deletion interrupted after the manifest)
 * dates from its newest member: without a date, --prune-incomplete could never remove it, and the
 * newest member keeps a cluster backup that is still being written inside the grace period.
 */
function newestUnder(keys: Map<string, { modified: Date }>, prefix: string): Date | null {
  let newest: Date | null = null;
  for (const [key, info] of keys)
    if (key.startsWith(prefix) && (!newest || info.modified > newest)) newest = info.modified;
  return newest;
}

async function listKeys(storage: Storage): Promise<Map<string, { size: number; modified: Date }>> {
  const keys = new Map<string, { size: number; modified: Date }>();
  for await (const obj of storage.list('')) keys.set(obj.key, { size: obj.size, modified: obj.modified });
  return keys;
}

/** Keys of the backups in a store: data files that look like backups, and the owners of metadata files. */
export async function backupKeys(storage: Storage): Promise<string[]> {
  return [...backupCandidates(await listKeys(storage))].sort();
}

function backupCandidates(keys: Map<string, unknown>): Set<string> {
  const candidates = new Set<string>();
  const archive = keys.has(ARCHIVE_FILE);
  for (const key of keys.keys()) {
    const base = key.split('/').pop() ?? key;
    if (base.startsWith(TEMP_MARKER)) continue;
    // A base backup in a WAL archive is one entry, `base/<name>/` (WAL itself is not a backup).
    const baseDirOf = archive ? /^(?:base|physical)\/[^/]+\//.exec(key)?.[0] : undefined;
    if (baseDirOf) {
      candidates.add(baseDirOf);
      continue;
    }
    // A cluster backup is one entry, `<name>/`, whether or not its manifest was written.
    const slash = key.indexOf('/');
    if (slash >= 0) {
      const dir = key.slice(0, slash);
      if (key.slice(slash + 1) === MANIFEST_NAME || dir.startsWith('cluster_')) candidates.add(`${dir}/`);
      continue;
    }
    // A sidecar whose backup is gone (an interrupted deletion) is reported too, so it can be pruned.
    if (isSidecar(key)) {
      const owner = sidecarOwner(key);
      if (owner) candidates.add(owner);
    } else if (looksLikeBackup(key) || isReferenceClusterName(key)) {
      candidates.add(key);
    }
  }
  return candidates;
}

/** Backups that retention treats together: same engine, server, database and kind (samples apart from full backups). */
export function retentionGroup(meta: {
  engine: string;
  connection: { host: string; port: number };
  database: string;
  kind: string;
}): string {
  return `${meta.engine} ${meta.connection.host}:${meta.connection.port} ${meta.database}${meta.kind === 'single' ? '' : ` (${meta.kind})`}`;
}
