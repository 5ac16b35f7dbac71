import { Transform, type TransformCallback, type Writable } from 'node:stream';
import type { BaseBackupFile, BaseBackupMetadata } from '../catalog/base-backup.js';
import type { Commit } from '../catalog/commit.js';
import type { EncryptionDescription, KeyProtector } from '../crypto/index.js';
import { which } from '../engines/tools.js';
import { errorMessage, IntegrityError, MissingToolError } from '../errors.js';
import type { ToolCommand } from '../types.js';
import { threads } from '../pipeline/compression.js';
import { encryptionFor, NO_COMPRESSION, startWriteGroup } from '../pipeline/filter-group.js';
import { ToolProcess, waitAll } from '../pipeline/process.js';
import { Progress, processBytesRead, type ProgressMode } from '../pipeline/progress.js';

/*
 * backup base with zstd, without tablespaces: pg_basebackup compresses the tar itself (libzstd,
 * client side, the same level and threads as `zstd -T<n>`) and writes the compressed tar to its
 * stdout (--pgdata=- --format=tar). Those compressed bytes are the write group's source
 * (encryption, SHA-256, storage); the raw tar never enters this process. The server's
 * backup_manifest is the tar's last member: a tee of the same compressed bytes feeds
 * `zstd -dc | tar -b 256 -xOf - backup_manifest` (decompression and tar in C, a kernel pipe
 * between them), whose stdout is the manifest. Back-pressure of both readers holds pg_basebackup.
 * Not `tar --zstd`: GNU tar then forks one more process that copies the archive into zstd, and it
 * reads 10 KiB records; on 780 MiB of tar that cost 1.0-1.3 s of CPU against 0.6 s for this pair.
 *
 * No temp file: an earlier version (0e59f78) let pg_basebackup write into a spool directory and
 * followed the growing file. An unlinked file keeps its blocks until both processes close it, so
 * the spool always grew to the whole compressed backup in $TMPDIR (RAM on a tmpfs /tmp, or the
 * disk PostgreSQL needs for WAL), against the product rule. Measured paired against
 * `pg_basebackup -Ft -X none | zstd -3 -T2` (pgbench scale 50, 4 rounds, CPU user+sys of the process
 * tree): 3.20 s against 3.01 s (1.06x; the spool was 0.94x, the ~0.6 s between them is the manifest's
 * decompression); the relay 4.91 s (1.63x). See docs/pitr.md.
 *
 * Without `tar` or `zstd` on PATH (or with DBBACKUP_BASE_RELAY=1, DBBACKUP_NO_EXTERNAL_COMPRESSOR)
 * backup base keeps the relay through this process (TarTap), which needs neither.
 */

/** The manifest is the server's list of files; the relay's TarTap keeps at most as much. */
const MAX_MANIFEST = 64 * 1024 * 1024;
const MANIFEST_HINT =
  'dbbackup needs PostgreSQL 13 or newer (and pg_basebackup without --no-manifest); a manifest over 64 MiB (some 450,000 files) is not supported yet.';

const RELAY_HINT =
  "The tar or zstd on PATH failed on pg_basebackup's stream: DBBACKUP_BASE_RELAY=1 reads the tar in dbbackup instead.";

export interface CompressedInput {
  commit: Commit;
  key: string;
  /** pg_basebackup with the connection's environment. */
  program: (args: string[]) => Promise<ToolCommand>;
  /** pg_basebackup's arguments without --pgdata and --compress. */
  args: readonly string[];
  level: number;
  /** tar and zstd, from pgCompresses(). */
  tools: ExtractTools;
  protectors: readonly KeyProtector[];
  progress: ProgressMode;
  progressLabel: string;
  backupName: string;
  signal?: AbortSignal;
  classify: (line: string) => 'error' | 'warning' | 'info';
}

export interface Compressed {
  file: BaseBackupFile;
  manifest: Buffer;
  compression: BaseBackupMetadata['compression'];
  encryption: EncryptionDescription | null;
  warnings: string[];
  /** The arguments pg_basebackup ran with. */
  args: string[];
}

export interface ExtractTools {
  tar: string;
  zstd: string;
}

/**
 * The programs that extract the manifest, when backup base lets pg_basebackup compress: zstd, a
 * pg_basebackup 15 or newer, `tar` and `zstd` on PATH, not turned off. Null: the relay.
 */
export async function pgCompresses(
  algorithm: string,
  toolMajor: number | null,
): Promise<ExtractTools | null> {
  if (algorithm !== 'zstd' || toolMajor === null || toolMajor < 15) return null;
  if (process.env.DBBACKUP_BASE_RELAY || process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR) return null;
  const [tar, zstd] = await Promise.all([which('tar'), which('zstd')]);
  return tar && zstd ? { tar, zstd } : null;
}

