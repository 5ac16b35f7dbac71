import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { settleFeed, toolFailureHint } from '../../src/pipeline/process.js';

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

describe('toolFailureHint', () => {
  it.each([
    ['pg_dump: error: query failed: ERROR:  permission denied for table t', /dbbackup preflight/],
    [
      "mysqldump: Couldn't execute 'SHOW FIELDS FROM `v`': View 'db.v' references invalid table(s)",
      /A view is broken/,
    ],
    ['ERROR 1142 (42000) at line 12: CREATE command denied to user', /privilege/],
    [
      'pg_restore: error: could not execute query: ERROR:  could not extend file: No space left on device',
      /disk/,
    ],
    ['ERROR 1205 (HY000): Lock wait timeout exceeded; try restarting transaction', /lock/],
    ['pg_dump: error: connection to server on socket failed: Connection refused', /connection/],
  ])('%s', (line, hint) => expect(toolFailureHint([line])).toMatch(hint));

  it('falls back to pointing at the quoted error', () => {
    expect(toolFailureHint(['something odd'])).toMatch(/tool's own error/);
  });
});
