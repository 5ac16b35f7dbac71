import { spawnSync } from 'node:child_process';
import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { which } from '../../src/engines/tools.js';
import { UsageError } from '../../src/errors.js';
import {
  DEFAULT_LEVEL,
  detectCompression,
  planCompression,
  planDecompression,
  validateLevel,
  zstdRawBytes,
  type CompressionAlgorithm,
} from '../../src/pipeline/compression.js';
import { ParallelCompress, gzipBlocks, zstdBlocks } from '../../src/pipeline/parallel-compress.js';
import { random, repetitive, runThrough, splitInto } from './helpers.js';

type Algo = Exclude<CompressionAlgorithm, 'none'>;

function decompressInNode(algo: Algo, data: Buffer): Buffer {
  return algo === 'gzip' ? zlib.gunzipSync(data) : zlib.zstdDecompressSync(data);
}

/** What the user's own tools make of the file: `gzip -dc` / `zstd -dc`. */
function decompressWithCli(algo: Algo, data: Buffer): Buffer {
  const r = spawnSync(algo, ['-dc'], { input: data, maxBuffer: 64 * 1024 * 1024 });
  expect(r.error).toBeUndefined();
  expect(r.status, r.stderr?.toString()).toBe(0);
  return r.stdout;
}

/**
 * Node's zstd decoder stops after the first frame unless that frame's output is a multiple of its
 * 16 KiB chunk (nodejs/node#64741), so multi-frame zstd with odd-sized frames is checked with the
 * CLI only (`node: false`).
 */
function expectRoundTrip(algo: Algo, compressed: Buffer, input: Buffer, node = true): void {
  expect(detectCompression(compressed)).toBe(algo);
  // Compare as buffers (not digests) so a mismatch shows where order broke.
  if (node) expect(decompressInNode(algo, compressed).equals(input)).toBe(true);
  expect(decompressWithCli(algo, compressed).equals(input)).toBe(true);
}

describe('detectCompression', () => {
  it('reads the magic bytes of real compressed data', () => {
    expect(detectCompression(zlib.gzipSync('hello'))).toBe('gzip');
    expect(detectCompression(zlib.zstdCompressSync('hello'))).toBe('zstd');
    const cli = spawnSync('zstd', ['-q', '-c'], { input: Buffer.from('hello') });
    expect(detectCompression(cli.stdout)).toBe('zstd');
  });

  it('says none for plain data and for buffers too short to hold a magic number', () => {
    expect(detectCompression(Buffer.from('PGDMP\x01\x0e'))).toBe('none');
    expect(detectCompression(Buffer.from('-- MySQL dump'))).toBe('none');
    expect(detectCompression(Buffer.alloc(0))).toBe('none');
    expect(detectCompression(Buffer.from([0x1f]))).toBe('none');
    expect(detectCompression(Buffer.from([0x28, 0xb5, 0x2f]))).toBe('none');
    expect(detectCompression(Buffer.from([0x8b, 0x1f]))).toBe('none');
  });
});

describe('validateLevel', () => {
  const cases: Array<[CompressionAlgorithm, number[], number[]]> = [
    ['zstd', [1, 3, 19], [0, 20, -1, 2.5, Number.NaN, 22]],
    ['gzip', [1, 6, 9], [0, 10, -1, 4.5, Number.NaN]],
    ['none', [0], [1, -1, 9]],
  ];
  for (const [algo, good, bad] of cases) {
    it(`${algo}: accepts ${good.join(', ')} and rejects ${bad.join(', ')}`, () => {
      for (const level of good) expect(validateLevel(algo, level)).toBe(level);
      for (const level of bad) {
        let caught: unknown;
        try {
          validateLevel(algo, level);
        } catch (err) {
          caught = err;
        }
        expect(caught, `level ${level}`).toBeInstanceOf(UsageError);
        expect((caught as UsageError).exitCode).toBe(2);
        expect((caught as UsageError).hint).toBeTruthy();
      }
    });
  }

  it('uses the default level when none is given', () => {
    for (const algo of ['zstd', 'gzip', 'none'] as const) {
      const level = validateLevel(algo, undefined);
      expect(level).toBe(DEFAULT_LEVEL[algo]);
      // The default itself must be a level the user could have typed.
      expect(validateLevel(algo, level)).toBe(level);
    }
  });
});

describe('planCompression', () => {
  const saved = process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR;
  afterEach(() => {
    if (saved === undefined) delete process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR;
    else process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR = saved;
  });

  it('uses the zstd program when it is installed', async () => {
    delete process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR;
    const zstd = await which('zstd');
    expect(zstd, 'zstd must be installed for this test').toBeTruthy();
    const plan = await planCompression('zstd', 7);
    expect(plan.external?.file).toBe(zstd);
    expect(plan.external?.args).toContain('-7');
    expect(plan.inProcess).toBeUndefined();
    expect(plan.implementation).toMatch(/^zstd -7/);
  });

  it('uses pigz for gzip only when pigz is installed', async () => {
    delete process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR;
    const pigz = await which('pigz');
    const plan = await planCompression('gzip', 6);
    expect(Boolean(plan.external)).toBe(Boolean(pigz));
    expect(Boolean(plan.inProcess)).toBe(!pigz);
  });

  it('plans nothing for none', async () => {
    const plan = await planCompression('none', 0);
    expect(plan.external).toBeUndefined();
    expect(plan.inProcess).toBeUndefined();
  });

  for (const algo of ['gzip', 'zstd'] as const) {
    it(`${algo} in process (DBBACKUP_NO_EXTERNAL_COMPRESSOR=1) round-trips`, async () => {
      process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR = '1';
      const plan = await planCompression(algo, 1);
      expect(plan.external).toBeUndefined();
      expect(plan.inProcess).toBeDefined();
      expect(plan.implementation).toContain('node zlib');
      // The last input spans two 4 MiB zstd frames: restore's in-process fallback (Node's decoder)
      // must read both, which holds only while the block size is a multiple of 16 KiB.
      const inputs = [
        Buffer.alloc(0),
        Buffer.from('x'),
        random(1024 * 1024 + 1),
        repetitive(5 * 1024 * 1024 + 3),
      ];
      for (const input of inputs) {
        const out = await runThrough(plan.inProcess!(), splitInto(input, [65536, 1, 100_000]));
        expectRoundTrip(algo, out, input);
      }
    });
  }
});

