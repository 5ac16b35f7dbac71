import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMyFidelity } from '../harness/fixtures.js';
import { dropMyDatabase, myExec, myIdent, myQuery } from '../harness/mysql.js';
import { mySnapshot, type MySnapshot } from '../harness/my-snapshot.js';
import { myServer } from '../harness/servers.js';
import { cli, expectExit, myArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * Cluster backup and restore on the shared throwaway MariaDB server. Databases and users of this
 * file start with a unique prefix; every cluster command is limited to it with --include-database.
 * The backup's globals hold every user of the server (other test files' too): restoring them uses
 * CREATE USER IF NOT EXISTS, so it leaves existing accounts alone.
 */
const P = uniqueName('mycl');
/** Prefix of the MariaDB-roles test, so `${P}*` never matches its objects. */
const R = uniqueName('myclr');

/**
 * KNOWN BUG, outside the files this test may fix (src/engines/mysql.ts, MysqlEngine.dumpGlobals):
 * it runs SHOW CREATE USER for every row of mysql.user, but a server started with
 * --skip-name-resolve (this harness, the official Docker image, many production servers) does not
 * load accounts whose host is a host name; mariadb-install-db creates `root`@`<hostname>`, so
 * SHOW CREATE USER fails with ER_PASSWORD_NO_MATCH (1133, "Can't find any matching row in the
 * user table") and every MariaDB cluster backup fails before dumping a database. Verified: with
 * dumpGlobals skipping (and noting) accounts that fail with errno 1133, every test marked
 * `itBlocked` passes. Switch `itBlocked` to `it` once that is fixed.
 */
const itBlocked = it;

const db = {
  utf: `${P}_utf`, // utf8mb4_unicode_ci, the fidelity fixture
  latin: `${P}_latin`, // latin1_german1_ci
  bin: `${P}_bin`, // utf8mb4_bin
  shop: `${P}-Shop DB`, // dash, space and upper case
};
interface Account {
  user: string;
  host: string;
  password: string | null;
}
const users: Record<'ro' | 'rw' | 'local', Account> = {
  ro: { user: `${P}_ro`, host: '%', password: 'ro-Secret-1' },
  rw: { user: `${P}_rw`, host: '%', password: `rw pa'ss "2" ✓` },
  local: { user: `${P}_loc`, host: '127.0.0.1', password: 'loc-Secret-3' },
};

const include = ['--include-database', `${P}*`];
const I = myIdent;
const account = (a: Account): string => `'${a.user}'@'${a.host}'`;

let dir: string;
let cluster: string;
let before: State;

interface State {
  charsets: Record<string, string>;
  grants: Record<string, string[]>;
  createUser: Record<string, string>;
  snapshots: Record<string, MySnapshot>;
}

async function databaseNames(): Promise<string[]> {
  const rows = await myQuery<{ n: string }>(
    undefined,
    'SELECT SCHEMA_NAME AS n FROM information_schema.SCHEMATA WHERE LEFT(SCHEMA_NAME, CHAR_LENGTH(?)) = ? ORDER BY 1',
    [P, P],
  );
  return rows.map((r) => r.n);
}

async function userNames(): Promise<string[]> {
  const rows = await myQuery<{ u: string }>(
    undefined,
    `SELECT CONCAT(User, '@', Host) AS u FROM mysql.user WHERE LEFT(User, CHAR_LENGTH(?)) = ? ORDER BY 1`,
    [P, P],
  );
  return rows.map((r) => r.u);
}

/** SHOW GRANTS lists the columns of a column grant in no fixed order: `SELECT (\`b\`, \`a\`)` → `(\`a\`, \`b\`)`. */
function sortColumns(grant: string): string {
  return grant.replace(/\((`[^()]*`)\)/g, (_m, cols: string) => `(${cols.split(', ').sort().join(', ')})`);
}

async function state(): Promise<State> {
  const charsets: Record<string, string> = {};
  for (const r of await myQuery<{ n: string; cs: string; coll: string }>(
    undefined,
    `SELECT SCHEMA_NAME AS n, DEFAULT_CHARACTER_SET_NAME AS cs, DEFAULT_COLLATION_NAME AS coll
       FROM information_schema.SCHEMATA WHERE LEFT(SCHEMA_NAME, CHAR_LENGTH(?)) = ?`,
    [P, P],
  ))
    charsets[r.n] = `${r.cs}/${r.coll}`;
  const grants: Record<string, string[]> = {};
  const createUser: Record<string, string> = {};
  for (const a of Object.values(users)) {
    const g = await myQuery(undefined, `SHOW GRANTS FOR ${account(a)}`);
    grants[account(a)] = g.map((row) => sortColumns(String(Object.values(row)[0]))).sort();
    const [c] = await myQuery(undefined, `SHOW CREATE USER ${account(a)}`);
    createUser[account(a)] = String(Object.values(c ?? {})[0]);
  }
  const snapshots: Record<string, MySnapshot> = {};
  for (const name of Object.values(db)) snapshots[name] = await mySnapshot(name);
  return { charsets, grants, createUser, snapshots };
}

