import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, Readable, Writable } from 'node:stream';
import type { Bucket } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError, ToolError } from '../../src/errors.js';
import { parseCloudUri } from '../../src/storage/cloud-uri.js';
import { gcsTarget } from '../../src/storage/gcs/config.js';
import { GcsStorage, openGcs } from '../../src/storage/gcs/gcs.js';
import { putBuffer } from '../../src/storage/storage.js';
import { startGcsEmulator, type GcsEmulator } from '../harness/gcs-emulator.js';

/**
 * What only GCS does (the storage contract in tests/contract/storage.test.ts covers put, get,
 * ranges, missing objects, noOverwrite and failing bodies on every backend): GcsStorage against
 * the firebase-tools storage emulator (through ?endpoint=, so this worker's environment stays
 * untouched), plus fakes for what the emulator cannot show: bucket creation, session
 * cancellation, a server that finalizes early.
 */
const BUCKET = 'unit-gcs';
let emu: GcsEmulator;

beforeAll(async () => {
  emu = await startGcsEmulator();
});

afterAll(async () => {
  await emu?.stop();
});

async function store(prefix = `p${randomBytes(4).toString('hex')}/`, query = ''): Promise<GcsStorage> {
  const uri = parseCloudUri(`gs://${BUCKET}/${prefix}?endpoint=${encodeURIComponent(emu.endpoint)}${query}`);
  const s = await openGcs(uri, prefix, {});
  if (!(s instanceof GcsStorage)) throw new Error('openGcs returned something else');
  return s;
}

