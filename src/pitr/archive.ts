import type { ProtectionDescription } from '../crypto/metadata.js';
import { logArchiveFamily } from '../engines/family.js';
import { IntegrityError, UsageError } from '../errors.js';
import { commitUnit } from '../catalog/commit.js';
import { readAll, type Storage } from '../storage/storage.js';
import { TOOL_VERSION } from '../version.js';
import { isValidSegmentSize } from './wal-names.js';

/**
 * A WAL archive's identity, `archive.json` at its root, written once by `pitr enable`: which
 * cluster it belongs to and how its objects are encoded. Every push checks a segment against it,
 * so WAL from another cluster (or another segment size, or another key) is refused. Validated by
 * hand: `wal push` and `wal fetch` run once per segment and must not load a schema library.
 */

export const ARCHIVE_FILE = 'archive.json';
export const ARCHIVE_SCHEMA = 'dbbackup.pitr-archive';
export const ARCHIVE_VERSION = 1;

/** Which keys may open the archive's objects; never key material. */
export type ArchiveProtection = Extract<ProtectionDescription, { kind: 'key' } | { kind: 'recipient' }>;

export interface ArchiveIdentity {
  schema: typeof ARCHIVE_SCHEMA;
  schemaVersion: typeof ARCHIVE_VERSION;
  engine: 'postgres';
  /** pg_control's system identifier, as a decimal string (it needs 64 bits). */
  systemIdentifier: string;
  pgMajor: number;
  walSegmentSize: number;
  /** XLOG_PAGE_MAGIC of the server's major version, read from a segment at enable time; null if unknown. */
  walPageMagic: number | null;
  compression: { algorithm: 'zstd' | 'gzip' | 'none'; level: number };
  /** Null: not encrypted. Otherwise the protections every object must carry (key ids, recipients). */
  encryption: { protections: ArchiveProtection[] } | null;
  createdAt: string;
  tool: { name: 'dbbackup'; version: string };
}

export function newIdentity(
  facts: Pick<
    ArchiveIdentity,
    'systemIdentifier' | 'pgMajor' | 'walSegmentSize' | 'walPageMagic' | 'compression' | 'encryption'
  >,
  now = new Date(),
): ArchiveIdentity {
  return {
    schema: ARCHIVE_SCHEMA,
    schemaVersion: ARCHIVE_VERSION,
    engine: 'postgres',
    ...facts,
    createdAt: now.toISOString(),
    tool: { name: 'dbbackup', version: TOOL_VERSION },
  };
}

/** archive.json's text → identity; IntegrityError naming the first problem. */
export function parseIdentity(text: string, source: string): ArchiveIdentity {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalid(source, 'it is not valid JSON');
  }
  const o = json as Record<string, unknown>;
  const fail = (what: string): never => {
    throw invalid(source, what);
  };
  if (typeof o !== 'object' || o === null) fail('it is not an object');
  if (o.schema !== ARCHIVE_SCHEMA) fail(`schema is not "${ARCHIVE_SCHEMA}"`);
  if (o.schemaVersion !== ARCHIVE_VERSION)
    fail(`schemaVersion ${String(o.schemaVersion)} is not supported by this dbbackup`);
  const walEngine = logArchiveFamily('wal').id;
  if (o.engine !== walEngine) fail(`engine is not "${walEngine}"`);
  if (typeof o.systemIdentifier !== 'string' || !/^\d{1,20}$/.test(o.systemIdentifier))
    fail('systemIdentifier is not a decimal string');
  if (typeof o.pgMajor !== 'number' || !Number.isInteger(o.pgMajor) || o.pgMajor < 9)
    fail('pgMajor is not a PostgreSQL major version');
  if (typeof o.walSegmentSize !== 'number' || !isValidSegmentSize(o.walSegmentSize))
    fail('walSegmentSize is not a power of two from 1 MiB to 1 GiB');
  if (o.walPageMagic !== null && (typeof o.walPageMagic !== 'number' || !Number.isInteger(o.walPageMagic)))
    fail('walPageMagic is not a number');
  const c = o.compression as Record<string, unknown> | undefined;
  if (!c || !['zstd', 'gzip', 'none'].includes(String(c.algorithm)) || typeof c.level !== 'number')
    fail('compression is not {algorithm, level}');
  const e = o.encryption as { protections?: unknown } | null | undefined;
  if (e !== null) {
    const list = e?.protections;
    if (!Array.isArray(list) || list.length === 0 || !list.every(isProtection))
      fail('encryption.protections is not a list of key ids and recipients');
  }
  if (typeof o.createdAt !== 'string') fail('createdAt is missing');
  return json as ArchiveIdentity;
}

function isProtection(p: unknown): p is ArchiveProtection {
  const o = p as Record<string, unknown>;
  return (
    (o?.kind === 'key' && typeof o.keyId === 'string' && /^[0-9a-f]{16}$/.test(o.keyId)) ||
    (o?.kind === 'recipient' && typeof o.recipient === 'string' && o.recipient.startsWith('age1'))
  );
}

function invalid(source: string, what: string): IntegrityError {
  return new IntegrityError(`${source} is not a valid WAL archive identity: ${what}`, {
    hint: 'It was damaged or written by an incompatible tool; restore it from a copy, or start a new archive with "dbbackup pitr enable".',
  });
}

/** The archive's identity; undefined when the location holds none (no `pitr enable` yet). */
export async function readIdentity(storage: Storage): Promise<ArchiveIdentity | undefined> {
  if (!(await storage.stat(ARCHIVE_FILE))) return undefined;
  const text = (await readAll(storage, ARCHIVE_FILE, 1024 * 1024)).toString('utf8');
  return parseIdentity(text, `${storage.location.replace(/\/$/, '')}/${ARCHIVE_FILE}`);
}

/** The identity, or a one-line error saying this is not an archive. */
export async function requireIdentity(storage: Storage): Promise<ArchiveIdentity> {
  const identity = await readIdentity(storage);
  if (!identity)
    throw new UsageError(
      `${storage.location} is not a WAL archive (it has no ${ARCHIVE_FILE})`,
      'Check --archive; an archive is created by "dbbackup pitr enable --archive <dir|uri>".',
    );
  return identity;
}

/** Written once, never replaced: two enables racing on one new archive cannot both win. */
export async function writeIdentity(storage: Storage, identity: ArchiveIdentity): Promise<void> {
  await commitUnit([storage], {}, async (c) => {
    const text = `${JSON.stringify(identity, null, 2)}\n`;
    await c.putSmall(ARCHIVE_FILE, text);
    await c.verify(ARCHIVE_FILE, Buffer.byteLength(text));
  });
}

/** "key 1a2b…, recipient age1…" or "not encrypted". */
export function describeArchiveEncryption(identity: Pick<ArchiveIdentity, 'encryption'>): string {
  if (!identity.encryption) return 'not encrypted';
  return identity.encryption.protections
    .map((p) => (p.kind === 'key' ? `key ${p.keyId}` : `recipient ${p.recipient}`))
    .join(', ');
}

/** Whether two protection lists name the same keys (order does not matter). */
export function sameProtections(a: readonly ArchiveProtection[], b: readonly ArchiveProtection[]): boolean {
  const ids = (list: readonly ArchiveProtection[]) =>
    list
      .map((p) => (p.kind === 'key' ? `k:${p.keyId}` : `r:${p.recipient}`))
      .sort()
      .join(',');
  return ids(a) === ids(b);
}
