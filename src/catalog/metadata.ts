import { z } from 'zod';
import { IntegrityError } from '../errors.js';
import { META_SUFFIX } from './naming.js';
import { putBuffer, readAll, type Storage } from '../storage/storage.js';

export const METADATA_SCHEMA = 'dbbackup.backup';
export const METADATA_VERSION = 1;

const tableStats = z.object({
  schema: z.string(),
  name: z.string(),
  /** Row count at backup time; estimated from planner statistics unless `rowsExact`. */
  rows: z.number(),
  rowsExact: z.boolean(),
  bytes: z.number(),
});

export const backupMetadata = z.object({
  schema: z.literal(METADATA_SCHEMA),
  schemaVersion: z.literal(METADATA_VERSION),
  tool: z.object({ name: z.literal('dbbackup'), version: z.string() }),
  kind: z.enum(['single']),
  engine: z.enum(['postgres', 'mysql', 'mariadb']),
  database: z.string(),
  server: z.object({ version: z.string(), versionString: z.string() }),
  connection: z.object({ host: z.string(), port: z.number(), user: z.string() }),
  dumpTool: z.object({ name: z.string(), version: z.string(), args: z.array(z.string()) }),
  format: z.enum(['custom', 'plain']),
  compression: z.object({
    algorithm: z.enum(['none', 'gzip', 'zstd']),
    level: z.number(),
    implementation: z.string(),
  }),
  encryption: z.null(),
  file: z.string(),
  sizeBytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Bytes the dump tool produced before compression, when known. */
  dumpBytes: z.number().int().nonnegative().nullable(),
  databaseSizeBytes: z.number().nullable(),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationSeconds: z.number(),
  tables: z.array(tableStats),
  warnings: z.array(z.string()),
});

export type BackupMetadata = z.infer<typeof backupMetadata>;
export type TableStats = z.infer<typeof tableStats>;

export function metadataKey(backupKey: string): string {
  return backupKey + META_SUFFIX;
}

export function parseMetadata(text: string, source: string): BackupMetadata {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new IntegrityError(`Metadata ${source} is not valid JSON`, {
      hint: 'The backup is incomplete; take a new backup.',
      cause: err,
    });
  }
  const result = backupMetadata.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new IntegrityError(
      `Metadata ${source} is invalid: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'unknown problem'}`,
      { hint: 'The backup is incomplete or was written by an incompatible tool.' },
    );
  }
  return result.data;
}

/** Reads `<key>.meta.json`; undefined when it does not exist, IntegrityError when it is invalid. */
export async function readMetadata(storage: Storage, backupKey: string): Promise<BackupMetadata | undefined> {
  const key = metadataKey(backupKey);
  if (!(await storage.stat(key))) return undefined;
  const data = await readAll(storage, key, 64 * 1024 * 1024);
  return parseMetadata(data.toString('utf8'), key);
}

export async function writeMetadata(
  storage: Storage,
  backupKey: string,
  meta: BackupMetadata,
): Promise<void> {
  await putBuffer(storage, metadataKey(backupKey), `${JSON.stringify(meta, null, 2)}\n`);
}

/** `sha256sum -c` format with the file's own name, so the check works wherever the pair is copied. */
export function sha256Line(sha256: string, fileName: string): string {
  return `${sha256}  ${fileName}\n`;
}
