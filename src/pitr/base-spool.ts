import { mkdtemp, open, readdir, readFile, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BaseBackupFile, BaseBackupMetadata } from '../catalog/base-backup.js';
import type { Commit } from '../catalog/commit.js';
import type { EncryptionDescription } from '../crypto/index.js';
import { IntegrityError, MissingToolError } from '../errors.js';
import type { ToolCommand } from '../types.js';
import { threads } from '../pipeline/compression.js';
import { encryptionFor, NO_COMPRESSION, startWriteGroup } from '../pipeline/filter-group.js';
import { ToolProcess } from '../pipeline/process.js';
import { Progress, processBytesRead, type ProgressMode } from '../pipeline/progress.js';
import type { KeyProtector } from '../crypto/index.js';

/*
 * backup base with zstd, without tablespaces: pg_basebackup compresses the tar itself (libzstd,
 * client side, the same level and threads as `zstd -T<n>`) into a spool directory, and this
 * process follows the compressed file as it grows into the write group (encryption, SHA-256,
 * storage). The raw tar never crosses a pipe: it goes from pg_basebackup's socket into libzstd in
 * the same process, and with `-D DIR` pg_basebackup writes the server's backup_manifest as its
 * own file instead of appending it to the tar, so nothing has to parse the tar to find it.
 *
 * Measured on 330 MiB of pgbench data (2 loaded cores, paired, CPU = user+sys of the process
 * tree): the relay through Node (pg_basebackup | node tar parser | zstd -T2) cost 1.3 s of CPU
 * more than `pg_basebackup | zstd -3 -T2` (GC of the 64 KiB chunks and two more pipe copies);
 * pg_basebackup --compress=client-zstd:level=3,workers=2 into a directory costs 0.5 s *less* than
 * that anchor pipeline (no pipe between the two programs). See docs/pitr.md.
 *
 * The spool file is in a fresh 0700 directory of $TMPDIR and is unlinked as soon as this process
 * has opened it: it holds the compressed, not yet encrypted bytes only while pg_basebackup writes
 * and this process reads them, nothing of it outlives the two processes, and the disk space it
 * takes (at most the compressed backup, when the store is slower than pg_basebackup) is freed when
 * both have closed it. DBBACKUP_BASE_RELAY=1 goes back to the relay through this process.
 */

export interface SpoolInput {
  commit: Commit;
  key: string;
  /** pg_basebackup with the connection's environment. */
  program: (args: string[]) => Promise<ToolCommand>;
  /** pg_basebackup's arguments without --pgdata and --compress. */
  args: readonly string[];
  level: number;
  protectors: readonly KeyProtector[];
  progress: ProgressMode;
  progressLabel: string;
  backupName: string;
  signal?: AbortSignal;
  classify: (line: string) => 'error' | 'warning' | 'info';
}

export interface Spooled {
  file: BaseBackupFile;
  manifest: Buffer;
  compression: BaseBackupMetadata['compression'];
  encryption: EncryptionDescription | null;
  warnings: string[];
  /** The arguments pg_basebackup ran with (the spool directory as `DIR`). */
  args: string[];
}

/** Whether backup base lets pg_basebackup compress: zstd, a pg_basebackup 15 or newer, not turned off. */
export function pgCompresses(algorithm: string, toolMajor: number | null): boolean {
  return algorithm === 'zstd' && toolMajor !== null && toolMajor >= 15 && !process.env.DBBACKUP_BASE_RELAY;
}

