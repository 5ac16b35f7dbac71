import { copyFile, mkdir, readFile, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockPgGlobals, unlockPgGlobals } from '../harness/cluster-lock.js';
import { loadPgFidelity } from '../harness/fixtures.js';
import { dropPgDatabase, pgExec, pgIdent, pgQuery } from '../harness/pg.js';
import { pgDatabases, pgRoles, type PgDatabaseRow, type PgRoleRow } from '../harness/pg-cluster-state.js';
import { pgSnapshot, type PgSnapshot } from '../harness/pg-snapshot.js';
import { run } from '../harness/proc.js';
import { referencePgCluster } from '../harness/reference-tool.js';
import {
  cleanupJson,
  cli,
  expectExit,
  listDir,
  listJson,
  pgArgs,
  removeDir,
  tempDir,
  uniqueName,
  type ListedBackup,
} from './util.js';

/**
 * The reference tool's cluster archives (`cluster_<ts>.tar.gz`: globals.sql + dumps/<db>.dump or
 * dumps/<db>.sql.gz), made by the real pg_dumpall, pg_dump, gzip and tar exactly as the reference
 * makes them, restored by `dbbackup restore cluster` onto the shared throwaway server. Everything
 * here starts with a unique prefix; every restore is limited to it with --include-database (the
 * archive also holds the server's `postgres` database, as the reference's always do).
 */
const P = uniqueName('pgref');
const I = pgIdent;

const db = {
  app: `${P}_app`, // fidelity fixture; owner, database grants and settings, connection limit
  latin1: `${P}_latin1`, // LATIN1 encoding, C locale
  shop: `${P} My Shop-DB`, // space, dash and upper case
  big: `${P}_big`, // stored as the reference stores databases over 5 GiB: plain SQL, gzip
};
const role = {
  owner: `${P}_owner`,
  reader: `${P}_reader`,
  app: `${P}_app_user`,
  ephemeral: `${P}_ephemeral`, // dropped after the backup: only a restore of the globals brings it back
};
const include = ['--include-database', `${P}*`];

interface State {
  roles: PgRoleRow[];
  databases: PgDatabaseRow[];
  snapshots: Record<string, PgSnapshot>;
}

let dir: string;
let archive: string;
let before: State;

async function state(): Promise<State> {
  const snapshots: Record<string, PgSnapshot> = {};
  for (const name of Object.values(db)) snapshots[name] = await pgSnapshot(name);
  return { roles: await pgRoles(P), databases: await pgDatabases(P), snapshots };
}

async function databaseNames(): Promise<string[]> {
  return (await pgDatabases(P)).map((d) => d.datname);
}

async function dropAll(): Promise<void> {
  for (const name of await databaseNames()) await dropPgDatabase(name);
  for (const r of await pgRoles(P)) await pgExec('postgres', `DROP ROLE IF EXISTS ${I(r.rolname)}`);
}

async function markerPresent(): Promise<boolean> {
  const rows = await pgQuery<{ present: boolean }>(
    db.latin1,
    `SELECT to_regclass('public.marker_after_backup') IS NOT NULL AS present`,
  );
  return rows[0]?.present === true;
}

function restore(...args: string[]): ReturnType<typeof cli> {
  return cli([...pgArgs(), 'restore', 'cluster', ...args]);
}

// Other files restore PostgreSQL globals on this server too: take turns (see cluster-lock.ts).
beforeAll(() => lockPgGlobals(), 900_000);

