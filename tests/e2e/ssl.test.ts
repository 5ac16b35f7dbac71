import { readFile } from 'node:fs/promises';
import path from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockPgGlobals, unlockPgGlobals } from '../harness/cluster-lock.js';
import type { CliResult } from '../harness/cli.js';
import { createMyDatabase, dropMyDatabase, myExec, myIdent, withMy } from '../harness/mysql.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgIdent, pgQuery, withPg } from '../harness/pg.js';
import { SSL_ROLE } from '../harness/pg-server.js';
import { myServer, pgServer } from '../harness/servers.js';
import { cli, expectExit, listDir, onlyBackup, removeDir, tempDir, uniqueName } from './util.js';

/**
 * --ssl-mode (and PGSSLMODE) end to end, against the throwaway servers' SSL (tests/harness:
 * a test CA and a server certificate for 127.0.0.1/localhost, made at server start).
 *
 * PostgreSQL: role dbb_ssl may connect only over SSL (pg_hba.conf: `hostssl ... trust`, then
 * `hostnossl ... reject`, and `local ... reject`). MariaDB: user dbb_ssl is created REQUIRE SSL.
 * So every step that succeeds as that role — the CLI's own driver queries AND the child tools
 * (pg_dump, pg_restore, psql, mariadb-dump, mariadb) — has been made over SSL: the server refuses
 * anything else. Conversely `disable` must fail, cleanly, without leaving a backup behind.
 */

const MY_SSL_USER = 'dbb_ssl';
const MY_SSL_ACCOUNT = `'${MY_SSL_USER}'@'%'`;
/** dbb_ssl's MariaDB privileges are limited to databases named like this. */
const MY_PREFIX = 'sslmy';

const pgSource = uniqueName('sslpg_src');
const pgCreated = [pgSource];
const mySource = uniqueName(`${MY_PREFIX}_src`);
const myCreated = [mySource];
/** An empty HOME: no ~/.postgresql/root.crt, ~/.pgpass or ~/.my.cnf of the machine can help or hurt. */
let home: string;

/** The environment every CLI run here starts from: nothing about SSL, no CA from anywhere. */
function sslEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    HOME: home,
    PGSSLMODE: undefined,
    PGSSLROOTCERT: undefined,
    PGSSLCERT: undefined,
    PGSSLKEY: undefined,
    PGSSLCRL: undefined,
    PGPASSFILE: path.join(home, 'no-such-pgpass'),
    PGSERVICE: undefined,
    NODE_EXTRA_CA_CERTS: undefined,
    NODE_TLS_REJECT_UNAUTHORIZED: undefined,
    MYSQL_HOME: undefined,
    ...extra,
  };
}

/** The CLI against the throwaway PostgreSQL as SSL_ROLE over TCP (never the socket). */
function pgCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const s = pgServer();
  return cli(['--host', s.host, '--port', String(s.port), '--user', SSL_ROLE, ...args], {
    env: sslEnv(env),
    timeoutMs: 300_000,
  });
}

/** The CLI against the throwaway MariaDB as MY_SSL_USER over TCP. */
function myCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const s = myServer();
  return cli(
    ['--db-type', 'mariadb', '--host', s.host, '--port', String(s.port), '--user', MY_SSL_USER, ...args],
    { env: sslEnv(env), timeoutMs: 300_000 },
  );
}

/**
 * A failure as a user sees it: exit 1, nothing on stdout, exactly one `dbbackup: error:` line
 * (at most followed by `hint:` lines) — no stack trace, no dump tool chatter. Returns the error line.
 */
function expectOneLineError(r: CliResult): string {
  expect(r.code, `exit code; stderr:\n${r.stderr}`).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trim().split('\n');
  expect(lines[0], r.stderr).toMatch(/^dbbackup: error: /);
  for (const line of lines.slice(1)) expect(line, r.stderr).toMatch(/^hint: /);
  return lines[0] ?? '';
}

