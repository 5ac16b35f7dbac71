import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { BlobServiceClient } from '@azure/storage-blob';
import type { Storage as GcsClient } from '@google-cloud/storage';

/**
 * One small view of a bucket, a container or a directory, so tests can arrange and inspect
 * backups behind the CLI's back with the same code everywhere. Keys are '/'-separated; in a
 * directory they are relative to its root.
 */
export interface ObjectStore {
  /** Every key that starts with `prefix`, sorted. */
  keys(prefix: string): Promise<string[]>;
  read(key: string): Promise<Buffer>;
  write(key: string, data: Buffer | string): Promise<void>;
  remove(key: string): Promise<void>;
}

export function s3Store(client: S3Client, bucket: string): ObjectStore {
  return {
    async keys(prefix) {
      const out: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const o of page.Contents ?? []) if (o.Key) out.push(o.Key);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out.sort();
    },
    async read(key) {
      const { Body } = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from((await Body?.transformToByteArray()) ?? []);
    },
    async write(key, data) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from(data) }));
    },
    async remove(key) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
  };
}

export function azureStore(service: BlobServiceClient, container: string): ObjectStore {
  const c = service.getContainerClient(container);
  return {
    async keys(prefix) {
      const out: string[] = [];
      for await (const b of c.listBlobsFlat({ prefix })) out.push(b.name);
      return out.sort();
    },
    read: (key) => c.getBlockBlobClient(key).downloadToBuffer(),
    async write(key, data) {
      const buf = Buffer.from(data);
      await c.getBlockBlobClient(key).upload(buf, buf.length);
    },
    async remove(key) {
      await c.getBlockBlobClient(key).deleteIfExists();
    },
  };
}

export function gcsStore(client: GcsClient, bucket: string): ObjectStore {
  const b = client.bucket(bucket);
  return {
    async keys(prefix) {
      const [files] = await b.getFiles({ prefix });
      return files.map((f) => f.name).sort();
    },
    async read(key) {
      const [data] = await b.file(key).download();
      return data;
    },
    async write(key, data) {
      await b.file(key).save(Buffer.from(data), { resumable: false });
    },
    async remove(key) {
      await b.file(key).delete({ ignoreNotFound: true });
    },
  };
}

/** A directory as an ObjectStore (keys relative to `root`; empty directories are not keys). */
export function dirStore(root: string): ObjectStore {
  const abs = (key: string) => path.join(root, ...key.split('/'));
  return {
    async keys(prefix) {
      const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
      return entries
        .filter((e) => e.isFile())
        .map((e) => path.relative(root, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
        .filter((k) => k.startsWith(prefix))
        .sort();
    },
    read: (key) => readFile(abs(key)),
    async write(key, data) {
      await mkdir(path.dirname(abs(key)), { recursive: true, mode: 0o700 });
      await writeFile(abs(key), data, { mode: 0o600 });
    },
    async remove(key) {
      await rm(abs(key), { force: true });
    },
  };
}

/** key (relative to `prefix`) → SHA-256 of every object under `prefix`: "untouched" byte for byte. */
export async function storeSnapshot(store: ObjectStore, prefix: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const key of await store.keys(prefix))
    out[key.slice(prefix.length)] = createHash('sha256')
      .update(await store.read(key))
      .digest('hex');
  return out;
}

/** Copies every object under `from` to the same name under `to` (both prefixes end in '/' or are ''). */
export async function copyPrefix(store: ObjectStore, from: string, to: string): Promise<void> {
  for (const key of await store.keys(from))
    await store.write(to + key.slice(from.length), await store.read(key));
}
