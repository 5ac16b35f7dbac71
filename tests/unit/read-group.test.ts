import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type { ToolCommand } from '../../src/engines/engine.js';
import { StorageError } from '../../src/errors.js';
import { runSinkRead } from '../../src/pipeline/read-group.js';

/** A program reading its stdin, as a restore tool does. */
function sh(script: string): ToolCommand {
  return {
    file: '/bin/sh',
    args: ['-c', script],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    name: 'tool',
  };
}

const data = Buffer.alloc(3 * 1024 * 1024, 'restore me\n');
const sha = createHash('sha256').update(data).digest('hex');
const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe('runSinkRead into a program', () => {
  it('feeds every byte to the program and reports the SHA-256 and size of what it read', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'read-group-'));
    dirs.push(dir);
    const out = path.join(dir, 'received');
    const r = await runSinkRead({
      open: async () => Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
      compression: 'none',
      expectedBytes: data.length,
      sink: { kind: 'process', command: sh(`cat > '${out}'`), classify: () => 'error' },
    });
    expect(r.storedBytes).toBe(data.length);
    expect(r.storedSha256).toBe(sha);
    expect((await readFile(out)).equals(data)).toBe(true);
  });

  it('a transfer that ends short of the stored size is a cut, named with the bytes read and expected', async () => {
    const err = await runSinkRead({
      open: async () => Readable.from([data.subarray(0, 4096)]),
      label: 's3://bucket/shop.sql',
      compression: 'none',
      expectedBytes: data.length,
      sink: { kind: 'process', command: sh('cat > /dev/null'), classify: () => 'error' },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toBe(
      `Reading the backup from s3://bucket/shop.sql failed while restoring: the transfer ended after 4096 of ${data.length} bytes`,
    );
  });

  it('a program that dies is reported by its own words, not as the broken pipe it leaves behind', async () => {
    const err = await runSinkRead({
      open: async () => Readable.from([data, data, data]),
      compression: 'none',
      expectedBytes: data.length * 3,
      sink: {
        kind: 'process',
        command: sh('head -c 10 > /dev/null; echo "ERROR: relation already exists" >&2; exit 3'),
        classify: () => 'error',
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(StorageError);
    expect((err as Error).message).toContain('relation already exists');
  });

  it('the last decoded bytes are kept for a trailer check', async () => {
    const gz = zlib.gzipSync(Buffer.concat([data, Buffer.from('-- Dump completed\n')]));
    const r = await runSinkRead({
      open: async () => Readable.from([gz]),
      compression: 'gzip',
      tailBytes: 64,
      sink: { kind: 'process', command: sh('cat > /dev/null'), classify: () => 'error' },
    });
    expect(r.tail?.bytes).toBe(data.length + 18);
    expect(r.tail?.tail.toString()).toMatch(/-- Dump completed\n$/);
    expect(r.storedBytes).toBe(gz.length);
  });
});

describe('runSinkRead into a file', () => {
  it('decodes into a private file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'read-group-'));
    dirs.push(dir);
    const file = path.join(dir, 'archive.dump');
    const gz = zlib.gzipSync(data);
    const r = await runSinkRead({
      open: async () => Readable.from([gz]),
      compression: 'gzip',
      expectedBytes: gz.length,
      sink: { kind: 'file', path: file },
    });
    expect(r.storedBytes).toBe(gz.length);
    expect((await readFile(file)).equals(data)).toBe(true);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('a cut transfer fails the read, named as the store', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'read-group-'));
    dirs.push(dir);
    const err = await runSinkRead({
      open: async () => Readable.from([data.subarray(0, 100)]),
      label: '/backups/x.dump',
      compression: 'none',
      expectedBytes: data.length,
      sink: { kind: 'file', path: path.join(dir, 'copy') },
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      `Reading the backup from /backups/x.dump failed while restoring: the transfer ended after 100 of ${data.length} bytes`,
    );
  });
});
