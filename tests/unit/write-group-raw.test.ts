import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { commitUnit } from '../../src/catalog/commit.js';
import { planCompression } from '../../src/pipeline/compression.js';
import { compressionFor, startWriteGroup } from '../../src/pipeline/filter-group.js';
import { ToolProcess } from '../../src/pipeline/process.js';
import { LocalStorage } from '../../src/storage/local/local.js';

const dirs: string[] = [];
async function store(): Promise<LocalStorage> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dbb-wgr-'));
  dirs.push(dir);
  return new LocalStorage(dir);
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function producer(script: string): ToolProcess {
  return new ToolProcess(
    { file: 'sh', args: ['-c', script], env: process.env, name: 'producer' },
    ['ignore', 'pipe', 'pipe'],
    () => 'error',
  );
}

/** `seq 1 200000` (1,288,895 bytes) then `END\n`. */
const SCRIPT = 'seq 1 200000; echo END';
const SCRIPT_BYTES = 1_288_895 + 4;

describe('write group: measuring the raw bytes', () => {
  it('beside an external compressor: the exact raw size (dd relay) and the decoded end, no raw byte in this process', async () => {
    const plan = await planCompression('zstd', 1);
    if (!plan.external || !plan.counter || !plan.checkDecoder) throw new Error('needs zstd and dd');
    const s = await store();
    const group = startWriteGroup({
      source: producer(SCRIPT),
      compression: plan,
      measureRaw: { tail: true },
    });
    await commitUnit([s], {}, (c) => c.put('obj', group));
    const raw = group.raw();
    expect(raw.inProcess).toBe(false);
    expect(raw.bytes).toBe(SCRIPT_BYTES);
    expect(raw.tail?.toString()).toMatch(/199999\n200000\nEND\n$/);
  });

  it('in process: size, first and last bytes', async () => {
    const s = await store();
    const data = Buffer.from(`HEAD${'x'.repeat(100_000)}TAIL`);
    const group = startWriteGroup({
      source: Readable.from([data]),
      compression: await compressionFor('gzip', 1, data.length),
      measureRaw: {},
    });
    await commitUnit([s], {}, (c) => c.put('obj', group));
    const raw = group.raw();
    expect(raw.inProcess).toBe(true);
    expect(raw.bytes).toBe(data.length);
    expect(raw.head?.subarray(0, 4).toString()).toBe('HEAD');
    expect(raw.tail?.subarray(-4).toString()).toBe('TAIL');
  });

  it('the check sees what was measured and can refuse it: nothing is stored', async () => {
    const plan = await planCompression('zstd', 1);
    const s = await store();
    const group = startWriteGroup({
      source: producer('echo partial'),
      compression: plan,
      measureRaw: { tail: true },
      check: (raw) => {
        if (!/END\n$/.test(raw.tail?.toString() ?? '')) throw new Error('no trailer in what was produced');
      },
    });
    await expect(commitUnit([s], {}, (c) => c.put('obj', group))).rejects.toThrow(/no trailer/);
    expect(await readdir(s.root)).toEqual([]);
  });
});

describe('commit protocol: ownership and discarding', () => {
  it("a rollback leaves a store alone whose object is not provably this run's", async () => {
    const [a, b] = [await store(), await store()];
    await expect(
      commitUnit([a, b], { owns: async (st) => st === a }, async (c) => {
        await c.put('x', Readable.from([Buffer.from('hello')]));
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await readdir(a.root)).toEqual([]);
    expect(await readdir(b.root)).toEqual(['x']);
  });

  it('discard removes one object of the unit; the rest commits', async () => {
    const s = await store();
    await commitUnit([s], {}, async (c) => {
      await c.put('unit/a', Readable.from([Buffer.from('a')]));
      await c.put('unit/b', Readable.from([Buffer.from('b')]));
      await c.discard('unit/b');
      await c.finish('unit/manifest.json', '{}');
      expect(c.keys).toEqual(['unit/a', 'unit/manifest.json']);
    });
    expect((await readdir(path.join(s.root, 'unit'))).sort()).toEqual(['a', 'manifest.json']);
  });
});
