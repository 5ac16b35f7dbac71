import { createHash, type Hash } from 'node:crypto';
import { PassThrough, type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import { detectDump, isTarHeader, type PgDumpHeader } from '../catalog/format.js';
import { DbBackupError, errorMessage, IntegrityError, UsageError } from '../errors.js';
import { detectCompression } from '../pipeline/compression.js';
import { drainOrClose } from '../pipeline/process.js';
import type { ByteMeter } from '../pipeline/progress.js';
import type { Storage } from '../storage/storage.js';
import { readSidecar } from './metadata.js';
import { engineFamily } from '../engines/family.js';

/**
 * The reference tool's cluster archive (`cluster_<ts>.tar.gz`, PostgreSQL only), as a format:
 *
 *   ./globals.sql          pg_dumpall --globals-only
 *   ./dumps/<db>.dump      pg_dump --format=custom
 *   ./dumps/<db>.sql.gz    pg_dump --format=plain | gzip   (the reference's databases over 5 GiB)
 *
 * An archive is read as a stream (gzip → tar), never extracted: scanReferenceArchive reads it once
 * to list its databases, hold globals.sql (small; tar may store it after the dumps), check every
 * dump's header and the whole archive's SHA-256 and gzip CRC; walkArchive reads it again to hand
 * each entry to a consumer (feedEntry). The restores built on it are in src/restore/.
 */

/** globals.sql is held in memory between the two reads; pg_dumpall output of this size is absurd. */
const MAX_GLOBALS = 256 * 1024 * 1024;
/** Enough of each dump to read its header (a custom archive's) or the first SQL lines (a plain one's). */
const HEAD_BYTES = 64 * 1024;

export interface ReferenceMember {
  database: string;
  /** The entry's path in the archive without a leading `./`, e.g. `dumps/shop.dump`. */
  entry: string;
  format: 'custom' | 'plain';
  /** Of the entry's bytes: plain dumps of the reference's big databases are gzip-compressed. */
  compression: 'gzip' | 'none';
  size: number;
  pgHeader: PgDumpHeader | undefined;
}

export interface ReferenceArchive {
  /** Bytes of the archive file. */
  bytes: number;
  sha256: string;
  globals: Buffer;
  members: ReferenceMember[];
  /** Entries that are neither globals.sql nor a dump under dumps/. */
  ignored: string[];
  /** Dumps whose content is not a PostgreSQL dump, with the reason. */
  unreadable: Array<{ entry: string; database: string; reason: string }>;
}

/**
 * Is this stored object a gzip-compressed tar (a reference cluster archive is one)? Decided from
 * the first bytes, never the name.
 */
export async function isGzipTar(storage: Storage, key: string): Promise<boolean> {
  const stream = await storage.get(key, { start: 0, end: 64 * 1024 - 1 });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  if (detectCompression(raw) !== 'gzip') return false;
  const head = await new Promise<Buffer>((resolve) => {
    const out: Buffer[] = [];
    const gunzip = zlib.createGunzip();
    const finish = (): void => resolve(Buffer.concat(out));
    gunzip.on('data', (c: Buffer) => out.push(c));
    gunzip.on('error', finish); // the prefix ends mid-stream: what came out is enough
    gunzip.on('end', finish);
    gunzip.end(raw);
  });
  return isTarHeader(head);
}

/** `./dumps/x.dump` → `dumps/x.dump`. */
function entryPath(name: string): string {
  return name.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
}

/** The database a dump belongs to, by the reference's naming: `dumps/<db>.dump`, `dumps/<db>.sql.gz`. */
export function databaseFromEntry(p: string): string {
  return p.slice('dumps/'.length).replace(/(\.dump|\.sql)?(\.gz)?$/, '');
}

/**
 * Read `storage/key` as gzip → tar, calling `onEntry` for each regular file in order. Every entry is
 * read to its end whatever `onEntry` does (a tar stream cannot skip). Corruption anywhere — a bad
 * gzip CRC, a truncated file, a broken tar header — is an IntegrityError.
 */
export async function walkArchive(
  storage: Storage,
  key: string,
  /** Returns 'stop' when nothing after this entry is needed: the rest of the archive is not read. */
  onEntry: (p: string, header: Header, entry: AsyncIterable<Buffer>) => Promise<void | 'stop'>,
  taps: Transform[],
): Promise<void> {
  const source = await storage.get(key);
  const tar = extract();
  const feeding = pipeline([source, ...taps, zlib.createGunzip(), tar]);
  feeding.catch(() => undefined); // judged below
  let failure: unknown;
  let stopped = false;
  try {
    for await (const entry of tar) {
      const header = entry.header;
      const body = entry as AsyncIterable<Buffer>;
      if (header.type === 'file' || header.type === 'contiguous-file') {
        try {
          stopped = (await onEntry(entryPath(header.name), header, body)) === 'stop';
        } catch (err) {
          failure = err;
          break;
        }
      }
      if (stopped) break;
      for await (const _chunk of body); // whatever onEntry left unread
    }
  } catch (err) {
    failure ??= err;
  }
  if (stopped && failure === undefined) {
    source.destroy();
    return;
  }
  if (failure !== undefined) {
    source.destroy();
    // A broken stream shows up in the entries as "destroyed"; the gzip or tar error says why.
    const feedError = await feeding.then(
      () => undefined,
      (err: unknown) => err,
    );
    if (failure instanceof DbBackupError) throw failure;
    throw damaged(key, feedError ?? failure);
  }
  await feeding.catch((err: unknown) => {
    throw damaged(key, err);
  });
}

function damaged(key: string, err: unknown): DbBackupError {
  if (err instanceof DbBackupError) return err;
  return new IntegrityError(`${key} is damaged: ${errorMessage(err)}`, {
    hint: 'Nothing was changed. The archive is truncated or corrupt (gzip or tar); use another backup.',
  });
}

/** Pass-through that hashes what flows through it. */
function hashTap(hash: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
}

/** The first pass: everything the plan needs, read without changing anything. */
export async function scanReferenceArchive(
  storage: Storage,
  key: string,
  meter?: ByteMeter,
): Promise<ReferenceArchive> {
  const stat = await storage.stat(key);
  const hash = createHash('sha256');
  let globals: Buffer | undefined;
  const members: ReferenceMember[] = [];
  const ignored: string[] = [];
  const unreadable: ReferenceArchive['unreadable'] = [];
  const taps = [hashTap(hash)];
  if (meter) taps.unshift(meter.tap());
  await walkArchive(
    storage,
    key,
    async (p, header, body) => {
      if (p === 'globals.sql') {
        if (header.size > MAX_GLOBALS) {
          throw new UsageError(
            `${key}: globals.sql is ${header.size} bytes, more than the ${MAX_GLOBALS} this restore holds in memory`,
          );
        }
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(c);
        globals = Buffer.concat(chunks);
        return;
      }
      if (!p.startsWith('dumps/') || p.slice('dumps/'.length).includes('/')) {
        ignored.push(p);
        return;
      }
      const head = await readHead(body);
      const database = databaseFromEntry(p);
      const kind = classifyDump(head);
      if ('reason' in kind) {
        unreadable.push({ entry: p, database, reason: kind.reason });
        return;
      }
      members.push({
        // A custom archive names its database; pg_restore --create recreates that one.
        database: kind.pgHeader?.database ?? database,
        entry: p,
        format: kind.format,
        compression: kind.compression,
        size: header.size,
        pgHeader: kind.pgHeader,
      });
    },
    taps,
  );
  if (globals === undefined || (members.length === 0 && unreadable.length === 0)) {
    const missing = [globals === undefined ? 'globals.sql' : '', members.length ? '' : 'dumps/*']
      .filter(Boolean)
      .join(' and ');
    throw new UsageError(
      `${key} is a tar archive but not a cluster backup of the reference tool: it has no ${missing}`,
      'A reference cluster archive holds ./globals.sql and ./dumps/<db>.dump or ./dumps/<db>.sql.gz.',
    );
  }
  return {
    bytes: stat?.size ?? 0,
    sha256: hash.digest('hex'),
    globals,
    members: members.sort((a, b) => a.database.localeCompare(b.database)),
    ignored,
    unreadable,
  };
}

async function readHead(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of body) {
    if (total < HEAD_BYTES) {
      chunks.push(c);
      total += c.length;
    }
  }
  return Buffer.concat(chunks).subarray(0, HEAD_BYTES);
}

