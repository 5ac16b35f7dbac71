import { TEMP_MARKER } from '../storage/local.js';
import type { Storage } from '../storage/storage.js';
import { META_SUFFIX, SHA256_SUFFIX, isSidecar, looksLikeBackup, sidecarOwner } from './naming.js';
import { verifyAny, type BackupState } from '../verify/verify.js';
import { MANIFEST_NAME } from './manifest.js';

export interface CatalogEntry {
  key: string;
  /** Retention group: engine, server and database (null without metadata). */
  group: string | null;
  database: string | null;
  engine: string | null;
  created: Date | null;
  sizeBytes: number | null;
  state: BackupState;
  detail: string;
}

/**
 * Every backup in a store with its state: valid (metadata present and size matches), incomplete
 * (no metadata, data missing, leftover temporary file) or corrupt (metadata invalid or size wrong).
 */
export async function listBackups(storage: Storage): Promise<CatalogEntry[]> {
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
      });
    }
  }
  for (const key of backupCandidates(keys)) {
    const result = await verifyAny(storage, key, true);
    const meta = result.metadata;
    const cluster = result.cluster;
    entries.push({
      key,
      group: meta
        ? retentionGroup(meta)
        : cluster
          ? `${cluster.engine} ${cluster.connection.host}:${cluster.connection.port} (cluster)`
          : null,
      database: meta?.database ?? (cluster ? `(cluster: ${cluster.databases.length} databases)` : null),
      engine: meta?.engine ?? cluster?.engine ?? null,
      created: meta
        ? new Date(meta.startedAt)
        : cluster
          ? new Date(cluster.startedAt)
          : key.endsWith('/')
            ? newestUnder(keys, key)
            : (keys.get(key)?.modified ??
              keys.get(`${key}${SHA256_SUFFIX}`)?.modified ??
              keys.get(`${key}${META_SUFFIX}`)?.modified ??
              null),
      sizeBytes: result.sizeBytes,
      state: result.state,
      detail: result.detail,
    });
  }
  return entries.sort((a, b) => (b.created?.getTime() ?? 0) - (a.created?.getTime() ?? 0));
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
  for (const key of keys.keys()) {
    const base = key.split('/').pop() ?? key;
    if (base.startsWith(TEMP_MARKER)) continue;
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
    } else if (!isSidecar(key) && looksLikeBackup(key)) {
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
