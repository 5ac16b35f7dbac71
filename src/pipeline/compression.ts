import os from 'node:os';
import type { Duplex, Transform } from 'node:stream';
import zlib from 'node:zlib';
import { createZstdFramesDecompress } from './zstd-frames.js';
import type { CompressionAlgorithm, ToolCommand } from '../types.js';
import { which } from '../engines/tools.js';
import { UsageError } from '../errors.js';
import { ParallelCompress, gzipBlocks, zstdBlocks } from './parallel-compress.js';

export type { CompressionAlgorithm };
export const COMPRESSION_ALGORITHMS: CompressionAlgorithm[] = ['zstd', 'gzip', 'none'];

export const DEFAULT_LEVEL: Record<CompressionAlgorithm, number> = { zstd: 3, gzip: 6, none: 0 };
const LEVEL_RANGE: Record<CompressionAlgorithm, [number, number]> = {
  zstd: [1, 19],
  gzip: [1, 9],
  none: [0, 0],
};

/**
 * How bytes get compressed: preferably by an external multi-threaded program that reads the dump
 * tool's stdout directly (the raw dump never passes through JavaScript), otherwise by a parallel
 * block compressor on Node's thread pool.
 */
export interface CompressionPlan {
  algorithm: CompressionAlgorithm;
  level: number;
  /** What actually compresses, recorded in metadata: `zstd -T2`, `pigz -p2`, `node zlib (2 threads)`. */
  implementation: string;
  external?: ToolCommand;
  /**
   * For an external compressor: the same program decompressing stdin to stdout at the lowest CPU
   * priority, to check what it wrote beside the dump (DecodedTail) with the cycles the dump leaves.
   */
  checkDecoder?: ToolCommand;
  /**
   * For an external compressor: a relay between the dump tool and the compressor that counts the raw
   * dump's bytes (`dd`, which reports them exactly when it ends), so metadata records the dump size
   * without the raw bytes passing through Node. See ByteCount.
   */
  counter?: ToolCommand;
  /**
   * For an external compressor that can say how many bytes it read: the same compression, asked to
   * report it on stderr when it ends (parsed by `bytes`). Preferred to the `counter` relay: a relay
   * between the dump tool and the compressor copies every raw byte through one more pipe — 0.3–0.5 s
   * of CPU per GB measured (`cat | dd | zstd` against `cat | zstd`), 5–8 % of a PostgreSQL backup.
   */
  countingExternal?: { command: ToolCommand; bytes: (line: string) => number | null };
  inProcess?: () => Transform;
}

/**
 * zstd's summary at -vv: `/*stdin*\ : 26.65% (538178547 B => 143410653 B, /*stdout*\)` (1.5); 1.4
 * printed `(538178547 => 143410653 bytes, …)`. Only exact byte counts are taken: -v's `47.7 MiB` is not.
 */
export function zstdRawBytes(line: string): number | null {
  const m = /\(\s*(\d+)\s*(?:B\s*)?=>\s*\d+\s*(?:B|bytes)\b/.exec(line);
  return m?.[1] ? Number(m[1]) : null;
}

export function threads(): number {
  return Math.max(1, Math.min(os.availableParallelism(), 16));
}

export function validateLevel(algorithm: CompressionAlgorithm, level: number | undefined): number {
  if (level === undefined) return DEFAULT_LEVEL[algorithm];
  const [min, max] = LEVEL_RANGE[algorithm];
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new UsageError(
      `Compression level ${level} is not valid for ${algorithm}`,
      algorithm === 'none'
        ? 'Use --compression-algo zstd or gzip to set a level.'
        : `Use a level from ${min} to ${max}.`,
    );
  }
  return level;
}