function classifyDump(
  head: Buffer,
):
  | { format: 'custom' | 'plain'; compression: 'gzip' | 'none'; pgHeader: PgDumpHeader | undefined }
  | { reason: string } {
  const compression = detectCompression(head);
  if (compression === 'zstd') return { reason: 'zstd-compressed, which the reference tool never wrote' };
  let content = head;
  if (compression === 'gzip') {
    try {
      content = zlib.gunzipSync(head, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    } catch (err) {
      return { reason: `gzip data is damaged (${errorMessage(err)})` };
    }
  }
  const d = detectDump(content);
  if (!d.engine || !engineFamily(d.engine).referenceClusterArchive || !d.format)
    return { reason: 'not a PostgreSQL dump' };
  if (d.format === 'custom' && compression === 'gzip')
    return { reason: 'a gzip-compressed custom archive, which the reference tool never wrote' };
  return { format: d.format, compression, pgHeader: d.pgHeader };
}

/** The reference's sidecar `<archive>.meta.json` records the archive's SHA-256 in extra_info.archive_sha256. */
async function referenceChecksum(
  storage: Storage,
  key: string,
): Promise<{ sha256: string; file: string } | undefined> {
  const sidecar = await readSidecar(storage, key).catch(() => ({ kind: 'none' as const }));
  if (sidecar.kind !== 'reference-cluster') return undefined;
  const sha = sidecar.metadata.extra_info?.archive_sha256;
  return sha && /^[0-9a-f]{64}$/i.test(sha) ? { sha256: sha.toLowerCase(), file: sidecar.file } : undefined;
}

/** How the archive's SHA-256 was checked against the reference's sidecar (a restore plan's checksum line). */
export type ArchiveChecksumState = 'verified' | 'skipped (--force)' | 'not available (no metadata)';

/**
 * The archive's SHA-256 against the reference's sidecar: the plan's checksum line, a warning with
 * --force, or an IntegrityError before anything changes.
 */
export async function archiveChecksum(
  storage: Storage,
  key: string,
  archive: ReferenceArchive,
  force: boolean,
  warnings: string[],
): Promise<{ text: string; state: ArchiveChecksumState }> {
  const recorded = await referenceChecksum(storage, key);
  if (!recorded) {
    return {
      text: 'no reference metadata with an archive checksum; gzip CRC-32 and tar structure verified',
      state: 'not available (no metadata)',
    };
  }
  if (recorded.sha256 === archive.sha256) {
    return {
      text: `SHA-256 verified against ${recorded.file}; gzip CRC-32 and tar structure verified`,
      state: 'verified',
    };
  }
  if (force) {
    warnings.push(
      `the archive's SHA-256 ${archive.sha256} differs from ${recorded.file} (${recorded.sha256}); restoring anyway (--force)`,
    );
    return {
      text: `SHA-256 MISMATCH against ${recorded.file} (ignored: --force)`,
      state: 'skipped (--force)',
    };
  }
  throw new IntegrityError(
    `Checksum mismatch for ${key}: expected sha256 ${recorded.sha256} (${recorded.file}), computed ${archive.sha256}`,
    { hint: 'Nothing was changed. Use another backup, or --force to restore this one anyway.' },
  );
}

/**
 * Hand a tar entry to `consume` as a Node stream. The entry itself is never destroyed (that would
 * abort the whole archive): when the consumer stops early, the rest of the entry is read and
 * discarded, so the next entry can follow.
 */
export async function feedEntry(
  body: AsyncIterable<Buffer>,
  consume: (source: Readable) => Promise<unknown>,
): Promise<void> {
  const source = new PassThrough({ highWaterMark: 1024 * 1024 });
  const pumping = (async (): Promise<void> => {
    for await (const chunk of body) {
      if (source.destroyed || source.writableEnded) continue;
      if (!source.write(chunk)) await drainOrClose(source);
    }
    if (!source.destroyed) source.end();
  })();
  try {
    await consume(source);
  } finally {
    if (!source.destroyed) source.destroy();
    await pumping;
  }
}