export async function spoolBaseBackup(i: SpoolInput): Promise<Spooled> {
  const spool = await mkdtemp(path.join(os.tmpdir(), 'dbbackup-base-'));
  // pg_basebackup creates the directory itself (an existing one must be empty).
  const dir = path.join(spool, 'out');
  const compress = `--compress=client-zstd:level=${i.level},workers=${threads()}`;
  // No fsync of a spool file that is read and dropped: the store makes the stored copy durable.
  const own = [compress, '--no-sync'];
  try {
    const tool = new ToolProcess(
      await i.program([`--pgdata=${dir}`, ...own, ...i.args]),
      ['ignore', 'ignore', 'pipe'],
      i.classify,
      undefined,
      { signal: i.signal },
    );
    const group = startWriteGroup<EncryptionDescription>({
      source: Readable.from(follow(path.join(dir, 'base.tar.zst'), tool.done)),
      compression: NO_COMPRESSION,
      encryption: await encryptionFor(i.protectors),
    });
    const progress = new Progress(
      i.progress,
      i.progressLabel,
      { stored: () => group.storedBytes(), produced: () => processBytesRead(tool.child.pid) },
      () => null,
    );
    progress.start();
    try {
      await i.commit.put(i.key, group, { metadata: { 'dbbackup-base-backup': i.backupName } });
    } catch (err) {
      tool.kill();
      await tool.done.catch(() => undefined);
      throw unsupported(tool) ?? err;
    } finally {
      progress.stop();
    }
    await tool.done;
    const stored = group.result();
    await i.commit.verify(i.key, stored.storedBytes);
    const names = (await readdir(dir)).sort();
    // A tablespace created after dbbackup looked would arrive as another tar: refused, not lost.
    // (base.tar.zst was unlinked once opened.)
    if (names.join(' ') !== 'backup_manifest')
      throw new IntegrityError(
        `pg_basebackup wrote ${names.join(', ')} besides base.tar.zst; expected only backup_manifest`,
        {
          hint: 'A tablespace outside the data directory was created during the backup? Run backup base again.',
        },
      );
    return {
      file: {
        key: i.key,
        role: 'base',
        sizeBytes: stored.storedBytes,
        sha256: stored.storedSha256,
        rawBytes: null,
      },
      manifest: await readFile(path.join(dir, 'backup_manifest')),
      compression: { algorithm: 'zstd', level: i.level, implementation: `pg_basebackup ${compress}` },
      encryption: stored.encryption,
      warnings: tool.warnings,
      args: [`--pgdata=DIR`, ...own, ...i.args],
    };
  } finally {
    await rm(spool, { recursive: true, force: true });
  }
}

/** pg_basebackup built without zstd: say so, and how to go on. */
function unsupported(tool: ToolProcess): MissingToolError | undefined {
  if (!tool.errors.some((l) => /does not support compression/.test(l))) return undefined;
  return new MissingToolError(`pg_basebackup cannot compress with zstd: ${tool.errors.join(' ')}`, {
    hint: 'Set DBBACKUP_BASE_RELAY=1 (dbbackup compresses the tar itself), or install a pg_basebackup built with zstd.',
  });
}

const CHUNK = 1024 * 1024;

/**
 * The bytes of a file another program is still appending to, until `finished` settles: then the
 * rest to its end, or the program's failure. pg_basebackup only appends (fopen "wb", fwrite), so
 * every byte below the current end is final. Polls every 50 ms at the end of what is there.
 */
export async function* follow(file: string, finished: Promise<void>): AsyncGenerator<Buffer> {
  let settled = false;
  let failure: { err: unknown } | undefined;
  const ended = finished.then(
    () => void (settled = true),
    (err: unknown) => void ((settled = true), (failure = { err })),
  );
  const waitMore = () => Promise.race([sleep(50), ended]);
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  let buf = Buffer.allocUnsafe(CHUNK);
  try {
    for (;;) {
      const last = settled;
      if (!fh) {
        fh = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
          return undefined;
        });
        if (fh) {
          // Nameless from here on: pg_basebackup and this reader hold the only references, so the
          // compressed (possibly not yet encrypted) copy is gone from the disk as soon as both are.
          await unlink(file);
        } else {
          if (failure) throw failure.err;
          if (last) throw new IntegrityError(`pg_basebackup ended without writing ${path.basename(file)}`);
          await waitMore();
          continue;
        }
      }
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === CHUNK) {
        yield buf;
        buf = Buffer.allocUnsafe(CHUNK);
        continue;
      }
      // A short read (the writer is ahead by less than a chunk): a copy, and the buffer is reused.
      if (bytesRead > 0) {
        yield Buffer.from(buf.subarray(0, bytesRead));
        continue;
      }
      // At the end of what is there: done only if the writer had already finished before this read.
      if (last) {
        if (failure) throw failure.err;
        return;
      }
      await waitMore();
    }
  } finally {
    await fh?.close();
  }
}