/** Logs in over TCP as `a` with its password and runs `sql`. */
async function asUser(a: Account, sql: string, database?: string): Promise<unknown[]> {
  const s = myServer();
  const conn = await mysql.createConnection({
    host: s.host,
    port: s.port,
    user: a.user,
    password: a.password ?? undefined,
    database,
    charset: 'utf8mb4',
  });
  try {
    const [rows] = await conn.query(sql);
    return rows as unknown[];
  } finally {
    await conn.end();
  }
}

async function dropAll(): Promise<void> {
  for (const name of await databaseNames()) await dropMyDatabase(name);
  for (const a of Object.values(users)) await myExec(undefined, `DROP USER IF EXISTS ${account(a)}`);
}

beforeAll(async () => {
  dir = await tempDir('dbb-cluster-my-');
  await myExec(
    undefined,
    `CREATE DATABASE ${I(db.utf)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
     CREATE DATABASE ${I(db.latin)} CHARACTER SET latin1 COLLATE latin1_german1_ci;
     CREATE DATABASE ${I(db.bin)} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
     CREATE DATABASE ${I(db.shop)} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;`,
  );
  await loadMyFidelity(db.utf);
  await myExec(
    db.latin,
    `CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(100), note TEXT) ENGINE=InnoDB;
     INSERT INTO people VALUES (1, 'Müller', 'Straße'), (2, 'Ñandú', NULL), (3, 'café crème', ''), (4, 'Øre', 'Å');`,
  );
  await myExec(
    db.bin,
    `CREATE TABLE t (id INT PRIMARY KEY, code VARCHAR(20) NOT NULL, secret VARCHAR(50));
     INSERT INTO t SELECT seq, CONCAT(IF(seq % 2, 'a', 'A'), seq), CONCAT('s', seq) FROM seq_1_to_300;`,
  );
  await myExec(
    db.shop,
    'CREATE TABLE `Order Lines` (id INT AUTO_INCREMENT PRIMARY KEY, sku VARCHAR(30), qty INT) ENGINE=MyISAM;' +
      "INSERT INTO `Order Lines` (sku, qty) SELECT CONCAT('SKU-', seq), seq % 9 FROM seq_1_to_1000;",
  );
  const c = (a: Account): string => `CREATE USER ${account(a)} IDENTIFIED BY ${mysql.escape(a.password)}`;
  await myExec(
    undefined,
    `${c(users.ro)};
     GRANT SELECT ON ${I(db.utf)}.* TO ${account(users.ro)};
     GRANT SELECT, SHOW VIEW ON ${I(db.shop)}.* TO ${account(users.ro)};
     ${c(users.rw)} WITH MAX_USER_CONNECTIONS 5;
     GRANT SELECT, INSERT, UPDATE, DELETE ON ${I(db.latin)}.* TO ${account(users.rw)} WITH GRANT OPTION;
     ${c(users.local)};
     GRANT USAGE ON *.* TO ${account(users.local)};
     GRANT PROCESS ON *.* TO ${account(users.local)};
     GRANT SELECT (id, code) ON ${I(db.bin)}.t TO ${account(users.ro)};
     GRANT SELECT, UPDATE ON ${I(db.shop)}.\`Order Lines\` TO ${account(users.rw)};`,
  );
  before = await state();
});

afterAll(async () => {
  await dropAll();
  if (dir) await removeDir(dir);
});

