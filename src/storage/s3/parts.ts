import type { Readable } from 'node:stream';
import { DEFAULT_PART_SIZE, partSizeForPart } from '../cloud.js';

/** S3's own limits: parts per upload and bytes per part. */
export const S3_MAX_PARTS = 10_000;
export const S3_MAX_PART_SIZE = 5 * 1024 ** 3;

/** Size of part n: growing so an unknown-length stream fits 10,000 parts, capped at S3's 5 GiB. */
export function s3PartSize(n: number, base = DEFAULT_PART_SIZE): number {
  return Math.min(partSizeForPart(n, base, S3_MAX_PARTS), S3_MAX_PART_SIZE);
}

// ---- user metadata: HTTP headers carry ASCII only -----------------------------------------------

/** Non-ASCII values travel RFC 2047-encoded, as the AWS console does it. */
export function encodeMetadataValue(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : `=?UTF-8?B?${Buffer.from(value).toString('base64')}?=`;
}

export function decodeMetadataValue(value: string): string {
  const m = /^=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=$/i.exec(value);
  return m?.[1] !== undefined ? Buffer.from(m[1], 'base64').toString('utf8') : value;
}

export function mapValues(
  record: Record<string, string> | undefined,
  fn: (v: string) => string,
): Record<string, string> {
  return Object.fromEntries(Object.entries(record ?? {}).map(([k, v]) => [k, fn(v)]));
}

// ---- reading a stream in parts ------------------------------------------------------------------

/**
 * Cuts a stream into parts of the requested sizes. Holds the part being filled plus at most one
 * carried chunk, and peeks one chunk ahead so the caller knows whether a part is the last. Buffers
 * of uploaded parts come back through `release` and are refilled: without that, finished parts wait
 * for the garbage collector and RSS grows by tens of MB beyond part size × (concurrency + 1).
 */
export class PartReader {
  private readonly it: AsyncIterator<unknown>;
  private carry: Buffer | undefined;
  private ended = false;
  private readonly spare: Buffer[] = [];

  constructor(body: Readable) {
    this.it = body[Symbol.asyncIterator]();
  }

  async read(size: number, check: () => void): Promise<{ data: Buffer; last: boolean }> {
    // allocUnsafe of a large size is a lazily-committed mapping: a tiny sidecar touches a few pages only.
    let buf = this.spare.pop();
    if (buf?.length !== size) {
      this.spare.length = 0; // the part size grew: the old buffers are of no more use
      buf = Buffer.allocUnsafe(size);
    }
    let filled = 0;
    while (filled < size) {
      const chunk = this.carry ?? (await this.next());
      this.carry = undefined;
      if (!chunk) break;
      check();
      const n = Math.min(chunk.length, size - filled);
      chunk.copy(buf, filled, 0, n);
      filled += n;
      if (n < chunk.length) this.carry = chunk.subarray(n);
    }
    this.carry ??= await this.next();
    return { data: buf.subarray(0, filled), last: !this.carry };
  }

  /** Hand back the buffer behind a part once it is uploaded (or given up on). */
  release(data: Buffer, limit: number): void {
    if (data.byteOffset === 0 && this.spare.length < limit) this.spare.push(Buffer.from(data.buffer));
  }

  private async next(): Promise<Buffer | undefined> {
    while (!this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else {
        const v: unknown = r.value;
        const chunk = Buffer.isBuffer(v) ? v : Buffer.from(typeof v === 'string' ? v : (v as Uint8Array));
        if (chunk.length) return chunk;
      }
    }
    return undefined;
  }
}
