import { mkdtemp, rm, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Transform } from 'node:stream';
import type { BackupMetadata } from '../catalog/metadata.js';
import type { DetectedFormat } from '../catalog/format.js';
import { PgArchiveCheck } from '../catalog/pg-archive.js';
import { writeOffsets } from '../catalog/pg-archive-offsets.js';
import { TRAILER_BYTES, type Trailer } from '../catalog/trailers.js';
import type { ToolCommand } from '../engines/engine.js';
import { errorMessage, IntegrityError, StorageError, UsageError } from '../errors.js';
import type { CompressionAlgorithm } from '../pipeline/compression.js';
import type { StderrClassifier } from '../pipeline/process.js';
import { formatBytes, type ByteMeter } from '../pipeline/progress.js';
import { runSinkRead, type SinkReadResult } from '../pipeline/read-group.js';
import type { Storage } from '../storage/storage.js';
import type { RestorePlan } from './plan.js';

/**
 * How a restore feeds a stored dump into its tool: through the read group (src/pipeline/read-group.ts),
 * with the dump's completion trailer checked on the decoded bytes when the plan asks for it.
 */

/** How a dump is fed into its restore tool. */
export interface FeedOptions {
  classify: StderrClassifier;
  warn: (l: string) => void;
  decrypt?: () => Transform;
  /** Counts the stored bytes consumed (for progress). */
  meter?: ByteMeter;
  /** The restore fails unless the decompressed dump ends with this (the bytes then pass through Node). */
  trailer?: Trailer;
  /** Stops the tools (and, through the meter's taps, the reads) on SIGINT/SIGTERM. */
  signal?: AbortSignal;
  /** Every stderr line of the restore tool (e.g. pg_restore --verbose, for the phase shown). */
  onLine?: (line: string) => void;
  /** Where the bytes come from, for a message when the store fails mid-transfer (e.g. `s3://b/x.dump.zst`). */
  source?: string;
  /** The stored object's size: a transfer that ends short of it was cut by the store. */
  expectedBytes?: number;
}

/** `/srv/backups/shop.dump.zst`, `s3://b/shop.dump.zst`: where a stored object is, in messages. */
export function storedLocation(storage: Storage, key: string): string {
  return `${storage.location.replace(/\/$/, '')}/${key}`;
}

/**
 * Feed a stored dump into a restore tool: file → decompressor → tool joined by kernel pipes when the
 * store is a local directory, otherwise streamed from the store through Node into the tool's stdin.
 */
export async function streamRestore(
  storage: Storage,
  key: string,
  compression: CompressionAlgorithm,
  cmd: ToolCommand,
  o: FeedOptions,
): Promise<SinkReadResult> {
  // A read that goes through Node is judged against the stored size (kernel pipes by their tools).
  const size = o.expectedBytes ?? (await storage.stat(key))?.size;
  return restoreFromStream(() => storage.get(key), compression, cmd, {
    source: storedLocation(storage, key),
    ...o,
    expectedBytes: size,
    localFile: storage.localPath?.(key),
  });
}

/**
 * Stream bytes through Node (decryption, in-process or external decompression) into a restore
 * tool's stdin. The tool's failure is reported before a broken pipe on the feeding side.
 */
export async function restoreFromStream(
  openSource: () => Promise<Readable>,
  compression: CompressionAlgorithm,
  cmd: ToolCommand,
  o: FeedOptions & { localFile?: string },
): Promise<SinkReadResult> {
  const result = await runSinkRead({
    open: openSource,
    localFile: o.localFile,
    label: o.source,
    expectedBytes: o.expectedBytes,
    compression,
    decrypt: o.decrypt,
    meter: o.meter,
    tailBytes: o.trailer ? TRAILER_BYTES : undefined,
    signal: o.signal,
    sink: { kind: 'process', command: cmd, classify: o.classify, warn: o.warn, onLine: o.onLine },
  });
  if (o.trailer && result.tail) checkTrailer(o.trailer, result.tail);
  return result;
}

