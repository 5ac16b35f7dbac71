import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockPgGlobals, unlockPgGlobals } from '../harness/cluster-lock.js';
import { pgDatabases, pgRoles, type PgDatabaseRow, type PgRoleRow } from '../harness/pg-cluster-state.js';
import { loadPgFidelity } from '../harness/fixtures.js';
import { dropPgDatabase, pgExec, pgIdent, pgQuery } from '../harness/pg.js';
import { pgSnapshot, type PgSnapshot } from '../harness/pg-snapshot.js';
import { cli, expectExit, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * Cluster backup and restore on the shared throwaway PostgreSQL server. Everything this file
 * creates (databases and roles) starts with one of two unique prefixes, every cluster command
 * is limited to them with --include-database, and afterAll drops all of it.
 */
const P = uniqueName('pgcl');
/** Second prefix for the failing-database backups, so `${P}*` never matches their databases. */
const Q = uniqueName('pgclq');

const db = {
  app: `${P}_app`, // fidelity fixture, owner + grants + settings + connection limit
  collate: `${P}_collate`, // UTF8 with a collation other than the server default
  latin1: `${P}_latin1`, // LATIN1 encoding
  shop: `${P} My Shop-DB`, // dash, space and upper case in the name
  plain: `${P}_plain`,
};
const role = {
  owner: `${P}_owner`, // LOGIN PASSWORD, owns databases
  reader: `${P}_reader`, // NOLOGIN group role with database grants
  app: `${P}_app_user`, // LOGIN PASSWORD, member of reader (with admin option)
  nopw: `${P}_nopw`, // LOGIN without password
  ephemeral: `${P}_ephemeral`, // dropped after the backup: only a restore that runs brings it back
};
const limited = `${Q}_limited`;
const qdb = { ok: `${Q}_ok`, bad: `${Q}_bad` };

const include = ['--include-database', `${P}*`];
const I = pgIdent;

let dir: string;
let cluster: string;
let before: State;

interface State {
  roles: PgRoleRow[];
  databases: PgDatabaseRow[];
  snapshots: Record<string, PgSnapshot>;
}

async function state(): Promise<State> {
  const snapshots: Record<string, PgSnapshot> = {};
  for (const name of Object.values(db)) snapshots[name] = await pgSnapshot(name);
  return { roles: await pgRoles(P), databases: await pgDatabases(P), snapshots };
}

async function databaseNames(prefix: string): Promise<string[]> {
  return (await pgDatabases(prefix)).map((d) => d.datname);
}

async function dropRoles(prefix: string): Promise<void> {
  const names = (await pgRoles(prefix)).map((r) => r.rolname);
  for (const name of names) await pgExec('postgres', `DROP ROLE IF EXISTS ${I(name)}`);
}

async function dropDatabases(prefix: string): Promise<void> {
  for (const name of await databaseNames(prefix)) await dropPgDatabase(name);
}

/** The marker a test adds after the backup: a restore that replaces the database removes it. */
async function markerPresent(): Promise<boolean> {
  const rows = await pgQuery<{ present: boolean }>(
    db.plain,
    `SELECT to_regclass('public.marker_after_backup') IS NOT NULL AS present`,
  );
  return rows[0]?.present === true;
}

/** Every file under `root`, relative, sorted. */
async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}

interface ManifestJson {
  name: string;
  status: string;
  engine: string;
  globals: { file: string; warnings: string[] };
  databases: Array<{
    database: string;
    file: string | null;
    status: string;
    error: string | null;
    properties: Record<string, string | null>;
  }>;
}

async function readManifestJson(file: string): Promise<ManifestJson> {
  return JSON.parse(await readFile(file, 'utf8')) as ManifestJson;
}

// Other files restore PostgreSQL globals on this server too: take turns (see cluster-lock.ts).
beforeAll(() => lockPgGlobals(), 900_000);

