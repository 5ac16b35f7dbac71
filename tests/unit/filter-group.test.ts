import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { commitUnit, InterruptedError } from '../../src/catalog/commit.js';
import {
  createDecryptStream,
  createEncryptStream,
  describeEncryption,
  keyProtector,
  keyUnlocker,
} from '../../src/crypto/index.js';
import { IntegrityError } from '../../src/errors.js';
import { planCompression } from '../../src/pipeline/compression.js';
import {
  compressionFor,
  memorySink,
  runReadGroup,
  startWriteGroup,
} from '../../src/pipeline/filter-group.js';
import { ToolProcess } from '../../src/pipeline/process.js';
import { DecodedTail } from '../../src/pipeline/decoded-tail.js';
import { LocalStorage } from '../../src/storage/local/local.js';

const dirs: string[] = [];
async function store(): Promise<LocalStorage> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dbb-fg-'));
  dirs.push(dir);
  return new LocalStorage(dir);
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    out.push(e.name);
    if (e.isDirectory()) out.push(...(await walk(path.join(dir, e.name))).map((n) => `${e.name}/${n}`));
  }
  return out;
}

describe('filter groups', () => {
  it('write then read: compressed, encrypted, checksummed; the read proves the decoded bytes', async () => {
    const s = await store();
    const data = Buffer.concat([randomBytes(300_000), Buffer.alloc(700_000, 7)]);
    const key = randomBytes(32);
    const { stream, header } = createEncryptStream([keyProtector(key)]);
    const group = startWriteGroup({
      source: Readable.from([data]),
      compression: await compressionFor('zstd', 1, data.length),
      encryption: { stream, description: describeEncryption(header) },
    });
    await commitUnit([s], {}, async (c) => {
      await c.put('obj', group);
      await c.verify('obj', group.result().storedBytes);
    });
    const r = group.result();
    expect(r.storedBytes).toBeLessThan(data.length);
    expect(r.encryption).not.toBeNull();
    const sink = memorySink(2 * data.length);
    const read = await runReadGroup({
      source: await s.get('obj'),
      expected: { sha256: r.storedSha256, bytes: r.storedBytes },
      decrypt: createDecryptStream([keyUnlocker(key)]),
      compression: 'zstd',
      sizeHint: r.storedBytes,
      decodedSha256: (await import('node:crypto')).createHash('sha256').update(data).digest('hex'),
      sink: { kind: 'stream', stream: sink.stream },
    });
    expect(read.decodedBytes).toBe(data.length);
    expect(sink.bytes().equals(data)).toBe(true);
  });

  it('a stored object with a flipped byte fails the read as damage, never as success', async () => {
    const s = await store();
    const data = randomBytes(200_000);
    const group = startWriteGroup({
      source: Readable.from([data]),
      compression: await compressionFor('zstd', 1, data.length),
    });
    await s.put('obj', group.readable);
    const file = path.join(s.root, 'obj');
    const bytes = await readFile(file);
    bytes[100] = (bytes[100] ?? 0) ^ 1;
    await writeFile(file, bytes);
    const r = group.result();
    await expect(
      runReadGroup({
        source: await s.get('obj'),
        expected: { sha256: r.storedSha256, bytes: r.storedBytes },
        compression: 'zstd',
        sizeHint: r.storedBytes,
        sink: { kind: 'stream', stream: memorySink(1e7).stream },
      }),
    ).rejects.toBeInstanceOf(IntegrityError);
  });

  it("the producing program's own failure is reported first, through an external compressor; nothing is stored", async () => {
    const s = await store();
    const plan = await planCompression('zstd', 1);
    expect(plan.external).toBeDefined();
    const source = new ToolProcess(
      {
        file: 'sh',
        args: ['-c', 'printf partial; echo "it broke" >&2; exit 3'],
        env: process.env,
        name: 'producer',
      },
      ['ignore', 'pipe', 'pipe'],
      () => 'error',
    );
    const group = startWriteGroup({ source, compression: plan });
    const err = await commitUnit([s], {}, (c) => c.put('obj', group)).catch((e: unknown) => e);
    expect(String(err)).toMatch(/producer failed \(exit code 3\): it broke/);
    expect(await walk(s.root)).toEqual([]);
  });
});

describe('filter groups: taps on the compressed side', () => {
  it('a DecodedTail after an external compressor proves the stored bytes decode, and sees the raw end', async () => {
    const plan = await planCompression('zstd', 1);
    if (!plan.external || !plan.checkDecoder) throw new Error('needs the zstd program');
    const s = await store();
    const source = new ToolProcess(
      { file: 'sh', args: ['-c', 'seq 1 200000; echo THE-END'], env: process.env, name: 'producer' },
      ['ignore', 'pipe', 'pipe'],
      () => 'error',
    );
    const tail = new DecodedTail(plan.checkDecoder, 15);
    const group = startWriteGroup({ source, compression: plan, compressedTaps: [tail] });
    await commitUnit([s], {}, (c) => c.put('obj', group));
    expect(tail.tail.toString()).toBe('200000\nTHE-END\n');
  });
});

describe('commit protocol', () => {
  it('a failure after some puts deletes what was written, metadata first, and its directories', async () => {
    const s = await store();
    await expect(
      commitUnit([s], {}, async (c) => {
        await c.put('unit/a', Readable.from([Buffer.from('a')]));
        await c.putSmall('unit/meta.json', '{}');
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await walk(s.root)).toEqual([]);
  });

  it('an interrupt stops the running put and rolls back: exit 130, nothing left', async () => {
    const s = await store();
    const controller = new AbortController();
    const slow = new Readable({ read() {} });
    slow.push(Buffer.alloc(1000));
    const group = startWriteGroup({ source: slow, compression: await compressionFor('zstd', 1, 1000) });
    const run = commitUnit([s], { signal: controller.signal }, async (c) => {
      await c.put('unit/first', Readable.from([Buffer.from('x')]));
      await c.put('unit/second', group);
    });
    setTimeout(() => controller.abort(), 50);
    await expect(run).rejects.toBeInstanceOf(InterruptedError);
    expect(await walk(s.root)).toEqual([]);
  });

  it('writes to several stores from one stream', async () => {
    const [a, b] = [await store(), await store()];
    await commitUnit([a, b], {}, async (c) => {
      await c.put('x', Readable.from([Buffer.from('hello')]));
      await c.verify('x', 5);
      await c.finish('x.meta.json', '{}');
    });
    expect((await readFile(path.join(a.root, 'x'))).toString()).toBe('hello');
    expect((await readFile(path.join(b.root, 'x.meta.json'))).toString()).toBe('{}');
  });
});
