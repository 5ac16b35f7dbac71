import { createHash } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { CommitGate, HashCounter, Sampler } from '../../src/pipeline/hash.js';
import { random, runThrough, splitInto } from './helpers.js';

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

describe('HashCounter', () => {
  const data = random(300_000);
  const expected = createHash('sha256').update(data).digest('hex');

  for (const sizes of [[data.length], [1, 2, 3, 65536], [4095, 4096, 4097], [100_000, 7]]) {
    it(`matches crypto sha256 with chunks of ${sizes.join('/')} bytes and passes bytes through`, async () => {
      const hash = new HashCounter();
      const out = await runThrough(hash, splitInto(data, sizes));
      expect(hash.sha256).toBe(expected);
      expect(hash.bytes).toBe(data.length);
      expect(out.equals(data)).toBe(true);
    });
  }

  it('hashes the empty stream as the empty string', async () => {
    const hash = new HashCounter();
    await runThrough(hash, []);
    expect(hash.sha256).toBe(createHash('sha256').digest('hex'));
    expect(hash.bytes).toBe(0);
  });

  it('refuses to give a digest before the stream has ended', () => {
    const hash = new HashCounter();
    hash.write(Buffer.from('abc'));
    expect(() => hash.sha256).toThrow(/before the end/);
  });
});

describe('CommitGate', () => {
  it('passes data on at once but holds the end until the check resolves', async () => {
    let resolve!: () => void;
    const gate = new CommitGate(() => new Promise<void>((r) => (resolve = r)));
    const seen: Buffer[] = [];
    let ended = false;
    gate.on('data', (c: Buffer) => seen.push(c));
    gate.on('end', () => (ended = true));
    gate.write(Buffer.from('hello '));
    gate.end(Buffer.from('world'));
    await tick();
    expect(Buffer.concat(seen).toString()).toBe('hello world');
    expect(ended).toBe(false);
    resolve();
    await tick();
    expect(ended).toBe(true);
  });

  for (const [label, reason] of [
    ['an Error', new Error('pg_dump exited with code 1')],
    ['a string', 'pg_dump exited with code 1'],
  ] as const) {
    it(`errors the stream, and the sink never finishes, when the check rejects with ${label}`, async () => {
      const gate = new CommitGate(() => Promise.reject(reason));
      let finished = false;
      const received: Buffer[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _e, cb) {
          received.push(chunk);
          cb();
        },
        final(cb) {
          finished = true;
          cb();
        },
      });
      let ended = false;
      gate.on('end', () => (ended = true));
      await expect(pipeline(Readable.from([Buffer.from('partial dump')]), gate, sink)).rejects.toThrow(
        'pg_dump exited with code 1',
      );
      expect(Buffer.concat(received).toString()).toBe('partial dump');
      expect(ended).toBe(false);
      expect(finished).toBe(false);
    });
  }

  it('does not run the check before the input has ended', async () => {
    let checked = false;
    const gate = new CommitGate(async () => {
      checked = true;
    });
    const input = new PassThrough();
    const done = pipeline(input, gate, new Writable({ write: (_c, _e, cb) => cb() }));
    input.write('a');
    await tick();
    expect(checked).toBe(false);
    input.end();
    await done;
    expect(checked).toBe(true);
  });
});

describe('Sampler', () => {
  const data = random(50_000);

  for (const sizes of [[1], [3, 5, 7, 11], [4095, 1, 4097], [20_000, 2, 29_998], [data.length]]) {
    it(`keeps the first and last 4096 bytes with chunks of ${sizes.join('/')}`, async () => {
      const input = sizes[0] === 1 ? data.subarray(0, 12_000) : data;
      const sampler = new Sampler();
      const out = await runThrough(sampler, splitInto(input, sizes));
      expect(sampler.bytes).toBe(input.length);
      expect(sampler.head.equals(input.subarray(0, 4096))).toBe(true);
      expect(sampler.tail.equals(input.subarray(input.length - 4096))).toBe(true);
      expect(out.equals(input)).toBe(true);
    });
  }

  it('keeps everything when the stream is shorter than the sample', async () => {
    const short = random(1000);
    const sampler = new Sampler();
    await runThrough(sampler, splitInto(short, [300]));
    expect(sampler.head.equals(short)).toBe(true);
    expect(sampler.tail.equals(short)).toBe(true);
  });

  it('honours a custom sample size across chunk boundaries', async () => {
    const input = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
    for (const sizes of [[1], [9], [10], [11], [4, 30]]) {
      const sampler = new Sampler(10);
      await runThrough(sampler, splitInto(input, sizes));
      expect(sampler.head.toString(), sizes.join('/')).toBe('0123456789');
      expect(sampler.tail.toString(), sizes.join('/')).toBe('qrstuvwxyz');
    }
  });
});
