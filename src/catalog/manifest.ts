import type { z } from 'zod';
import { encryptionSchemas } from '../crypto/metadata.js';
import { fromSummary, propertySchemas, type DatabaseProperties } from './properties.js';
import { lazySchemas } from '../zod.js';
import { IntegrityError } from '../errors.js';
import { putBuffer, type Storage } from '../storage/storage.js';
import { readMetadataText } from './metadata.js';
import { factsSchema } from './facts.js';

export const MANIFEST_SCHEMA = 'dbbackup.cluster';
export const MANIFEST_NAME = 'manifest.json';

/** Built on first use (parsing), so that writing a manifest loads no zod. */
const schemas = lazySchemas((z) => {
  const member = z.object({
    database: z.string(),
    /** Key of the dump inside the cluster backup, e.g. `shop.dump.zst`. */
    file: z.string().nullable(),
    status: z.enum(['ok', 'failed']),
    error: z.string().nullable(),
    sizeBytes: z.number().int().nonnegative(),
    sha256: z.string().nullable(),
    format: z.enum(['custom', 'plain']),
    /** Owner, encoding, collation… as the server reported them, one string each (shown to users). */
    properties: z.record(z.string(), z.string().nullable()),
    /** The same in full, as `restore single --from-cluster` applies them. Absent from older manifests. */
    databaseProperties: propertySchemas().databaseProperties.optional(),
    tables: z.array(
      z.object({
        schema: z.string(),
        name: z.string(),
        rows: z.number(),
        rowsExact: z.boolean(),
        bytes: z.number(),
      }),
    ),
    durationSeconds: z.number(),
    /** MariaDB with binary logging: where this database's dump snapshot lies in the binlog (each dump has its own). */
    binlog: z
      .object({
        file: z.string().nullable(),
        position: z.number().int().nonnegative().nullable(),
        gtid: z.string(),
      })
      .nullable()
      .optional(),
    /** What a restore drill compares this database's restored copy with (src/catalog/facts.ts). */
    facts: factsSchema().optional(),
  });

  const clusterManifest = z.object({
    schema: z.literal(MANIFEST_SCHEMA),
    schemaVersion: z.literal(1),
    tool: z.object({ name: z.literal('dbbackup'), version: z.string() }),
    engine: z.enum(['postgres', 'mysql', 'mariadb']),
    server: z.object({ version: z.string(), versionString: z.string() }),
    connection: z.object({ host: z.string(), port: z.number(), user: z.string() }),
    name: z.string(),
    /** `complete`, or `partial` when --allow-partial let a backup finish without some databases. */
    status: z.enum(['complete', 'partial']),
    compression: z.object({
      algorithm: z.enum(['none', 'gzip', 'zstd']),
      level: z.number(),
      implementation: z.string(),
    }),
    encryption: encryptionSchemas().encryptionDescription.nullable(),
    globals: z.object({
      file: z.string(),
      sizeBytes: z.number(),
      sha256: z.string(),
      warnings: z.array(z.string()),
    }),
    databases: z.array(member),
    /**
     * Databases that were listed when the backup started but no longer existed when their turn came
     * (dropped during the backup): not in the backup, and not a reason to fail it. Absent when none.
     */
    dropped: z.array(z.object({ database: z.string(), reason: z.string() })).optional(),
    startedAt: z.string(),
    finishedAt: z.string(),
    durationSeconds: z.number(),
    totalBytes: z.number(),
  });
  return { member, clusterManifest };
});
type Schemas = ReturnType<typeof schemas>;

export type ClusterManifest = z.infer<Schemas['clusterManifest']>;
export type ClusterMember = z.infer<Schemas['member']>;

/**
 * What `restore single --from-cluster` applies to a member's database: its full properties, or for
 * a manifest of an older version what its one-string summary allows (see fromSummary).
 */
export function memberProperties(m: ClusterMember): { properties: DatabaseProperties; unreadable: string[] } {
  return m.databaseProperties
    ? { properties: m.databaseProperties, unreadable: [] }
    : fromSummary(m.properties);
}

export function manifestKey(clusterName: string): string {
  return `${clusterName}/${MANIFEST_NAME}`;
}

export async function readManifest(
  storage: Storage,
  clusterName: string,
): Promise<ClusterManifest | undefined> {
  const key = manifestKey(clusterName);
  if (!(await storage.stat(key))) return undefined;
  const text = await readMetadataText(storage, key);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new IntegrityError(`Manifest ${key} is not valid JSON`, {
      hint: 'The cluster backup is incomplete; take a new one.',
    });
  }
  const parsed = schemas().clusterManifest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new IntegrityError(
      `Manifest ${key} is invalid: ${issue ? `${issue.path.join('.')}: ${issue.message}` : '?'}`,
    );
  }
  const outside = filesOutside(parsed.data, clusterName);
  if (outside)
    throw new IntegrityError(`Manifest ${key} is invalid: ${outside}`, {
      hint: 'The manifest was edited or damaged: do not rely on this cluster backup. The other backups are not affected.',
    });
  return parsed.data;
}

/**
 * Every file a manifest names must be inside its own cluster directory: a path elsewhere (`../x`,
 * `/etc/passwd`, another backup's file) would make verify read, restore load and cleanup delete
 * something that is not part of this backup.
 */
export function filesOutside(manifest: ClusterManifest, clusterName: string): string | undefined {
  if (manifest.name !== clusterName)
    return `it names the cluster ${JSON.stringify(manifest.name)}, but it is in ${clusterName}/`;
  const files = [manifest.globals.file, ...manifest.databases.flatMap((m) => (m.file ? [m.file] : []))];
  const bad = files.find((f) => !isMemberPath(f, clusterName));
  return bad === undefined
    ? undefined
    : `the member ${JSON.stringify(bad)} is not a file inside ${clusterName}/`;
}

function isMemberPath(file: string, clusterName: string): boolean {
  if (!file.startsWith(`${clusterName}/`)) return false;
  const rest = file.slice(clusterName.length + 1);
  return (
    rest !== '' &&
    rest !== MANIFEST_NAME &&
    !rest.includes('/') &&
    !rest.includes('\\') &&
    rest !== '..' &&
    rest !== '.'
  );
}

export async function writeManifest(storage: Storage, manifest: ClusterManifest): Promise<void> {
  await putBuffer(storage, manifestKey(manifest.name), manifestJson(manifest));
}

/** The stored form of a cluster manifest (`manifest.json`). */
export function manifestJson(manifest: ClusterManifest): string {
  return `${JSON.stringify(manifest, null, 2)}\n`;
}
