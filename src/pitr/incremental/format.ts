import { IntegrityError } from '../../errors.js';

/**
 * A relation file's changed pages, as one tar member `delta/<path>`: a header of little-endian
 * u32s — magic, the number of blocks carried, the file's length in blocks when the backup read it
 * (the restore truncates or extends it to that), then the block numbers — and the blocks in that
 * order. The same shape as PostgreSQL 17's INCREMENTAL files, without the padding to a block.
 */

export const DELTA_MAGIC = 0xdbb0de17;

export interface DeltaHeader {
  /** The file's length in blocks when read. */
  totalBlocks: number;
  blocks: number[];
}

export function encodeDeltaHeader(h: DeltaHeader): Buffer {
  const buf = Buffer.alloc(12 + 4 * h.blocks.length);
  buf.writeUInt32LE(DELTA_MAGIC, 0);
  buf.writeUInt32LE(h.blocks.length, 4);
  buf.writeUInt32LE(h.totalBlocks, 8);
  h.blocks.forEach((b, i) => buf.writeUInt32LE(b, 12 + 4 * i));
  return buf;
}

/** The header at the start of `buf`, or undefined while `buf` is too short to hold it. */
export function decodeDeltaHeader(buf: Buffer, name: string): (DeltaHeader & { bytes: number }) | undefined {
  if (buf.length < 12) return undefined;
  if (buf.readUInt32LE(0) !== DELTA_MAGIC)
    throw new IntegrityError(`${name}: not a dbbackup page delta (bad magic)`);
  const count = buf.readUInt32LE(4);
  const bytes = 12 + 4 * count;
  if (buf.length < bytes) return undefined;
  const blocks: number[] = [];
  for (let i = 0; i < count; i++) blocks.push(buf.readUInt32LE(12 + 4 * i));
  return { totalBlocks: buf.readUInt32LE(8), blocks, bytes };
}
