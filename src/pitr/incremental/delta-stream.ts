import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { IntegrityError, InterruptedError } from '../../errors.js';
import { formatLsn } from '../wal-names.js';
import { encodeDeltaHeader } from './format.js';
import { checksumFails, pageChecksum, pageIsNew, pageLsn, storedChecksum } from './page.js';
import type { DataDirContents, DataFile } from './scan.js';
import { TAR_END, tarHeader, tarPadding } from './tar.js';

/**
 * The delta stream of an incremental or differential base backup, as a tar: `delta/<path>` for
 * each relation file (only the pages changed since the parent's start, see format.ts), and
 * `data/<path>` for every other file, whole. After the last file, `finish` stops the backup and
 * returns the members that only exist then (backup_label, tablespace_map).
 */
export interface DeltaStreamInput {
  root: string;
  contents: DataDirContents;
  /** The parent's files: path → size. A relation file not in it is new: all its pages go in. */
  parentFiles: ReadonlyMap<string, number>;
  parentStartLsn: bigint;
  /** This backup's start: pages changed after it are repaired by WAL replay, never judged torn. */
  startLsn: bigint;
  checksums: boolean;
  blockSize: number;
  /** Blocks per relation segment file (the server's segment_size). */
  segmentBlocks: number;
  stats: DeltaStats;
  signal?: AbortSignal;
  finish(): Promise<Array<{ name: string; content: Buffer }>>;
}

export interface DeltaStats {
  wholeFiles: number;
  wholeBytes: number;
  relationFiles: number;
  blocksScanned: number;
  blocksStored: number;
  pagesVerified: number;
}

export function emptyStats(): DeltaStats {
  return {
    wholeFiles: 0,
    wholeBytes: 0,
    relationFiles: 0,
    blocksScanned: 0,
    blocksStored: 0,
    pagesVerified: 0,
  };
}

/**
 * 1 MiB reads (128 pages) into one scratch buffer per stream, synchronously: the scan of every
 * relation page used 256 KiB asynchronous reads into a buffer allocated per file, and on the
 * loaded 2-core machine most of its time went to thread-pool round trips (about 5,000 for the
 * 1,257 files of a pgbench scale-20 cluster: open, fstat, reads, close) and to collecting the
 * discarded buffers (0.64 s of GC in one profiled incremental). A read from the page cache takes
 * a fraction of a millisecond, so blocking the event loop for it costs nothing here.
 */
const CHUNK_BLOCKS = 128;

export async function* deltaTar(o: DeltaStreamInput): AsyncGenerator<Buffer> {
  const scratch = Buffer.allocUnsafe(CHUNK_BLOCKS * o.blockSize);
  for (const f of o.contents.files) {
    if (o.signal?.aborted) throw new InterruptedError('Interrupted');
    if (f.relation) yield* relationDelta(o, f, scratch);
    else yield* wholeFile(o, f);
  }
  for (const extra of await o.finish()) {
    yield tarHeader(`data/${extra.name}`, extra.content.length);
    yield extra.content;
    yield tarPadding(extra.content.length);
  }
  yield TAR_END;
}

