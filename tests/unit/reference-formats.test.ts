import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pack } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { detectDump, isTarHeader } from '../../src/catalog/format.js';
import { readSidecar } from '../../src/reference/metadata.js';
import { LocalStorage } from '../../src/storage/local/local.js';
import { collect, tempDir } from './helpers.js';

async function tarBytes(): Promise<Buffer> {
  const p = pack();
  p.entry({ name: './globals.sql' }, 'CREATE ROLE x;\n');
  p.finalize();
  return collect(p as unknown as NodeJS.ReadableStream);
}

describe('tar detection', () => {
  it('recognises a ustar header, and a v7 header (no magic) by its checksum', async () => {
    const tar = await tarBytes();
    expect(isTarHeader(tar)).toBe(true);
    expect(detectDump(tar)).toEqual({ engine: null, format: null, tar: true });
    const v7 = Buffer.from(tar.subarray(0, 512));
    v7.fill(0, 257, 265); // no magic, no version
    v7.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of v7) sum += b;
    v7.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    expect(isTarHeader(v7)).toBe(true);
    v7[0] = (v7[0] ?? 0) ^ 1; // checksum no longer matches
    expect(isTarHeader(v7)).toBe(false);
  });

  it('does not take dumps or short data for tar', () => {
    expect(isTarHeader(Buffer.alloc(100))).toBe(false);
    expect(isTarHeader(Buffer.concat([Buffer.from('PGDMP'), Buffer.alloc(600)]))).toBe(false);
    expect(detectDump(Buffer.from('--\n-- PostgreSQL database dump\n--\n')).tar).toBeUndefined();
  });
});

describe("the reference tool's .meta.json sidecars", () => {
  it('single backup: recognised, with its checksum, size and database', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const sha = 'ab'.repeat(32);
      await writeFile(
        path.join(dir, 'db_shop_20251126_120000.dump.meta.json'),
        JSON.stringify({
          version: '2.0',
          database: 'shop',
          database_type: 'postgres',
          size_bytes: 42,
          sha256: sha,
          encrypted: false,
        }),
      );
      const s = await readSidecar(new LocalStorage(dir), 'db_shop_20251126_120000.dump');
      expect(s).toMatchObject({
        kind: 'reference',
        metadata: { database: 'shop', size_bytes: 42, sha256: sha },
      });
    } finally {
      await cleanup();
    }
  });

  it('cluster archive: recognised by extra_info; none; and a broken sidecar of ours is still an error', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const storage = new LocalStorage(dir);
      await writeFile(
        path.join(dir, 'cluster_x.tar.gz.meta.json'),
        JSON.stringify({
          version: '2.0',
          databases: [{ database: 'a' }],
          extra_info: { archive_sha256: 'cd'.repeat(32) },
        }),
      );
      expect(await readSidecar(storage, 'cluster_x.tar.gz')).toMatchObject({
        kind: 'reference-cluster',
        metadata: { extra_info: { archive_sha256: 'cd'.repeat(32) } },
      });
      expect(await readSidecar(storage, 'nothing.dump')).toEqual({ kind: 'none' });
      await writeFile(path.join(dir, 'ours.dump.meta.json'), JSON.stringify({ schema: 'dbbackup.backup' }));
      await expect(readSidecar(storage, 'ours.dump')).rejects.toThrow(
        /Metadata ours\.dump\.meta\.json is invalid/,
      );
    } finally {
      await cleanup();
    }
  });
});
