import { Transform, type TransformCallback } from 'node:stream';
import type { ToolCommand } from '../types.js';
import { TRAILER_BYTES } from '../catalog/trailers.js';
import { drainOrClose, ToolProcess, waitAll } from './process.js';

/**
 * A pass-through for compressed bytes that also decodes them as they go by: a copy feeds the
 * decompressor (`zstd -dc`, `pigz -dc`), whose output goes straight into `tail -c`, so only the last
 * bytes of the dump reach JavaScript. When the stream ends, `tail` holds the end of what was stored,
 * decompressed: proof that the stored bytes decode, and the place to look for a dump's trailer,
 * without the raw dump passing through Node (the decoding runs beside the dump, on the spare core).
 */
export class DecodedTail extends Transform {
  /** The last bytes of the decompressed stream, once the stream has ended. */
  tail: Buffer = Buffer.alloc(0);
  private readonly decoder: ToolProcess;
  private readonly keeper: ToolProcess;
  private readonly kept: Buffer[] = [];

  constructor(decompress: ToolCommand, keep = TRAILER_BYTES) {
    super();
    this.decoder = new ToolProcess(decompress, ['pipe', 'pipe', 'pipe'], () => 'error');
    const decoded = this.decoder.child.stdout;
    if (!decoded) throw new Error('decompressor has no stdout');
    this.keeper = new ToolProcess(
      { file: 'tail', args: ['-c', String(keep)], env: process.env, name: 'tail' },
      [decoded, 'pipe', 'pipe'],
      () => 'error',
    );
    decoded.destroy(); // the pipe belongs to tail now
    this.keeper.child.stdout?.on('data', (c: Buffer) => this.kept.push(c));
    this.decoder.child.stdin?.on('error', () => undefined); // judged by the decoder's exit status
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const input = this.decoder.child.stdin;
    if (!input || input.destroyed) return cb(null, chunk);
    // Stored bytes wait for the decoder (it is faster than any compressor), so its copy never piles up.
    if (input.write(chunk)) cb(null, chunk);
    else drainOrClose(input).then(() => cb(null, chunk), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.decoder.child.stdin?.end();
    waitAll([this.decoder, this.keeper]).then(() => {
      this.tail = Buffer.concat(this.kept);
      cb();
    }, cb);
  }

  override _destroy(err: Error | null, cb: (error: Error | null) => void): void {
    this.decoder.kill();
    this.keeper.kill();
    cb(err);
  }
}