function checkTrailer(trailer: Trailer, seen: { bytes: number; tail: Buffer }): void {
  if (trailer.pattern.test(seen.tail.toString('utf8'))) return;
  throw new IntegrityError(
    seen.bytes === 0
      ? 'The dump is empty'
      : `The dump does not end with its completion trailer ("${trailer.text}"): it is incomplete, so the restore is not complete either`,
    {
      hint: 'Restore another backup. (A dump made without comments, e.g. mysqldump --compact, has no trailer: feed it to the client yourself.)',
    },
  );
}

/** How big the decompressed copy --jobs needs is: recorded at backup time, or guessed from the stored size. */
export function tempCopySize(
  metadata: BackupMetadata | undefined,
  storedBytes: number,
  compression: CompressionAlgorithm,
): { bytes: number; estimated: boolean } {
  if (metadata?.dumpBytes != null) return { bytes: metadata.dumpBytes, estimated: false };
  // Backups from before dumpBytes was recorded for external compressors: a generous guess.
  return { bytes: storedBytes * (compression === 'none' ? 1 : 10), estimated: compression !== 'none' };
}

/** The directory a temporary copy goes to, refused (nothing changed yet) when it lacks the room. */
export async function requireTempSpace(
  workdir: string | undefined,
  size: { bytes: number; estimated: boolean },
): Promise<{ dir: string; size: { bytes: number; estimated: boolean } }> {
  const dir = path.resolve(workdir ?? os.tmpdir());
  const fs = await statfs(dir).catch((err: unknown) => {
    throw new UsageError(
      `Cannot use ${dir} for the temporary copy: ${errorMessage(err)}`,
      'Name an existing directory with --workdir.',
    );
  });
  const free = fs.bavail * fs.bsize;
  // 10 % to spare: a disk filled to the last byte fails everything else on it.
  if (free < size.bytes * 1.1) {
    throw new StorageError(
      `Not enough space in ${dir} for the temporary copy --jobs needs: ${size.estimated ? 'about ' : ''}${formatBytes(size.bytes)} (${size.bytes} bytes${size.estimated ? ', estimated: this backup does not record its dump size' : ''}), ${formatBytes(free)} free`,
      {
        hint: 'Nothing was changed. Use --workdir on a larger disk, or restore with --jobs 1 (streams, needs no space).',
      },
    );
  }
  return { dir, size };
}

/** A decoded copy of a stored dump, and what was read to make it (the stored bytes, counted and hashed). */
export interface TempCopy {
  file: string;
  cleanup: () => Promise<void>;
  stored: { bytes: number | null; sha256: string | null };
}

/** The stored dump decoded into a private temporary file (parallel pg_restore needs a seekable archive). */
export async function decompressToTemp(
  storage: Storage,
  key: string,
  detected: DetectedFormat,
  plan: RestorePlan,
  workdir: string | undefined,
  meter: ByteMeter,
  signal: AbortSignal | undefined,
): Promise<TempCopy> {
  // Checked when the plan was made; again here, as the disk may have filled since.
  const { dir: base } = await requireTempSpace(
    workdir,
    tempCopySize(plan.metadata, plan.sizeBytes ?? 0, detected.compression),
  );
  const dir = await mkdtemp(path.join(base, 'dbbackup-restore-'));
  const file = path.join(dir, 'archive.dump');
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  // The decoded bytes are walked on their way into the copy, for the data offsets pg_dump could not write:
  // pg_restore -j then finds each table's data in one seek instead of reading the archive per worker.
  const walk = detected.format === 'custom' ? new PgArchiveCheck() : undefined;
  try {
    const read = await runSinkRead({
      open: () => storage.get(key),
      label: storedLocation(storage, key),
      expectedBytes: plan.sizeBytes ?? undefined,
      compression: detected.compression,
      meter,
      signal,
      sink: {
        kind: 'file',
        path: file,
        decoded: walk ? [walk] : undefined,
        writeFailure: (err) =>
          new StorageError(`Could not write the temporary copy ${file}: ${errorMessage(err)}`, {
            hint: 'Use --workdir on a disk with room, or restore with --jobs 1 (streams, needs no space).',
          }),
      },
    });
    if (walk) await writeOffsets(file, walk.missingOffsets());
    return { file, cleanup, stored: { bytes: read.storedBytes, sha256: read.storedSha256 } };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
