import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPgFidelity } from '../harness/fixtures.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { pgSnapshot, type PgSnapshot } from '../harness/pg-snapshot.js';
import {
  cli,
  expectExit,
  listDir,
  onlyBackup,
  pgArgs,
  removeDir,
  sha256File,
  tempDir,
  uniqueName,
} from './util.js';

const source = uniqueName('pg_src');
const created: string[] = [source];
let before: PgSnapshot;

beforeAll(async () => {
  await createPgDatabase(source);
  await loadPgFidelity(source);
  before = await pgSnapshot(source);
});

afterAll(async () => {
  for (const db of created) await dropPgDatabase(db);
});

async function backup(dir: string, extra: string[] = []): Promise<string> {
  const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', source, ...extra]);
  expectExit(r, 0);
  expect(r.stdout).toContain('Backup complete:');
  return onlyBackup(dir);
}

async function restoreInto(file: string, target: string, extra: string[] = []): Promise<void> {
  created.push(target);
  const r = await cli([
    ...pgArgs(),
    'restore',
    'single',
    file,
    '--target',
    target,
    '--create',
    '--confirm',
    ...extra,
  ]);
  expectExit(r, 0);
  expect(r.stdout).toContain(`Restore complete: "${target}"`);
}

describe('PostgreSQL backup → verify → restore', () => {
  it('round-trips every object and row with the default custom format and zstd', async () => {
    const dir = await tempDir();
    try {
      const file = await backup(dir);
      expect(path.basename(file)).toMatch(new RegExp(`^${source}_\\d{8}_\\d{6}\\.dump\\.zst$`));
      expect(await listDir(dir)).toEqual(
        [path.basename(file), `${path.basename(file)}.meta.json`, `${path.basename(file)}.sha256`].sort(),
      );

      const meta = JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as Record<string, unknown>;
      expect(meta).toMatchObject({ engine: 'postgres', database: source, format: 'custom', kind: 'single' });
      expect(meta.sha256).toBe(await sha256File(file));
      expect(meta.sizeBytes).toBe((await readFile(file)).length);
      const tables = meta.tables as Array<{ schema: string; name: string; rows: number; rowsExact: boolean }>;
      const [counted] = await pgQuery<{ n: string }>(source, 'SELECT count(*) AS n FROM sales.orders');
      expect(tables.find((t) => t.schema === 'sales' && t.name === 'orders')).toMatchObject({
        rows: Number(counted?.n),
        rowsExact: true,
      });
      // The .sha256 sidecar is in sha256sum format with a relative name: `sha256sum -c` works in place.
      expect(
        execFileSync('sha256sum', ['-c', `${path.basename(file)}.sha256`], { cwd: dir, encoding: 'utf8' }),
      ).toContain(': OK');
      // Standard tools read it without dbbackup.
      expect(execFileSync('bash', ['-c', `zstd -dc '${file}' | head -c 5`], { encoding: 'latin1' })).toBe(
        'PGDMP',
      );

      const verify = await cli(['verify-backup', file]);
      expectExit(verify, 0);
      expect(verify.stdout).toMatch(/^OK\s/m);

      const target = uniqueName('pg_dst');
      await restoreInto(file, target);
      expect(await pgSnapshot(target)).toEqual(before);
    } finally {
      await removeDir(dir);
    }
  });

  it('round-trips plain SQL with gzip and restores with psql', async () => {
    const dir = await tempDir();
    try {
      const r = await cli([
        ...pgArgs(),
        '--backup-dir',
        dir,
        '--compression-algo',
        'gzip',
        'backup',
        'single',
        source,
        '--format',
        'plain',
      ]);
      expectExit(r, 0);
      const gz = await onlyBackup(dir);
      expect(gz).toMatch(/\.sql\.gz$/);
      expect(execFileSync('bash', ['-c', `gunzip -c '${gz}' | head -c 200`], { encoding: 'utf8' })).toContain(
        'PostgreSQL database dump',
      );
      const target = uniqueName('pg_plain');
      await restoreInto(gz, target);
      expect(await pgSnapshot(target)).toEqual(before);
    } finally {
      await removeDir(dir);
    }
  });

  it('restores in parallel (--jobs 2), uncompressed and zstd-compressed', async () => {
    const dir = await tempDir();
    try {
      const r = await cli([
        ...pgArgs(),
        '--backup-dir',
        dir,
        '--compression',
        '0',
        'backup',
        'single',
        source,
      ]);
      expectExit(r, 0);
      const plain = await onlyBackup(dir);
      expect(plain).toMatch(/\.dump$/);
      const t1 = uniqueName('pg_j_raw');
      await restoreInto(plain, t1, ['--jobs', '2']);
      expect(await pgSnapshot(t1)).toEqual(before);
    } finally {
      await removeDir(dir);
    }
    const dir2 = await tempDir();
    try {
      const zst = await backup(dir2);
      const t2 = uniqueName('pg_j_zst');
      const workdir = await tempDir('dbb-work-');
      await restoreInto(zst, t2, ['--jobs', '2', '--workdir', workdir]);
      expect(await pgSnapshot(t2)).toEqual(before);
      // The temporary decompressed copy is gone.
      expect(await listDir(workdir)).toEqual([]);
      await removeDir(workdir);
    } finally {
      await removeDir(dir2);
    }
  });

  it('restores into the database named in the metadata by default, and --clean replaces an existing one', async () => {
    const dir = await tempDir();
    const target = uniqueName('pg_clean');
    created.push(target);
    try {
      await createPgDatabase(target);
      await pgQuery(target, 'CREATE TABLE leftover (id int)');
      const file = await backup(dir);
      const refused = await cli([...pgArgs(), 'restore', 'single', file, '--target', target, '--confirm']);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(`"${target}" already exists and is not empty`);
      expect(refused.stderr).toContain('--clean');
      expect(await pgQuery(target, `SELECT to_regclass('leftover') IS NOT NULL AS present`)).toEqual([
        { present: true },
      ]);

      const cleaned = await cli([
        ...pgArgs(),
        'restore',
        'single',
        file,
        '--target',
        target,
        '--clean',
        '--confirm',
      ]);
      expectExit(cleaned, 0);
      expect(await pgQuery(target, `SELECT to_regclass('leftover') IS NOT NULL AS present`)).toEqual([
        { present: false },
      ]);
      expect(await pgSnapshot(target)).toEqual(before);

      // Without --target the metadata's database is the target: the source itself, which is not empty.
      const dflt = await cli([...pgArgs(), 'restore', 'single', file]);
      expect(dflt.code).not.toBe(0);
      expect(dflt.stderr).toContain(`"${source}" already exists`);
    } finally {
      await removeDir(dir);
    }
  });

  it('is a dry run without --confirm: prints the plan and changes nothing', async () => {
    const dir = await tempDir();
    try {
      const file = await backup(dir);
      const target = uniqueName('pg_dry');
      const r = await cli([...pgArgs(), 'restore', 'single', file, '--target', target, '--create']);
      expectExit(r, 0);
      expect(r.stdout).toContain('Dry run: nothing was changed');
      expect(r.stdout).toContain(`create database "${target}"`);
      const exists = await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [target]);
      expect(exists).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });
  it('without the zstd program: a multi-frame in-process zstd backup verifies --deep and restores whole', async () => {
    // 12 MB of table data: the built-in compressor writes a frame per 4 MiB; restore and verify
    // decode them in process too (zstd-frames.ts; its unit tests cover the frames Node misses).
    const big = uniqueName('pg_frames');
    created.push(big);
    await createPgDatabase(big);
    await pgExec(
      big,
      `CREATE TABLE t AS SELECT g AS id, md5(g::text) || repeat(md5((g * 7)::text), 3) AS body
         FROM generate_series(1, 90000) g`,
    );
    const sum = async (db: string): Promise<string | undefined> =>
      (
        await pgQuery<{ s: string }>(
          db,
          `SELECT count(*) || ':' || md5(string_agg(body, ',' ORDER BY id)) AS s FROM t`,
        )
      )[0]?.s;
    const env = { DBBACKUP_NO_EXTERNAL_COMPRESSOR: '1' };
    const dir = await tempDir();
    try {
      const r = await cli(
        [...pgArgs(), '--backup-dir', dir, 'backup', 'single', big, '--format', 'plain', '--json'],
        { env },
      );
      expectExit(r, 0);
      const meta = JSON.parse(r.stdout) as {
        metadata: { file: string; compression: { implementation: string }; dumpBytes: number };
      };
      expect(meta.metadata.compression.implementation).toContain('node zlib');
      expect(meta.metadata.dumpBytes).toBeGreaterThan(3 * 4 * 1024 * 1024 * 0.8);
      const file = path.join(dir, meta.metadata.file);
      expectExit(await cli(['verify-backup', file, '--deep'], { env }), 0);
      const target = uniqueName('pg_frames_back');
      created.push(target);
      const restored = await cli(
        [...pgArgs(), 'restore', 'single', file, '--target', target, '--create', '--confirm'],
        { env },
      );
      expectExit(restored, 0);
      expect(await sum(target)).toBe(await sum(big));
    } finally {
      await removeDir(dir);
    }
  });
});
