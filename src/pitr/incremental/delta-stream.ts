import { open, type FileHandle } from 'node:fs/promises';
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

// 256 KiB reads: big enough for the page cache, small enough to keep the heap flat.
const CHUNK_BLOCKS = 32;

export async function* deltaTar(o: DeltaStreamInput): AsyncGenerator<Buffer> {
  for (const f of o.contents.files) {
    if (o.signal?.aborted) throw new InterruptedError('Interrupted');
    if (f.relation) yield* relationDelta(o, f);
    else yield* wholeFile(o, f);
  }
  for (const extra of await o.finish()) {
    yield tarHeader(`data/${extra.name}`, extra.content.length);
    yield extra.content;
    yield tarPadding(extra.content.length);
  }
  yield TAR_END;
}

async function openOrSkip(abs: string): Promise<FileHandle | undefined> {
  // A file removed since the scan: its removal is in the WAL from this backup's start.
  return open(abs, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/** A file as it is now, `size` bytes (the scan's size: zero-filled when it shrank meanwhile). */
async function* wholeFile(o: DeltaStreamInput, f: DataFile): AsyncGenerator<Buffer> {
  const fh = await openOrSkip(path.join(o.root, f.path));
  if (!fh) return;
  try {
    yield tarHeader(`data/${f.path}`, f.size);
    let pos = 0;
    while (pos < f.size) {
      const buf = Buffer.alloc(Math.min(1024 * 1024, f.size - pos));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      pos += buf.length;
      yield bytesRead === buf.length
        ? buf
        : Buffer.concat([buf.subarray(0, bytesRead), Buffer.alloc(buf.length - bytesRead)]);
    }
    yield tarPadding(f.size);
    o.stats.wholeFiles++;
    o.stats.wholeBytes += f.size;
  } finally {
    await fh.close();
  }
}

/** Which blocks of a relation file go into the delta, verifying checksums on the way. */
async function chooseBlocks(
  o: DeltaStreamInput,
  f: DataFile,
  fh: FileHandle,
  total: number,
): Promise<number[]> {
  const parentSize = o.parentFiles.get(f.path);
  const parentBlocks = parentSize === undefined ? 0 : Math.floor(parentSize / o.blockSize);
  const chosen: number[] = [];
  const bs = o.blockSize;
  const buf = Buffer.alloc(CHUNK_BLOCKS * bs);
  for (let first = 0; first < total; first += CHUNK_BLOCKS) {
    const n = Math.min(CHUNK_BLOCKS, total - first);
    const { bytesRead } = await fh.read(buf, 0, n * bs, first * bs);
    const blocks = Math.floor(bytesRead / bs);
    for (let b = 0; b < blocks; b++) {
      const blk = first + b;
      const page = buf.subarray(b * bs, (b + 1) * bs);
      if (o.checksums) await verifyPage(o, f, fh, blk, page);
      o.stats.blocksScanned++;
      if (blk >= parentBlocks || pageIsNew(page) || pageLsn(page) >= o.parentStartLsn) chosen.push(blk);
    }
    if (blocks < n) break; // truncated while reading: the rest is gone, the WAL says so
  }
  return chosen;
}

/**
 * A checksum failure is re-read once (the server may have been writing the page); it is an error
 * unless the page is now one changed after this backup's start (WAL replay rewrites it whole).
 */
async function verifyPage(
  o: DeltaStreamInput,
  f: DataFile,
  fh: FileHandle,
  blk: number,
  page: Buffer,
): Promise<void> {
  const absolute = (f.relation?.segno ?? 0) * o.segmentBlocks + blk;
  if (!checksumFails(page, absolute)) {
    if (!pageIsNew(page)) o.stats.pagesVerified++;
    return;
  }
  const again = Buffer.alloc(o.blockSize);
  const { bytesRead } = await fh.read(again, 0, o.blockSize, blk * o.blockSize);
  if (bytesRead < o.blockSize) return;
  if (!checksumFails(again, absolute) || pageLsn(again) >= o.startLsn) return;
  throw new IntegrityError(
    `Data checksum failure in ${f.path}, block ${blk}: the page carries ${storedChecksum(again)}, its content gives ${pageChecksum(again, absolute)} (page LSN ${formatLsn(pageLsn(again))})`,
    {
      hint: 'The page is damaged on disk: nothing was kept. Find the relation with SELECT pg_filenode_relation(0, <file number>), and restore or rebuild it before taking a backup.',
    },
  );
}

async function* relationDelta(o: DeltaStreamInput, f: DataFile): AsyncGenerator<Buffer> {
  const fh = await openOrSkip(path.join(o.root, f.path));
  if (!fh) return;
  try {
    const total = Math.floor((await fh.stat()).size / o.blockSize);
    const blocks = await chooseBlocks(o, f, fh, total);
    const header = encodeDeltaHeader({ totalBlocks: total, blocks });
    const size = header.length + blocks.length * o.blockSize;
    yield tarHeader(`delta/${f.path}`, size);
    yield header;
    for (let i = 0; i < blocks.length;) {
      // Runs of consecutive blocks are read in one call.
      let run = 1;
      while (i + run < blocks.length && run < CHUNK_BLOCKS && blocks[i + run] === (blocks[i] ?? 0) + run)
        run++;
      const buf = Buffer.alloc(run * o.blockSize);
      await fh.read(buf, 0, buf.length, (blocks[i] ?? 0) * o.blockSize);
      yield buf;
      i += run;
    }
    yield tarPadding(size);
    o.stats.relationFiles++;
    o.stats.blocksStored += blocks.length;
  } finally {
    await fh.close();
  }
}
