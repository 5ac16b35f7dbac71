import { spawnSync } from 'node:child_process';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../../src/errors.js';
import { ParallelCompress, zstdBlocks } from '../../src/pipeline/parallel-compress.js';
import { createZstdFramesDecompress, ZstdFrameSplitter } from '../../src/pipeline/zstd-frames.js';
import { random, repetitive, runThrough, splitInto } from './helpers.js';

const zstd = (data: Buffer, level = 3): Buffer =>
  zlib.zstdCompressSync(data, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });

/** What the zstd program writes: with a content checksum, and without the content size (streamed). */
function zstdCli(data: Buffer, ...args: string[]): Buffer {
  const r = spawnSync('zstd', ['-c', '-q', ...args], { input: data, maxBuffer: 256 * 1024 * 1024 });
  expect(r.status, r.stderr?.toString()).toBe(0);
  return r.stdout;
}

/** A skippable frame (magic 0x184D2A5x, 4-byte size, then anything). */
function skippable(payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a53, 0);
  head.writeUInt32LE(payload.length, 4);
  return Buffer.concat([head, payload]);
}

async function decode(chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    createZstdFramesDecompress(),
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) out.push(chunk);
    },
  );
  return Buffer.concat(out);
}

describe('createZstdFramesDecompress', () => {
  it('reads every frame, however the input is chunked, where Node alone stops after the first', async () => {
    const parts = [repetitive(100_003), random(5_000), repetitive(1), Buffer.from('tail')];
    const compressed = Buffer.concat(parts.map((p) => zstd(p)));
    const original = Buffer.concat(parts);
    for (const sizes of [[compressed.length], [1], [3, 5, 7], [4096], [100, 1, 65536]]) {
      expect((await decode(splitInto(compressed, sizes))).equals(original), String(sizes)).toBe(true);
    }
  });

  it('reads the zstd program output (checksums, multi-threaded, concatenated) and skips skippable frames', async () => {
    const a = repetitive(3_000_000);
    const b = random(70_000);
    const stream = Buffer.concat([
      zstdCli(a, '-T2'),
      skippable(Buffer.from('pzstd-style index')),
      zstdCli(b, '--no-check'),
      skippable(Buffer.alloc(0)),
      zstdCli(Buffer.alloc(0)),
    ]);
    const out = await decode(splitInto(stream, [65536, 13]));
    expect(out.equals(Buffer.concat([a, b]))).toBe(true);
  });

  it('reads the in-process compressor output with frames of any size', async () => {
    const input = repetitive(200_000);
    const compressed = await runThrough(
      new ParallelCompress(zstdBlocks(3), 3, 10_007),
      splitInto(input, [9000]),
    );
    expect((await decode(splitInto(compressed, [777]))).equals(input)).toBe(true);
  });

  it('fails on a stream cut off anywhere inside a frame, and on bytes that are not a frame', async () => {
    const compressed = Buffer.concat([zstdCli(repetitive(300_000)), zstd(repetitive(1000))]);
    const firstEnd = compressed.length - zstd(repetitive(1000)).length;
    for (const cut of [1, 4, 5, 12, 500, firstEnd - 4, firstEnd - 1, firstEnd + 2, compressed.length - 1]) {
      await expect(decode([compressed.subarray(0, cut)]), `cut at ${cut}`).rejects.toThrow(IntegrityError);
    }
    // At a frame boundary the stream is complete as far as zstd can tell.
    expect((await decode([compressed.subarray(0, firstEnd)])).equals(repetitive(300_000))).toBe(true);
    await expect(decode([Buffer.concat([compressed, Buffer.from('garbage!')])])).rejects.toThrow(
      'no frame starts',
    );
  });

  it('passes an empty stream as empty', async () => {
    expect((await decode([])).length).toBe(0);
  });
});

describe('ZstdFrameSplitter', () => {
  it('marks each frame end once and keeps frame bytes in order', () => {
    const frames = [zstd(Buffer.from('one')), zstd(repetitive(50_000)), zstd(Buffer.from('three'))];
    const splitter = new ZstdFrameSplitter();
    const pieces = splitInto(Buffer.concat(frames), [5]).flatMap((c) => splitter.push(c));
    expect(pieces.filter((p) => p.end).length).toBe(3);
    expect(splitter.midFrame).toBe(false);
    const rebuilt: Buffer[] = [];
    let current: Buffer[] = [];
    for (const p of pieces) {
      current.push(p.data);
      if (p.end) {
        rebuilt.push(Buffer.concat(current));
        current = [];
      }
    }
    expect(rebuilt.map((b) => b.toString('hex'))).toEqual(frames.map((f) => f.toString('hex')));
  });
});

describe('createZstdFramesDecompress in a pipeline', () => {
  it('a stage before it failing ends the pipeline with that error (it used to wait forever)', async () => {
    const failing = new Transform({
      transform(_chunk, _enc, cb) {
        cb(new Error('decryption failed'));
      },
    });
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const run = pipeline(
      Readable.from([Buffer.from('not even zstd')]),
      failing,
      createZstdFramesDecompress(),
      sink,
    );
    const timeout = new Promise<string>((resolve) =>
      setTimeout(() => resolve('still waiting after 5 s'), 5000).unref(),
    );
    const outcome = await Promise.race([
      run.then(
        () => 'resolved',
        (err: Error) => err.message,
      ),
      timeout,
    ]);
    expect(outcome).toBe('decryption failed');
  });
});
