import { stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMyDatabase, dropMyDatabase, myExec, myQuery } from '../harness/mysql.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { myServer, pgServer } from '../harness/servers.js';
import { cli, expectExit, listDir, onlyBackup, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * What a user gets without flags: the libpq and MySQL environment variables choose the server,
 * DBBACKUP_* the engine and directory, and ~/db_backups is the default store.
 */
const pgDb = uniqueName('pg_env');
const myDb = uniqueName('my_env');
const pgCreated = [pgDb];
const myCreated = [myDb];
let home: string;

beforeAll(async () => {
  home = await tempDir('dbb-e2e-home-');
  await createPgDatabase(pgDb);
  await pgExec(
    pgDb,
    `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 3000) g;`,
  );
  await createMyDatabase(myDb);
  await myExec(
    myDb,
    `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT seq, md5(seq) FROM seq_1_to_3000;`,
  );
});

afterAll(async () => {
  for (const db of pgCreated) await dropPgDatabase(db);
  for (const db of myCreated) await dropMyDatabase(db);
  await removeDir(home);
});

async function pgDigest(db: string): Promise<unknown> {
  return pgQuery(db, `SELECT count(*)::int AS n, md5(string_agg(t::text, ',' ORDER BY id)) AS digest FROM t`);
}

async function myDigest(db: string): Promise<unknown> {
  return myQuery(
    db,
    `SELECT COUNT(*) AS n, MD5(GROUP_CONCAT(id, ':', v ORDER BY id SEPARATOR ',')) AS digest FROM t`,
  );
}

describe('defaults and environment', () => {
  it('PostgreSQL from PGHOST/PGPORT/PGUSER into ~/db_backups, restored by name from there', async () => {
    const s = pgServer();
    const env = { HOME: home, PGHOST: s.host, PGPORT: String(s.port), PGUSER: s.user };
    const r = await cli(['backup', 'single', pgDb], { env });
    expectExit(r, 0);
    const dir = path.join(home, 'db_backups');
    expect(r.stdout).toContain(`Backup complete: ${dir}/${pgDb}_`);
    // Created private: backups hold every row of the database.
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const file = await onlyBackup(dir);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    const list = await cli(['list', 'backups'], { env });
    expectExit(list, 0);
    expect(list.stdout).toMatch(
      new RegExp(
        `^${path.basename(file).replace(/\./g, '\\.')}\\s+${pgDb}\\s+postgres\\s.*\\sunverified$`,
        'm',
      ),
    );

    const target = uniqueName('pg_env_copy');
    pgCreated.push(target);
    // A bare name is looked up in the backup directory.
    expectExit(
      await cli(['restore', 'single', path.basename(file), '--target', target, '--create', '--confirm'], {
        env,
      }),
      0,
    );
    expect(await pgDigest(target)).toEqual(await pgDigest(pgDb));
  });

  it('DBBACKUP_DB_TYPE=mariadb with MYSQL_HOST/MYSQL_TCP_PORT into DBBACKUP_BACKUP_DIR', async () => {
    const s = myServer();
    const dir = await tempDir();
    try {
      const env = {
        HOME: home,
        DBBACKUP_DB_TYPE: 'mariadb',
        DBBACKUP_BACKUP_DIR: dir,
        MYSQL_HOST: s.host,
        MYSQL_TCP_PORT: String(s.port),
        USER: s.user,
      };
      const r = await cli(['backup', 'single', myDb], { env });
      expectExit(r, 0);
      const file = await onlyBackup(dir);
      expect(file).toMatch(new RegExp(`/${myDb}_\\d{8}_\\d{6}\\.sql\\.zst$`));
      expect(await listDir(path.join(home, 'db_backups'))).not.toContain(path.basename(file));

      const target = uniqueName('my_env_copy');
      myCreated.push(target);
      expectExit(
        await cli(['restore', 'single', path.basename(file), '--target', target, '--create', '--confirm'], {
          env,
        }),
        0,
      );
      expect(await myDigest(target)).toEqual(await myDigest(myDb));
    } finally {
      await removeDir(dir);
    }
  });

  it('flags win over the environment', async () => {
    const s = pgServer();
    const dir = await tempDir();
    try {
      // The environment points at a closed port; --port puts it right.
      const env = {
        HOME: home,
        PGHOST: s.host,
        PGPORT: '1',
        PGUSER: s.user,
        DBBACKUP_BACKUP_DIR: '/nonexistent/never',
      };
      const r = await cli(['--port', String(s.port), '--backup-dir', dir, 'backup', 'single', pgDb], { env });
      expectExit(r, 0);
      expect(await onlyBackup(dir)).toContain(pgDb);
    } finally {
      await removeDir(dir);
    }
  });

  it('a backup directory that is a dangling symlink (a disk not mounted): one line naming it, at once', async () => {
    const root = await tempDir();
    try {
      const link = path.join(root, 'db_backups');
      await symlink(path.join(root, 'nas-not-mounted', 'backups'), link);
      // Node's recursive mkdir spins forever here; the timeout turns a hang into a failure.
      const r = await cli([...pgArgs(), '--backup-dir', link, 'backup', 'single', pgDb], {
        timeoutMs: 30_000,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `${link} is a symbolic link to ${path.join(root, 'nas-not-mounted', 'backups')}, which does not exist`,
      );
      expect(r.stderr).toMatch(/^hint: Mount or create its target/m);
      expect(await listDir(root)).toEqual(['db_backups']);
    } finally {
      await removeDir(root);
    }
  });
});