beforeAll(async () => {
  dir = await tempDir('dbb-refcluster-');
  await pgExec(
    'postgres',
    `CREATE ROLE ${I(role.owner)} LOGIN CREATEDB PASSWORD 'owner-Secret-1';
     CREATE ROLE ${I(role.reader)} NOLOGIN;
     CREATE ROLE ${I(role.app)} LOGIN PASSWORD 'app pa''ss "2"' CONNECTION LIMIT 7;
     CREATE ROLE ${I(role.ephemeral)} LOGIN PASSWORD 'gone-soon';
     GRANT ${I(role.reader)} TO ${I(role.app)} WITH ADMIN OPTION;
     ALTER ROLE ${I(role.app)} SET statement_timeout = '5s';`,
  );
  await pgExec(
    'postgres',
    `CREATE DATABASE ${I(db.app)} OWNER ${I(role.owner)} TEMPLATE template0 ENCODING 'UTF8' CONNECTION LIMIT 50`,
  );
  await pgExec(
    'postgres',
    `CREATE DATABASE ${I(db.latin1)} OWNER ${I(role.owner)} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'`,
  );
  await pgExec('postgres', `CREATE DATABASE ${I(db.shop)} OWNER ${I(role.app)} TEMPLATE template0`);
  await pgExec('postgres', `CREATE DATABASE ${I(db.big)} TEMPLATE template0`);
  await pgExec(
    'postgres',
    `GRANT CONNECT, TEMP ON DATABASE ${I(db.app)} TO ${I(role.reader)};
     REVOKE CONNECT ON DATABASE ${I(db.app)} FROM PUBLIC;
     ALTER DATABASE ${I(db.app)} SET work_mem = '8MB';
     ALTER ROLE ${I(role.app)} IN DATABASE ${I(db.app)} SET work_mem = '16MB';
     ALTER DATABASE ${I(db.latin1)} SET datestyle = 'SQL, DMY';`,
  );
  await loadPgFidelity(db.app);
  await pgExec(
    db.latin1,
    `CREATE TABLE t (id int PRIMARY KEY, name text);
     INSERT INTO t VALUES (1, 'café'), (2, 'Müller'), (3, 'ñandú'), (4, NULL);`,
  );
  await pgExec(
    db.shop,
    `CREATE SCHEMA "Shop Schema";
     CREATE TABLE "Shop Schema"."Order Lines" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sku text, qty int);
     INSERT INTO "Shop Schema"."Order Lines" (sku, qty) SELECT 'SKU-' || g, g % 9 FROM generate_series(1, 2000) g;
     GRANT USAGE ON SCHEMA "Shop Schema" TO ${I(role.reader)};
     GRANT SELECT ON ALL TABLES IN SCHEMA "Shop Schema" TO ${I(role.reader)};`,
  );
  await pgExec(
    db.big,
    `CREATE TABLE events (id bigint PRIMARY KEY, payload jsonb, note text);
     INSERT INTO events SELECT g, jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 7)), repeat('x', g % 50)
       FROM generate_series(1, 5000) g;
     ALTER TABLE events OWNER TO ${I(role.owner)};
     GRANT SELECT ON events TO ${I(role.reader)};`,
  );
  before = await state();
  archive = await referencePgCluster(dir, {
    custom: ['postgres', db.app, db.latin1, db.shop],
    plain: [db.big],
  });
  await pgExec('postgres', `DROP ROLE ${I(role.ephemeral)}`);
});

afterAll(async () => {
  try {
    await dropAll();
    if (dir) await removeDir(dir);
  } finally {
    await unlockPgGlobals();
  }
});

