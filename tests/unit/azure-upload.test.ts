import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ContainerClient } from '@azure/storage-blob';
import { DbBackupError, StorageError } from '../../src/errors.js';
import { AzureStorage } from '../../src/storage/azure/azure.js';
import { blockId, stageBlocks, type BlockTarget } from '../../src/storage/azure/blocks.js';
import { random } from './helpers.js';

/** An in-memory block store that records what was staged, with optional delay and failures. */
class FakeTarget implements BlockTarget {
  readonly staged = new Map<string, Buffer>();
  calls = 0;
  active = 0;
  maxActive = 0;
  constructor(private readonly opts: { delayMs?: number; fail?: (call: number) => Error | undefined } = {}) {}
  async stageBlock(id: string, body: Buffer, length: number, o: { abortSignal: AbortSignal }) {
    const call = ++this.calls;
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
      if (o.abortSignal.aborted) throw Object.assign(new Error('aborted'), { name: 'AbortError' });
      const err = this.opts.fail?.(call);
      if (err) throw err;
      expect(body.length).toBe(length);
      // Copy: the uploader recycles its buffers once a stage has resolved.
      this.staged.set(id, Buffer.from(body));
    } finally {
      this.active--;
    }
  }
  assemble(ids: string[]): Buffer {
    return Buffer.concat(ids.map((id) => this.staged.get(id) ?? Buffer.alloc(0)));
  }
}

function chunked(data: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts);
}

describe('stageBlocks', () => {
  it('cuts the stream into blocks that grow after each tenth of the 50,000-block limit', async () => {
    const data = random(5000 * 16 + 100 * 32 + 7);
    const target = new FakeTarget();
    const { ids, size } = await stageBlocks(chunked(data, 1000), target, {
      baseBlockSize: 16,
      concurrency: 4,
    });
    expect(size).toBe(data.length);
    expect(ids.length).toBe(5000 + 100 + 1);
    expect(target.assemble(ids).equals(data)).toBe(true);
    expect(target.staged.get(ids[4999] ?? '')?.length).toBe(16);
    expect(target.staged.get(ids[5000] ?? '')?.length).toBe(32);
    expect(target.staged.get(ids[5100] ?? '')?.length).toBe(7);
  });

  it('uses equal-length base64 block ids that name the upload and the block number', () => {
    const a = blockId('abcdef012345', 1);
    const b = blockId('abcdef012345', 50_000);
    expect(a.length).toBe(b.length);
    expect(Buffer.from(a, 'base64').toString()).toBe('abcdef012345-000001');
    expect(Buffer.from(b, 'base64').toString()).toBe('abcdef012345-050000');
  });

  it('keeps at most `concurrency` blocks in flight', async () => {
    const target = new FakeTarget({ delayMs: 5 });
    const data = random(64 * 1024);
    const { ids } = await stageBlocks(chunked(data, 3000), target, { baseBlockSize: 1024, concurrency: 3 });
    expect(ids.length).toBe(64);
    expect(target.maxActive).toBeLessThanOrEqual(3);
    expect(target.maxActive).toBeGreaterThan(1);
    expect(target.assemble(ids).equals(data)).toBe(true);
  });

  it('stores an empty stream as zero blocks', async () => {
    expect(
      await stageBlocks(Readable.from([]), new FakeTarget(), { baseBlockSize: 8, concurrency: 2 }),
    ).toEqual({
      ids: [],
      size: 0,
    });
  });

  it('passes a DbBackupError from the body through unchanged and stops staging', async () => {
    const upstream = new DbBackupError('pg_dump: error: connection lost', { hint: 'check the server' });
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent++ < 5) this.push(random(1024));
        else this.destroy(upstream);
      },
    });
    const target = new FakeTarget({ delayMs: 2 });
    await expect(stageBlocks(body, target, { baseBlockSize: 1024, concurrency: 2 })).rejects.toBe(upstream);
    const calls = target.calls;
    await new Promise((r) => setTimeout(r, 20));
    expect(target.calls).toBe(calls);
  });

  it('retries a block that failed transiently, from the bytes in memory', async () => {
    const target = new FakeTarget({
      fail: (call) => (call === 2 ? Object.assign(new Error('busy'), { statusCode: 503 }) : undefined),
    });
    const data = random(4096);
    const { ids } = await stageBlocks(chunked(data, 500), target, {
      baseBlockSize: 1024,
      concurrency: 1,
      retryDelayMs: 1,
    });
    expect(target.calls).toBe(5);
    expect(target.assemble(ids).equals(data)).toBe(true);
  });

  it('rejects with the first stage error and does not retry a refusal (403)', async () => {
    const denied = Object.assign(new Error('AuthorizationFailure'), { statusCode: 403 });
    const target = new FakeTarget({ fail: (call) => (call === 3 ? denied : undefined) });
    const body = chunked(random(64 * 1024), 1024);
    await expect(
      stageBlocks(body, target, { baseBlockSize: 1024, concurrency: 2, retryDelayMs: 1 }),
    ).rejects.toBe(denied);
    expect(target.calls).toBeLessThan(8);
    expect(body.destroyed).toBe(true);
  });
});