describe('MariaDB cluster backup → restore', () => {
  it('the fixture is what the tests claim: charsets, users and grants', () => {
    expect(before.charsets).toEqual({
      [db.utf]: 'utf8mb4/utf8mb4_unicode_ci',
      [db.latin]: 'latin1/latin1_german1_ci',
      [db.bin]: 'utf8mb4/utf8mb4_bin',
      [db.shop]: 'utf8mb4/utf8mb4_general_ci',
    });
    expect(before.grants[account(users.ro)]?.join('\n')).toContain(`GRANT SELECT ON \`${db.utf}\`.*`);
    expect(before.grants[account(users.rw)]?.join('\n')).toMatch(/WITH GRANT OPTION/);
    expect(before.createUser[account(users.rw)]).toMatch(/MAX_USER_CONNECTIONS 5/);
    expect(before.snapshots[db.utf]?.tables.customers?.rows).toBeGreaterThan(0);
  });

  itBlocked('backs up the selected databases and every user as one unit', async () => {
    const r = await cli([...myArgs(), '--backup-dir', dir, 'backup', 'cluster', '--progress', ...include]);
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^Cluster backup complete: .* \(4 of 4 databases, /m);
    const progress = r.stderr.split('\n').filter((l) => l.startsWith('cluster backup: '));
    for (const name of Object.values(db)) {
      expect(progress.some((l) => l.startsWith(`cluster backup: ${name}: dumping`))).toBe(true);
      expect(progress.some((l) => l.startsWith(`cluster backup: ${name}: done in `))).toBe(true);
    }
    expect(progress.at(-1)).toMatch(/^cluster backup: finished: 4 done, 0 failed; /);
    const entries = (await readdir(dir)).filter((e) => e.startsWith('cluster_'));
    expect(entries).toHaveLength(1);
    cluster = entries[0] ?? '';
    const manifest = JSON.parse(await readFile(path.join(dir, cluster, 'manifest.json'), 'utf8')) as {
      engine: string;
      status: string;
      databases: Array<{ database: string; status: string; properties: Record<string, string> }>;
    };
    expect(manifest).toMatchObject({ engine: 'mariadb', status: 'complete' });
    expect(manifest.databases.map((m) => m.database).sort()).toEqual(Object.values(db).sort());
    expect(manifest.databases.find((m) => m.database === db.latin)?.properties).toEqual({
      charset: 'latin1',
      collation: 'latin1_german1_ci',
    });

    const verify = await cli(['verify-backup', path.join(dir, cluster)]);
    expectExit(verify, 0);
    expect(verify.stdout).toMatch(/^OK\s.*4 databases and globals match their checksums/m);
    const list = await cli(['--backup-dir', dir, 'list', 'backups']);
    expectExit(list, 0);
    expect(list.stdout).toContain('(cluster: 4 databases)');
  });

  itBlocked('refuses to restore over the existing databases, listing them', async () => {
    const r = await cli([
      ...myArgs(),
      '--backup-dir',
      dir,
      'restore',
      'cluster',
      cluster,
      ...include,
      '--confirm',
    ]);
    expect(r.code).not.toBe(0);
    for (const name of Object.values(db)) expect(r.stderr).toContain(name);
    expect(r.stderr).toContain('--clean-cluster');
  });

  itBlocked(
    'restores databases with their character sets, users with passwords and grants onto a server without them',
    async () => {
      await dropAll();
      expect(await databaseNames()).toEqual([]);
      expect(await userNames()).toEqual([]);

      const dry = await cli([...myArgs(), '--backup-dir', dir, 'restore', 'cluster', cluster, ...include]);
      expectExit(dry, 0);
      expect(dry.stdout).toContain('Dry run: nothing was changed');
      expect(dry.stdout).toContain('replay the grants on tables and columns');
      expect(await databaseNames()).toEqual([]);
      expect(await userNames()).toEqual([]);

      // No --db-type: the engine comes from the manifest.
      const r = await cli([
        ...myArgs().slice(2),
        'restore',
        'cluster',
        path.join(dir, cluster),
        '--confirm',
        ...include,
      ]);
      expectExit(r, 0);
      expect(r.stdout).toMatch(/^Cluster restore complete: 4 databases/m);

      const after = await state();
      expect(after.charsets).toEqual(before.charsets);
      expect(after.createUser).toEqual(before.createUser);
      expect(after.grants).toEqual(before.grants);
      for (const name of Object.values(db))
        expect(after.snapshots[name], name).toEqual(before.snapshots[name]);

      // The password hashes came back: each user logs in with its own password and has its grants.
      expect(await asUser(users.ro, 'SELECT COUNT(*) AS n FROM customers', db.utf)).toEqual([
        { n: before.snapshots[db.utf]?.tables.customers?.rows },
      ]);
      expect(await asUser(users.rw, `SELECT name FROM people WHERE id = 1`, db.latin)).toEqual([
        { name: 'Müller' },
      ]);
      await asUser(users.rw, `INSERT INTO people VALUES (5, 'Jürgen', NULL)`, db.latin);
      expect(await asUser(users.local, 'SELECT CURRENT_USER() AS u')).toEqual([
        { u: `${users.local.user}@127.0.0.1` },
      ]);
      await expect(asUser({ ...users.ro, password: 'wrong' }, 'SELECT 1')).rejects.toThrow(/Access denied/);
      await expect(asUser(users.ro, 'SELECT * FROM people', db.latin)).rejects.toThrow(/denied/);
      // Column grants are back too (they need their table, which the databases' restore created).
      expect(await asUser(users.ro, 'SELECT id, code FROM t WHERE id = 2', db.bin)).toEqual([
        { id: 2, code: 'A2' },
      ]);
      await expect(asUser(users.ro, 'SELECT secret FROM t', db.bin)).rejects.toThrow(/denied/);
      expect(r.stderr).not.toMatch(/warning/i);
    },
  );

  itBlocked(
    'restores a subset with --include-database: grants on tables of the others are warnings, not failures',
    async () => {
      await dropAll();
      const r = await cli([
        ...myArgs(),
        '--backup-dir',
        dir,
        'restore',
        'cluster',
        cluster,
        '--confirm',
        '--include-database',
        db.utf,
      ]);
      expectExit(r, 0);
      expect(r.stdout).toMatch(/^Cluster restore complete: 1 databases/m);
      expect(r.stderr).toMatch(/warning: .*1146.*doesn't exist/);
      expect(await databaseNames()).toEqual([db.utf]);
      expect(await mySnapshot(db.utf)).toEqual(before.snapshots[db.utf]);
      expect(await asUser(users.ro, 'SELECT COUNT(*) AS n FROM customers', db.utf)).toEqual([
        { n: before.snapshots[db.utf]?.tables.customers?.rows },
      ]);
    },
  );
});

describe('MariaDB cluster backup with roles', () => {
  const rdb = `${R}_d`;
  const roleName = `${R}_role`;
  const user: Account = { user: `${R}_u`, host: '%', password: 'role-user-pw' };

  beforeAll(async () => {
    await myExec(
      undefined,
      `CREATE DATABASE ${I(rdb)};
       CREATE TABLE ${I(rdb)}.t (id INT PRIMARY KEY); INSERT INTO ${I(rdb)}.t VALUES (1), (2);
       CREATE ROLE ${I(roleName)};
       GRANT SELECT ON ${I(rdb)}.* TO ${I(roleName)};
       CREATE USER ${account(user)} IDENTIFIED BY ${mysql.escape(user.password)};
       GRANT ${I(roleName)} TO ${account(user)};
       SET DEFAULT ROLE ${I(roleName)} FOR ${account(user)};`,
    );
  });

  afterAll(async () => {
    await dropMyDatabase(rdb);
    await myExec(undefined, `DROP USER IF EXISTS ${account(user)}; DROP ROLE IF EXISTS ${I(roleName)};`);
  });

  // KNOWN BUG (src/engines/mysql.ts, MysqlEngine.dumpGlobals), besides the one `itBlocked` is about:
  // roles are left out (`is_role = 'N'`) and no CREATE ROLE is written, yet the users' grants
  // include `GRANT role TO user`; on a server without the role the globals restore then fails with
  // ERROR 1959 "Invalid role specification" after some users were already created. Verified with
  // the skip-name-resolve bug patched out: the restore exits 1 with exactly that error.
  it('restores roles, their grants, and which users hold them by default', async () => {
    const roleDir = await tempDir('dbb-cluster-my-roles-');
    try {
      const b = await cli([
        ...myArgs(),
        '--backup-dir',
        roleDir,
        'backup',
        'cluster',
        '--include-database',
        `${R}*`,
      ]);
      expectExit(b, 0);
      const name = (await readdir(roleDir)).find((e) => e.startsWith('cluster_')) ?? '';
      const grantsBefore = await myQuery(undefined, `SHOW GRANTS FOR ${account(user)}`);
      await dropMyDatabase(rdb);
      await myExec(undefined, `DROP USER ${account(user)}; DROP ROLE ${I(roleName)};`);

      const r = await cli([
        ...myArgs(),
        '--backup-dir',
        roleDir,
        'restore',
        'cluster',
        name,
        '--confirm',
        '--include-database',
        `${R}*`,
      ]);
      expectExit(r, 0);
      expect(await myQuery(undefined, `SHOW GRANTS FOR ${account(user)}`)).toEqual(grantsBefore);
      expect(await asUser(user, 'SELECT COUNT(*) AS n FROM t', rdb)).toEqual([{ n: 2 }]);
    } finally {
      await removeDir(roleDir);
    }
  });
});