beforeAll(async () => {
  dir = await tempDir('dbb-cluster-pg-');
  const [template] = await pgQuery<{ datcollate: string }>(
    'postgres',
    `SELECT datcollate FROM pg_database WHERE datname = 'template1'`,
  );
  // Whatever the server default is, this database gets another collation.
  const altCollate = template?.datcollate === 'C' ? 'POSIX' : 'C';
  await pgExec(
    'postgres',
    `CREATE ROLE ${I(role.owner)} LOGIN CREATEDB PASSWORD 'owner-Secret-1';
     CREATE ROLE ${I(role.reader)} NOLOGIN;
     CREATE ROLE ${I(role.app)} LOGIN PASSWORD 'app pa''ss "2"' CONNECTION LIMIT 7;
     CREATE ROLE ${I(role.nopw)} LOGIN;
     CREATE ROLE ${I(role.ephemeral)} LOGIN PASSWORD 'gone-soon';
     GRANT ${I(role.reader)} TO ${I(role.app)} WITH ADMIN OPTION;
     GRANT ${I(role.reader)} TO ${I(role.nopw)};
     ALTER ROLE ${I(role.app)} SET statement_timeout = '5s';`,
  );
  await pgExec(
    'postgres',
    `CREATE DATABASE ${I(db.app)} OWNER ${I(role.owner)} TEMPLATE template0 ENCODING 'UTF8' CONNECTION LIMIT 50`,
  );
  await pgExec(
    'postgres',
    `CREATE DATABASE ${I(db.collate)} OWNER ${I(role.app)} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE '${altCollate}' LC_CTYPE '${altCollate}'`,
  );
  await pgExec(
    'postgres',
    `CREATE DATABASE ${I(db.latin1)} OWNER ${I(role.owner)} TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'`,
  );
  await pgExec('postgres', `CREATE DATABASE ${I(db.shop)} OWNER ${I(role.owner)} TEMPLATE template0`);
  await pgExec('postgres', `CREATE DATABASE ${I(db.plain)} TEMPLATE template0`);
  await pgExec(
    'postgres',
    `GRANT CONNECT, TEMP ON DATABASE ${I(db.app)} TO ${I(role.reader)};
     REVOKE CONNECT ON DATABASE ${I(db.app)} FROM PUBLIC;
     ALTER DATABASE ${I(db.app)} SET work_mem = '8MB';
     ALTER DATABASE ${I(db.app)} SET lock_timeout = '10s';
     ALTER ROLE ${I(role.app)} IN DATABASE ${I(db.app)} SET work_mem = '16MB';
     GRANT CREATE ON DATABASE ${I(db.shop)} TO ${I(role.app)};
     ALTER DATABASE ${I(db.latin1)} SET datestyle = 'SQL, DMY';`,
  );

  await loadPgFidelity(db.app);
  await pgExec(
    db.collate,
    `CREATE TABLE words (id int PRIMARY KEY, w text NOT NULL);
     INSERT INTO words SELECT g, chr(65 + g % 26) || chr(97 + g % 23) || g FROM generate_series(1, 500) g;
     CREATE INDEX words_w ON words (w);`,
  );
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
    db.plain,
    `CREATE TABLE kv (k text PRIMARY KEY, v jsonb);
     INSERT INTO kv SELECT 'key' || g, jsonb_build_object('n', g, 'even', g % 2 = 0) FROM generate_series(1, 300) g;`,
  );
  before = await state();
});

afterAll(async () => {
  try {
    for (const prefix of [P, Q]) await dropDatabases(prefix);
    for (const prefix of [P, Q]) await dropRoles(prefix);
    if (dir) await removeDir(dir);
  } finally {
    await unlockPgGlobals();
  }
});