export async function planCompression(
  algorithm: CompressionAlgorithm,
  level: number,
): Promise<CompressionPlan> {
  const n = threads();
  const env = { ...process.env };
  if (algorithm === 'none') return { algorithm, level: 0, implementation: 'none' };
  if (algorithm === 'zstd') {
    const zstd = process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR ? null : await which('zstd');
    if (zstd) {
      return {
        algorithm,
        level,
        implementation: `zstd -${level} -T${n}`,
        external: { file: zstd, args: ['-q', `-${level}`, `-T${n}`, '-c'], env, name: 'zstd' },
        checkDecoder: await lowPriority({ file: zstd, args: ['-q', '-d', '-c'], env, name: 'zstd -d' }),
        counter: await byteCounter(),
        countingExternal: {
          command: {
            file: zstd,
            args: ['-vv', '--no-progress', `-${level}`, `-T${n}`, '-c'],
            env,
            name: 'zstd',
          },
          bytes: zstdRawBytes,
        },
      };
    }
    return {
      algorithm,
      level,
      implementation: `node zlib zstd (${n} threads)`,
      inProcess: () => new ParallelCompress(zstdBlocks(level), n, 4 * 1024 * 1024),
    };
  }
  const pigz = process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR ? null : await which('pigz');
  if (pigz) {
    return {
      algorithm,
      level,
      implementation: `pigz -${level} -p${n}`,
      external: { file: pigz, args: [`-${level}`, `-p${n}`, '-c'], env, name: 'pigz' },
      checkDecoder: await lowPriority({ file: pigz, args: ['-d', '-c'], env, name: 'pigz -d' }),
      counter: await byteCounter(),
    };
  }
  // Node's zlib is faster per core than GNU gzip, and the thread pool makes it parallel.
  return {
    algorithm,
    level,
    implementation: `node zlib gzip (${n} threads)`,
    inProcess: () => new ParallelCompress(gzipBlocks(level), n),
  };
}

/** `dd` copying stdin to stdout; its last stderr line gives the exact byte count (C locale: "N bytes …"). */
async function byteCounter(): Promise<ToolCommand | undefined> {
  const dd = await which('dd');
  return dd ? { file: dd, args: ['bs=1M'], env: { ...process.env, LC_ALL: 'C' }, name: 'dd' } : undefined;
}

/** The raw byte count in `dd`'s report ("123 bytes (123 B) copied, …"; BSD: "123 bytes transferred …"). */
export function ddBytes(line: string): number | null {
  const m = /^(\d+) bytes\b/.exec(line.trim());
  return m?.[1] ? Number(m[1]) : null;
}

/** The command run under `nice -n 19` when nice is there (measured: half the check's cost on a busy machine). */
async function lowPriority(cmd: ToolCommand): Promise<ToolCommand> {
  const nice = await which('nice');
  return nice ? { ...cmd, file: nice, args: ['-n', '19', cmd.file, ...cmd.args] } : cmd;
}

/**
 * The largest object (de)compressed in this process rather than by an external program: `fallback`
 * unless DBBACKUP_IN_PROCESS_MAX_BYTES says otherwise (0: always the programs, as tests of their
 * paths need; a larger figure for hosts where starting a program is dear).
 */
export function inProcessLimit(fallback: number): number {
  const given = process.env.DBBACKUP_IN_PROCESS_MAX_BYTES;
  if (given === undefined || given === '') return fallback;
  const n = Number(given);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

export interface DecompressionPlan {
  algorithm: CompressionAlgorithm;
  external?: ToolCommand;
  inProcess?: () => Duplex;
}

/**
 * How to decompress: by the external program when there is one, else in this process. `small`: the
 * stored object is small enough that starting a program costs more than decoding it here.
 */
export async function planDecompression(
  algorithm: CompressionAlgorithm,
  small = false,
): Promise<DecompressionPlan> {
  const env = { ...process.env };
  // DBBACKUP_NO_EXTERNAL_COMPRESSOR: the in-process fallbacks, as on a host without the programs.
  const external = !process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR && !small;
  if (algorithm === 'zstd') {
    const zstd = external ? await which('zstd') : null;
    if (zstd) return { algorithm, external: { file: zstd, args: ['-q', '-d', '-c'], env, name: 'zstd' } };
    // Node's own zstd decoder stops after the first frame: see zstd-frames.ts.
    return { algorithm, inProcess: () => createZstdFramesDecompress() };
  }
  if (algorithm === 'gzip') {
    const pigz = external ? await which('pigz') : null;
    if (pigz) return { algorithm, external: { file: pigz, args: ['-d', '-c'], env, name: 'pigz' } };
    return { algorithm, inProcess: () => zlib.createGunzip() };
  }
  return { algorithm };
}

/** Compression from the first bytes of a file, never its name. */
export function detectCompression(head: Buffer): CompressionAlgorithm {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}
