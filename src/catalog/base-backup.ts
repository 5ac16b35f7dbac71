import type { z } from 'zod';
import { encryptionSchemas } from '../crypto/metadata.js';
import { IntegrityError } from '../errors.js';
import { readAll, type Storage } from '../storage/storage.js';
import { lazySchemas } from '../zod.js';

/**
 * Physical base backups in a WAL archive: `base/<name>/` holds the server's tar stream(s), its
 * backup_manifest, and `meta.json`, written last — a base backup without it is not one.
 */

export const BASE_PREFIX = 'base/';
export const BASE_META = 'meta.json';
export const BASE_SCHEMA = 'dbbackup.base-backup';
export const BASE_VERSION = 1;

const schemas = lazySchemas((z) => {
  const lsn = z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/);
  const segment = z.string().regex(/^[0-9A-F]{24}$/);
  const file = z.object({
    /** Key inside the archive. */
    key: z.string(),
    /** `base` (the data directory), a tablespace's OID, or `manifest` (the server's backup_manifest). */
    role: z.string(),
    sizeBytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    /** Bytes before compression and encryption. */
    rawBytes: z.number().int().nonnegative().nullable(),
  });
  const baseBackupMetadata = z.object({
    schema: z.literal(BASE_SCHEMA),
    schemaVersion: z.literal(BASE_VERSION),
    tool: z.object({ name: z.literal('dbbackup'), version: z.string() }),
    kind: z.literal('base'),
    /** `full`, or `incremental`/`differential` (page deltas since `parent`'s start; src/pitr/incremental/). */
    backupType: z.enum(['full', 'incremental', 'differential']),
    /** The base backup the deltas apply to (incremental and differential only). */
    parent: z.string().optional(),
    /**
     * What the data directory held (path and size of each file, directories): the next delta's
     * "new since the parent", and the files a chain restore removes. Absent in backups of older
     * versions.
     */
    contents: z
      .object({
        files: z.array(z.tuple([z.string(), z.number().int().nonnegative()])),
        dirs: z.array(z.string()),
      })
      .optional(),
    /** How an incremental or differential was made: pages read, stored, verified. */
    delta: z
      .object({
        parentStartLsn: lsn,
        blockSize: z.number().int().positive(),
        wholeFiles: z.number().int().nonnegative(),
        relationFiles: z.number().int().nonnegative(),
        blocksScanned: z.number().int().nonnegative(),
        blocksStored: z.number().int().nonnegative(),
        pagesVerified: z.number().int().nonnegative(),
        dataChecksums: z.boolean(),
      })
      .optional(),
    engine: z.literal('postgres'),
    name: z.string(),
    systemIdentifier: z.string(),
    server: z.object({ version: z.string(), major: z.number().int() }),
    connection: z.object({ host: z.string(), port: z.number(), user: z.string() }),
    walSegmentSize: z.number().int().positive(),
    timeline: z.number().int().positive(),
    startLsn: lsn,
    stopLsn: lsn,
    startSegment: segment,
    stopSegment: segment,
    label: z.string(),
    /** The program that read the data directory (pg_basebackup), its version and arguments. */
    backupTool: z.object({ name: z.string(), version: z.string(), args: z.array(z.string()) }),
    compression: z.object({
      algorithm: z.enum(['none', 'gzip', 'zstd']),
      level: z.number(),
      implementation: z.string(),
    }),
    encryption: encryptionSchemas().encryptionDescription.nullable(),
    files: z.array(file).min(1),
    /**
     * Tablespaces outside the data directory: each one's OID, its directory on the server, and the
     * key of its tar (role = the OID in `files`). Absent: none (or a backup of an older version).
     */
    tablespaces: z
      .array(z.object({ oid: z.string().regex(/^[0-9]+$/), location: z.string(), key: z.string() }))
      .optional(),
    /** What the server's backup_manifest lists: files in the data directory and their bytes. */
    manifest: z.object({
      files: z.number().int().nonnegative(),
      bytes: z.number().int().nonnegative(),
      checksumAlgorithm: z.string(),
    }),
    sizeBytes: z.number().int().nonnegative(),
    startedAt: z.iso.datetime({ offset: true }),
    finishedAt: z.iso.datetime({ offset: true }),
    durationSeconds: z.number(),
    warnings: z.array(z.string()),
  });
  return { file, baseBackupMetadata };
});

export type BaseBackupMetadata = z.infer<ReturnType<typeof schemas>['baseBackupMetadata']>;
export type BaseBackupFile = z.infer<ReturnType<typeof schemas>['file']>;

/** `base/<name>/` */
export function baseDir(name: string): string {
  return `${BASE_PREFIX}${name}/`;
}

export function baseMetaKey(name: string): string {
  return `${baseDir(name)}${BASE_META}`;
}

/** The base backup a key of the form `base/<name>/` names, or undefined. */
export function baseNameOf(key: string): string | undefined {
  const m = /^base\/([^/]+)\/$/.exec(key);
  return m?.[1];
}

export function parseBaseMetadata(text: string, source: string): BaseBackupMetadata {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new IntegrityError(`Metadata ${source} is not valid JSON`, {
      hint: 'The base backup is incomplete.',
    });
  }
  const r = schemas().baseBackupMetadata.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new IntegrityError(
      `Metadata ${source} is invalid: ${issue ? `${issue.path.join('.')}: ${issue.message}` : '?'}`,
      { hint: 'The base backup is incomplete or was written by an incompatible tool.' },
    );
  }
  return r.data;
}

/** The metadata of base backup `name`; undefined when it has none (never finished). */
export async function readBaseMetadata(
  storage: Storage,
  name: string,
): Promise<BaseBackupMetadata | undefined> {
  const key = baseMetaKey(name);
  if (!(await storage.stat(key))) return undefined;
  const text = (await readAll(storage, key, 64 * 1024 * 1024)).toString('utf8');
  return parseBaseMetadata(text, `${storage.location.replace(/\/$/, '')}/${key}`);
}

/** Names of the base backups in an archive (directories under base/, finished or not). */
export async function baseBackupNames(storage: Storage): Promise<string[]> {
  const names = new Set<string>();
  for await (const o of storage.list(BASE_PREFIX)) {
    const m = /^base\/([^/]+)\//.exec(o.key);
    if (m?.[1]) names.add(m[1]);
  }
  return [...names].sort();
}

/** Base backups that retention treats together: those of one cluster. */
export function baseRetentionGroup(meta: Pick<BaseBackupMetadata, 'systemIdentifier'>): string {
  return `postgres cluster ${meta.systemIdentifier} (base)`;
}
