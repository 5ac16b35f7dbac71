import type { z } from 'zod';
import type { EncryptionFlags, KeyProtector } from '../../crypto/index.js';
import type { EngineFamily } from '../../engines/family.js';
import type { FlavorId } from '../../engines/flavor.js';
import { IntegrityError, SafetyError, UsageError } from '../../errors.js';
import { putBuffer, readAll, type Storage } from '../../storage/storage.js';
import { TOOL_VERSION } from '../../version.js';
import { lazySchemas } from '../../zod.js';
import { ARCHIVE_FILE, type ArchiveProtection } from '../archive.js';
import { archiveProtectors, protectorsForArchive } from '../wal-keys.js';

/**
 * A binlog archive's identity: `archive.json` at its root (the file a PostgreSQL WAL archive uses,
 * with its own schema), written by the first command that stores into it. It names the server
 * whose binary logs and physical backups the archive holds, and the keys every object is
 * encrypted for (key ids and recipients, never keys), so a second server, or other keys, are
 * refused before a byte is stored.
 */

export const BINLOG_ARCHIVE_SCHEMA = 'dbbackup.binlog-archive';
export const BINLOG_ARCHIVE_VERSION = 1;

const schemas = lazySchemas((z) => {
  const protection = z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('key'), keyId: z.string().regex(/^[0-9a-f]{16}$/) }),
    z.object({ kind: z.literal('recipient'), recipient: z.string().startsWith('age1') }),
  ]);
  const identity = z.object({
    schema: z.literal(BINLOG_ARCHIVE_SCHEMA),
    schemaVersion: z.literal(BINLOG_ARCHIVE_VERSION),
    engine: z.enum(['mariadb', 'mysql']),
    server: z.object({
      /** @@server_id: part of every GTID the server writes. */
      serverId: z.number().int().nonnegative(),
      hostname: z.string(),
      port: z.number().int(),
      /** The binlog files' base name (`mysql-bin` of `mysql-bin.000042`). */
      basename: z.string(),
      version: z.string(),
    }),
    compression: z.object({ algorithm: z.enum(['zstd', 'gzip', 'none']), level: z.number() }),
    encryption: z.object({ protections: z.array(protection).min(1) }).nullable(),
    createdAt: z.iso.datetime({ offset: true }),
    tool: z.object({ name: z.literal('dbbackup'), version: z.string() }),
  });
  return { identity };
});

export type BinlogArchiveIdentity = z.infer<ReturnType<typeof schemas>['identity']>;
export type BinlogServer = BinlogArchiveIdentity['server'];

/**
 * What an archive.json says it holds, without judging the rest of it: PostgreSQL's WAL or the
 * MySQL family's binlogs (the kinds of EngineFamily.logArchive).
 */
export async function archiveKind(storage: Storage): Promise<EngineFamily['logArchive'] | undefined> {
  if (!(await storage.stat(ARCHIVE_FILE))) return undefined;
  const text = (await readAll(storage, ARCHIVE_FILE, 1024 * 1024)).toString('utf8');
  try {
    return (JSON.parse(text) as { schema?: unknown }).schema === BINLOG_ARCHIVE_SCHEMA ? 'binlog' : 'wal';
  } catch {
    return 'wal';
  }
}

export function parseBinlogIdentity(text: string, source: string): BinlogArchiveIdentity {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalid(source, 'it is not valid JSON');
  }
  const r = schemas().identity.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw invalid(source, issue ? `${issue.path.join('.') || 'schema'}: ${issue.message}` : '?');
  }
  return r.data;
}

function invalid(source: string, what: string): IntegrityError {
  return new IntegrityError(`${source} is not a valid binlog archive identity: ${what}`, {
    hint: 'It was damaged or belongs to another kind of archive; check --archive.',
  });
}

export async function readBinlogIdentity(storage: Storage): Promise<BinlogArchiveIdentity | undefined> {
  if (!(await storage.stat(ARCHIVE_FILE))) return undefined;
  const text = (await readAll(storage, ARCHIVE_FILE, 1024 * 1024)).toString('utf8');
  return parseBinlogIdentity(text, `${storage.location.replace(/\/$/, '')}/${ARCHIVE_FILE}`);
}

export async function requireBinlogIdentity(storage: Storage): Promise<BinlogArchiveIdentity> {
  const identity = await readBinlogIdentity(storage);
  if (!identity)
    throw new UsageError(
      `${storage.location} is not a binlog archive (it has no ${ARCHIVE_FILE})`,
      'Check --archive; an archive is created by the first "dbbackup binlog archive", "binlog stream" or "backup physical" into it.',
    );
  return identity;
}

