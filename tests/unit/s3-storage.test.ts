import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolError, StorageError } from '../../src/errors.js';
import { parseCloudUri } from '../../src/storage/cloud-uri.js';
import { openS3, S3Storage } from '../../src/storage/s3/s3.js';
import { putBuffer, readAll } from '../../src/storage/storage.js';
import { startS3Emulator, DUMMY_CREDENTIALS, type S3Emulator } from '../harness/s3-emulator.js';

const MiB = 1024 * 1024;
let emu: S3Emulator;
const saved = { ...process.env };

beforeAll(async () => {
  emu = await startS3Emulator();
  await emu.bucket('unit');
  // The SDK's default chain must find credentials; fauxqs checks none.
  process.env.AWS_ACCESS_KEY_ID = DUMMY_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = DUMMY_CREDENTIALS.secretAccessKey;
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
});

afterAll(async () => {
  process.env = saved;
  await emu?.stop();
});

/** A store under a fresh prefix, with small parts so multipart paths run on small bodies. */
async function store(query = '', prefix = `p${randomBytes(4).toString('hex')}/`): Promise<S3Storage> {
  const uri = parseCloudUri(`minio://unit/${prefix}?endpoint=${encodeURIComponent(emu.endpoint)}${query}`);
  const s = await openS3(uri, prefix, { partSizeBytes: 5 * MiB, concurrency: 2 });
  if (!(s instanceof S3Storage)) throw new Error('openS3 returned something else');
  return s;
}

/** Fails the first `times` UploadPart requests (before the SDK's own retries see them) and counts commands. */
function inject(
  s: S3Storage,
  error: () => Error,
  times: number,
): { commands: string[]; maxParallel: number } {
  const seen = { commands: [] as string[], maxParallel: 0 };
  let running = 0;
  s.client.middlewareStack.add(
    (next, context) => async (args) => {
      seen.commands.push(context.commandName ?? '');
      if (context.commandName !== 'UploadPartCommand') return next(args);
      if (times-- > 0) throw error();
      running++;
      seen.maxParallel = Math.max(seen.maxParallel, running);
      try {
        return await next(args);
      } finally {
        running--;
      }
    },
    { step: 'initialize', name: 'dbbackupTestInject' },
  );
  return seen;
}