async function pgFingerprint(db: string): Promise<{ n: number; md5: string }> {
  const [row] = await pgQuery<{ n: number; md5: string }>(
    db,
    `SELECT count(*)::int AS n, md5(string_agg(t::text, E'\\n' ORDER BY id)) AS md5 FROM t`,
  );
  if (!row) throw new Error(`no fingerprint for ${db}`);
  return row;
}

async function myFingerprint(db: string): Promise<{ n: number; md5: string }> {
  return withMy(db, async (c) => {
    await c.query('SET SESSION group_concat_max_len = 1073741824');
    const [rows] = await c.query(
      `SELECT COUNT(*) AS n,
              MD5(GROUP_CONCAT(CONCAT_WS('|', id, v, IFNULL(note, '<null>')) ORDER BY id SEPARATOR '\\n')) AS md5
         FROM t`,
    );
    const row = (rows as Array<{ n: string | number; md5: string }>)[0];
    if (!row) throw new Error(`no fingerprint for ${db}`);
    return { n: Number(row.n), md5: row.md5 };
  });
}

async function pgDatabaseExists(db: string): Promise<boolean> {
  return (await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [db])).length > 0;
}

async function myDatabaseExists(db: string): Promise<boolean> {
  return withMy(undefined, async (c) => {
    const [rows] = await c.query('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [db]);
    return (rows as unknown[]).length > 0;
  });
}

/** Connects as SSL_ROLE with the given driver SSL settings: null when accepted, else the server's message. */
/**
 * Back up with `flags`, then restore into a new database with the same flags: the data must come
 * back identical (the TLS settings reach the driver and both tools).
 */
async function roundTrip(
  engine: 'pg' | 'my',
  flags: string[],
  env: Record<string, string | undefined> = {},
): Promise<void> {
  const run = engine === 'pg' ? pgCli : myCli;
  const source = engine === 'pg' ? pgSource : mySource;
  const fingerprint = engine === 'pg' ? pgFingerprint : myFingerprint;
  const dir = await tempDir();
  try {
    expectExit(await run([...flags, '--backup-dir', dir, 'backup', 'single', source], env), 0);
    const file = await onlyBackup(dir);
    const target = uniqueName(engine === 'pg' ? 'sslpg_rt' : `${MY_PREFIX}_rt`);
    (engine === 'pg' ? pgCreated : myCreated).push(target);
    const restore = await run(
      [...flags, 'restore', 'single', file, '--target', target, '--create', '--confirm'],
      env,
    );
    expectExit(restore, 0);
    expect(await fingerprint(target)).toEqual(await fingerprint(source));
  } finally {
    await removeDir(dir);
  }
}

async function pgTryLogin(ssl: pg.ClientConfig['ssl']): Promise<string | null> {
  const s = pgServer();
  const client = new pg.Client({ host: s.host, port: s.port, user: SSL_ROLE, database: pgSource, ssl });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const r = await client.query<{ ssl: boolean }>(
      'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    );
    return r.rows[0]?.ssl === true ? null : 'connected, but not over SSL';
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function myTryLogin(ssl: mysql.SslOptions | undefined): Promise<string | null> {
  const s = myServer();
  let conn: mysql.Connection | undefined;
  try {
    conn = await mysql.createConnection({ host: s.host, port: s.port, user: MY_SSL_USER, ssl });
    const [rows] = await conn.query(`SHOW SESSION STATUS LIKE 'Ssl_cipher'`);
    return (rows as Array<{ Value: string }>)[0]?.Value ? null : 'connected, but not over SSL';
  } catch (err) {
    return (err as Error).message;
  } finally {
    await conn?.end().catch(() => undefined);
  }
}

// A cluster restore elsewhere would bring back (or drop) this role from its globals: take turns.
beforeAll(() => lockPgGlobals(), 900_000);

beforeAll(async () => {
  home = await tempDir('dbb-e2e-ssl-home-');

  // PostgreSQL: the role, owning a database with a table.
  await withPg('postgres', async (c) => {
    const exists = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [SSL_ROLE]);
    await c.query(
      `${exists.rowCount ? 'ALTER' : 'CREATE'} ROLE ${pgIdent(SSL_ROLE)} LOGIN CREATEDB NOSUPERUSER`,
    );
  });
  await createPgDatabase(pgSource);
  await pgExec('postgres', `ALTER DATABASE ${pgIdent(pgSource)} OWNER TO ${pgIdent(SSL_ROLE)}`);
  await pgExec(
    pgSource,
    `CREATE TABLE t (id int PRIMARY KEY, v text, note text);
     INSERT INTO t SELECT g, md5(g::text), CASE WHEN g % 7 = 0 THEN 'seven '' s' END
       FROM generate_series(1, 20000) g;
     ALTER TABLE t OWNER TO ${pgIdent(SSL_ROLE)};`,
  );
  // Everything below means something only if the server really insists on SSL for this role.
  const plain = await pgTryLogin(false);
  if (plain === null || !/pg_hba\.conf rejects connection .*no encryption/.test(plain)) {
    throw new Error(
      `the test PostgreSQL server lets role "${SSL_ROLE}" in without SSL (${plain ?? 'accepted'}); ` +
        `pg_hba.conf must start with the hostssl/hostnossl lines for it that tests/harness/pg-server.ts writes`,
    );
  }
  const ca = await readFile(pgServer().caFile, 'utf8');
  const verified = await pgTryLogin({ ca });
  if (verified !== null) throw new Error(`role "${SSL_ROLE}" cannot log in over verified SSL: ${verified}`);

  // MariaDB: the user (REQUIRE SSL), allowed everything on MY_PREFIX_* databases only.
  await myExec(
    undefined,
    `CREATE USER IF NOT EXISTS ${MY_SSL_ACCOUNT};
     ALTER USER ${MY_SSL_ACCOUNT} REQUIRE SSL;
     GRANT ALL PRIVILEGES ON ${myIdent(`${MY_PREFIX}\\_%`)}.* TO ${MY_SSL_ACCOUNT};`,
  );
  await createMyDatabase(mySource);
  await myExec(
    mySource,
    `CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL, note TEXT) DEFAULT CHARSET utf8mb4;
     INSERT INTO t (id, v, note)
       SELECT seq, MD5(seq), IF(seq % 7 = 0, 'seven '' s ✓', NULL) FROM seq_1_to_20000;`,
  );
  const myPlain = await myTryLogin(undefined);
  if (myPlain === null || !/Access denied/.test(myPlain)) {
    throw new Error(
      `the test MariaDB server lets ${MY_SSL_ACCOUNT} in without SSL (${myPlain ?? 'accepted'})`,
    );
  }
  const myVerified = await myTryLogin({ ca: await readFile(myServer().caFile, 'utf8') });
  if (myVerified !== null)
    throw new Error(`${MY_SSL_ACCOUNT} cannot log in over verified SSL: ${myVerified}`);
}, 300_000);

afterAll(async () => {
  try {
    for (const db of pgCreated) await dropPgDatabase(db);
    await pgExec('postgres', `DROP ROLE IF EXISTS ${pgIdent(SSL_ROLE)}`);
    for (const db of myCreated) await dropMyDatabase(db);
    // The MariaDB user stays: a cluster backup running in another file lists every user, then
    // runs SHOW CREATE USER for each, which fails for one dropped in between.
    if (home) await removeDir(home);
  } finally {
    await unlockPgGlobals();
  }
});

describe(`PostgreSQL over SSL (role ${SSL_ROLE}: hostssl trust, hostnossl reject)`, () => {
  // The role cannot connect without SSL at all, so a backup that succeeds proves that pg_dump
  // itself (not just the CLI's driver queries) connected over SSL: it got PGSSLMODE from the CLI.
  // Likewise for pg_restore (custom format) and psql (plain format) on the restore side.
  it.each([
    {
      how: '--ssl-mode require',
      flags: ['--ssl-mode', 'require'],
      env: {},
      format: 'custom',
      tool: 'pg_restore',
    },
    {
      how: 'PGSSLMODE=require (no flag)',
      flags: [],
      env: { PGSSLMODE: 'require' },
      format: 'plain',
      tool: 'psql',
    },
  ])(
    '$how: backup, verify-backup and restore --create round-trip ($format format, restored by $tool)',
    async ({ flags, env, format }) => {
      const dir = await tempDir();
      try {
        const backup = await pgCli(
          [...flags, '--backup-dir', dir, 'backup', 'single', pgSource, '--format', format],
          env,
        );
        expectExit(backup, 0);
        const file = await onlyBackup(dir);

        const verify = await cli(['verify-backup', file], { env: sslEnv() });
        expectExit(verify, 0);
        expect(verify.stdout).toMatch(/^OK {2}/m);

        const target = uniqueName(`sslpg_${format}`);
        pgCreated.push(target);
        const restore = await pgCli(
          [...flags, 'restore', 'single', file, '--target', target, '--create', '--confirm'],
          env,
        );
        expectExit(restore, 0);
        expect(await pgFingerprint(target)).toEqual(await pgFingerprint(pgSource));
        expect(
          await pgQuery(
            'postgres',
            'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1',
            [target],
          ),
        ).toEqual([{ owner: SSL_ROLE }]);
      } finally {
        await removeDir(dir);
      }
    },
  );

  // README: the default --ssl-mode is "libpq's default", i.e. prefer: try SSL first, as pg_dump
  // and psql do. An SSL-only server must then work without any flag.
  it.each([
    { how: "no --ssl-mode (libpq's default, prefer)", flags: [] },
    { how: '--ssl-mode prefer', flags: ['--ssl-mode', 'prefer'] },
  ])('$how against an SSL-only role: SSL is tried first and the backup succeeds', async ({ flags }) => {
    const dir = await tempDir();
    try {
      const backup = await pgCli([...flags, '--backup-dir', dir, 'backup', 'single', pgSource]);
      expectExit(backup, 0);
      await onlyBackup(dir);
    } finally {
      await removeDir(dir);
    }
  });

  const NO_ENCRYPTION = new RegExp(
    `^dbbackup: error: Cannot connect to PostgreSQL at 127\\.0\\.0\\.1:\\d+ \\(database "[^"]+"\\) as "${SSL_ROLE}": ` +
      `pg_hba\\.conf rejects connection for host "127\\.0\\.0\\.1", user "${SSL_ROLE}", database "[^"]+", no encryption$`,
  );

  it.each([
    { how: '--ssl-mode disable', flags: ['--ssl-mode', 'disable'], env: {} },
    { how: 'PGSSLMODE=disable (no flag)', flags: [], env: { PGSSLMODE: 'disable' } },
  ])(
    '$how: backup fails with the server\'s one-line "no encryption" refusal, no backup left',
    async ({ flags, env }) => {
      const dir = await tempDir();
      try {
        const r = await pgCli([...flags, '--backup-dir', dir, 'backup', 'single', pgSource], env);
        expect(expectOneLineError(r)).toMatch(NO_ENCRYPTION);
        expect(await listDir(dir)).toEqual([]);
      } finally {
        await removeDir(dir);
      }
    },
  );

  it('--ssl-mode disable: restore fails the same way and creates no database', async () => {
    const dir = await tempDir();
    try {
      expectExit(
        await pgCli(['--ssl-mode', 'require', '--backup-dir', dir, 'backup', 'single', pgSource]),
        0,
      );
      const file = await onlyBackup(dir);
      const target = uniqueName('sslpg_disabled');
      pgCreated.push(target);
      const r = await pgCli([
        '--ssl-mode',
        'disable',
        'restore',
        'single',
        file,
        '--target',
        target,
        '--create',
        '--confirm',
      ]);
      expect(expectOneLineError(r)).toMatch(NO_ENCRYPTION);
      expect(await pgDatabaseExists(target)).toBe(false);
    } finally {
      await removeDir(dir);
    }
  });

  it.each(['verify-full', 'verify-ca'])(
    '--ssl-mode %s without the CA: one-line certificate verification error, no backup',
    async (mode) => {
      const dir = await tempDir();
      try {
        const r = await pgCli(['--ssl-mode', mode, '--backup-dir', dir, 'backup', 'single', pgSource]);
        const line = expectOneLineError(r);
        expect(line).toMatch(/^dbbackup: error: Cannot connect to PostgreSQL at 127\.0\.0\.1:\d+ /);
        // Node's wording for an untrusted chain ("self-signed certificate in certificate chain").
        expect(line).toMatch(/certificate/i);
        expect(line).not.toMatch(/pg_hba\.conf/);
        expect(await listDir(dir)).toEqual([]);
      } finally {
        await removeDir(dir);
      }
    },
  );

  it.each(['verify-full', 'verify-ca'])(
    '--ssl-mode %s with the CA in PGSSLROOTCERT (as libpq takes it): backup and restore round-trip',
    (mode) => roundTrip('pg', ['--ssl-mode', mode], { PGSSLROOTCERT: pgServer().caFile }),
  );
});

describe('an unknown --ssl-mode', () => {
  // libpq refuses an unknown sslmode ("invalid sslmode value"); the CLI must not guess one
  // (a typo must not silently mean verify-full for one connection and something else for another).
  it.each([
    { engine: 'PostgreSQL', run: pgCli, db: () => pgSource },
    { engine: 'MariaDB', run: myCli, db: () => mySource },
  ])(
    '$engine: --ssl-mode requre is a usage error (exit 2) naming the option, before connecting',
    async ({ run, db }) => {
      const dir = await tempDir();
      try {
        const r = await run(['--ssl-mode', 'requre', '--backup-dir', dir, 'backup', 'single', db()]);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toMatch(
          /^error: option '--ssl-mode <mode>' argument 'requre' is invalid\. Allowed choices are disable, allow, prefer, require, verify-ca, verify-full\./m,
        );
        expect(r.stderr).not.toMatch(/Cannot connect|certificate/);
        expect(await listDir(dir)).toEqual([]);
      } finally {
        await removeDir(dir);
      }
    },
  );
});

describe(`MariaDB over SSL (user ${MY_SSL_ACCOUNT} REQUIRE SSL)`, () => {
  // REQUIRE SSL: the server refuses this user on a plain connection, so success means the
  // driver, mariadb-dump (backup) and mariadb (restore) all connected over SSL.
  it('--ssl-mode require: backup, verify-backup and restore --create round-trip', async () => {
    const dir = await tempDir();
    try {
      const backup = await myCli([
        '--ssl-mode',
        'require',
        '--backup-dir',
        dir,
        'backup',
        'single',
        mySource,
      ]);
      expectExit(backup, 0);
      const file = await onlyBackup(dir);

      const verify = await cli(['verify-backup', file], { env: sslEnv() });
      expectExit(verify, 0);
      expect(verify.stdout).toMatch(/^OK {2}/m);

      const target = uniqueName(`${MY_PREFIX}_req`);
      myCreated.push(target);
      const restore = await myCli([
        '--ssl-mode',
        'require',
        'restore',
        'single',
        file,
        '--target',
        target,
        '--create',
        '--confirm',
      ]);
      expectExit(restore, 0);
      expect(await myFingerprint(target)).toEqual(await myFingerprint(mySource));
      expect((await myFingerprint(target)).n).toBe(20000);
    } finally {
      await removeDir(dir);
    }
  });

  const ACCESS_DENIED = new RegExp(
    `^dbbackup: error: Cannot connect to MariaDB at 127\\.0\\.0\\.1:\\d+ as "${MY_SSL_USER}": ` +
      `Access denied for user '${MY_SSL_USER}'@'127\\.0\\.0\\.1'`,
  );

  it('--ssl-mode disable: backup fails with a one-line access-denied error, no backup left', async () => {
    const dir = await tempDir();
    try {
      const r = await myCli(['--ssl-mode', 'disable', '--backup-dir', dir, 'backup', 'single', mySource]);
      expect(expectOneLineError(r)).toMatch(ACCESS_DENIED);
      expect(await listDir(dir)).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });

  it('--ssl-mode disable: restore fails the same way and creates no database', async () => {
    const dir = await tempDir();
    try {
      expectExit(
        await myCli(['--ssl-mode', 'require', '--backup-dir', dir, 'backup', 'single', mySource]),
        0,
      );
      const file = await onlyBackup(dir);
      const target = uniqueName(`${MY_PREFIX}_dis`);
      myCreated.push(target);
      const r = await myCli([
        '--ssl-mode',
        'disable',
        'restore',
        'single',
        file,
        '--target',
        target,
        '--create',
        '--confirm',
      ]);
      expect(expectOneLineError(r)).toMatch(ACCESS_DENIED);
      expect(await myDatabaseExists(target)).toBe(false);
    } finally {
      await removeDir(dir);
    }
  });

  it.each(['verify-full', 'verify-ca'])(
    '--ssl-mode %s without a CA: one-line certificate verification error, no backup',
    async (mode) => {
      const dir = await tempDir();
      try {
        const r = await myCli(['--ssl-mode', mode, '--backup-dir', dir, 'backup', 'single', mySource]);
        const line = expectOneLineError(r);
        expect(line).toMatch(/^dbbackup: error: Cannot connect to MariaDB at 127\.0\.0\.1:\d+ /);
        expect(line).toMatch(/certificate/i);
        expect(await listDir(dir)).toEqual([]);
      } finally {
        await removeDir(dir);
      }
    },
  );

  it.each(['verify-full', 'verify-ca'])(
    '--ssl-mode %s --ssl-ca <the test CA>: the driver, mariadb-dump and mariadb verify the server; round trip',
    (mode) => roundTrip('my', ['--ssl-mode', mode, '--ssl-ca', myServer().caFile]),
  );

  it('--ssl-ca naming a missing file: one line naming it, before anything is written', async () => {
    const dir = await tempDir();
    try {
      const r = await myCli([
        '--ssl-mode',
        'verify-full',
        '--ssl-ca',
        '/nonexistent/ca.pem',
        '--backup-dir',
        dir,
        'backup',
        'single',
        mySource,
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^dbbackup: error: Cannot read the CA certificate .* \/nonexistent\/ca\.pem/m);
      expect(await listDir(dir)).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });
});

describe('--ssl-ca for PostgreSQL', () => {
  it('verify-full --ssl-ca: the driver and pg_dump/pg_restore (PGSSLROOTCERT) verify the server; round trip', () =>
    roundTrip('pg', ['--ssl-mode', 'verify-full', '--ssl-ca', pgServer().caFile]));

  it('an invalid PGSSLMODE is a usage error naming it, before connecting', async () => {
    const dir = await tempDir();
    try {
      const r = await pgCli(['--backup-dir', dir, 'backup', 'single', pgSource], { PGSSLMODE: 'requre' });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^dbbackup: error: Invalid PGSSLMODE "requre"$/m);
      expect(r.stderr).toMatch(
        /^hint: Use one of: disable, allow, prefer, require, verify-ca, verify-full\.$/m,
      );
      expect(await listDir(dir)).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });
});
