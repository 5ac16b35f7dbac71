import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** Passes bytes through unchanged while computing their SHA-256 and count. */
export class HashCounter extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  private digestHex: string | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.digestHex = this.hash.digest('hex');
    cb();
  }

  /** The hex digest; only valid once the stream has ended. */
  get sha256(): string {
    if (this.digestHex === undefined)
      throw new Error('HashCounter: digest requested before the end of the stream');
    return this.digestHex;
  }
}

/**
 * The last stage of a write: it holds back the end of the stream until `check` resolves, so the
 * storage commits only after every producer (dump tool, compressor) has been judged successful.
 */
export class CommitGate extends Transform {
  constructor(private readonly check: () => Promise<void>) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.check().then(
      () => cb(),
      (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
    );
  }
}

/** Counts bytes and keeps the first and last few of them (for header and trailer checks). */
export class Sampler extends Transform {
  bytes = 0;
  head: Buffer = Buffer.alloc(0);
  tail: Buffer = Buffer.alloc(0);

  constructor(private readonly keep = 4096) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.head.length < this.keep)
      this.head = Buffer.concat([this.head, chunk.subarray(0, this.keep - this.head.length)]);
    this.tail =
      chunk.length >= this.keep
        ? chunk.subarray(chunk.length - this.keep)
        : Buffer.concat([this.tail, chunk]).subarray(-this.keep);
    cb(null, chunk);
  }
}