/** An AzureStorage over one fake blob whose commits are recorded (or fail with `commitError`). */
function storeWith(target: FakeTarget, commitError?: unknown) {
  const commits: Array<{ ids: string[]; options: Record<string, unknown> }> = [];
  const blob = {
    stageBlock: target.stageBlock.bind(target),
    commitBlockList: async (ids: string[], options: Record<string, unknown>) => {
      if (commitError) throw commitError;
      commits.push({ ids, options });
      return { lastModified: new Date(0) };
    },
    getBlockList: async () => ({ committedBlocks: [{ name: 'someone-else' }] }),
  };
  const container = {
    containerName: 'backups',
    getBlockBlobClient: () => blob,
  } as unknown as ContainerClient;
  const store = new AzureStorage(container, 'db/', {
    scheme: 'azure',
    endpoint: 'http://127.0.0.1:1/acct',
    createContainer: false,
    tier: 'Cool',
    settings: { partSizeBytes: 1024, concurrency: 2 },
    secrets: [],
  });
  return { store, commits };
}

describe('AzureStorage.put', () => {
  it('commits the staged blocks once, with metadata as C# identifiers, the tier and if-none-match', async () => {
    const target = new FakeTarget();
    const { store, commits } = storeWith(target);
    const data = random(3000);
    const info = await store.put('x.dump', chunked(data, 700), {
      metadata: { 'dbbackup-database': 'shop' },
      noOverwrite: true,
    });
    expect(info).toMatchObject({ key: 'x.dump', size: 3000 });
    expect(commits).toHaveLength(1);
    expect(target.assemble(commits[0]?.ids ?? []).equals(data)).toBe(true);
    expect(commits[0]?.options).toMatchObject({
      metadata: { dbbackup_database: 'shop' },
      tier: 'Cool',
      conditions: { ifNoneMatch: '*' },
    });
  });

  it('never commits when the body fails, and rethrows the upstream error unchanged', async () => {
    const upstream = new DbBackupError('mariadb-dump: Got error 2013');
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent++ < 4) this.push(random(1000));
        else this.destroy(upstream);
      },
    });
    const { store, commits } = storeWith(new FakeTarget());
    await expect(store.put('x.dump', body)).rejects.toBe(upstream);
    expect(commits).toEqual([]);
  });

  it('reports a name taken by another writer as "already exists"', async () => {
    const taken = Object.assign(new Error('The specified blob already exists.'), {
      statusCode: 409,
      details: { errorCode: 'BlobAlreadyExists' },
    });
    const { store } = storeWith(new FakeTarget(), taken);
    const err = await store
      .put('x.dump', chunked(random(10), 10), { noOverwrite: true })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).message).toBe('azure://backups/db/x.dump already exists');
  });
});
