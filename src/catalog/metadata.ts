import type { z } from 'zod';
import { encryptionSchemas } from '../crypto/metadata.js';
import { propertySchemas } from './properties.js';
import { factsSchema } from './facts.js';
import { lazySchemas } from '../zod.js';
import { IntegrityError } from '../errors.js';
import { META_SUFFIX } from './naming.js';
import { formatBytes } from '../units.js';
import { putBuffer, readAll, type Storage } from '../storage/storage.js';

export const METADATA_SCHEMA = 'dbbackup.backup';
export const METADATA_VERSION = 1;

/** Built on first use (parsing), so that writing metadata loads no zod. */
const schemas = lazySchemas((z) => {
  const tableStats = z.object({
    schema: z.string(),
    name: z.string(),
    /** Row count at backup time; estimated from planner statistics unless `rowsExact`. */
    rows: z.number(),
    rowsExact: z.boolean(),
    bytes: z.number(),
  });

  /** One table of a sample backup: its size in the source and how many rows the sample kept. */
  const sampleTable = z.object({
    schema: z.string(),
    name: z.string(),
    /** Rows in the source (estimated for big tables, as in `tables`). */
    rows: z.number(),
    /** Rows in the sample: sampled + referenced − dropped. */
    keptRows: z.number().int().nonnegative(),
    /** Rows the strategy picked. */
    sampledRows: z.number().int().nonnegative(),
    /** Rows added because kept rows reference them (--keep-references). */
    referencedRows: z.number().int().nonnegative(),
    /** Sampled rows left out because rows they reference are not in the sample (--no-keep-references). */
    droppedRows: z.number().int().nonnegative(),
  });

  const sampleInfo = z.object({
    strategy: z.enum(['ratio', 'percent', 'count']),
    value: z.number().positive(),
    keepReferences: z.boolean(),
    tables: z.array(sampleTable),
  });

  const binlogPosition = z.object({
    file: z.string().nullable(),
    position: z.number().int().nonnegative().nullable(),
    gtid: z.string(),
  });

  const backupMetadata = z.object({
    schema: z.literal(METADATA_SCHEMA),
    schemaVersion: z.literal(METADATA_VERSION),
    tool: z.object({ name: z.literal('dbbackup'), version: z.string() }),
    /** `sample`: a smaller, restorable copy (full schema, sampled rows); see `sample`. */
    kind: z.enum(['single', 'sample']),
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
    /** How the stored bytes are encrypted (cipher, key ids, recipients; never key material), or null. */
    encryption: encryptionSchemas().encryptionDescription.nullable(),
    file: z.string(),
    sizeBytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    /** Bytes the dump tool produced before compression, when known. */
    dumpBytes: z.number().int().nonnegative().nullable(),
    databaseSizeBytes: z.number().nullable(),
    // Real timestamps: retention orders backups by them, so "yesterday" must not validate.
    startedAt: z.iso.datetime({ offset: true }),
    finishedAt: z.iso.datetime({ offset: true }),
    durationSeconds: z.number(),
    tables: z.array(tableStats),
    warnings: z.array(z.string()),
    /** Present on `kind: 'sample'` backups only. */
    sample: sampleInfo.optional(),
    /**
     * The database's own properties (owner, encoding, privileges, settings…) at backup time, which a
     * restore that creates the database applies. Absent from backups of older versions.
     */
    databaseProperties: propertySchemas().databaseProperties.optional(),
    /**
     * MariaDB with binary logging on: where the dump's snapshot lies in the binary log (its GTID
     * state, and file and position when the dump's head was read), so binlogs can be replayed
     * after it (restore pitr). Absent or null: not known.
     */
    binlog: binlogPosition.nullable().optional(),
    /** What a restore drill compares the restored copy with (src/catalog/facts.ts). Absent: not recorded. */
    facts: factsSchema().optional(),
  });
  return { tableStats, sampleTable, sampleInfo, binlogPosition, backupMetadata };
});
type Schemas = ReturnType<typeof schemas>;

export type BackupMetadata = z.infer<Schemas['backupMetadata']>;
export type TableStats = z.infer<Schemas['tableStats']>;
export type SampleTable = z.infer<Schemas['sampleTable']>;
export type SampleInfo = z.infer<Schemas['sampleInfo']>;
export type BinlogPosition = z.infer<Schemas['binlogPosition']>;

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
  const result = schemas().backupMetadata.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new IntegrityError(
      `Metadata ${source} is invalid: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'unknown problem'}`,
      { hint: 'The backup is incomplete or was written by an incompatible tool.' },
    );
  }
  return result.data;
}

/** What a stored file must be: its size and SHA-256, as its metadata (or a cluster manifest) records them. */
export interface ExpectedBytes {
  sha256: string;
  sizeBytes: number;
}

/**
 * The one wording of "these bytes are not the recorded ones", for every command. A wrong size is
 * said as such (a checksum mismatch shown with two identical hashes would hide what differs).
 */
export function bytesMismatch(
  expected: ExpectedBytes,
  actual: { bytes: number; sha256?: string },
): string | undefined {
  if (actual.bytes !== expected.sizeBytes)
    return `size mismatch: expected ${expected.sizeBytes} bytes, found ${actual.bytes}`;
  if (actual.sha256 !== undefined && actual.sha256 !== expected.sha256)
    return `checksum mismatch: expected sha256 ${expected.sha256}, computed ${actual.sha256}`;
  return undefined;
}

/** dbbackup's metadata is a few KiB (a list of 100,000 tables a few MiB): anything larger is not it. */
export const METADATA_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The text of a small file that should be metadata (a `.meta.json`, a cluster manifest). One too large
 * to be metadata is a damaged or foreign file, named as such — not an internal error.
 */
export async function readMetadataText(
  storage: Storage,
  key: string,
  maxBytes = METADATA_MAX_BYTES,
): Promise<string> {
  try {
    return (await readAll(storage, key, maxBytes)).toString('utf8');
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new IntegrityError(
      `${storage.location.replace(/\/$/, '')}/${key} is not valid metadata: it is larger than ${formatBytes(maxBytes)}`,
      {
        hint: 'dbbackup writes metadata of a few KiB: this file was replaced or damaged. Do not rely on the backup it describes.',
        cause: err,
      },
    );
  }
}

/** Reads `<key>.meta.json`; undefined when it does not exist, IntegrityError when it is invalid. */
export async function readMetadata(storage: Storage, backupKey: string): Promise<BackupMetadata | undefined> {
  const key = metadataKey(backupKey);
  if (!(await storage.stat(key))) return undefined;
  return parseMetadata(await readMetadataText(storage, key), key);
}

export async function writeMetadata(
  storage: Storage,
  backupKey: string,
  meta: BackupMetadata,
): Promise<void> {
  await putBuffer(storage, metadataKey(backupKey), metadataJson(meta));
}

/** The stored form of a backup's metadata (`.meta.json`). */
export function metadataJson(meta: BackupMetadata): string {
  return `${JSON.stringify(meta, null, 2)}\n`;
}

/** `sha256sum -c` format with the file's own name, so the check works wherever the pair is copied. */
export function sha256Line(sha256: string, fileName: string): string {
  return `${sha256}  ${fileName}\n`;
}
