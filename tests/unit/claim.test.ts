import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  claimFreeName,
  claimKey,
  discardOwned,
  proveStored,
  TOKEN_METADATA,
} from '../../src/backup/claim.js';
import type { ObjectInfo, PutOptions, Storage } from '../../src/storage/storage.js';

/**
 * A bucket that ignores conditional writes, as both S3 emulators and the GCS emulator do: a put with
 * noOverwrite replaces what is there. Listings are consistent, as on every real store.
 */
class CarelessBucket implements Storage {
  readonly location = 'mem://bucket';
  readonly objects = new Map<string, { data: Buffer; metadata: Record<string, string> }>();

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const data = Buffer.concat((await body.toArray()).map((c: Buffer | string) => Buffer.from(c)));
    this.objects.set(key, { data, metadata: options.metadata ?? {} });
    return { key, size: data.length, modified: new Date(), metadata: options.metadata };
  }
  async get(key: string): Promise<Readable> {
    return Readable.from([this.objects.get(key)?.data ?? Buffer.alloc(0)]);
  }
  async stat(key: string): Promise<ObjectInfo | undefined> {
    const o = this.objects.get(key);
    return o && { key, size: o.data.length, modified: new Date(), metadata: o.metadata };
  }
  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    for (const [key, o] of [...this.objects])
      if (key.startsWith(prefix)) yield { key, size: o.data.length, modified: new Date() };
  }
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

const name = (attempt: number): string => `p/shop_20261207_080000${attempt ? `-${attempt}` : ''}.dump.zst`;

describe('claimFreeName', () => {
  it('five runs claiming at once get five distinct names on a store that ignores conditional writes', async () => {
    const bucket = new CarelessBucket();
    const claims = await Promise.all(Array.from({ length: 5 }, () => claimFreeName([bucket], name, 'shop')));
    expect(new Set(claims.map((c) => c.key)).size).toBe(5);
    for (const c of claims) await c.release();
    expect([...bucket.objects.keys()]).toEqual([]);
  });

  it('a name with a claim left by a killed run is skipped, and that claim is left alone', async () => {
    const bucket = new CarelessBucket();
    const stale = claimKey(name(0), 'abcdefabcdef');
    await bucket.put(stale, Readable.from(['x']));
    const c = await claimFreeName([bucket], name, 'shop');
    expect(c.key).toBe(name(1));
    await c.release();
    expect([...bucket.objects.keys()]).toEqual([stale]);
  });

  it('a name whose sidecar alone is left (an interrupted deletion) is not reused', async () => {
    const bucket = new CarelessBucket();
    await bucket.put(`${name(0)}.sha256`, Readable.from(['x']));
    const c = await claimFreeName([bucket], name, 'shop');
    expect(c.key).toBe(name(1));
    await c.release();
  });
});

describe('proving what was stored', () => {
  it('a foreign writer replaced the object: not proven, and the failed run deletes nothing of it', async () => {
    const bucket = new CarelessBucket();
    const c = await claimFreeName([bucket], name, 'shop');
    await bucket.put(c.key, Readable.from(['ours']), { metadata: { [TOKEN_METADATA]: c.token } });
    await proveStored([bucket], c.key, c.token);
    // Someone else writes the same name (the server ignores If-None-Match) with its sidecar.
    await bucket.put(c.key, Readable.from(['theirs']), { metadata: { [TOKEN_METADATA]: 'ffffffffffff' } });
    await bucket.put(`${c.key}.sha256`, Readable.from(['their sum']));
    await expect(proveStored([bucket], c.key, c.token)).rejects.toThrow(/replaced by another writer/);
    await discardOwned([bucket], c.key, c.token);
    expect(bucket.objects.get(c.key)?.data.toString()).toBe('theirs');
    expect(bucket.objects.has(`${c.key}.sha256`)).toBe(true);
    await c.release();
  });

  it('this run’s object: proven, and discarded (metadata, data, checksum) when the run fails later', async () => {
    const bucket = new CarelessBucket();
    const c = await claimFreeName([bucket], name, 'shop');
    await bucket.put(c.key, Readable.from(['ours']), { metadata: { [TOKEN_METADATA]: c.token } });
    await bucket.put(`${c.key}.sha256`, Readable.from(['sum']));
    await proveStored([bucket], c.key, c.token);
    await discardOwned([bucket], c.key, c.token);
    await c.release();
    expect([...bucket.objects.keys()]).toEqual([]);
  });
});
