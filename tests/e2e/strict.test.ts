import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
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
const myOk = uniqueName('my_ok');

beforeAll(async () => {
  await createPgDatabase(pgDb);
  await pgExec(
    pgDb,
    `CREATE TABLE open_data (id int); INSERT INTO open_data SELECT generate_series(1, 1000);
     CREATE TABLE secret (id int); REVOKE ALL ON secret FROM PUBLIC;
     CREATE ROLE ${pgIdent(role)} LOGIN; GRANT SELECT ON open_data TO ${pgIdent(role)};`,
  );
  await createMyDatabase(myOk);
  await myExec(
    myOk,
    'CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT seq, md5(seq) FROM seq_1_to_20000;',
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
  await dropMyDatabase(myOk);
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

describe('a dump that loses its end yet exits 0 is not a backup', () => {
  /** A mariadb-dump first on PATH that drops the real one's last lines and still exits 0. */
  async function truncatingDump(): Promise<string> {
    const bin = await tempDir('dbb-fakebin-');
    const real = execFileSync('sh', ['-c', 'command -v mariadb-dump'], { encoding: 'utf8' }).trim();
    await writeFile(path.join(bin, 'mariadb-dump'), `#!/bin/sh\n"${real}" "$@" | head -n -3\n`, {
      mode: 0o755,
    });
    return bin;
  }

  // A database this small is compressed in process by default: the programs' path is forced with
  // DBBACKUP_IN_PROCESS_MAX_BYTES=0.
  const external = { DBBACKUP_IN_PROCESS_MAX_BYTES: '0' };
  it.each([
    { label: 'zstd (external, decoded beside the dump)', args: [], env: external },
    { label: 'gzip (pigz, decoded beside the dump)', args: ['--compression-algo', 'gzip'], env: external },
    { label: 'in-process zstd (raw bytes seen)', args: [], env: { DBBACKUP_NO_EXTERNAL_COMPRESSOR: '1' } },
    { label: 'a small database (in process by default)', args: [], env: {} },
  ])('$label: the missing trailer fails the backup, nothing kept', async ({ args, env }) => {
    const bin = await truncatingDump();
    const dir = await tempDir();
    try {
      const r = await cli([...myArgs(), '--backup-dir', dir, ...args, 'backup', 'single', myOk], {
        env: { ...env, PATH: `${bin}:${process.env.PATH ?? ''}` },
      });
      expect(r.code, r.stderr).toBe(1);
      expect(oneError(r.stderr).error).toBe(
        'dbbackup: error: The dump ended without its completion trailer ("-- Dump completed"): it is incomplete',
      );
      expect(await listDir(dir)).toEqual([]);
      // The same backup without the broken tool passes the same check.
      expectExit(
        await cli([...myArgs(), '--backup-dir', dir, ...args, 'backup', 'single', myOk], { env }),
        0,
      );
    } finally {
      await removeDir(dir);
      await removeDir(bin);
    }
  });
});

describe('a PostgreSQL archive cut short yet exiting 0 is not a backup', () => {
  /** A pg_dump that drops the real one's last bytes and still exits 0 (its --version untouched). */
  async function truncatingPgDump(cut: number): Promise<string> {
    const bin = await tempDir('dbb-fakebin-');
    const real = '/usr/lib/postgresql/15/bin/pg_dump';
    await writeFile(
      path.join(bin, 'pg_dump'),
      `#!/bin/sh\n[ "$1" = --version ] && exec "${real}" "$@"\n"${real}" "$@" | head -c -${cut}\n`,
      { mode: 0o755 },
    );
    return bin;
  }

  // The archive is walked as it streams (header, table of contents, data blocks): before, the only
  // check was pg_restore --list on the stored file, which reads the table of contents and passes an
  // archive cut in its data section.
  it.each([
    { label: 'inside the end marker of its last block', cut: 3 },
    { label: 'without the end marker of its last block', cut: 5 },
    { label: 'in the middle of its data', cut: 4000 },
  ])('$label: the backup fails, nothing kept', async ({ cut }) => {
    const dir = await tempDir();
    const bin = await truncatingPgDump(cut);
    try {
      const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', pgDb], {
        env: { DBBACKUP_PG_BINDIR: bin },
      });
      expect(r.code, r.stderr).toBe(1);
      expect(oneError(r.stderr).error).toMatch(
        /^dbbackup: error: pg_dump's archive is incomplete or damaged: the archive ends (inside|before) /,
      );
      expect(await listDir(dir)).toEqual([]);
      // The same database with the real pg_dump passes the same walk.
      expectExit(await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', pgDb]), 0);
    } finally {
      await removeDir(dir);
      await removeDir(bin);
    }
  });
});
