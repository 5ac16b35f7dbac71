import type { z } from 'zod';
import { metadataKey, parseMetadata, readMetadataText, type BackupMetadata } from '../catalog/metadata.js';
import type { Storage } from '../storage/storage.js';
import { lazySchemas } from '../zod.js';

/**
 * The `.meta.json` sidecars the reference tool (the Go dbbackup this one replaces) writes next to its
 * backups: `BackupMetadata` for single backups, `ClusterMetadata` for `cluster_<ts>.tar.gz`. Only the
 * fields a restore uses are checked; everything else is passed over.
 */
const schemas = lazySchemas((z) => {
  const referenceBackup = z.looseObject({
    version: z.string(),
    database: z.string(),
    database_type: z.string().optional(),
    size_bytes: z.number().int().nonnegative(),
    sha256: z.string(),
    encrypted: z.boolean().optional(),
    backup_type: z.string().optional(),
  });

  const referenceCluster = z.looseObject({
    version: z.string(),
    cluster_name: z.string().optional(),
    database_type: z.string().optional(),
    databases: z.array(z.looseObject({ database: z.string() })).optional(),
    extra_info: z.record(z.string(), z.string()).optional(),
  });
  return { referenceBackup, referenceCluster };
});
type Schemas = ReturnType<typeof schemas>;

export type ReferenceBackupMetadata = z.infer<Schemas['referenceBackup']>;
export type ReferenceClusterMetadata = z.infer<Schemas['referenceCluster']>;

export type Sidecar =
  | { kind: 'none' }
  | { kind: 'dbbackup'; metadata: BackupMetadata }
  | { kind: 'reference'; metadata: ReferenceBackupMetadata; file: string }
  | { kind: 'reference-cluster'; metadata: ReferenceClusterMetadata; file: string };

/**
 * `<key>.meta.json`, ours or the reference tool's. Ours is validated strictly (a broken one is an
 * IntegrityError, as before); the reference tool's is recognised by its own fields.
 */
export async function readSidecar(storage: Storage, key: string): Promise<Sidecar> {
  const file = metadataKey(key);
  if (!(await storage.stat(file))) return { kind: 'none' };
  const text = await readMetadataText(storage, file);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { kind: 'dbbackup', metadata: parseMetadata(text, file) }; // throws the usual "not valid JSON"
  }
  const isOurs = typeof json === 'object' && json !== null && 'schema' in json;
  if (!isOurs) {
    const single = schemas().referenceBackup.safeParse(json);
    if (single.success && /^[0-9a-f]{64}$/i.test(single.data.sha256))
      return { kind: 'reference', metadata: single.data, file };
    const cluster = schemas().referenceCluster.safeParse(json);
    if (cluster.success && (cluster.data.extra_info || cluster.data.databases))
      return { kind: 'reference-cluster', metadata: cluster.data, file };
  }
  return { kind: 'dbbackup', metadata: parseMetadata(text, file) };
}