describe('GcsStorage on the emulator', () => {
  it('?chunk_size= on the emulator: its early "finished" is an error, not a hang, and the stub is removed', async () => {
    const s = await store(undefined, '&chunk_size=256k');
    // 8 MiB in 64 KiB pieces: still flowing when the emulator answers the first chunk with 200.
    const piece = randomBytes(64 * 1024);
    const err = await s
      .put('chunked.bin', Readable.from(Array.from({ length: 128 }, () => piece)))
      .catch((e: unknown) => e as StorageError);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).message).toMatch(
      /chunked\.bin was finalized by the server with .* after \d+ were sent/,
    );
    expect((err as StorageError).hint).toContain('remove ?chunk_size=');
    expect(await s.stat('chunked.bin')).toBeUndefined();
  });

  it('lists relative keys under a prefix across pages (1100 objects, 1000 a page)', async () => {
    const s = await store('many/');
    const bucket = emu.client().bucket(BUCKET);
    const all = Array.from({ length: 1100 }, (_, i) => `many/d/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < all.length; i += 50)
      await Promise.all(all.slice(i, i + 50).map((n) => bucket.file(n).save('z', { resumable: false })));
    await bucket.file('many/folder/').save('', { resumable: false }); // a console "folder": skipped
    await bucket.file('other/x').save('z', { resumable: false }); // outside the prefix
    const keys: string[] = [];
    for await (const o of s.list()) keys.push(o.key);
    expect(keys.sort()).toEqual(all.map((n) => n.slice('many/'.length)));
    const some: string[] = [];
    for await (const o of s.list('d/10')) some.push(o.key);
    expect(some.sort()).toEqual(Array.from({ length: 100 }, (_, i) => `d/10${String(i).padStart(2, '0')}`));
  }, 120_000);
});

/** The parts of Bucket and File that GcsStorage.put touches, faked. */
function fakeBucket(o: {
  sessions: Array<string | Error>;
  create?: () => Promise<unknown>;
  storedSize?: (sent: number) => number;
  statError?: Error;
}): { bucket: Bucket; created: number; sessionOptions: unknown[] } {
  const state = { created: 0 };
  const sessionOptions: unknown[] = [];
  let sent = 0;
  const file = {
    metadata: {} as { size?: string },
    interceptors: [] as unknown[],
    delete: async () => undefined,
    getMetadata: async () => {
      throw o.statError ?? Object.assign(new Error('No such object: fake/p/a'), { code: 404 });
    },
    createResumableUpload: async (options: unknown) => {
      sessionOptions.push(options);
      const next = o.sessions.shift();
      if (next instanceof Error || next === undefined) throw next ?? new Error('no session');
      return [next];
    },
    createWriteStream: () => {
      sent = 0;
      return new Writable({
        write(chunk: Buffer, _enc, cb) {
          sent += chunk.length;
          cb();
        },
        final(cb) {
          file.metadata = { size: String(o.storedSize ? o.storedSize(sent) : sent) };
          cb();
        },
      });
    },
  };
  const bucket = {
    name: 'fake',
    file: () => file,
    create: async () => {
      state.created++;
      return o.create?.();
    },
  };
  return {
    bucket: bucket as unknown as Bucket,
    sessionOptions,
    get created() {
      return state.created;
    },
  };
}

function fakeStore(bucket: Bucket, query = ''): GcsStorage {
  const target = gcsTarget(parseCloudUri(`gs://fake/p/${query}`), {}, {});
  return new GcsStorage(bucket, { prefix: 'p/', scheme: 'gs', target });
}

const bucketMissing = () => Object.assign(new Error('The specified bucket does not exist.'), { code: 404 });

describe('GcsStorage.put with a fake bucket', () => {
  it('create_bucket=true: a missing bucket is created once, before any byte of the body is read', async () => {
    const fake = fakeBucket({
      sessions: [bucketMissing(), 'http://127.0.0.1:1/s1', 'http://127.0.0.1:1/s2'],
    });
    const s = fakeStore(fake.bucket, '?create_bucket=true');
    expect((await putBuffer(s, 'a', 'hello')).size).toBe(5);
    expect((await putBuffer(s, 'b', 'hi')).size).toBe(2);
    expect(fake.created).toBe(1);
  });

  it('stat in a missing bucket: "not there" with create_bucket (put will create it), else the bucket error', async () => {
    const fake = fakeBucket({ sessions: [], statError: bucketMissing() });
    expect(await fakeStore(fake.bucket, '?create_bucket=true').stat('a')).toBeUndefined();
    await expect(fakeStore(fake.bucket).stat('a')).rejects.toThrow(
      'Could not stat gs://fake/p/a: The specified bucket does not exist. (HTTP 404)',
    );
  });

  it('without create_bucket a missing bucket is an error with the hint', async () => {
    const fake = fakeBucket({ sessions: [bucketMissing()] });
    const err = await putBuffer(fakeStore(fake.bucket), 'a', 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).message).toBe(
      'Could not upload gs://fake/p/a: The specified bucket does not exist. (HTTP 404)',
    );
    expect((err as StorageError).hint).toContain('create_bucket=true');
    expect(fake.created).toBe(0);
  });

  it('the session carries the custom metadata, ?storage_class= and, for noOverwrite, generation 0', async () => {
    const fake = fakeBucket({ sessions: ['http://127.0.0.1:1/s'] });
    const s = fakeStore(fake.bucket, '?storage_class=coldline');
    await putBuffer(s, 'a', 'x', { metadata: { 'dbbackup-engine': 'postgres' } });
    expect(fake.sessionOptions).toEqual([
      {
        metadata: {
          contentType: 'application/octet-stream',
          metadata: { 'dbbackup-engine': 'postgres' },
          storageClass: 'COLDLINE',
        },
        preconditionOpts: undefined,
      },
    ]);
  });

  it('noOverwrite asks for generation 0; the 412 of a writer that lost the race is "already exists"', async () => {
    const lost = Object.assign(new Error('At least one of the pre-conditions you specified did not hold.'), {
      code: 412,
    });
    const fake = fakeBucket({ sessions: ['http://127.0.0.1:1/s', lost] });
    await putBuffer(fakeStore(fake.bucket), 'a', 'x', { noOverwrite: true });
    expect(fake.sessionOptions[0]).toMatchObject({ preconditionOpts: { ifGenerationMatch: 0 } });
    await expect(putBuffer(fakeStore(fake.bucket), 'a', 'x', { noOverwrite: true })).rejects.toThrow(
      /^gs:\/\/fake\/p\/a already exists$/,
    );
  });

  it('a server that stores fewer bytes than were sent is caught', async () => {
    const fake = fakeBucket({ sessions: ['http://127.0.0.1:1/s'], storedSize: (n) => n - 1 });
    await expect(putBuffer(fakeStore(fake.bucket), 'a', 'hello')).rejects.toThrow(
      'gs://fake/p/a was finalized by the server with 4 bytes after 5 were sent',
    );
  });

  it('a failed upload cancels its resumable session (DELETE on the session URI)', async () => {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(499).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const fake = fakeBucket({ sessions: [`http://127.0.0.1:${port}/upload?upload_id=42`] });
      const body = new PassThrough();
      const pending = fakeStore(fake.bucket).put('a', body);
      body.write('x');
      setTimeout(() => body.destroy(new Error('dump failed')), 50);
      await expect(pending).rejects.toThrow('dump failed');
      expect(seen).toEqual(['DELETE /upload?upload_id=42']);
    } finally {
      server.close();
    }
  });
});

describe('GcsStorage.put with the real SDK against a scripted server', () => {
  it('a body error aborts the in-flight PUT (its socket closes) and cancels the session', async () => {
    const seen: string[] = [];
    let received = 0;
    const server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url?.replace(/\?.*/, '')}`);
      if (req.method === 'POST') {
        const { port } = server.address() as AddressInfo;
        res.writeHead(200, { Location: `http://127.0.0.1:${port}/session/1` }).end();
      } else if (req.method === 'PUT') {
        // Read the body and never answer: only the client can end this request.
        req.on('data', (c: Buffer) => (received += c.length));
        req.on('close', () => seen.push('PUT closed'));
      } else res.writeHead(499).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const uri = parseCloudUri(`gs://fake/p/?endpoint=${encodeURIComponent(`http://127.0.0.1:${port}`)}`);
      const s = await openGcs(uri, 'p/', {});
      const body = new PassThrough();
      const pending = s.put('a', body);
      body.write(randomBytes(1024 * 1024));
      const deadline = Date.now() + 10_000;
      while (received < 1024 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      body.destroy(new ToolError('mysqldump failed'));
      await expect(pending).rejects.toThrow('mysqldump failed');
      while (!seen.includes('PUT closed') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect(seen).toEqual([
        'POST /upload/storage/v1/b/fake/o',
        'PUT /session/1',
        'PUT closed',
        'DELETE /session/1',
      ]);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
