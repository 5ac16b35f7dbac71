import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPgFidelity } from '../harness/fixtures.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { pgSnapshot, type PgSnapshot } from '../harness/pg-snapshot.js';
import { referencePgCluster } from '../harness/reference-tool.js';
import { cli, expectExit, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * `restore single --from-cluster <reference cluster_<ts>.tar.gz> --database NAME --target COPY`: one
 * database out of the reference tool's archive, under a name of the user's choosing, roles untouched.
 */
const P = uniqueName('pgrefm');
const custom = `${P}_custom`; // dumps/<db>.dump
const plain = `${P}_plain`; // dumps/<db>.sql.gz, as the reference stores databases over 5 GiB
const created: string[] = [custom, plain];
let dir: string;
let archive: string;
const before: Record<string, PgSnapshot> = {};

beforeAll(async () => {
  dir = await tempDir('dbb-refmember-');
  for (const db of [custom, plain]) {
    await createPgDatabase(db);
    await loadPgFidelity(db);
    before[db] = await pgSnapshot(db);
  }
  archive = await referencePgCluster(dir, { custom: [custom], plain: [plain] });
});

afterAll(async () => {
  for (const db of created) await dropPgDatabase(db);
  if (dir) await removeDir(dir);
});

function restoreMember(file: string, database: string, ...args: string[]): ReturnType<typeof cli> {
  return cli([...pgArgs(), 'restore', 'single', '--from-cluster', file, '--database', database, ...args]);
}

async function exists(db: string): Promise<boolean> {
  return (await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [db])).length > 0;
}

function target(prefix: string): string {
  const name = `${P}_${prefix}`;
  created.push(name);
  return name;
}

describe('one database out of a reference cluster archive', () => {
  it('is a dry run without --confirm: the archive is checked whole, the plan printed, nothing created', async () => {
    const copy = target('dry');
    const r = await restoreMember(archive, custom, '--target', copy, '--create');
    expectExit(r, 0);
    expect(r.stdout).toContain(`${path.basename(archive)} → dumps/${custom}.dump`);
    expect(r.stdout).toMatch(/checked the whole archive: SHA-256 verified against .*\.meta\.json/);
    expect(r.stdout).toContain(`create database "${copy}"`);
    expect(r.stdout).toContain('Dry run: nothing was changed');
    expect(await exists(copy)).toBe(false);
  });

  it('restores a custom-format member under another name, identical to the source', async () => {
    const copy = target('custom_copy');
    const r = await restoreMember(archive, custom, '--target', copy, '--create', '--confirm');
    expectExit(r, 0);
    expect(r.stdout).toContain(`Restore complete: "${copy}"`);
    expect(await pgSnapshot(copy)).toEqual(before[custom]);
  });

  it('restores a plain .sql.gz member through gunzip and psql, identical to the source', async () => {
    const copy = target('plain_copy');
    const r = await restoreMember(archive, plain, '--target', copy, '--create', '--confirm');
    expectExit(r, 0);
    expect(r.stderr).toContain('is a plain SQL dump');
    expect(await pgSnapshot(copy)).toEqual(before[plain]);
  });

  it('refuses a non-empty target without --clean, and replaces it with --clean', async () => {
    const copy = target('busy');
    await createPgDatabase(copy);
    await pgExec(copy, 'CREATE TABLE leftover (id int)');
    const refused = await restoreMember(archive, custom, '--target', copy, '--confirm');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`Target database "${copy}" already exists and is not empty (1 object)`);
    expect(refused.stderr).toMatch(/^hint: .*--clean/m);
    expect(await pgQuery(copy, `SELECT to_regclass('leftover') IS NOT NULL AS present`)).toEqual([
      { present: true },
    ]);
    expectExit(await restoreMember(archive, custom, '--target', copy, '--clean', '--confirm'), 0);
    expect(await pgSnapshot(copy)).toEqual(before[custom]);
  });

  it('names the databases the archive holds when the one asked for is not there', async () => {
    const r = await restoreMember(archive, 'no_such_db', '--target', target('none'), '--create', '--confirm');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`Database "no_such_db" is not in ${path.basename(archive)}`);
    expect(r.stderr).toContain(`It holds: ${custom}, ${plain}`);
  });

  it('a damaged archive: the checksum from its metadata stops the restore before anything is created', async () => {
    const damaged = path.join(dir, 'damaged', path.basename(archive));
    const { mkdir } = await import('node:fs/promises');
    await mkdir(path.dirname(damaged));
    await copyFile(`${archive}.meta.json`, `${damaged}.meta.json`);
    const bytes = await readFile(archive);
    // A byte inside the gzip stream's stored CRC region would be caught by gunzip too; the checksum comes first.
    const at = bytes.length - 4;
    bytes[at] = (bytes[at] ?? 0) ^ 0x01;
    await writeFile(damaged, bytes);
    const copy = target('damaged');
    const r = await restoreMember(damaged, custom, '--target', copy, '--create', '--confirm');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/damaged|Checksum mismatch/);
    expect(r.stderr).toContain('Nothing was changed');
    expect(await exists(copy)).toBe(false);
  });
});