function sha(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

async function openUploads(): Promise<string[]> {
  return readdir(path.join(emu.dir, '_multipart')).catch(() => []);
}

describe('S3Storage against fauxqs', () => {
  it('stores a small body with one PutObject, with metadata (also non-ASCII) and a masked location', async () => {
    const s = await store();
    expect(s.location).toMatch(/^minio:\/\/unit\/p[0-9a-f]{8}$/);
    const info = await putBuffer(s, 'small.txt', 'hello', { metadata: { 'dbbackup-database': 'café db' } });
    expect(info).toMatchObject({ key: 'small.txt', size: 5, metadata: { 'dbbackup-database': 'café db' } });
    expect((await readAll(s, 'small.txt')).toString()).toBe('hello');
    expect(await s.stat('missing')).toBeUndefined();
  });

  it('uploads a stream in parts, reads it back whole and by range, with at most `concurrency` parts in flight', async () => {
    const s = await store();
    const seen = inject(s, () => new Error('unused'), 0);
    const data = randomBytes(23 * MiB + 123);
    const info = await s.put('big.bin', Readable.from(chunks(data, 64 * 1024)));
    expect(info.size).toBe(data.length);
    expect(seen.commands.filter((c) => c === 'UploadPartCommand')).toHaveLength(5);
    expect(seen.commands).toContain('CompleteMultipartUploadCommand');
    expect(seen.maxParallel).toBeLessThanOrEqual(2);
    expect(sha(await readAll(s, 'big.bin', 64 * MiB))).toBe(sha(data));
    const part = await s.get('big.bin', { start: 10, end: 19 });
    expect(Buffer.concat(await part.toArray())).toEqual(data.subarray(10, 20));
    const tail = Buffer.concat(await (await s.get('big.bin', { start: data.length - 5 })).toArray());
    expect(tail).toEqual(data.subarray(data.length - 5));
  });

  it('sends ?storage_class= and user metadata, and no CRC32 checksum headers to a non-AWS endpoint', async () => {
    const s = await store('&storage_class=STANDARD_IA');
    const sent: Array<Record<string, string>> = [];
    s.client.middlewareStack.add(
      (next, context) => async (args) => {
        const headers = (args.request as { headers?: Record<string, string> }).headers ?? {};
        const key = (args as { input?: { Key?: string } }).input?.Key ?? '';
        // dbbackup's own record of a multipart upload is JSON, not backup data.
        if (
          /^(PutObject|CreateMultipartUpload|UploadPart)Command$/.test(context.commandName ?? '') &&
          !key.includes('.dbbackup-upload-')
        )
          sent.push({ command: context.commandName ?? '', ...headers });
        return next(args);
      },
      { step: 'finalizeRequest', name: 'dbbackupTestHeaders' },
    );
    await putBuffer(s, 'small', 'x', { metadata: { 'dbbackup-engine': 'postgres' } });
    await s.put('multi', Readable.from(chunks(randomBytes(6 * MiB), MiB)));
    expect(sent.map((h) => h.command)).toEqual([
      'PutObjectCommand',
      'CreateMultipartUploadCommand',
      'UploadPartCommand',
      'UploadPartCommand',
    ]);
    for (const h of sent.filter((x) => x.command !== 'UploadPartCommand')) {
      expect(h['x-amz-storage-class']).toBe('STANDARD_IA');
      expect(h['content-type']).toBe('application/octet-stream');
    }
    expect(sent[0]?.['x-amz-meta-dbbackup-engine']).toBe('postgres');
    for (const h of sent) {
      expect(
        Object.keys(h).filter((k) => k.startsWith('x-amz-checksum-') || k === 'x-amz-sdk-checksum-algorithm'),
      ).toEqual([]);
      expect(h['content-encoding']).toBeUndefined();
    }
  });

  it('a body of exactly one part goes as one PutObject; one byte more makes a 2-part upload', async () => {
    const s = await store();
    const seen = inject(s, () => new Error('unused'), 0);
    await s.put('exact', Readable.from(chunks(randomBytes(5 * MiB), 100_000)));
    expect(seen.commands.filter((c) => c !== 'HeadObjectCommand')).toEqual(['PutObjectCommand']);
    seen.commands.length = 0;
    const data = randomBytes(5 * MiB + 1);
    expect((await s.put('plus1', Readable.from(chunks(data, 100_000)))).size).toBe(data.length);
    expect(seen.commands.filter((c) => c === 'UploadPartCommand')).toHaveLength(2);
    expect(sha(await readAll(s, 'plus1'))).toBe(sha(data));
  });

  it('an upstream error aborts the upload: the same error, nothing under the key, no open upload', async () => {
    const s = await store();
    const boom = new ToolError('pg_dump failed: out of memory');
    const body = new Readable({ read() {} });
    body.push(randomBytes(12 * MiB));
    setTimeout(() => body.destroy(boom), 200);
    await expect(s.put('failed.bin', body)).rejects.toBe(boom);
    expect(await s.stat('failed.bin')).toBeUndefined();
    expect(await openUploads()).toEqual([]);
  });

  it('retries a part that failed transiently, re-sending its bytes from memory', async () => {
    const s = await store();
    const slow = () =>
      Object.assign(new Error('Please reduce your request rate.'), {
        name: 'SlowDown',
        $metadata: { httpStatusCode: 503 },
      });
    inject(s, slow, 1);
    const data = randomBytes(11 * MiB);
    await s.put('retried.bin', Readable.from(chunks(data, MiB)));
    expect(sha(await readAll(s, 'retried.bin', 64 * MiB))).toBe(sha(data));
  });

  it('a permanent part failure aborts: StorageError naming the key, a credentials hint, nothing stored', async () => {
    const s = await store();
    const denied = () =>
      Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    const seen = inject(s, denied, 99);
    const err = await s
      .put('denied.bin', Readable.from(chunks(randomBytes(12 * MiB), MiB)))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).message).toMatch(
      /^Could not upload minio:\/\/unit\/p[0-9a-f]+\/denied\.bin: AccessDenied: Access Denied \(HTTP 403\)$/,
    );
    expect((err as StorageError).hint).toMatch(/credentials/);
    expect(seen.commands).toContain('AbortMultipartUploadCommand');
    expect(await s.stat('denied.bin')).toBeUndefined();
    expect(await openUploads()).toEqual([]);
  });

  it('lists every key relative to the prefix across pages of 1000', async () => {
    const prefix = `list${randomBytes(3).toString('hex')}/`;
    const s = await store('', prefix);
    const keys = Array.from({ length: 1010 }, (_, i) => `k${String(i).padStart(4, '0')}`);
    const client = emu.client();
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(
        keys
          .slice(i, i + 50)
          .map((k) => client.send(new PutObjectCommand({ Bucket: 'unit', Key: prefix + k, Body: 'x' }))),
      );
    }
    await client.send(
      new PutObjectCommand({
        Bucket: 'unit',
        Key: `${prefix}folder/`,
        Body: Buffer.alloc(0),
        ContentLength: 0,
      }),
    );
    const listed: string[] = [];
    for await (const o of s.list()) listed.push(o.key);
    expect(listed.sort()).toEqual(keys);
    const some: string[] = [];
    for await (const o of s.list('k100')) some.push(o.key);
    expect(some.sort()).toEqual(keys.slice(1000));
  });

  it('a missing bucket: a clear error with the create_bucket hint; ?create_bucket=true creates it', async () => {
    const bucket = `nb${randomBytes(4).toString('hex')}`;
    const uri = (q: string) =>
      parseCloudUri(`minio://${bucket}/x/?endpoint=${encodeURIComponent(emu.endpoint)}${q}`);
    const plain = await openS3(uri(''), 'x/', {});
    const err = (await putBuffer(plain, 'a', 'b').catch((e: unknown) => e)) as StorageError;
    expect(err.message).toContain(`minio://${bucket}/x/a`);
    expect(err.message).toContain('NoSuchBucket');
    expect(err.hint).toContain('create_bucket=true');
    const creating = await openS3(uri('&create_bucket=true'), 'x/', {});
    await putBuffer(creating, 'a', 'b');
    expect((await readAll(plain, 'a')).toString()).toBe('b');
  });

  it('an unreachable endpoint: the error names the endpoint', async () => {
    const uri = parseCloudUri(`minio://unit/?endpoint=${encodeURIComponent('http://127.0.0.1:9')}`);
    const s = await openS3(uri, '', {});
    const err = (await s.stat('x').catch((e: unknown) => e)) as StorageError;
    expect(err).toBeInstanceOf(StorageError);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(err.hint).toContain('http://127.0.0.1:9');
  }, 60_000);
});

function* chunks(data: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}
