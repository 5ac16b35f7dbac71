/**
 * Fault matrix: restore single on MariaDB, interrupted by SIGINT/SIGTERM while the client loads
 * data. What a user relies on afterwards: exit 130, one line saying what was stopped and that the
 * database dbbackup created is gone, no decompressor or client left running, the database gone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropMyDatabase, myExec, myQuery } from '../harness/mysql.js';
import { childrenNamed, isAlive, waitFor } from '../harness/proc.js';
import { cli, expectExit, myArgs, onlyBackup, removeDir, tempDir, uniqueName } from '../e2e/util.js';
import { dbbackupTempFiles, start } from './invariants.js';
import { referenceMySingle } from '../harness/reference-tool.js';

const source = uniqueName('fmyr');
let dir = '';
let backup = '';
/** The same database backed up by the reference tool (mysqldump | gzip -6, its sidecars). */
let reference = '';

beforeAll(async () => {
  await myExec(undefined, `CREATE DATABASE ${source}`);
  // ~60 MB of rows: the load takes seconds even on a fast machine, so the signal lands mid-load.
  await myExec(
    source,
    `CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(200), KEY kv (v));
     INSERT INTO t SELECT seq, CONCAT(MD5(seq), MD5(seq + 1), MD5(seq + 2)) FROM seq_1_to_400000`,
  );
  dir = await tempDir('dbb-faults-myr-');
  expectExit(await cli([...myArgs(), '--backup-dir', dir, 'backup', 'single', source]), 0);
  backup = await onlyBackup(dir);
  reference = await referenceMySingle(dir, source);
}, 600_000);

afterAll(async () => {
  await dropMyDatabase(source);
  if (dir) await removeDir(dir);
});

async function databaseExists(name: string): Promise<boolean> {
  const rows = await myQuery(undefined, 'SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [
    name,
  ]);
  return rows.length > 0;
}

/** The restore's client is inserting rows into the target's table. */
async function loading(target: string): Promise<boolean> {
  const rows = await myQuery<{ n: number }>(
    undefined,
    `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'INSERT INTO%'`,
    [target],
  );
  return Number(rows[0]?.n ?? 0) > 0;
}

describe('restore single (MariaDB): SIGINT/SIGTERM', () => {
  const cases = [
    ['SIGTERM', 'a dbbackup backup'],
    ['SIGINT', 'a dbbackup backup'],
    ['SIGTERM', "the reference tool's .sql.gz"],
  ] as const;
  for (const [sig, what] of cases) {
    it(`restore single (MariaDB, ${what}): ${sig} while the client loads rows → client and decompressor stopped, created database dropped, exit 130, one line`, async () => {
      const target = uniqueName(`myr_${sig.toLowerCase()}`);
      const before = await dbbackupTempFiles();
      const run = start([
        ...myArgs(),
        'restore',
        'single',
        what === 'a dbbackup backup' ? backup : reference,
        '--target',
        target,
        '--create',
        '--confirm',
      ]);
      try {
        const pid = run.child.pid ?? 0;
        await waitFor('the restore to be loading rows', 120_000, async () => {
          if (run.child.exitCode !== null) throw new Error(`ended early: ${run.output().stderr}`);
          return loading(target);
        });
        const children = [
          ...(await childrenNamed(pid, 'mariadb')),
          ...(await childrenNamed(pid, 'mysql')),
          ...(await childrenNamed(pid, 'zstd')),
          ...(await childrenNamed(pid, 'pigz')),
          ...(await childrenNamed(pid, 'gzip')),
        ];
        expect(children.length).toBeGreaterThan(0);
        run.child.kill(sig);
        const code = await run.exited;
        const { stdout, stderr } = run.output();
        expect(code, stderr).toBe(130);
        expect(stderr).toMatch(
          new RegExp(
            `^dbbackup: error: Interrupted: the restore into "${target}" was stopped and its processes ended\\. The partially restored database "${target}" was dropped\\.$`,
            'm',
          ),
        );
        expect(stdout).not.toContain('Restore complete');
        for (const child of children)
          await waitFor(`child ${child} to be gone`, 30_000, async () => !isAlive(child));
        expect(await databaseExists(target)).toBe(false);
        expect(await dbbackupTempFiles()).toEqual(before);
      } finally {
        run.child.kill('SIGKILL');
        await dropMyDatabase(target);
      }
    });
  }
});
