import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patchArchiveOffsets } from '../../src/catalog/pg-archive-offsets.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { pgServer } from '../harness/servers.js';
import { cli, expectExit, onlyBackup, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * A streamed archive (what every backup stores) has no data offsets, so `pg_restore -j N` made each
 * worker read the whole archive to find its table: 16 s of CPU on the benchmark's 769 MB archive.
 * `restore --jobs` now gives its temporary copy the offsets pg_dump would have written to a file.
 * These tests check the patched bytes against pg_dump's own (the same archive written to a file),
 * and that a --jobs restore of a backup brings every row back.
 */
const db = uniqueName('pg_offsets');
const restored = uniqueName('pg_offsets_r');
let dir: string;

const TABLES = ['a', 'b', 'c'];

function pgDump(extra: string[]): Buffer {
  const s = pgServer();
  return execFileSync(
    'pg_dump',
    ['-h', s.host, '-p', String(s.port), '-U', s.user, '-Fc', '-Z0', ...extra, db],
    { maxBuffer: 256 * 1024 * 1024 },
  );
}

/** Every table's row count and an md5 over its rows in order: what a user would compare. */
async function snapshot(database: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of TABLES) {
    const [row] = await pgQuery<{ n: string; h: string }>(
      database,
      `SELECT count(*)::text AS n, md5(string_agg(${t}::text, ',' ORDER BY id)) AS h FROM ${t}`,
    );
    out[t] = `${row?.n}:${row?.h}`;
  }
  const [lo] = await pgQuery<{ h: string }>(
    database,
    `SELECT md5(string_agg(encode(lo_get(oid), 'hex'), ',' ORDER BY oid)) AS h FROM pg_largeobject_metadata`,
  );
  out.largeObjects = String(lo?.h);
  return out;
}

async function backupInto(backups: string): Promise<string> {
  expectExit(await cli([...pgArgs(), 'backup', 'single', db, '--backup-dir', backups]), 0);
  return onlyBackup(backups);
}

function restoreJobs2(file: string, target: string, workdir: string): ReturnType<typeof cli> {
  return cli([
    ...pgArgs(),
    ...['restore', 'single', file, '--target', target, '--create', '--confirm'],
    ...['--jobs', '2', '--workdir', workdir],
  ]);
}

function differences(a: Buffer, b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

beforeAll(async () => {
  dir = await tempDir('dbb-offsets-');
  await createPgDatabase(db);
  await pgExec(
    db,
    TABLES.map(
      (t, i) =>
        `CREATE TABLE ${t} (id int PRIMARY KEY, v text);
         INSERT INTO ${t} SELECT g, repeat(md5(g::text), ${i + 1}) FROM generate_series(1, ${5000 * (i + 1)}) g;`,
    ).join('\n') + `SELECT lo_from_bytea(0, convert_to(repeat('large object ', 5000), 'UTF8'));`,
  );
});

afterAll(async () => {
  await dropPgDatabase(db);
  await dropPgDatabase(restored);
  await removeDir(dir);
});

describe('data offsets for a streamed custom archive', () => {
  it('writes the offsets pg_dump writes when its output is a file, and changes nothing else', async () => {
    // The same database dumped twice: into a pipe (offsets "not set") and into a file (offsets set).
    const streamed = path.join(dir, 'streamed.dump');
    const seekable = path.join(dir, 'seekable.dump');
    await writeFile(streamed, pgDump([]));
    pgDump(['-f', seekable]);
    const before = await readFile(streamed);
    const expected = await readFile(seekable);

    expect(await patchArchiveOffsets(streamed)).toBe(TABLES.length + 1); // three tables and the blobs
    const after = await readFile(streamed);
    // pg_dump stamps its start time in the header (bytes 11 to 50 at most); every other byte must be
    // pg_dump's own, the offsets included.
    expect(after.length).toBe(expected.length);
    expect(differences(before, expected).some((i) => i > 50)).toBe(true);
    expect(differences(after, expected).filter((i) => i > 50)).toEqual([]);
  });

  it('leaves an archive that already has its offsets, or that is cut short, as it is', async () => {
    const seekable = path.join(dir, 'has-offsets.dump');
    pgDump(['-f', seekable]);
    const original = await readFile(seekable);
    expect(await patchArchiveOffsets(seekable)).toBe(0);
    expect((await readFile(seekable)).equals(original)).toBe(true);

    const cut = path.join(dir, 'cut.dump');
    const whole = pgDump([]);
    const short = whole.subarray(0, whole.length - 1000);
    await writeFile(cut, short);
    expect(await patchArchiveOffsets(cut)).toBe(0);
    expect((await readFile(cut)).equals(short)).toBe(true);
  });

  it('restore --jobs 2 of a backup brings back every row and large object', async () => {
    const file = await backupInto(path.join(dir, 'backups'));
    expectExit(await restoreJobs2(file, restored, dir), 0);
    expect(await snapshot(restored)).toEqual(await snapshot(db));
  });

  it('restore --jobs 2 of a backup with a flipped byte: refused as corrupt before the target exists, no copy left', async () => {
    const file = await backupInto(path.join(dir, 'flipped'));
    const bytes = await readFile(file);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] ?? 0) ^ 0xff;
    await writeFile(file, bytes);
    const workdir = path.join(dir, 'work-flipped');
    await mkdir(workdir);
    const target = uniqueName('pg_offsets_bad');
    const result = await restoreJobs2(file, target, workdir);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Checksum mismatch');
    expect(result.stderr).toContain('Nothing was changed');
    expect(await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [target])).toEqual([]);
    expect(await readdir(workdir)).toEqual([]);
  });
});
