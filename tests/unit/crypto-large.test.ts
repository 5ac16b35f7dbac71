import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { keyProtector, keyUnlocker } from '../../src/crypto/protectors.js';
import { createDecryptStream, createEncryptStream } from '../../src/crypto/stream.js';

const MiB = 1024 * 1024;
const TOTAL = 1024 * MiB + 12_345; // ≥ 1 GiB, ending inside a chunk
const BLOCK = MiB;

describe('a 1 GiB stream', () => {
  it('encrypts and decrypts through the streams in bounded memory', async () => {
    // Generated, not stored: a few random blocks sent over and over (the streams never modify
    // their input); the output is compared with them byte for byte as it arrives.
    const pool = Array.from({ length: 7 }, () => randomBytes(BLOCK));
    const blockAt = (offset: number): Buffer =>
      pool[Math.floor(offset / BLOCK) % pool.length] ?? Buffer.alloc(0);
    let sent = 0;
    let i = 0;
    const source = new Readable({
      read() {
        if (sent >= TOTAL) {
          this.push(null);
          return;
        }
        const block = (pool[i++ % pool.length] ?? Buffer.alloc(0)).subarray(0, Math.min(BLOCK, TOTAL - sent));
        sent += block.length;
        this.push(block);
      },
    });
    let received = 0;
    let mismatchAt = -1;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (let pos = 0; pos < chunk.length && mismatchAt < 0;) {
          const inner = (received + pos) % BLOCK;
          const n = Math.min(chunk.length - pos, BLOCK - inner);
          const expected = blockAt(received + pos).subarray(inner, inner + n);
          if (!chunk.subarray(pos, pos + n).equals(expected)) mismatchAt = received + pos;
          pos += n;
        }
        received += chunk.length;
        cb();
      },
    });

    const key = randomBytes(32);
    const { stream: encrypt } = createEncryptStream([keyProtector(key)]);
    const decrypt = createDecryptStream([keyUnlocker(key)]);
    let sealedBytes = 0;
    encrypt.on('data', (c: Buffer) => (sealedBytes += c.length));

    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 25);
    const started = performance.now();
    try {
      await pipeline(source, encrypt, decrypt, sink);
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - started) / 1000;
    peak = Math.max(peak, process.memoryUsage().rss);

    expect(received).toBe(TOTAL);
    expect(mismatchAt).toBe(-1);
    expect(encrypt.chunks).toBe(Math.ceil(TOTAL / 65536));
    expect(sealedBytes).toBe(encrypt.headerBytes.length + TOTAL + 16 * encrypt.chunks);
    console.log(
      `1 GiB encrypt+decrypt (one process, both directions): ${(TOTAL / MiB / seconds).toFixed(0)} MiB/s; ` +
        `rss ${(before / MiB).toFixed(0)} → peak ${(peak / MiB).toFixed(0)} MiB`,
    );
    expect(peak).toBeLessThan(Math.max(200 * MiB, before + 150 * MiB));
    expect(peak - before).toBeLessThan(150 * MiB);
    // About 5 s on an idle machine; generous for a loaded CI host.
  }, 180_000);
});
