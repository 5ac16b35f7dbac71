import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMyFidelity, loadPgFidelity } from '../harness/fixtures.js';
import { createMyDatabase, dropMyDatabase } from '../harness/mysql.js';
import { mySnapshot, type MySnapshot } from '../harness/my-snapshot.js';
import { createPgDatabase, dropPgDatabase, pgQuery } from '../harness/pg.js';
import { pgSnapshot, type PgSnapshot } from '../harness/pg-snapshot.js';
import { referenceMySingle, referencePgSingle } from '../harness/reference-tool.js';
import { cli, expectExit, myArgs, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * The reference tool's single backups — PostgreSQL `db_<db>_<ts>.dump` (pg_dump --format=custom
 * --compress=6 --blobs) and MySQL/MariaDB `db_<db>_<ts>.sql.gz` (mysqldump | gzip -6), each with its
 * `.sha256` and its own `.meta.json` — made with the real tools, restored by `restore single`.
 */
const pgSource = uniqueName('pgref_single');
const mySource = uniqueName('myref_single');
const pgCreated: string[] = [pgSource];
const myCreated: string[] = [mySource];
let dir: string;
let pgBefore: PgSnapshot;
let myBefore: MySnapshot;
let pgFile: string;
let myFile: string;

async function pgExists(name: string): Promise<boolean> {
  return (await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0;
}

beforeAll(async () => {
  dir = await tempDir('dbb-refsingle-');
  await createPgDatabase(pgSource);
  await loadPgFidelity(pgSource);
  pgBefore = await pgSnapshot(pgSource);
  await createMyDatabase(mySource);
  await loadMyFidelity(mySource);
  myBefore = await mySnapshot(mySource);
  pgFile = await referencePgSingle(dir, pgSource);
  myFile = await referenceMySingle(dir, mySource);
});

afterAll(async () => {
  for (const name of pgCreated) await dropPgDatabase(name);
  for (const name of myCreated) await dropMyDatabase(name);
  if (dir) await removeDir(dir);
});

describe('restore single of the reference tool’s backups', () => {
  it('PostgreSQL db_<db>_<ts>.dump: its own metadata is used to verify the checksum, no --force needed', async () => {
    const target = `${pgSource}_copy`;
    pgCreated.push(target);
    const dry = await cli([...pgArgs(), 'restore', 'single', pgFile, '--target', target, '--create']);
    expectExit(dry, 0);
    expect(dry.stdout).toContain(
      `verify the SHA-256 of the whole backup against the reference tool's metadata (${path.basename(pgFile)}.meta.json)`,
    );
    expect(dry.stdout).toContain('PostgreSQL custom-format archive');
    expect(await pgExists(target)).toBe(false);

    const r = await cli([
      ...pgArgs(),
      'restore',
      'single',
      pgFile,
      '--target',
      target,
      '--create',
      '--confirm',
    ]);
    expectExit(r, 0);
    expect(r.stdout).toContain(`Restore complete: "${target}"`);
    expect(await pgSnapshot(target)).toEqual(pgBefore);
  });

  it('PostgreSQL: a dump whose reference metadata does not match is refused, and nothing is created', async () => {
    const bad = path.join(dir, 'tampered');
    await mkdir(bad);
    const file = path.join(bad, path.basename(pgFile));
    await copyFile(pgFile, file);
    const meta = JSON.parse(await readFile(`${pgFile}.meta.json`, 'utf8')) as { sha256: string };
    meta.sha256 = 'f'.repeat(64);
    await writeFile(`${file}.meta.json`, JSON.stringify(meta));
    const target = `${pgSource}_tampered`;
    pgCreated.push(target);
    const r = await cli([
      ...pgArgs(),
      'restore',
      'single',
      file,
      '--target',
      target,
      '--create',
      '--confirm',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Checksum mismatch for ${path.basename(file)}`);
    expect(await pgExists(target)).toBe(false);
  });

  it('PostgreSQL: the bare dump (no sidecars) needs --force, then restores identically', async () => {
    const bare = path.join(dir, 'bare');
    await mkdir(bare);
    const file = path.join(bare, path.basename(pgFile));
    await copyFile(pgFile, file);
    const target = `${pgSource}_bare`;
    pgCreated.push(target);
    const refused = await cli([
      ...pgArgs(),
      'restore',
      'single',
      file,
      '--target',
      target,
      '--create',
      '--confirm',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('has no metadata');
    expect(refused.stderr).toContain('--force');
    expect(await pgExists(target)).toBe(false);
    const r = await cli([
      ...pgArgs(),
      'restore',
      'single',
      file,
      '--target',
      target,
      '--create',
      '--confirm',
      '--force',
    ]);
    expectExit(r, 0);
    expect(await pgSnapshot(target)).toEqual(pgBefore);
  });

  it('MariaDB db_<db>_<ts>.sql.gz (mysqldump | gzip): detected from content, restored with its metadata or with --force', async () => {
    const target = `${mySource}_copy`;
    myCreated.push(target);
    // No --db-type: the engine comes from the dump's content.
    const r = await cli([
      ...myArgs().slice(2),
      'restore',
      'single',
      myFile,
      '--target',
      target,
      '--create',
      '--confirm',
    ]);
    expectExit(r, 0);
    expect(r.stderr).toContain("against the reference tool's metadata");
    expect(await mySnapshot(target)).toEqual(myBefore);

    const bare = path.join(dir, 'my-bare');
    await mkdir(bare);
    const file = path.join(bare, path.basename(myFile));
    await copyFile(myFile, file);
    const forced = `${mySource}_forced`;
    myCreated.push(forced);
    const f = await cli([
      ...myArgs(),
      'restore',
      'single',
      file,
      '--target',
      forced,
      '--create',
      '--confirm',
      '--force',
    ]);
    expectExit(f, 0);
    expect(await mySnapshot(forced)).toEqual(myBefore);
  });
});