describe('restore cluster of a reference cluster_<ts>.tar.gz', () => {
  it('the archive is what the reference tool writes: globals.sql and dumps/ (custom and gzip-compressed SQL)', async () => {
    const list = await run('tar', ['-tzf', archive]);
    expect(list.code).toBe(0);
    const entries = list.stdout.split('\n').filter(Boolean);
    expect(entries).toContain('./globals.sql');
    for (const name of [db.app, db.latin1, db.shop, 'postgres'])
      expect(entries).toContain(`./dumps/${name}.dump`);
    expect(entries).toContain(`./dumps/${db.big}.sql.gz`);
    expect(path.basename(archive)).toMatch(/^cluster_\d{8}_\d{6}\.tar\.gz$/);
    expect(before.databases.find((d) => d.datname === db.latin1)?.encoding).toBe('LATIN1');
    expect(before.snapshots[db.app]?.largeObjects.count).toBeGreaterThan(0);
  });

  it('lists every conflict before changing anything, with or without --confirm', async () => {
    await pgExec(db.latin1, 'CREATE TABLE marker_after_backup (id int)');
    for (const extra of [[], ['--confirm']]) {
      const r = await restore(archive, ...include, ...extra);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/already exist/);
      for (const name of Object.values(db)) expect(r.stderr).toContain(name);
      expect(r.stderr).toContain('--clean-cluster');
      expect(r.stderr).toContain('Nothing was changed');
    }
    expect(await markerPresent()).toBe(true);
    expect((await pgRoles(P)).map((r) => r.rolname)).not.toContain(role.ephemeral);
  });

  it('is a dry run without --confirm: the plan names every database and the verified checksum', async () => {
    const r = await restore(archive, '--clean-cluster', ...include);
    expectExit(r, 0);
    expect(r.stdout).toContain(`Cluster archive: ${archive} (reference tool`);
    expect(r.stdout).toContain(`SHA-256 verified against ${path.basename(archive)}.meta.json`);
    expect(r.stdout).toMatch(/restore roles and tablespaces/);
    expect(r.stdout).toMatch(/terminate sessions and drop /);
    expect(r.stdout).toMatch(
      /restore 3 custom-format dumps with pg_restore --create .*streamed from the archive/,
    );
    expect(r.stdout).toMatch(new RegExp(`create and restore 1 plain SQL dumps with psql .*${db.big}`));
    for (const name of Object.values(db)) expect(r.stdout).toContain(name);
    expect(r.stdout).toContain('Dry run: nothing was changed');
    expect(await markerPresent()).toBe(true);
    expect((await pgRoles(P)).map((x) => x.rolname)).not.toContain(role.ephemeral);
  });

  it('recognises the archive by its content, not its name', async () => {
    const renamed = path.join(dir, 'old-backup.bin');
    await copyFile(archive, renamed);
    const r = await restore(renamed, '--clean-cluster', ...include);
    expectExit(r, 0);
    expect(r.stdout).toContain('(reference tool');
    // No sidecar under this name: the gzip CRC and the tar structure are what was checked.
    expect(r.stdout).toMatch(
      /no reference metadata with an archive checksum; gzip CRC-32 and tar structure verified/,
    );
    for (const name of Object.values(db)) expect(r.stdout).toContain(name);
  });

  it('refuses bad archives and bad options with one line, before anything changes', async () => {
    const bad = path.join(dir, 'bad');
    await mkdir(bad);
    const data = await readFile(archive);

    const truncated = path.join(bad, 'cluster_truncated.tar.gz');
    await writeFile(truncated, data.subarray(0, Math.floor(data.length * 0.6)));
    const t = await restore(truncated, '--clean-cluster', '--confirm', ...include);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/cluster_truncated\.tar\.gz is damaged: unexpected end of file/);
    expect(t.stderr).toContain('Nothing was changed');

    // The reference's metadata records the archive's SHA-256: a mismatch stops the restore; --force overrides.
    const tampered = path.join(bad, path.basename(archive));
    await copyFile(archive, tampered);
    const meta = JSON.parse(await readFile(`${archive}.meta.json`, 'utf8')) as {
      extra_info: Record<string, string>;
    };
    meta.extra_info.archive_sha256 = '0'.repeat(64);
    await writeFile(`${tampered}.meta.json`, JSON.stringify(meta));
    const mismatch = await restore(tampered, '--clean-cluster', '--confirm', ...include);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toContain(`Checksum mismatch for ${path.basename(archive)}`);
    const forced = await restore(tampered, '--clean-cluster', '--force', ...include);
    expectExit(forced, 0);
    expect(forced.stdout).toMatch(/Warning: the archive's SHA-256 .* differs/);

    // A gzip file that is a single dump, not a cluster archive.
    const single = path.join(bad, 'cluster_single.tar.gz');
    await writeFile(single, gzipSync('--\n-- PostgreSQL database dump\n--\nSELECT 1;\n'));
    const s = await restore(single, ...include);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/is a file, but not a cluster backup/);
    expect(s.stderr).toContain('dbbackup restore single');

    // A tar.gz that is not the reference's layout.
    const other = path.join(bad, 'other');
    await mkdir(other);
    await writeFile(path.join(other, 'notes.txt'), 'hello\n');
    const otherTar = path.join(bad, 'cluster_other.tar.gz');
    expect((await run('tar', ['-czf', otherTar, '-C', other, '.'])).code).toBe(0);
    const o = await restore(otherTar, ...include);
    expect(o.code).toBe(2);
    expect(o.stderr).toMatch(
      /not a cluster backup of the reference tool: it has no globals\.sql and dumps\/\*/,
    );

    const noWorkdir = await restore(
      archive,
      '--jobs',
      '2',
      '--workdir',
      path.join(bad, 'missing'),
      ...include,
    );
    expect(noWorkdir.code).toBe(2);
    expect(noWorkdir.stderr).toMatch(/--workdir .*missing is not a directory/);

    const mysql = await cli([...pgArgs(), '--db-type', 'mariadb', 'restore', 'cluster', archive, ...include]);
    expect(mysql.code).toBe(2);
    expect(mysql.stderr).toMatch(
      /PostgreSQL cluster archive of the reference tool, but --db-type is mariadb/,
    );

    // restore single points to restore cluster for the archive.
    const asSingle = await cli([...pgArgs(), 'restore', 'single', archive, '--target', `${P}_x`, '--create']);
    expect(asSingle.code).toBe(2);
    expect(asSingle.stderr).toMatch(
      /is a tar archive \(a cluster backup of the reference tool\?\), not a single dump/,
    );
    expect(asSingle.stderr).toContain('dbbackup restore cluster');

    const none = await restore(archive, '--include-database', `${P}_nothing*`);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('No database of the archive matches --include-database');

    expect(await markerPresent()).toBe(true);
    expect(await databaseNames()).toEqual(before.databases.map((d) => d.datname));
  });

  it('--clean-cluster --confirm replaces the databases, streaming (nothing written to --workdir), with progress', async () => {
    const workdir = path.join(dir, 'work-stream');
    await mkdir(workdir);
    const r = await restore(
      archive,
      '--clean-cluster',
      '--confirm',
      '--progress',
      '--workdir',
      workdir,
      ...include,
    );
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^Cluster restore complete: 4 databases /m);
    expect(await readdir(workdir)).toEqual([]);
    expect(await markerPresent()).toBe(false);
    // The globals brought the dropped role back; everything else is as it was.
    expect(await state()).toEqual(before);

    const lines = r.stderr.split('\n').filter((l) => l.startsWith('cluster restore: '));
    expect(lines[0]).toMatch(/^cluster restore: checking .*\.tar\.gz: /);
    expect(lines.some((l) => /^cluster restore: checking .*\.tar\.gz: done in /.test(l))).toBe(true);
    for (const name of Object.values(db)) {
      expect(lines.some((l) => l.startsWith(`cluster restore: ${name}: restoring`))).toBe(true);
      expect(lines.some((l) => l.startsWith(`cluster restore: ${name}: done in `))).toBe(true);
    }
    expect(lines.at(-1)).toMatch(/^cluster restore: finished: 4 done, 0 failed; /);
  });

  it('restores roles, owners, encodings, grants, settings and data onto a server without them, with --jobs from --workdir', async () => {
    await dropAll();
    expect(await databaseNames()).toEqual([]);
    expect(await pgRoles(P)).toEqual([]);
    const workdir = path.join(dir, 'work-jobs');
    await mkdir(workdir);
    const r = await restore(archive, '--jobs', '2', '--workdir', workdir, '--confirm', ...include);
    expectExit(r, 0);
    expect(r.stderr).toMatch(
      new RegExp(
        `each extracted into ${workdir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} first and restored with 2 jobs`,
      ),
    );
    expect(r.stdout).toMatch(/^Cluster restore complete: 4 databases /m);
    // Every extracted dump was deleted after its restore.
    expect(await readdir(workdir)).toEqual([]);
    const after = await state();
    expect(after.roles).toEqual(before.roles);
    expect(after.databases).toEqual(before.databases);
    for (const name of Object.values(db)) expect(after.snapshots[name], name).toEqual(before.snapshots[name]);
  });
});

