import { chownSync, closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { BaseBackupMetadata } from '../../catalog/base-backup.js';
import type { KeyUnlocker } from '../../crypto/index.js';
import { IntegrityError } from '../../errors.js';
import { runReadGroup } from '../../pipeline/filter-group.js';
import type { Storage } from '../../storage/storage.js';
import { giveTo, isRoot, type OsUser } from '../../os/user.js';
import { decodeDeltaHeader, type DeltaHeader } from './format.js';
import { TarReader, type TarMember } from './tar.js';

/**
 * Applies one delta of a chain onto a data directory that holds the chain below it: whole files
 * replace what is there, page deltas are written into the existing relation files at their block
 * offsets and the files cut (or extended) to the length they had. Streamed from the archive,
 * never staged.
 */

interface Open {
  fd: number;
  file: string;
  /** Created by this restore: it gets the server's user as owner. */
  created: boolean;
  /** data/: the next write position. */
  pos: number;
  delta?: { pending: Buffer; header?: DeltaHeader & { bytes: number }; index: number; offset: number };
}

function target(dir: string, name: string): { kind: 'data' | 'delta'; file: string; rel: string } {
  const m = /^(data|delta)\/(.+)$/.exec(name);
  const rel = m?.[2] ?? '';
  if (!m || rel.split('/').some((p) => p === '..' || p === '') || path.isAbsolute(rel))
    throw new IntegrityError(`Delta tar: unexpected member ${name}`);
  return { kind: m[1] as 'data' | 'delta', file: path.join(dir, rel), rel };
}

/**
 * File operations are synchronous: each member is a few calls that take microseconds on the page
 * cache, and as promises each was a thread-pool round trip, which on the loaded 2-core machine
 * made applying ~1,250 members of a small delta take seconds.
 */
class DeltaApplier {
  private current: Open | undefined;
  constructor(
    private readonly dir: string,
    private readonly user: OsUser,
    private readonly blockSize: number,
  ) {}

  private chownNew(file: string): void {
    if (isRoot() && this.user.uid !== 0) chownSync(file, this.user.uid, this.user.gid);
  }

  /** Opens an existing file for writing at positions, or creates it (and its directories). */
  private openFile(file: string): { fd: number; created: boolean } {
    try {
      return { fd: openSync(file, 'r+'), created: false };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // New directories (a database created since the parent) belong to the server's user.
    const made = mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    if (made) for (let d = path.dirname(file); d.length >= made.length; d = path.dirname(d)) this.chownNew(d);
    return { fd: openSync(file, 'wx', 0o600), created: true };
  }

  begin(m: TarMember): Promise<void> {
    if (m.type === 'dir') return Promise.resolve();
    const t = target(this.dir, m.name);
    const { fd, created } = this.openFile(t.file);
    this.current = {
      fd,
      file: t.file,
      created,
      pos: 0,
      delta: t.kind === 'delta' ? { pending: Buffer.alloc(0), index: 0, offset: 0 } : undefined,
    };
    return Promise.resolve();
  }

  data(m: TarMember, chunk: Buffer): Promise<void> {
    const c = this.current;
    if (!c) return Promise.resolve();
    if (!c.delta) {
      writeFully(c.fd, chunk, c.pos);
      c.pos += chunk.length;
      return Promise.resolve();
    }
    const d = c.delta;
    let rest = chunk;
    if (!d.header) {
      d.pending = Buffer.concat([d.pending, rest]);
      d.header = decodeDeltaHeader(d.pending, m.name);
      if (!d.header) return Promise.resolve();
      rest = d.pending.subarray(d.header.bytes);
      d.pending = Buffer.alloc(0);
    }
    while (rest.length > 0) {
      const blk = d.header.blocks[d.index];
      if (blk === undefined) throw new IntegrityError(`${m.name}: more page data than its header lists`);
      const n = Math.min(this.blockSize - d.offset, rest.length);
      writeFully(c.fd, rest.subarray(0, n), blk * this.blockSize + d.offset);
      d.offset += n;
      rest = rest.subarray(n);
      if (d.offset === this.blockSize) {
        d.offset = 0;
        d.index++;
      }
    }
    return Promise.resolve();
  }

  end(m: TarMember): Promise<void> {
    const c = this.current;
    if (!c) return Promise.resolve();
    this.current = undefined;
    try {
      if (c.delta) {
        const h = c.delta.header ?? decodeDeltaHeader(c.delta.pending, m.name);
        if (!h || c.delta.index !== h.blocks.length)
          throw new IntegrityError(`${m.name}: the page delta is cut short`);
        const length = h.totalBlocks * this.blockSize;
        if (fstatSync(c.fd).size !== length) ftruncateSync(c.fd, length);
      } else if (!c.created) ftruncateSync(c.fd, c.pos); // an existing file replaced whole
      // No fsync per file: the server syncs the whole data directory when it starts from a backup.
    } finally {
      closeSync(c.fd);
    }
    if (c.created) this.chownNew(c.file);
    return Promise.resolve();
  }
}

function writeFully(fd: number, buf: Buffer, position: number): void {
  for (let done = 0; done < buf.length;) done += writeSync(fd, buf, done, buf.length - done, position + done);
}

export async function applyDelta(o: {
  dir: string;
  storage: Storage;
  meta: BaseBackupMetadata;
  user: OsUser;
  unlockers: () => Promise<readonly KeyUnlocker[]>;
  signal?: AbortSignal;
}): Promise<void> {
  const applier = new DeltaApplier(o.dir, o.user, o.meta.delta?.blockSize ?? 8192);
  const reader = new TarReader(applier);
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      reader.push(chunk).then(() => cb(), cb);
    },
    final(cb) {
      cb(
        reader.complete
          ? null
          : new IntegrityError(`${o.meta.name}: the delta stream ends without its end-of-archive marker`),
      );
    },
  });
  for (const f of o.meta.files.filter((x) => x.role === 'delta'))
    await runReadGroup({
      source: await o.storage.get(f.key),
      expected: { sha256: f.sha256, bytes: f.sizeBytes },
      decrypt: o.meta.encryption
        ? (await import('../../crypto/index.js')).createDecryptStream(await o.unlockers())
        : undefined,
      compression: o.meta.compression.algorithm,
      sizeHint: f.sizeBytes,
      // The stored bytes' SHA-256 is the check; nothing compares the decoded bytes' hash.
      hashDecoded: false,
      sink: { kind: 'stream', stream: sink },
      signal: o.signal,
    });
}

/**
 * After the last delta: the data directory holds exactly what the last backup listed. Files the
 * chain's older members had and that were dropped since are removed; directories it lists are
 * there (empty ones included). The WAL directory is left alone (restore_command fills it).
 */
export async function finishChain(dir: string, last: BaseBackupMetadata, user: OsUser): Promise<void> {
  const contents = last.contents;
  if (!contents) return;
  const files = new Set(contents.files.map(([p]) => p));
  const dirs = new Set(contents.dirs);
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (child === 'pg_wal') continue;
      if (entry.isDirectory()) {
        if (!dirs.has(child)) await rm(path.join(dir, child), { recursive: true, force: true });
        else await walk(child);
      } else if (!files.has(child)) await rm(path.join(dir, child), { force: true });
    }
  };
  await walk('');
  for (const d of contents.dirs) {
    const abs = path.join(dir, d);
    const exists = await lstat(abs).catch(() => undefined);
    if (exists) continue;
    await mkdir(abs, { recursive: true, mode: 0o700 });
    await giveTo(abs, user);
  }
}