/**
 * What storing into a binlog archive needs before the server has been asked anything: the archive's
 * compression and keys when it exists (the keys given must be its own), else those of the options.
 */
export interface PreparedBinlogArchive {
  existing: BinlogArchiveIdentity | undefined;
  compression: BinlogArchiveIdentity['compression'];
  protectors: KeyProtector[];
  protections: ArchiveProtection[];
}

export async function prepareBinlogArchive(
  storage: Storage,
  o: { compression: BinlogArchiveIdentity['compression']; flags: EncryptionFlags },
): Promise<PreparedBinlogArchive> {
  const kind = await archiveKind(storage);
  if (kind === 'wal')
    throw new UsageError(
      `${storage.location} is a PostgreSQL WAL archive`,
      'Give a binlog archive of its own to each MariaDB server.',
    );
  const existing = kind ? await requireBinlogIdentity(storage) : undefined;
  if (existing)
    return {
      existing,
      compression: existing.compression,
      protectors: await protectorsForArchive(o.flags, existing),
      protections: existing.encryption?.protections ?? [],
    };
  return { existing, compression: o.compression, ...(await archiveProtectors(o.flags)) };
}

/**
 * A prepared archive bound to `server`: an existing one must be this server's (server id and
 * binlog base name: another server's files would collide by name); a new one gets its
 * archive.json, with the compression and keys it was prepared with.
 */
export async function claimBinlogArchive(
  storage: Storage,
  prepared: PreparedBinlogArchive,
  o: { engine: FlavorId; server: BinlogServer; now?: Date },
): Promise<{ identity: BinlogArchiveIdentity; created: boolean }> {
  if (prepared.existing) {
    checkSameServer(prepared.existing, o.server, storage.location);
    return { identity: prepared.existing, created: false };
  }
  const identity: BinlogArchiveIdentity = {
    schema: BINLOG_ARCHIVE_SCHEMA,
    schemaVersion: BINLOG_ARCHIVE_VERSION,
    engine: o.engine,
    server: o.server,
    compression: prepared.compression,
    encryption: prepared.protections.length ? { protections: prepared.protections } : null,
    createdAt: (o.now ?? new Date()).toISOString(),
    tool: { name: 'dbbackup', version: TOOL_VERSION },
  };
  // Two first uses at once: one wins, the other takes what it wrote (same server, same keys).
  const wrote = await putBuffer(storage, ARCHIVE_FILE, `${JSON.stringify(identity, null, 2)}\n`, {
    noOverwrite: true,
  }).then(
    () => true,
    () => false,
  );
  if (wrote) return { identity, created: true };
  const other = await requireBinlogIdentity(storage);
  checkSameServer(other, o.server, storage.location);
  if (JSON.stringify(other.encryption?.protections ?? []) !== JSON.stringify(prepared.protections))
    throw new SafetyError(
      `${storage.location} was created by another command at the same moment, for other keys`,
      { hint: 'Give the keys the archive was created with.' },
    );
  return { identity: other, created: false };
}

/**
 * The archive's identity for `server`, created on first use with the given compression and keys;
 * later uses must come from the same server and give the same keys.
 */
export async function openBinlogArchive(
  storage: Storage,
  o: {
    engine: FlavorId;
    server: BinlogServer;
    compression: BinlogArchiveIdentity['compression'];
    flags: EncryptionFlags;
    now?: Date;
  },
): Promise<{ identity: BinlogArchiveIdentity; protectors: KeyProtector[]; created: boolean }> {
  const prepared = await prepareBinlogArchive(storage, o);
  const { identity, created } = await claimBinlogArchive(storage, prepared, o);
  return { identity, protectors: prepared.protectors, created };
}

export function checkSameServer(identity: BinlogArchiveIdentity, server: BinlogServer, where: string): void {
  const a = identity.server;
  // A server without binary logs (physical backups only) has no base name yet.
  const names = a.basename && server.basename && a.basename !== server.basename;
  if (a.serverId !== server.serverId || names)
    throw new SafetyError(
      `The server (server_id ${server.serverId}, binlogs ${server.basename}.*) is not the one archived in ${where} (server_id ${a.serverId}, binlogs ${a.basename}.*)`,
      {
        hint: 'Each server needs its own archive: check --archive, or --host/--port.',
      },
    );
}
