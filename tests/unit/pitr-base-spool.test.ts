import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { follow } from '../../src/pitr/base-spool.js';

async function collect(it: AsyncGenerator<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of it) parts.push(b);
  return Buffer.concat(parts);
}

describe('follow: reading a file pg_basebackup is still writing', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'spool-test-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('yields every byte appended until the writer finished, created late and written in bursts, and leaves no name behind', async () => {
    const file = path.join(dir, 'base.tar.zst');
    const parts = [randomBytes(10), randomBytes(3 * 1024 * 1024 + 7), randomBytes(1), randomBytes(200_000)];
    // The writer creates the file late and keeps its handle open (as pg_basebackup's fopen): the
    // reader unlinks the name once it has opened it, and both go on with the same inode.
    const done = (async () => {
      await sleep(120);
      const held = await open(file, 'a');
      try {
        for (const p of parts) {
          await held.write(p);
          await sleep(80);
        }
      } finally {
        await held.close();
      }
    })();
    const got = await collect(follow(file, done));
    expect(got.equals(Buffer.concat(parts))).toBe(true);
    expect(await readdir(dir)).toEqual([]);
  });

  it("ends with the writer's failure, not with a short file", async () => {
    const file = path.join(dir, 'base.tar.zst');
    await writeFile(file, randomBytes(1000));
    const failing = sleep(100).then(() => {
      throw new Error('pg_basebackup: error: could not receive data');
    });
    await expect(collect(follow(file, failing))).rejects.toThrow(/could not receive data/);
  });

  it('refuses a writer that ended without creating the file', async () => {
    await expect(collect(follow(path.join(dir, 'base.tar.zst'), sleep(60)))).rejects.toThrow(
      /ended without writing base\.tar\.zst/,
    );
  });
});
