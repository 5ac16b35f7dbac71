import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { PgArchiveWalk } from './pg-archive.js';

type MissingOffsets = ReturnType<PgArchiveWalk['missingOffsets']>;

const K_OFFSET_POS_SET = 2;

/**
 * Gives a plaintext custom-format archive the data offsets pg_dump could not write, in place.
 *
 * Why (issue 19's benchmark, docs/performance.md): a backup's archive is written by pg_dump into a
 * pipe, so every table-of-contents entry says "offset not set". `pg_restore -j N` then makes each
 * worker find its table's data by reading the archive from where it stands, chunk length by chunk
 * length — one chunk per row with -Z0 — and the workers share nothing: on bench_pg (769 MB decoded,
 * 6 data blocks) pg_restore -j2 spent 16 s of CPU doing so, against ~0.2 s with offsets. One
 * sequential walk here (~0.5 s user plus the read of the file, from the page cache) finds every
 * block, and each entry's flag byte and offset are rewritten — the same number of bytes, so nothing
 * moves — as pg_dump itself does when its output is seekable.
 *
 * Only ever called on the temporary copy a --jobs restore decodes, never on a stored backup. An
 * archive the walk cannot vouch for (invalid, a newer archive version) is left as it is: pg_restore
 * then reads it the slow way and reports its own errors.
 */
export async function patchArchiveOffsets(file: string, signal?: AbortSignal): Promise<number> {
  const walk = new PgArchiveWalk();
  // 4 MiB reads: the walk's cost is per chunk of the archive, the read's per call.
  const input = createReadStream(file, { highWaterMark: 4 << 20, signal });
  for await (const chunk of input as AsyncIterable<Buffer>) {
    walk.push(chunk);
    // Every entry has its offset (an archive pg_dump wrote to a file): nothing to find.
    if (walk.offsetsComplete()) {
      input.destroy();
      return 0;
    }
  }
  return writeOffsets(file, walk.missingOffsets());
}

/** Rewrites each entry's offset field in place (what a walk found missing); how many it wrote. */
export async function writeOffsets(file: string, missing: MissingOffsets | undefined): Promise<number> {
  if (!missing?.entries.length) return 0;
  const handle = await open(file, 'r+');
  try {
    for (const { field, block } of missing.entries)
      await handle.write(offsetField(block, missing.offSize), 0, missing.offSize + 1, field);
  } finally {
    await handle.close();
  }
  return missing.entries.length;
}

/** WriteOffset (pg_backup_archiver.c): the flag byte, then the offset in offSize bytes, least significant first. */
export function offsetField(offset: number, offSize: number): Buffer {
  const out = Buffer.alloc(offSize + 1);
  out[0] = K_OFFSET_POS_SET;
  let rest = offset;
  for (let i = 1; i <= offSize; i++) {
    out[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  return out;
}