describe('restore cluster of a reference archive in which one database cannot be restored', () => {
  const Q = uniqueName('pgrefq');
  const ok = `${Q}_ok`;
  const bad = `${Q}_bad`;
  const late = `${Q}_late`; // created after pg_dumpall ran, so the archive's globals.sql lacks it
  let qdir: string;
  let qarchive: string;

  beforeAll(async () => {
    qdir = await tempDir('dbb-refcluster-fail-');
    await pgExec('postgres', `CREATE DATABASE ${I(ok)} TEMPLATE template0`);
    await pgExec(ok, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);');
    qarchive = await referencePgCluster(qdir, {
      custom: [bad, ok],
      afterGlobals: async () => {
        await pgExec('postgres', `CREATE ROLE ${I(late)}`);
        await pgExec('postgres', `CREATE DATABASE ${I(bad)} TEMPLATE template0`);
        await pgExec(bad, `CREATE TABLE owned (id int); ALTER TABLE owned OWNER TO ${I(late)};`);
      },
    });
    await dropPgDatabase(ok);
    await dropPgDatabase(bad);
    await pgExec('postgres', `DROP ROLE ${I(late)}`);
  });

  afterAll(async () => {
    for (const name of [ok, bad]) await dropPgDatabase(name);
    await pgExec('postgres', `DROP ROLE IF EXISTS ${I(late)}`);
    if (qdir) await removeDir(qdir);
  });

  it('fails naming it, drops what it half-restored, and restores the others', async () => {
    const r = await restore(qarchive, '--confirm', '--progress', '--include-database', `${Q}*`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Cluster restore failed for 1 of 2 databases');
    expect(r.stderr).toMatch(new RegExp(`${bad}: pg_restore failed .*role "${late}" does not exist`));
    expect(r.stderr).toMatch(new RegExp(`^cluster restore: ${bad}: failed: `, 'm'));
    expect(r.stderr).toMatch(/^cluster restore: finished: 1 done, 1 failed; /m);
    const names = await pgQuery<{ datname: string }>(
      'postgres',
      'SELECT datname FROM pg_database WHERE datname = ANY($1) ORDER BY 1',
      [[ok, bad]],
    );
    expect(names.map((n) => n.datname)).toEqual([ok]);
    expect(await pgQuery(ok, 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 100 }]);
  });
});

