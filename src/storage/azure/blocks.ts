import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { partSizeForPart } from '../cloud.js';
import { withRetries } from '../retry.js';
import { requestLimits, type RequestLimits } from '../transport.js';
import { isTransient } from './errors.js';

/** Azure's limits for a block blob: 50,000 committed blocks of at most 4000 MiB each. */
export const MAX_BLOCKS = 50_000;
const MAX_BLOCK_BYTES = 4000 * 1024 * 1024;
/** Whole-block attempts on top of the SDK's own retries: the block's bytes are still in memory. */
const BLOCK_ATTEMPTS = 2;

/**
 * Block ids: base64 of `<upload id>-<fixed-width counter>`. Azure wants every id of one blob to have
 * the same length; the random upload id keeps two writers of one name from mixing their blocks.
 */
export function blockId(uploadId: string, n: number): string {
  return Buffer.from(`${uploadId}-${String(n).padStart(6, '0')}`).toString('base64');
}

/** Whether a block id is one `blockId` makes: dbbackup staged that block. */
export function isOwnBlockId(id: string): boolean {
  return /^[0-9a-f]{12}-\d{6}$/.test(Buffer.from(id, 'base64').toString('latin1'));
}

/** The part of a BlockBlobClient an upload needs (a fake in unit tests). */
export interface BlockTarget {
  stageBlock(
    id: string,
    body: Buffer,
    length: number,
    options: { abortSignal: AbortSignal },
  ): Promise<unknown>;
}

export interface UploadOptions {
  baseBlockSize: number;
  concurrency: number;
  uploadId?: string;
  /** A fixed pause between block attempts (unit tests); otherwise transport.ts's backoff (retry.ts). */
  retryDelayMs?: number;
  limits?: RequestLimits;
}

/**
 * Stream `body` into staged blocks of growing size (partSizeForPart, so any stream fits 50,000
 * blocks) with at most `concurrency` in flight; buffers are recycled, so memory stays at about
 * block size × (concurrency + 1). Returns the block ids to commit and the byte count. On any
 * failure the other stages are aborted and nothing is committed: the service discards uncommitted
 * blocks by itself, and the blob name never shows a partial upload.
 */
export async function stageBlocks(
  body: Readable,
  target: BlockTarget,
  o: UploadOptions,
): Promise<{ ids: string[]; size: number }> {
  const uploadId = o.uploadId ?? randomBytes(6).toString('hex');
  const abort = new AbortController();
  const inFlight = new Set<Promise<void>>();
  const pool: Buffer[] = [];
  const ids: string[] = [];
  let failure: { err: unknown } | undefined;
  const sizeOf = (n: number): number =>
    Math.min(partSizeForPart(n, o.baseBlockSize, MAX_BLOCKS), MAX_BLOCK_BYTES);
  const take = (size: number): Buffer => {
    // Past a size step the smaller buffers are dropped, so memory never holds two generations.
    for (let i = pool.length - 1; i >= 0; i--) if (pool[i]?.length !== size) pool.splice(i, 1);
    return pool.pop() ?? Buffer.allocUnsafe(size);
  };

  const stage = async (id: string, buf: Buffer, length: number): Promise<void> => {
    await withRetries(
      () => target.stageBlock(id, buf.subarray(0, length), length, { abortSignal: abort.signal }),
      {
        attempts: BLOCK_ATTEMPTS,
        transient: isTransient,
        signal: abort.signal,
        limits: o.limits ?? requestLimits(),
        delayMs: o.retryDelayMs,
      },
    );
    pool.push(buf);
  };
  const launch = async (buf: Buffer, length: number): Promise<void> => {
    const id = blockId(uploadId, ids.length + 1);
    ids.push(id);
    // Never rejects: a rejected promise nobody awaits yet would crash Node; the error is kept instead.
    const p: Promise<void> = stage(id, buf, length).then(
      () => void inFlight.delete(p),
      (err: unknown) => {
        failure ??= { err };
        abort.abort();
        inFlight.delete(p);
      },
    );
    inFlight.add(p);
    while (inFlight.size >= o.concurrency && !failure) await Promise.race(inFlight);
    if (failure) throw failure.err;
  };

  let size = 0;
  let block = take(sizeOf(1));
  let filled = 0;
  try {
    for await (const chunk of body) {
      const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array | string);
      for (let off = 0; off < data.length;) {
        const n = Math.min(block.length - filled, data.length - off);
        data.copy(block, filled, off, off + n);
        filled += n;
        off += n;
        size += n;
        if (filled === block.length) {
          await launch(block, filled);
          block = take(sizeOf(ids.length + 1));
          filled = 0;
        }
      }
    }
    if (filled > 0) await launch(block, filled);
    await Promise.all(inFlight);
    if (failure) throw failure.err;
    return { ids, size };
  } catch (err) {
    // `err` is the first failure: a stage's, or the body's own (then the stages fail as aborted).
    abort.abort();
    await Promise.all(inFlight);
    throw err;
  }
}
