import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '../errors.js';

/**
 * Watches a tar stream go by without copying it: it follows the 512-byte headers to know where
 * each member starts and ends, counts members and bytes, and keeps the content of a few small
 * members by name (pg_basebackup's `backup_label` and `backup_manifest`). It checks the stream
 * ends with the two zero blocks of a complete archive.
 */
export class TarTap extends Transform {
  /** Raw tar bytes seen. */
  bytes = 0;
  members = 0;
  readonly captured = new Map<string, Buffer>();
  private header = Buffer.alloc(512);
  private headerFill = 0;
  /** Bytes of the current member's data (plus padding) still to pass. */
  private skip = 0;
  private current: { name: string; chunks: Buffer[]; left: number } | undefined;
  private zeroBlocks = 0;

  constructor(
    private readonly keep: ReadonlySet<string>,
    private readonly maxCapture = 64 * 1024 * 1024,
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }

  /** True once the end-of-archive marker (two zero blocks) has been seen. */
  get complete(): boolean {
    return this.zeroBlocks >= 2;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.bytes += chunk.length;
      this.scan(chunk);
      cb(null, chunk);
    } catch (err) {
      cb(err as Error);
    }
  }

  private scan(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        if (this.current && this.current.left > 0) {
          const take = Math.min(n, this.current.left);
          this.current.chunks.push(Buffer.from(chunk.subarray(i, i + take)));
          this.current.left -= take;
          if (this.current.left === 0) this.finishCapture();
        }
        this.skip -= n;
        i += n;
        continue;
      }
      const n = Math.min(512 - this.headerFill, chunk.length - i);
      chunk.copy(this.header, this.headerFill, i, i + n);
      this.headerFill += n;
      i += n;
      if (this.headerFill === 512) {
        this.headerFill = 0;
        this.onHeader(this.header);
      }
    }
  }

  private onHeader(h: Buffer): void {
    if (h.every((b) => b === 0)) {
      this.zeroBlocks++;
      return;
    }
    if (this.zeroBlocks > 0)
      throw new IntegrityError('The tar stream has data after its end-of-archive marker');
    const magic = h.toString('latin1', 257, 262);
    if (magic !== 'ustar')
      throw new IntegrityError('The backup stream is not a tar archive (no ustar header)');
    const name = cString(h, 0, 100);
    const prefix = cString(h, 345, 155);
    const full = prefix ? `${prefix}/${name}` : name;
    const size = tarNumber(h.subarray(124, 136));
    this.members++;
    this.skip = Math.ceil(size / 512) * 512;
    if (this.keep.has(full) && size <= this.maxCapture) {
      this.current = { name: full, chunks: [], left: size };
      if (size === 0) this.finishCapture();
    }
  }

  private finishCapture(): void {
    if (!this.current) return;
    this.captured.set(this.current.name, Buffer.concat(this.current.chunks));
    this.current = undefined;
  }
}

function cString(buf: Buffer, start: number, length: number): string {
  const slice = buf.subarray(start, start + length);
  const end = slice.indexOf(0);
  return slice.toString('utf8', 0, end < 0 ? length : end);
}

/** A tar size field: octal text, or base-256 (high bit set) for sizes beyond 8 GiB. */
export function tarNumber(field: Buffer): number {
  if ((field[0] ?? 0) & 0x80) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] ?? 0);
    return n;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  return text ? Number.parseInt(text, 8) : 0;
}