function openOrSkip(abs: string): number | undefined {
  // A file removed since the scan: its removal is in the WAL from this backup's start.
  try {
    return openSync(abs, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Reads `length` bytes at `position` into a new buffer, zero-filled past the end of the file. */
function readAt(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  if (got < length) buf.fill(0, got);
  return buf;
}

/** A file as it is now, `size` bytes (the scan's size: zero-filled when it shrank meanwhile). */
function* wholeFile(o: DeltaStreamInput, f: DataFile): Generator<Buffer> {
  const fd = openOrSkip(path.join(o.root, f.path));
  if (fd === undefined) return;
  try {
    yield tarHeader(`data/${f.path}`, f.size);
    for (let pos = 0; pos < f.size; pos += CHUNK_BLOCKS * o.blockSize)
      yield readAt(fd, Math.min(CHUNK_BLOCKS * o.blockSize, f.size - pos), pos);
    yield tarPadding(f.size);
    o.stats.wholeFiles++;
    o.stats.wholeBytes += f.size;
  } finally {
    closeSync(fd);
  }
}

/** Which blocks of a relation file go into the delta, verifying checksums on the way. */
function chooseBlocks(o: DeltaStreamInput, f: DataFile, fd: number, total: number, buf: Buffer): number[] {
  const parentSize = o.parentFiles.get(f.path);
  const parentBlocks = parentSize === undefined ? 0 : Math.floor(parentSize / o.blockSize);
  const chosen: number[] = [];
  const bs = o.blockSize;
  // The page LSN as two u32 halves, compared without a BigInt per page.
  const hi = Number(o.parentStartLsn >> 32n);
  const lo = Number(o.parentStartLsn & 0xffffffffn);
  for (let first = 0; first < total; first += CHUNK_BLOCKS) {
    const n = Math.min(CHUNK_BLOCKS, total - first);
    const bytesRead = readSync(fd, buf, 0, n * bs, first * bs);
    const blocks = Math.floor(bytesRead / bs);
    for (let b = 0; b < blocks; b++) {
      const blk = first + b;
      const at = b * bs;
      if (o.checksums) verifyPage(o, f, fd, blk, buf.subarray(at, at + bs));
      o.stats.blocksScanned++;
      const pageHi = buf.readUInt32LE(at);
      const changed = pageHi > hi || (pageHi === hi && buf.readUInt32LE(at + 4) >= lo);
      if (changed || blk >= parentBlocks || buf.readUInt16LE(at + 14) === 0) chosen.push(blk);
    }
    if (blocks < n) break; // truncated while reading: the rest is gone, the WAL says so
  }
  return chosen;
}

/**
 * A checksum failure is re-read once (the server may have been writing the page); it is an error
 * unless the page is now one changed after this backup's start (WAL replay rewrites it whole).
 */
function verifyPage(o: DeltaStreamInput, f: DataFile, fd: number, blk: number, page: Buffer): void {
  const absolute = (f.relation?.segno ?? 0) * o.segmentBlocks + blk;
  if (!checksumFails(page, absolute)) {
    if (!pageIsNew(page)) o.stats.pagesVerified++;
    return;
  }
  const again = Buffer.alloc(o.blockSize);
  const bytesRead = readSync(fd, again, 0, o.blockSize, blk * o.blockSize);
  if (bytesRead < o.blockSize) return;
  if (!checksumFails(again, absolute) || pageLsn(again) >= o.startLsn) return;
  throw new IntegrityError(
    `Data checksum failure in ${f.path}, block ${blk}: the page carries ${storedChecksum(again)}, its content gives ${pageChecksum(again, absolute)} (page LSN ${formatLsn(pageLsn(again))})`,
    {
      hint: 'The page is damaged on disk: nothing was kept. Find the relation with SELECT pg_filenode_relation(0, <file number>), and restore or rebuild it before taking a backup.',
    },
  );
}

/**
 * A relation file's delta member. A file with no page changed since the parent and the length it
 * had then gets none: the chain restore leaves the parent's copy as it is (a pgbench scale-20
 * incremental after a 1 % update carried 1,257 members, ~1,240 of them empty, and applying them
 * was most of the restore's extra time).
 */
function* relationDelta(o: DeltaStreamInput, f: DataFile, scratch: Buffer): Generator<Buffer> {
  const fd = openOrSkip(path.join(o.root, f.path));
  if (fd === undefined) return;
  try {
    const total = Math.floor(fstatSync(fd).size / o.blockSize);
    const blocks = chooseBlocks(o, f, fd, total, scratch);
    o.stats.relationFiles++;
    if (blocks.length === 0 && o.parentFiles.get(f.path) === total * o.blockSize) return;
    const header = encodeDeltaHeader({ totalBlocks: total, blocks });
    const size = header.length + blocks.length * o.blockSize;
    yield tarHeader(`delta/${f.path}`, size);
    yield header;
    for (let i = 0; i < blocks.length;) {
      // Runs of consecutive blocks are read in one call.
      let run = 1;
      while (i + run < blocks.length && run < CHUNK_BLOCKS && blocks[i + run] === (blocks[i] ?? 0) + run)
        run++;
      yield readAt(fd, run * o.blockSize, (blocks[i] ?? 0) * o.blockSize);
      i += run;
    }
    yield tarPadding(size);
    o.stats.blocksStored += blocks.length;
  } finally {
    closeSync(fd);
  }
}
