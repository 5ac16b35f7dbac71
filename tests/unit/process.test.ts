import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { settleFeed } from '../../src/pipeline/process.js';

describe('settleFeed', () => {
  it('cuts a feed that can no longer move once its reader is gone', async () => {
    // A source that never ends into a sink nobody reads: the pipeline alone would never settle.
    const source = new Readable({ read() {} });
    source.push(Buffer.alloc(1024));
    const sink = new PassThrough({ highWaterMark: 16 });
    const feeding = pipeline(source, sink);
    const started = Date.now();
    await expect(settleFeed(feeding, [source, sink], 100)).rejects.toThrow('the reading process exited');
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(source.destroyed && sink.destroyed).toBe(true);
  });

  it('leaves a feed that completes alone, and reports its own error', async () => {
    const done = new PassThrough();
    done.resume();
    await settleFeed(pipeline(Readable.from([Buffer.from('abc')]), done), [], 50);

    const child = spawn('head', ['-c', '1'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const big = Readable.from(
      (function* () {
        for (let i = 0; i < 1000; i++) yield Buffer.alloc(64 * 1024);
      })(),
    );
    const feeding = pipeline(big, child.stdin);
    feeding.catch(() => undefined); // judged below, after the exit
    await new Promise((resolve) => child.once('close', resolve));
    // head read one byte and left: the rest is a broken pipe, reported as the feed's error.
    await expect(settleFeed(feeding, [big, child.stdin], 5000)).rejects.toThrow();
  });
});