describe('PostgreSQL cluster backup → restore', () => {
  it('the fixture is what the tests claim: owners, encodings, collations, grants and settings', async () => {
    const byName = Object.fromEntries(before.databases.map((d) => [d.datname, d]));
    const [template] = await pgQuery<{ datcollate: string; encoding: string }>(
      'postgres',
      `SELECT datcollate, pg_encoding_to_char(encoding) AS encoding FROM pg_database WHERE datname = 'template1'`,
    );
    expect(Object.keys(byName).sort()).toEqual(Object.values(db).sort());
    expect(byName[db.app]).toMatchObject({ owner: role.owner, datconnlimit: 50 });
    expect(byName[db.app]?.settings).toEqual(
      [`(all roles): work_mem=8MB,lock_timeout=10s`, `${role.app}: work_mem=16MB`].sort(),
    );
    // PUBLIC keeps TEMP but loses CONNECT; the reader got CONNECT and TEMP.
    expect(byName[db.app]?.acl).toContain(`${role.reader}=Tc/${role.owner}`);
    expect(byName[db.app]?.acl).toContain(`=T/${role.owner}`);
    expect(byName[db.collate]?.datcollate).not.toBe(template?.datcollate);
    expect(byName[db.latin1]).toMatchObject({ encoding: 'LATIN1', datcollate: 'C', datctype: 'C' });
    expect(template?.encoding).toBe('UTF8');
    expect(byName[db.plain]?.owner).toBe('postgres');
    const roleByName = Object.fromEntries(before.roles.map((r) => [r.rolname, r]));
    expect(roleByName[role.owner]).toMatchObject({
      rolcanlogin: true,
      rolcreatedb: true,
      has_password: true,
    });
    expect(roleByName[role.reader]).toMatchObject({ rolcanlogin: false, has_password: false });
    expect(roleByName[role.app]).toMatchObject({
      has_password: true,
      rolconnlimit: 7,
      rolconfig: ['statement_timeout=5s'],
      member_of: [`${role.reader} WITH ADMIN GRANTED BY postgres`],
    });
    expect(roleByName[role.nopw]).toMatchObject({ rolcanlogin: true, has_password: false });
    expect(before.snapshots[db.app]?.largeObjects.count).toBeGreaterThan(0);
  });

  it('backs up the selected databases and the roles as one unit, listed and verified as one backup', async () => {
    const r = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      'backup',
      'cluster',
      '--cluster-parallelism',
      '2',
      '--progress',
      ...include,
    ]);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^Cluster backup complete: .* \(5 of 5 databases, /m);
    // --progress without a terminal: a line per state change of every database, and a summary last.
    const progress = r.stderr.split('\n').filter((l) => l.startsWith('cluster backup: '));
    expect(progress[0]).toMatch(/^cluster backup: 5 databases \(~[\d.]+ [KMG]iB\): /);
    for (const name of Object.values(db)) {
      expect(progress.some((l) => l.startsWith(`cluster backup: ${name}: dumping`))).toBe(true);
      const done = progress.find((l) => l.startsWith(`cluster backup: ${name}: done in `));
      expect(done).toMatch(/, [\d.]+ (B|KiB|MiB) stored$/);
    }
    expect(progress.at(-1)).toMatch(/^cluster backup: finished: 5 done, 0 failed; .* stored in /);
    // A superuser reads pg_authid: no warning about passwords.
    expect(r.stderr).not.toMatch(/passwords were not dumped/);
    const entries = (await readdir(dir)).filter((e) => e.startsWith('cluster_'));
    expect(entries).toHaveLength(1);
    cluster = entries[0] ?? '';
    expect(cluster).toMatch(/^cluster_\d{8}_\d{6}$/);

    const manifest = await readManifestJson(path.join(dir, cluster, 'manifest.json'));
    expect(manifest).toMatchObject({ name: cluster, status: 'complete', engine: 'postgres' });
    expect(manifest.globals.warnings).toEqual([]);
    expect(manifest.databases.map((m) => m.database)).toEqual(
      Object.values(db).sort((a, b) => a.localeCompare(b)),
    );
    for (const m of manifest.databases) {
      expect(m).toMatchObject({ status: 'ok', error: null });
      expect(m.file?.startsWith(`${cluster}/`)).toBe(true);
    }
    // The manifest records each database's properties as the server reported them.
    const app = manifest.databases.find((m) => m.database === db.app);
    expect(app?.properties).toMatchObject({ owner: role.owner, encoding: 'UTF8' });
    expect(app?.properties.settings).toContain('work_mem=8MB');
    expect(manifest.databases.find((m) => m.database === db.latin1)?.properties).toMatchObject({
      encoding: 'LATIN1',
    });
    // Only the files the manifest names, plus the manifest itself.
    expect(await filesUnder(path.join(dir, cluster))).toEqual(
      [
        'manifest.json',
        path.basename(manifest.globals.file),
        ...manifest.databases.map((m) => path.basename(m.file ?? '')),
      ].sort(),
    );
    // The awkward name is stored under an encoded file name.
    expect(manifest.databases.find((m) => m.database === db.shop)?.file).toBe(
      `${cluster}/${P}%20My%20Shop-DB.dump.zst`,
    );

    const list = await cli(['--backup-dir', dir, 'list', 'backups']);
    expectExit(list, 0);
    const rows = list.stdout.split('\n').filter((l) => l.includes('cluster_'));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toContain(`${cluster}/`);
    expect(rows[0]).toContain('(cluster: 5 databases)');
    expect(rows[0]).toMatch(/\bunverified\s*$/);

    const verify = await cli(['verify-backup', path.join(dir, cluster)]);
    expectExit(verify, 0);
    expect(verify.stdout).toMatch(
      new RegExp(`^OK\\s+.*${cluster}/.*5 databases and globals match their checksums`, 'm'),
    );
  });

  it('refuses to restore over existing databases without --clean-cluster, listing every conflict', async () => {
    await pgExec(
      db.plain,
      'CREATE TABLE marker_after_backup (id int); INSERT INTO marker_after_backup VALUES (1)',
    );
    for (const extra of [[], ['--confirm']]) {
      const r = await cli([
        ...pgArgs(),
        '--backup-dir',
        dir,
        'restore',
        'cluster',
        cluster,
        ...include,
        ...extra,
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/already exist/);
      for (const name of Object.values(db)) expect(r.stderr).toContain(name);
      expect(r.stderr).toContain('--clean-cluster');
      expect(r.stderr).toMatch(/Nothing was changed/);
    }
    expect(await markerPresent()).toBe(true);
  });

  it('is a dry run without --confirm: prints the plan, changes nothing', async () => {
    const r = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      'restore',
      'cluster',
      cluster,
      '--clean-cluster',
      ...include,
    ]);
    expectExit(r, 0);
    expect(r.stdout).toContain(`${cluster} (postgres `);
    expect(r.stdout).toMatch(/verify the SHA-256 of globals and 5 database dumps/);
    expect(r.stdout).toMatch(/restore roles\/users and grants/);
    expect(r.stdout).toMatch(/terminate sessions and drop /);
    for (const name of Object.values(db)) expect(r.stdout).toContain(name);
    expect(r.stdout).toContain('Dry run: nothing was changed');
    expect(await markerPresent()).toBe(true);
    expect(await databaseNames(P)).toEqual(before.databases.map((d) => d.datname));
  });

  it('verify-backup and restore cluster reject a corrupted member dump, and the restore changes nothing', async () => {
    const copyDir = await tempDir('dbb-cluster-pg-bad-');
    try {
      await cp(path.join(dir, cluster), path.join(copyDir, cluster), { recursive: true });
      const manifest = await readManifestJson(path.join(copyDir, cluster, 'manifest.json'));
      const member = manifest.databases.find((m) => m.database === db.plain)?.file ?? '';
      const file = path.join(copyDir, member);
      const bytes = await readFile(file);
      const at = Math.floor(bytes.length / 2);
      bytes[at] = (bytes[at] ?? 0) ^ 0xff;
      await writeFile(file, bytes);

      const verify = await cli(['verify-backup', path.join(copyDir, cluster)]);
      expect(verify.code).not.toBe(0);
      expect(verify.stdout).toMatch(/^FAIL\s/m);
      expect(verify.stdout).toContain(`${member}: checksum mismatch`);

      // A role of the backup that is gone now: a restore that got as far as the globals would bring it back.
      await pgExec('postgres', `DROP ROLE ${I(role.ephemeral)}`);
      const r = await cli([
        ...pgArgs(),
        'restore',
        'cluster',
        path.join(copyDir, cluster),
        '--clean-cluster',
        '--confirm',
        ...include,
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`Checksum mismatch for ${member}`);
      expect(r.stderr).toMatch(/Nothing was changed/);
      expect(await markerPresent()).toBe(true);
      expect(await databaseNames(P)).toEqual(before.databases.map((d) => d.datname));
      expect((await pgRoles(P)).map((x) => x.rolname)).not.toContain(role.ephemeral);
    } finally {
      await removeDir(copyDir);
    }
  });

  it('--clean-cluster --confirm replaces the existing databases with the backup', async () => {
    const r = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      'restore',
      'cluster',
      cluster,
      '--clean-cluster',
      '--confirm',
      ...include,
    ]);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^Cluster restore complete: 5 databases/m);
    expect(await markerPresent()).toBe(false);
    // The globals brought the dropped role back, with everything else as it was.
    expect(await state()).toEqual(before);
  });

  it('restores roles, owners, encodings, collations, grants, settings and data onto a server without them', async () => {
    await dropDatabases(P);
    await dropRoles(P);
    expect(await databaseNames(P)).toEqual([]);
    expect(await pgRoles(P)).toEqual([]);

    // Dry run first: nothing, not even a role, is created.
    const dry = await cli([...pgArgs(), '--backup-dir', dir, 'restore', 'cluster', cluster, ...include]);
    expectExit(dry, 0);
    expect(dry.stdout).toContain('Dry run: nothing was changed');
    expect(dry.stdout).not.toMatch(/terminate sessions and drop/);
    expect(await databaseNames(P)).toEqual([]);
    expect(await pgRoles(P)).toEqual([]);

    const r = await cli([
      ...pgArgs(),
      'restore',
      'cluster',
      path.join(dir, cluster),
      '--jobs',
      '3',
      '--confirm',
      '--progress',
      ...include,
    ]);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^Cluster restore complete: 5 databases/m);
    const progress = r.stderr.split('\n').filter((l) => l.startsWith('cluster restore: '));
    expect(progress).toContain('cluster restore: checksums verified');
    expect(progress).toContain('cluster restore: roles and grants restored');
    for (const name of Object.values(db)) {
      expect(progress.some((l) => l.startsWith(`cluster restore: ${name}: restoring`))).toBe(true);
      expect(progress.some((l) => l.startsWith(`cluster restore: ${name}: done in `))).toBe(true);
    }
    expect(progress.at(-1)).toMatch(/^cluster restore: finished: 5 done, 0 failed; /);
    const after = await state();
    expect(after.roles).toEqual(before.roles);
    expect(after.databases).toEqual(before.databases);
    for (const name of Object.values(db)) expect(after.snapshots[name], name).toEqual(before.snapshots[name]);
  });

  it('restore single --from-cluster restores one database of the cluster under a new name', async () => {
    const target = `${P}_single`;
    const r = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      'restore',
      'single',
      '--from-cluster',
      cluster,
      '--database',
      db.app,
      '--target',
      target,
      '--create',
      '--confirm',
    ]);
    expectExit(r, 0);
    expect(r.stdout).toContain(`Restore complete: "${target}"`);
    expect(await pgSnapshot(target)).toEqual(before.snapshots[db.app]);

    const missing = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      'restore',
      'single',
      '--from-cluster',
      cluster,
      '--database',
      `${P}_nope`,
      '--target',
      `${P}_nope_target`,
      '--create',
      '--confirm',
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`Database "${P}_nope" is not in ${cluster}`);
    expect(await databaseNames(`${P}_nope`)).toEqual([]);
  });
});

