import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMyDatabase, dropMyDatabase, myExec } from '../harness/mysql.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgIdent } from '../harness/pg.js';
import { cli, expectExit, listDir, myArgs, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * Strict success: a dump tool's error is a failed backup — the tool's own line quoted, a hint for
 * the cause, exit 1 — and nothing that looks like a backup is left, however much was written.
 */
const pgDb = uniqueName('pg_strict');
const myDb = uniqueName('my_strict');
const role = uniqueName('strict_role');

beforeAll(async () => {
  await createPgDatabase(pgDb);
  await pgExec(
    pgDb,
    `CREATE TABLE open_data (id int); INSERT INTO open_data SELECT generate_series(1, 1000);
     CREATE TABLE secret (id int); REVOKE ALL ON secret FROM PUBLIC;
     CREATE ROLE ${pgIdent(role)} LOGIN; GRANT SELECT ON open_data TO ${pgIdent(role)};`,
  );
  await createMyDatabase(myDb);
  await myExec(
    myDb,
    `CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);
     CREATE TABLE gone (id int); CREATE VIEW v AS SELECT id FROM gone; DROP TABLE gone;`,
  );
});

afterAll(async () => {
  await dropPgDatabase(pgDb);
  await pgExec('postgres', `DROP ROLE IF EXISTS ${pgIdent(role)}`);
  await dropMyDatabase(myDb);
});

function oneError(stderr: string): { error: string; hint: string } {
  const error = stderr.split('\n').find((l) => l.startsWith('dbbackup: error: ')) ?? '';
  const hint = stderr.split('\n').find((l) => l.startsWith('hint: ')) ?? '';
  return { error, hint };
}

describe('a dump tool that fails fails the backup', () => {
  it('PostgreSQL: a table the user may not read — pg_dump quoted, the preflight hint, nothing kept', async () => {
    const dir = await tempDir();
    try {
      const args = pgArgs().map((a, i, all) => (all[i - 1] === '--user' ? role : a));
      const r = await cli([...args, '--backup-dir', dir, 'backup', 'single', pgDb]);
      expect(r.code).toBe(1);
      const { error, hint } = oneError(r.stderr);
      expect(error).toMatch(
        /^dbbackup: error: pg_dump failed \(exit code 1\): .*permission denied for table secret/,
      );
      expect(hint).toContain('dbbackup preflight');
      expect(await listDir(dir)).toEqual([]);
      // Once the privilege is there, the same command works.
      await pgExec(pgDb, `GRANT SELECT ON secret TO ${pgIdent(role)}`);
      expectExit(await cli([...args, '--backup-dir', dir, 'backup', 'single', pgDb]), 0);
    } finally {
      await removeDir(dir);
    }
  });

  it('MariaDB: a broken view — mariadb-dump quoted, a hint naming the cause, nothing kept', async () => {
    const dir = await tempDir();
    try {
      const r = await cli([...myArgs(), '--backup-dir', dir, 'backup', 'single', myDb]);
      expect(r.code).toBe(1);
      const { error, hint } = oneError(r.stderr);
      expect(error).toMatch(
        /^dbbackup: error: mariadb-dump failed \(exit code 2\): .*View '.*v' references invalid table/,
      );
      expect(hint).toMatch(/A view is broken/);
      expect(await listDir(dir)).toEqual([]);
      const listed = JSON.parse((await cli(['--backup-dir', dir, 'list', 'backups', '--json'])).stdout) as {
        backups: unknown[];
      };
      expect(listed.backups).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });
});