export async function compressedBaseBackup(i: CompressedInput): Promise<Compressed> {
  const compress = `--compress=client-zstd:level=${i.level},workers=${threads()}`;
  const args = ['--pgdata=-', compress, ...i.args];
  const tool = new ToolProcess(await i.program(args), ['ignore', 'pipe', 'pipe'], i.classify, undefined, {
    signal: i.signal,
  });
  const extract = new ManifestExtract(i.tools, i.signal);
  const group = startWriteGroup<EncryptionDescription>({
    source: tool,
    compression: NO_COMPRESSION,
    compressedTaps: [extract.tee],
    encryption: await encryptionFor(i.protectors),
    // Before the commit: the manifest must have come out of the same bytes.
    check: async () => void (await extract.manifest()),
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
    extract.kill();
    await Promise.allSettled([tool.done, extract.done]);
    throw unsupported(tool) ?? err;
  } finally {
    progress.stop();
  }
  const stored = group.result();
  await i.commit.verify(i.key, stored.storedBytes);
  return {
    file: {
      key: i.key,
      role: 'base',
      sizeBytes: stored.storedBytes,
      sha256: stored.storedSha256,
      rawBytes: null,
    },
    manifest: await extract.manifest(),
    compression: { algorithm: 'zstd', level: i.level, implementation: `pg_basebackup ${compress}` },
    encryption: stored.encryption,
    warnings: tool.warnings,
    args,
  };
}

/** pg_basebackup built without zstd: say so, and how to go on. */
function unsupported(tool: ToolProcess): MissingToolError | undefined {
  if (!tool.errors.some((l) => /does not support compression/.test(l))) return undefined;
  return new MissingToolError(`pg_basebackup cannot compress with zstd: ${tool.errors.join(' ')}`, {
    hint: 'Set DBBACKUP_BASE_RELAY=1 (dbbackup compresses the tar itself), or install a pg_basebackup built with zstd.',
  });
}

/**
 * `zstd -dc | tar -xOf - backup_manifest` fed by `tee` (a pass-through stage of the write group
 * that waits for zstd's stdin to drain); tar's stdout, capped, is the manifest.
 */
export class ManifestExtract {
  readonly tee: Transform;
  readonly done: Promise<void>;
  private readonly procs: ToolProcess[];
  private readonly collected: Promise<Buffer>;

  constructor(tools: ExtractTools, signal?: AbortSignal) {
    const env = process.env;
    const zstd = new ToolProcess(
      { file: tools.zstd, args: ['-q', '-d', '-c'], env, name: 'zstd -d' },
      ['pipe', 'pipe', 'pipe'],
      () => 'error',
      undefined,
      { signal },
    );
    const raw = zstd.child.stdout;
    if (!raw) throw new Error('zstd has no stdout');
    // 128 KiB reads instead of tar's 10 KiB records (fewer syscalls on the raw stream).
    const tar = new ToolProcess(
      { file: tools.tar, args: ['-b', '256', '-xOf', '-', 'backup_manifest'], env, name: 'tar' },
      [raw, 'pipe', 'pipe'],
      () => 'error',
      undefined,
      { signal },
    );
    // tar owns the pipe now; this process's copy of it must never be read.
    raw.pause();
    raw.destroy();
    this.procs = [zstd, tar];
    const { stdin } = zstd.child;
    const { stdout } = tar.child;
    if (!stdin || !stdout) throw new Error('zstd has no stdin or tar no stdout');
    // A reader that has gone away is reported through its exit status (done), not as an EPIPE.
    stdin.on('error', () => undefined);
    this.done = waitAll(this.procs);
    this.done.catch(() => undefined);
    this.collected = new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = [];
      let size = 0;
      stdout.on('data', (b: Buffer) => {
        size += b.length;
        if (size > MAX_MANIFEST) {
          this.kill();
          reject(
            new IntegrityError(`backup_manifest is over ${MAX_MANIFEST} bytes`, { hint: MANIFEST_HINT }),
          );
          return;
        }
        parts.push(b);
      });
      stdout.on('error', reject);
      stdout.on('end', () => resolve(Buffer.concat(parts)));
    });
    this.collected.catch(() => undefined);
    this.tee = new Tee(stdin, this.done);
  }

  /** The manifest, once tar has exited 0 and printed one; an IntegrityError otherwise. */
  async manifest(): Promise<Buffer> {
    try {
      await this.done;
    } catch (err) {
      throw new IntegrityError(
        `backup_manifest could not be extracted from pg_basebackup's stream: ${errorMessage(err)}`,
        { hint: MANIFEST_HINT, details: this.procs.flatMap((p) => p.errors).slice(0, 8) },
      );
    }
    const manifest = await this.collected;
    if (!manifest.length)
      throw new IntegrityError("pg_basebackup's stream holds no backup_manifest", { hint: MANIFEST_HINT });
    return manifest;
  }

  kill(): void {
    for (const p of this.procs) p.kill();
  }
}

/** Passes every chunk on, and writes it to `out` first; holds the next chunk until `out` drains. */
class Tee extends Transform {
  private failed: Error | undefined;

  constructor(
    private readonly out: Writable,
    private readonly exited: Promise<void>,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    // Whether tar failed or ended early, a chunk it did not take means no manifest from these bytes.
    void exited
      .then(
        () => (this.failed = new IntegrityError('zstd -d ended before the end of the stream')),
        (err: unknown) =>
          (this.failed = new IntegrityError(
            `zstd -d | tar, reading backup_manifest out of the stream, failed: ${errorMessage(err)}`,
            { hint: RELAY_HINT },
          )),
      )
      .finally(() => out.emit('drain'));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.failed) return cb(this.failed);
    if (this.out.write(chunk)) return cb(null, chunk);
    this.out.once('drain', () => cb(this.failed ?? null, this.failed ? undefined : chunk));
  }

  override _flush(cb: TransformCallback): void {
    if (this.failed) return cb(this.failed);
    // tar's exit status is judged by the group's check (manifest()).
    this.out.end();
    void this.exited.then(
      () => cb(),
      () => cb(),
    );
  }
}
