import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { commitUnit } from '../catalog/commit.js';
import type { KeyProtector } from '../crypto/index.js';
import { errnoCode, errorMessage, StorageError, UsageError } from '../errors.js';
import { WalRefusedError } from './errors.js';
import {
  compressionFor,
  SMALL_OBJECT_BYTES,
  startWriteGroup,
  type GroupEncryption,
} from '../pipeline/filter-group.js';
import type { Storage } from '../storage/storage.js';
import type { ArchiveIdentity } from './archive.js';
import { LONG_HEADER_BYTES, segmentProblems } from './wal-header.js';
import {
  parseWalFileName,
  parseWalObjectKey,
  segmentFitsSize,
  walKeyPrefix,
  walObjectKey,
  type StoredWal,
  type WalFileName,
} from './wal-names.js';

export interface PushResult {
  name: string;
  key: string;
  /** `stored`: written now; `present`: the archive already held identical content. */
  status: 'stored' | 'present';
  bytes: number;
  storedBytes: number;
}

/** The archive's objects for one WAL file name (normally none or one). */
export async function storedVersions(storage: Storage, file: WalFileName): Promise<StoredWal[]> {
  const found: StoredWal[] = [];
  for await (const o of storage.list(walKeyPrefix(file))) {
    const parsed = parseWalObjectKey(o.key, o);
    if (parsed && parsed.file.name === file.name) found.push(parsed);
  }
  return found;
}

/**
 * Archives one WAL file (`archive_command`'s %p). Resolves only once the object is durable in the
 * archive, or the archive already holds identical content; refuses (WalRefusedError) a file whose
 * header names another cluster, timeline, address or segment size, and a name the archive holds
 * with different content — an archived segment is never replaced.
 */
export async function pushWalFile(
  storage: Storage,
  identity: ArchiveIdentity,
  file: string,
  protectors: readonly KeyProtector[],
  signal?: AbortSignal,
): Promise<PushResult> {
  const name = path.basename(file);
  const wal = parseWalFileName(name);
  if (!wal)
    throw new UsageError(
      `${name} is not a WAL file name (a segment, .partial, .history or .backup file)`,
      'archive_command passes %p: the path of the file to archive.',
    );
  if (wal.segment && !segmentFitsSize(wal.segment, identity.walSegmentSize))
    throw new WalRefusedError(`${name} cannot be a segment of ${identity.walSegmentSize}-byte segments`);
  const size = await fileSize(file);
  const head = await readHead(file);
  const problems = segmentProblems(wal, size, head, {
    systemIdentifier: identity.systemIdentifier,
    segmentSize: identity.walSegmentSize,
    pageMagic: identity.walPageMagic,
  });
  if (problems.length)
    throw new WalRefusedError(`Refusing ${name}: ${problems.join('; ')}`, {
      hint: 'Only WAL of the cluster recorded by "dbbackup pitr enable" goes into this archive; check --archive.',
    });
  const small = size <= SMALL_OBJECT_BYTES;
  const data = small ? await readFile(file) : undefined;
  const sha256 = data ? sha256Of(data) : await sha256OfFile(file);
  const existing = await present(storage, wal, sha256, name);
  if (existing)
    return { name, key: existing.key, status: 'present', bytes: size, storedBytes: existing.size };

  const encoding = { compression: identity.compression.algorithm, encrypted: protectors.length > 0 };
  const key = walObjectKey(wal, sha256, encoding);
  const plan = await compressionFor(identity.compression.algorithm, identity.compression.level, size);
  try {
    return await commitUnit([storage], { signal }, async (commit) => {
      const group = startWriteGroup({
        source: data ? Readable.from([data]) : createReadStream(file),
        compression: plan,
        encryption: protectors.length ? await encrypting(protectors) : undefined,
      });
      await commit.put(key, group, { metadata: { 'dbbackup-wal-sha256': sha256 } });
      const stored = group.result().storedBytes;
      await commit.verify(key, stored);
      return { name, key, status: 'stored' as const, bytes: size, storedBytes: stored };
    });
  } catch (err) {
    // Another pusher may have stored the same file meanwhile (two archivers, a retry racing a slow put).
    if (err instanceof StorageError && /exists/i.test(err.message)) {
      const raced = await present(storage, wal, sha256, name);
      if (raced) return { name, key: raced.key, status: 'present', bytes: size, storedBytes: raced.size };
    }
    throw err;
  }
}

/** The archive's identical copy of the file, or undefined; a different copy is a refusal. */
async function present(
  storage: Storage,
  wal: WalFileName,
  sha256: string,
  name: string,
): Promise<StoredWal | undefined> {
  const versions = await storedVersions(storage, wal);
  const same = versions.find((v) => v.sha256 === sha256);
  if (same) return same;
  const other = versions[0];
  if (other)
    throw new WalRefusedError(
      `Refusing ${name}: the archive already holds a different ${name} (sha256 ${other.sha256}, this one ${sha256})`,
      {
        hint: 'An archived WAL file is never replaced. Two clusters may be archiving into one archive, or the archive was restored from another; check --archive, and "dbbackup pitr status".',
      },
    );
  return undefined;
}

async function encrypting(protectors: readonly KeyProtector[]): Promise<GroupEncryption> {
  const { createEncryptStream, describeEncryption } = await import('../crypto/index.js');
  const { stream, header } = createEncryptStream(protectors);
  return { stream, description: describeEncryption(header) };
}

function sha256Of(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function fileSize(file: string): Promise<number> {
  const handle = await open(file, 'r').catch((err: unknown) => {
    throw new StorageError(
      `Cannot read ${file}: ${errnoCode(err) === 'ENOENT' ? 'it does not exist' : errorMessage(err)}`,
      {
        hint: 'archive_command runs in the data directory as the server user: %p is relative to it.',
      },
    );
  });
  try {
    return (await handle.stat()).size;
  } finally {
    await handle.close();
  }
}

async function readHead(file: string): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(LONG_HEADER_BYTES);
    const { bytesRead } = await handle.read(buf, 0, LONG_HEADER_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
