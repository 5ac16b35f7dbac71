/**
 * Point-in-time recovery of a cluster with a tablespace outside its data directory: `backup base`
 * stores the tablespace as its own object (read through BASE_BACKUP), `restore pitr` puts it back
 * into another directory with --tablespace-map, and a missing tablespace part is found by
 * verify-backup and refused by the restore's plan before anything is written.
 */
import { cp, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  archiveDir,
  exists,
  postgresDir,
  removePostgresDirs,
  startPitrServer,
  type PitrServer,
} from '../harness/pitr-server.js';
import {
  cliOk,
  markTime,
  restoreAndStart,
  rowsCommittedBy,
  switchAndArchive,
  writeBatch,
  type Restored,
} from './pitr-util.js';
import { cli } from './util.js';

interface BaseMeta {
  name: string;
  files: Array<{ key: string; role: string }>;
  tablespaces?: Array<{ oid: string; location: string; key: string }>;
}

let server: PitrServer;
let archive: string;
let spaceDir: string;
let meta: BaseMeta;
let oid: string;
let time: string;
let expected: { rows: number; md5: string };
const restored: Restored[] = [];

/** Rows of t (in the tablespace) committed by `time`, and a checksum of their contents. */
async function sourceState(at: string): Promise<{ rows: number; md5: string }> {
  const [row] = await server.query<{ m: string }>(
    "SELECT md5(string_agg(id || ':' || batch || ':' || v, ',' ORDER BY id)) AS m FROM t WHERE pg_xact_commit_timestamp(xmin) <= $1::timestamptz",
    [at],
  );
  return { rows: await rowsCommittedBy(server, at), md5: row?.m ?? '' };
}

beforeAll(async () => {
  server = await startPitrServer();
  archive = await archiveDir();
  await cliOk([...server.args(), 'pitr', 'enable', '--archive', archive]);
  await server.restart();
  spaceDir = await postgresDir('dbb-tblspc-');
  await server.query(`CREATE TABLESPACE ts1 LOCATION '${spaceDir}'`);
  await server.query(
    'CREATE TABLE t (id bigserial PRIMARY KEY, batch text NOT NULL, v text NOT NULL) TABLESPACE ts1',
  );
  await writeBatch(server, 'before-base');
  const base = await cliOk([...server.args(), 'backup', 'base', '--json']);
  meta = (JSON.parse(base.stdout) as { metadata: BaseMeta }).metadata;
  const [o] = await server.query<{ oid: string }>(
    "SELECT oid::text AS oid FROM pg_tablespace WHERE spcname = 'ts1'",
  );
  oid = o?.oid ?? '';
  await writeBatch(server, 'a');
  time = await markTime(server);
  await writeBatch(server, 'b');
  expected = await sourceState(time);
  await switchAndArchive(server);
}, 240_000);

afterAll(async () => {
  for (const r of restored) await r.stop().catch(() => undefined);
  await server?.stop();
  await removePostgresDirs();
});

describe('PITR with a tablespace outside the data directory', () => {
  it('backup base stores the tablespace as its own object and records it with its directory', async () => {
    expect(meta.tablespaces).toEqual([{ oid, location: spaceDir, key: `base/${meta.name}/${oid}.tar.zst` }]);
    expect(meta.files.map((f) => f.role).sort()).toEqual([oid, 'base', 'manifest'].sort());
    for (const f of meta.files) expect((await stat(path.join(archive, f.key))).size).toBeGreaterThan(0);
    const verify = await cliOk(['verify-backup', `${archive}/base/${meta.name}/`]);
    expect(verify.stdout).toMatch(/^OK .*3 files match their checksums/m);
  });

  it('restore to its original directory is refused while the source still uses it', async () => {
    const target = path.join(await postgresDir('dbb-restored-'), 'data');
    const r = await cli([
      'restore',
      'pitr',
      'latest',
      '--archive',
      archive,
      '--data-dir',
      target,
      '--target-time',
      time,
      '--confirm',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(
      `tablespace ${oid} would be restored into ${spaceDir}, which is not empty`,
    );
    expect(await exists(target)).toBe(false);
  });

  it('restores to a moment with the tablespace relocated: rows and their checksum as committed then', async () => {
    const newSpace = path.join(await postgresDir('dbb-tblspc-restored-'), 'ts1');
    const r = await restoreAndStart([
      'latest',
      '--archive',
      archive,
      '--target-time',
      time,
      '--tablespace-map',
      `${oid}=${newSpace}`,
    ]);
    restored.push(r);
    expect(r.result.code, r.result.stderr + r.result.stdout).toBe(0);
    expect(r.result.stdout).toContain(`Tablespace: ${oid} (was ${spaceDir}) → ${newSpace} (mapped)`);
    const [loc] = await r.query<{ l: string }>(
      "SELECT pg_tablespace_location(oid) AS l FROM pg_tablespace WHERE spcname = 'ts1'",
    );
    expect(loc?.l).toBe(newSpace);
    const [state] = await r.query<{ n: string; m: string }>(
      "SELECT count(*) AS n, md5(string_agg(id || ':' || batch || ':' || v, ',' ORDER BY id)) AS m FROM t",
    );
    expect({ rows: Number(state?.n), md5: state?.m }).toEqual(expected);
    expect(expected.rows).toBeGreaterThan(0);
    // The table's files are in the new directory, not in the source's.
    expect((await readdir(newSpace)).some((n) => n.startsWith('PG_'))).toBe(true);
  });

  it('a missing tablespace part: verify-backup names it, and restore refuses before writing anything', async () => {
    const copy = path.join(await postgresDir('dbb-archive-copy-'), 'archive');
    await cp(archive, copy, { recursive: true });
    const part = `base/${meta.name}/${oid}.tar.zst`;
    await rm(path.join(copy, part));
    const verify = await cli(['verify-backup', `${copy}/base/${meta.name}/`]);
    expect(verify.code).not.toBe(0);
    expect(verify.stdout + verify.stderr).toContain(`${part} is missing`);
    const parent = await postgresDir('dbb-restored-');
    const target = path.join(parent, 'data');
    const newSpace = path.join(parent, 'ts1');
    const r = await cli([
      'restore',
      'pitr',
      meta.name,
      '--archive',
      copy,
      '--data-dir',
      target,
      '--target-time',
      time,
      '--tablespace-map',
      `${spaceDir}=${newSpace}`,
      '--confirm',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(`base backup ${meta.name} is not whole: ${part} is missing`);
    expect(await exists(target)).toBe(false);
    expect(await exists(newSpace)).toBe(false);
  });
});