describe('PostgreSQL cluster backup with a database that cannot be dumped', () => {
  let failDir: string;

  beforeAll(async () => {
    failDir = await tempDir('dbb-cluster-pg-fail-');
    await pgExec('postgres', `CREATE ROLE ${I(limited)} LOGIN PASSWORD 'limited-pw'`);
    for (const name of Object.values(qdb)) {
      await pgExec('postgres', `CREATE DATABASE ${I(name)} TEMPLATE template0`);
      await pgExec('postgres', `GRANT CONNECT ON DATABASE ${I(name)} TO ${I(limited)}`);
      await pgExec(
        name,
        `CREATE TABLE open_data (id int PRIMARY KEY, v text);
         INSERT INTO open_data SELECT g, 'v' || g FROM generate_series(1, 100) g;
         GRANT SELECT ON open_data TO ${I(limited)};`,
      );
    }
    // The one table `limited` may not read: pg_dump fails on it.
    await pgExec(qdb.bad, `CREATE TABLE secret (id int); INSERT INTO secret VALUES (42);`);
  });

  afterAll(async () => {
    if (failDir) await removeDir(failDir);
  });

  const limitedArgs = (): string[] => [...pgArgs().slice(0, -1), limited];

  it('fails naming the database and keeps no cluster backup with a manifest; warns that passwords were not dumped', async () => {
    const r = await cli([
      ...limitedArgs(),
      '--backup-dir',
      failDir,
      'backup',
      'cluster',
      '--progress',
      '--include-database',
      `${Q}*`,
    ]);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBe(3);
    expect(r.stderr).toContain(`database "${qdb.bad}" could not be dumped`);
    // The progress lines show the failed state, with the reason, and the failure in the summary.
    expect(r.stderr).toMatch(new RegExp(`^cluster backup: ${qdb.bad}: failed: .*permission denied`, 'm'));
    expect(r.stderr).toMatch(/^cluster backup: finished: \d done, [12] failed/m);
    expect(r.stderr).toMatch(/permission denied/);
    // Not a superuser: the password hashes of pg_authid are out of reach, and it says so.
    expect(r.stderr).toMatch(/role passwords were not dumped/);
    const files = await filesUnder(failDir);
    expect(files.filter((f) => f.endsWith('manifest.json'))).toEqual([]);
    expect(files).toEqual([]);
    // Not even the empty cluster_<ts>/ directory the failed backup had started.
    expect(await readdir(failDir)).toEqual([]);
    const list = await cli(['--backup-dir', failDir, 'list', 'backups']);
    expectExit(list, 0);
    expect(list.stdout).not.toMatch(/\bvalid\b/);
  });

  it('with --allow-partial exits 3, marks the manifest partial, and list backups shows it', async () => {
    const r = await cli([
      ...limitedArgs(),
      '--backup-dir',
      failDir,
      'backup',
      'cluster',
      '--allow-partial',
      '--include-database',
      `${Q}*`,
    ]);
    expectExit(r, 3);
    expect(r.stdout).toMatch(/^Cluster backup partial: .* \(1 of 2 databases, /m);
    // Not a terminal and no --progress: no progress output.
    expect(r.stderr).not.toMatch(/^cluster backup: /m);
    expect(r.stderr).toContain(`Cluster backup is partial: ${qdb.bad} could not be dumped`);
    expect(r.stderr).toMatch(/role passwords were not dumped/);
    const clusters = (await readdir(failDir)).filter((e) => e.startsWith('cluster_'));
    const withManifest = [];
    for (const c of clusters)
      if ((await filesUnder(path.join(failDir, c))).includes('manifest.json')) withManifest.push(c);
    expect(withManifest).toHaveLength(1);
    const name = withManifest[0] ?? '';
    const manifest = await readManifestJson(path.join(failDir, name, 'manifest.json'));
    expect(manifest.status).toBe('partial');
    expect(manifest.globals.warnings.join(' ')).toMatch(/role passwords were not dumped/);
    expect(manifest.databases.map((m) => [m.database, m.status])).toEqual([
      [qdb.bad, 'failed'],
      [qdb.ok, 'ok'],
    ]);
    expect(manifest.databases.find((m) => m.database === qdb.bad)).toMatchObject({ file: null });
    expect(manifest.databases.find((m) => m.database === qdb.bad)?.error).toMatch(/permission denied/);

    const list = await cli(['--backup-dir', failDir, 'list', 'backups']);
    expectExit(list, 0);
    const rows = list.stdout.split('\n').filter((l) => l.includes(`${name}/`));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toContain('(cluster: 2 databases)');

    const verify = await cli(['verify-backup', path.join(failDir, name)]);
    expectExit(verify, 0);
    expect(verify.stdout).toMatch(/partial/);

    // The plan of a restore says what is missing.
    const plan = await cli([
      ...pgArgs(),
      'restore',
      'cluster',
      path.join(failDir, name),
      '--clean-cluster',
      '--include-database',
      `${Q}*`,
    ]);
    expectExit(plan, 0);
    expect(plan.stdout + plan.stderr).toContain(`${qdb.bad} could not be dumped`);
  });
});
