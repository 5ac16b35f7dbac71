import type { z } from 'zod';
import { encryptionSchemas } from '../crypto/metadata.js';
import { lazySchemas } from '../zod.js';
import { IntegrityError } from '../errors.js';
import { putBuffer, readAll, type Storage } from '../storage/storage.js';

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
    /** Owner, encoding, collation… as the server reported them (shown in plans, checked after restore). */
    properties: z.record(z.string(), z.string().nullable()),
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

export function manifestKey(clusterName: string): string {
  return `${clusterName}/${MANIFEST_NAME}`;
}

export async function readManifest(
  storage: Storage,
  clusterName: string,
): Promise<ClusterManifest | undefined> {
  const key = manifestKey(clusterName);
  if (!(await storage.stat(key))) return undefined;
  const text = (await readAll(storage, key)).toString('utf8');
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
  return parsed.data;
}

export async function writeManifest(storage: Storage, manifest: ClusterManifest): Promise<void> {
  await putBuffer(storage, manifestKey(manifest.name), `${JSON.stringify(manifest, null, 2)}\n`);
}