describe('planDecompression in process (no zstd/pigz program)', () => {
  afterEach(() => {
    delete process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR;
  });

  it('reads back every frame/member the in-process compressors write, whatever their size', async () => {
    process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR = '1';
    const input = repetitive(300_000);
    for (const algo of ['gzip', 'zstd'] as const) {
      const blocks = algo === 'gzip' ? gzipBlocks(6) : zstdBlocks(3);
      // 10,007-byte blocks: zstd frames whose output is not a multiple of 16 KiB (nodejs/node#64741).
      const compressed = await runThrough(new ParallelCompress(blocks, 3, 10_007), splitInto(input, [8192]));
      const plan = await planDecompression(algo);
      expect(plan.external).toBeUndefined();
      const out = await runThrough(plan.inProcess!(), splitInto(compressed, [4096]));
      expect(out.equals(input), algo).toBe(true);
    }
  });
});

describe('ParallelCompress (small blocks)', () => {
  const KiB = 1024;
  const factories = { gzip: () => gzipBlocks(6), zstd: () => zstdBlocks(3) };
  const setups: Array<{ algo: Algo; block: number; node: boolean }> = [
    { algo: 'gzip', block: KiB, node: true },
    { algo: 'zstd', block: KiB, node: false },
    { algo: 'zstd', block: 16 * KiB, node: true },
  ];

  for (const { algo, block, node } of setups) {
    const sizes = [0, 1, block - 1, block, block + 1, 5 * block + 17, 20 * block + 3];
    for (const size of sizes) {
      it(`${algo}, ${block}-byte blocks: ${size} bytes of random and repetitive data keep their order`, async () => {
        for (const input of [random(size), repetitive(size)]) {
          // Chunk sizes that straddle block boundaries in every way.
          for (const chunking of [[size || 1], [1, 1, 1, 997], [700, 3000, 64]]) {
            const out = await runThrough(
              new ParallelCompress(factories[algo](), 3, block),
              splitInto(input, chunking),
            );
            expectRoundTrip(algo, out, input, node);
          }
        }
      });
    }
  }

  it('emits blocks in input order even when later blocks finish first', async () => {
    const input = repetitive(40 * KiB + 5);
    const gzip = gzipBlocks(1);
    let n = 0;
    // Earlier blocks take longer: any reordering would corrupt the output.
    const slowFirst = async (block: Buffer): Promise<Buffer> => {
      const delay = Math.max(0, 30 - 3 * n++);
      await new Promise((r) => setTimeout(r, delay));
      return gzip(block);
    };
    const out = await runThrough(new ParallelCompress(slowFirst, 8, KiB), splitInto(input, [10 * KiB]));
    expect(n).toBe(41);
    expectRoundTrip('gzip', out, input);
  });

  it('fails the stream when a block cannot be compressed', async () => {
    let n = 0;
    const failing = async (block: Buffer): Promise<Buffer> => {
      if (n++ === 2) throw new Error('compressor exploded');
      return zlib.gzipSync(block);
    };
    await expect(
      runThrough(new ParallelCompress(failing, 2, KiB), splitInto(random(8 * KiB), [512])),
    ).rejects.toThrow('compressor exploded');
  });
});

describe('zstdRawBytes (the raw size from the compressor itself, instead of a dd relay)', () => {
  it('reads the exact count from the -vv summary of 1.5 and 1.4, and nothing from -v', () => {
    expect(zstdRawBytes('/*stdin*\\            : 26.65%   (538178547 B => 143410653 B, /*stdout*\\) ')).toBe(
      538178547,
    );
    expect(zstdRawBytes('/*stdin*\\ : 25.02%   (50000000 => 12512165 bytes, /*stdout*\\)')).toBe(50000000);
    expect(zstdRawBytes('/*stdin*\\ : 25.02%   (  47.7 MiB =>   11.9 MiB, /*stdout*\\)')).toBeNull();
    expect(zstdRawBytes('Decompression will require 2097152 B of memory')).toBeNull();
  });

  it('matches what the installed zstd prints, byte for byte', () => {
    const zstd = spawnSync('zstd', ['-vv', '--no-progress', '-3', '-T2', '-c'], {
      input: repetitive(300_000),
    });
    const size = repetitive(300_000).length;
    expect(zstd.status).toBe(0);
    const counts = zstd.stderr
      .toString()
      .split(/[\r\n]+/)
      .map(zstdRawBytes)
      .filter((n) => n !== null);
    expect(counts).toEqual([size]);
  });
});