describe('list backups, verify-backup and cleanup of a reference cluster_<ts>.tar.gz', () => {
  type Entry = ListedBackup & {
    engine: string | null;
    sizeBytes: number | null;
    producer: string | null;
    kind: string | null;
  };

  /** The archive (and, unless `bare`, its .meta.json) copied into `sub`. */
  async function copyArchive(sub: string, bare = false): Promise<string> {
    const to = path.join(dir, sub);
    await mkdir(to, { recursive: true });
    const copy = path.join(to, path.basename(archive));
    await copyFile(archive, copy);
    if (!bare) await copyFile(`${archive}.meta.json`, `${copy}.meta.json`);
    return copy;
  }

  async function only(where: string): Promise<Entry> {
    const entries = (await listJson(['--backup-dir', where])) as Entry[];
    expect(entries).toHaveLength(1);
    return entries[0] as Entry;
  }

  it('is listed as one (unverified) cluster entry of the reference tool, with its size and database count', async () => {
    const copy = await copyArchive('catalog');
    expect(await only(path.dirname(copy))).toMatchObject({
      key: path.basename(archive),
      state: 'unverified',
      kind: 'cluster',
      database: '(cluster: 5 databases)',
      engine: 'postgres',
      producer: 'reference',
      sizeBytes: (await stat(archive)).size,
    });
    const text = await cli(['--backup-dir', path.dirname(copy), 'list', 'backups']);
    expectExit(text, 0);
    expect(text.stdout).toMatch(
      new RegExp(
        `^${path.basename(archive)} \\[ref\\]\\s+\\(cluster: 5 databases\\)\\s+postgres\\s.*\\sunverified$`,
        'm',
      ),
    );
  });

  it('verify-backup checks the archive’s SHA-256; --deep reads the whole archive and says what it did not check', async () => {
    const copy = await copyArchive('verify');
    const full = await cli(['verify-backup', copy]);
    expectExit(full, 0);
    expect(full.stdout).toMatch(
      /^OK {4}.*\[ref\] .*: sha256 [0-9a-f]{16}… matches the reference tool's metadata$/m,
    );
    const deep = await cli(['verify-backup', path.dirname(copy), '--deep']);
    expectExit(deep, 0);
    expect(deep.stdout).toContain('gzip and tar intact, globals.sql and 5 dumps (4 custom, 1 plain SQL)');
    expect(deep.stdout).toContain("the dumps' data is not read to the end for reference cluster archives");
  });

  it('a flipped byte fails verification (exit 1), with or without --deep', async () => {
    const copy = await copyArchive('flipped');
    const bytes = await readFile(copy);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] ?? 0) ^ 0xff;
    await writeFile(copy, bytes);
    for (const extra of [[], ['--deep']]) {
      const r = await cli(['verify-backup', copy, ...extra]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(
        /^FAIL .*\[ref\] .*: corrupt: checksum mismatch: expected sha256 [0-9a-f]{64}/m,
      );
      expect(r.stderr).toContain('1 of 1 backup failed verification');
    }
  });

  it('a truncated archive is corrupt, one without its .meta.json incomplete', async () => {
    const short = await copyArchive('truncated');
    const size = (await stat(short)).size;
    await truncate(short, size - 1000);
    expect(await only(path.dirname(short))).toMatchObject({
      state: 'corrupt',
      detail: `size mismatch: expected ${size} bytes, found ${size - 1000}`,
      producer: 'reference',
    });
    const bare = await copyArchive('bare', true);
    expect(await only(path.dirname(bare))).toMatchObject({
      state: 'incomplete',
      producer: 'reference',
      kind: 'cluster',
    });
    const r = await cli(['verify-backup', bare]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^FAIL .*incomplete: no metadata \(\.meta\.json\)/m);
  });

  it('cleanup leaves it alone', async () => {
    const copy = await copyArchive('cleanup');
    const where = path.dirname(copy);
    const before = await listDir(where);
    const plan = await cleanupJson(where, ['--keep-last', '1', '--prune-incomplete', '--grace', '0']);
    expect(plan.decisions).toEqual([]);
    expect(plan.incomplete).toEqual([]);
    expect(plan.deleted).toEqual([]);
    expect(plan.leftAlone).toEqual([path.basename(copy)]);
    expect(await listDir(where)).toEqual(before);
  });
});
