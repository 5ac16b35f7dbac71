import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

type BlockCompressor = (block: Buffer) => Promise<Buffer>;

const gzipAsync = promisify(zlib.gzip);
const zstdAsync = promisify(zlib.zstdCompress);

export function gzipBlocks(level: number): BlockCompressor {
  return (block) => gzipAsync(block, { level });
}

export function zstdBlocks(level: number): BlockCompressor {
  return (block) => zstdAsync(block, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });
}

/**
 * Compresses fixed-size blocks concurrently on libuv's thread pool and emits them in order. Each
 * block becomes an independent gzip member or zstd frame; `gunzip` and `zstd -d` read the
 * concatenation as one stream. Memory: at most `parallel + 1` blocks in flight.
 */
export class ParallelCompress extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly inFlight: Array<Promise<Buffer>> = [];
  private sawInput = false;

  constructor(
    private readonly compress: BlockCompressor,
    private readonly parallel: number,
    private readonly blockSize = 1024 * 1024,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.sawInput ||= chunk.length > 0;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.drainFull().then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    // An empty input still yields one valid (empty) member, so decompressors accept the file.
    if (this.pendingBytes > 0 || !this.sawInput) this.startBlock(this.takeAll());
    this.drainAll().then(() => cb(), cb);
  }

  private takeAll(): Buffer {
    const block = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    return block;
  }

  private startBlock(block: Buffer): void {
    const job = this.compress(block);
    job.catch(() => undefined);
    this.inFlight.push(job);
  }

  private async drainFull(): Promise<void> {
    while (this.pendingBytes >= this.blockSize) {
      const all = this.takeAll();
      let offset = 0;
      for (; offset + this.blockSize <= all.length; offset += this.blockSize) {
        this.startBlock(all.subarray(offset, offset + this.blockSize));
      }
      if (offset < all.length) {
        this.pending = [all.subarray(offset)];
        this.pendingBytes = all.length - offset;
      }
      while (this.inFlight.length > this.parallel) await this.emitOldest();
    }
  }

  private async drainAll(): Promise<void> {
    while (this.inFlight.length) await this.emitOldest();
  }

  private async emitOldest(): Promise<void> {
    const oldest = this.inFlight.shift();
    if (oldest) this.push(await oldest);
  }
}
