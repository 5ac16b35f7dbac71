import type { z } from 'zod';
import { encryptionSchemas } from '../crypto/metadata.js';
import { IntegrityError } from '../errors.js';
import { readAll, type Storage } from '../storage/storage.js';
import { lazySchemas } from '../zod.js';

/**
 * Physical backups of a MariaDB server in its binlog archive: `physical/<name>/` holds
 * mariadb-backup's xbstream and `meta.json`, written last — a physical backup without it is not one.
 * An incremental names its parent; a chain is a full backup and the incrementals on it.
 */

export const PHYSICAL_PREFIX = 'physical/';
export const PHYSICAL_SCHEMA = 'dbbackup.physical-backup';
export const PHYSICAL_VERSION = 1;

const schemas = lazySchemas((z) => {
  const file = z.object({
    key: z.string(),
    role: z.literal('xbstream'),
    sizeBytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    /** Bytes before compression and encryption, when they were counted (the stream goes by a kernel pipe). */
    rawBytes: z.number().int().nonnegative().nullable(),
  });
  const physicalMetadata = z.object({
    schema: z.literal(PHYSICAL_SCHEMA),
    schemaVersion: z.literal(PHYSICAL_VERSION),
    tool: z.object({ name: z.literal('dbbackup'), version: z.string() }),
    kind: z.literal('physical'),
    backupType: z.enum(['full', 'incremental']),
    engine: z.enum(['mariadb', 'mysql']),
    name: z.string(),
    /** The backup this one holds the changes since (its to_lsn is this one's from_lsn); null for a full. */
    parent: z.string().nullable(),
    /** Names from the full backup to this one. */
    chain: z.array(z.string()).min(1),
    server: z.object({
      version: z.string(),
      versionString: z.string(),
      serverId: z.number().int().nonnegative(),
      hostname: z.string(),
      port: z.number().int(),
      basename: z.string(),
    }),
    connection: z.object({ host: z.string(), port: z.number(), user: z.string() }),
    /** InnoDB LSNs from xtrabackup_checkpoints: changes after from_lsn, to_lsn is the next incremental's start. */
    fromLsn: z.string().regex(/^\d+$/),
    toLsn: z.string().regex(/^\d+$/),
    lastLsn: z.string().regex(/^\d+$/),
    /** Where the backup is consistent in the binary log (xtrabackup_binlog_info); null without binlogs. */
    binlog: z
      .object({ file: z.string(), position: z.number().int().nonnegative(), gtid: z.string() })
      .nullable(),
    /** The server options the prepare and the restored server need (backup-my.cnf). */
    serverOptions: z.record(z.string(), z.string()),
    backupTool: z.object({ name: z.string(), version: z.string(), args: z.array(z.string()) }),
    compression: z.object({
      algorithm: z.enum(['none', 'gzip', 'zstd']),
      level: z.number(),
      implementation: z.string(),
    }),
    encryption: encryptionSchemas().encryptionDescription.nullable(),
    files: z.array(file).min(1),
    /** Files and payload bytes in the xbstream, when it was read on the way (verify-backup --deep reads it). */
    stream: z
      .object({ files: z.number().int().nonnegative(), bytes: z.number().int().nonnegative() })
      .nullable(),
    sizeBytes: z.number().int().nonnegative(),
    startedAt: z.iso.datetime({ offset: true }),
    finishedAt: z.iso.datetime({ offset: true }),
    durationSeconds: z.number(),
    warnings: z.array(z.string()),
  });
  return { physicalMetadata };
});

export type PhysicalMetadata = z.infer<ReturnType<typeof schemas>['physicalMetadata']>;

export function physicalDir(name: string): string {
  return `${PHYSICAL_PREFIX}${name}/`;
}

export function physicalMetaKey(name: string): string {
  return `${physicalDir(name)}meta.json`;
}

/** The physical backup a key of the form `physical/<name>/` names, or undefined. */
export function physicalNameOf(key: string): string | undefined {
  return /^physical\/([^/]+)\/$/.exec(key)?.[1];
}

export function parsePhysicalMetadata(text: string, source: string): PhysicalMetadata {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new IntegrityError(`Metadata ${source} is not valid JSON`, {
      hint: 'The physical backup is incomplete.',
    });
  }
  const r = schemas().physicalMetadata.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new IntegrityError(
      `Metadata ${source} is invalid: ${issue ? `${issue.path.join('.')}: ${issue.message}` : '?'}`,
      { hint: 'The physical backup is incomplete or was written by an incompatible tool.' },
    );
  }
  return r.data;
}

/** The metadata of physical backup `name`; undefined when it has none (never finished). */
export async function readPhysicalMetadata(
  storage: Storage,
  name: string,
): Promise<PhysicalMetadata | undefined> {
  const key = physicalMetaKey(name);
  if (!(await storage.stat(key))) return undefined;
  const text = (await readAll(storage, key, 16 * 1024 * 1024)).toString('utf8');
  return parsePhysicalMetadata(text, `${storage.location.replace(/\/$/, '')}/${key}`);
}

/** Names of the physical backups in an archive (finished or not). */
export async function physicalBackupNames(storage: Storage): Promise<string[]> {
  const names = new Set<string>();
  for await (const o of storage.list(PHYSICAL_PREFIX)) {
    const m = /^physical\/([^/]+)\//.exec(o.key);
    if (m?.[1]) names.add(m[1]);
  }
  return [...names].sort();
}

/** Physical backups that retention treats together: those of one server. */
export function physicalRetentionGroup(meta: Pick<PhysicalMetadata, 'engine' | 'server'>): string {
  return `${meta.engine} server ${meta.server.serverId} ${meta.server.hostname} (physical)`;
}
