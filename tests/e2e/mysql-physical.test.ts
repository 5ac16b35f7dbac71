/**
 * `backup physical` on a server of the MySQL family. There is no MySQL server nor Percona
 * XtraBackup on Debian, so the server is a throwaway MariaDB started with `--version=8.0.36`: it
 * reports itself as MySQL 8.0.36 (@@version_comment "Debian 12" says nothing of MariaDB), which is
 * all the flavour detection reads. What is proved here: the detection, the one-line refusal naming
 * the package when xtrabackup is missing, and that an installed `xtrabackup` (a shim on PATH that
 * records its arguments) is the program run, with the options mariadb-backup gets. A real
 * xtrabackup against a real MySQL is NOT tested (docs/mariadb-pitr.md says so).
 */
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBinlogServer, type BinlogServer } from '../harness/binlog-server.js';
import { cli, removeDir, tempDir } from './util.js';

let server: BinlogServer;
let shims: string;
const archives: string[] = [];

beforeAll(async () => {
  server = await startBinlogServer(7, ['--version=8.0.36']);
  shims = await mkdtemp(path.join(tmpdir(), 'dbb-xtrabackup-shim-'));
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await rm(shims, { recursive: true, force: true });
  for (const a of archives) await removeDir(a);
});

/** The CLI against the server as MySQL, with PATH limited to `dirs` plus the system's. */
async function physical(
  pathDirs: string[],
): Promise<{ code: number | null; stdout: string; stderr: string; archive: string }> {
  const archive = await tempDir('dbb-mysql-physical-');
  archives.push(archive);
  const args = server.args().map((a) => (a === 'mariadb' ? 'mysql' : a));
  const r = await cli([...args, 'backup', 'physical', '--archive', archive], {
    env: { PATH: [...pathDirs, '/usr/local/bin', '/usr/bin', '/bin'].join(':') },
  });
  return { ...r, archive };
}

async function physicalObjects(archive: string): Promise<string[]> {
  return readdir(path.join(archive, 'physical'), { recursive: true }).catch(() => [] as string[]);
}

describe('backup physical on MySQL', () => {
  it('the server reports MySQL 8.0.36 (the premise of the tests below)', async () => {
    const [v] = await server.query<{ v: string; c: string }>('SELECT @@version AS v, @@version_comment AS c');
    expect(v?.v).toBe('8.0.36');
    expect(v?.c).not.toMatch(/mariadb/i);
  });

  it('without xtrabackup: one line naming percona-xtrabackup-80, exit 1, no backup', async () => {
    const r = await physical([]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe(
      'dbbackup: error: xtrabackup was not found: physical backups of MySQL need the package percona-xtrabackup-80',
    );
    expect(r.stderr).toMatch(/^hint: .*apt-get install percona-xtrabackup-80/m);
    expect(await physicalObjects(r.archive)).toEqual([]);
  });

  it('with xtrabackup installed, it is the program run, with the options mariadb-backup gets', async () => {
    const record = path.join(shims, 'argv');
    const shim = path.join(shims, 'xtrabackup');
    // Answers --version as XtraBackup 8.0.36 does; otherwise records its arguments and fails as it would.
    await writeFile(
      shim,
      `#!/bin/sh
for a in "$@"; do [ "$a" = "--version" ] && { echo "xtrabackup version 8.0.36-28 based on MySQL server 8.0.36 Linux (x86_64)" >&2; exit 0; }; done
printf '%s\\n' "$@" > '${record}'
echo "[ERROR] shim: no MySQL here" >&2
exit 1
`,
    );
    await chmod(shim, 0o755);
    const r = await physical([shims]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/xtrabackup failed/);
    const argv = (await readFile(record, 'utf8')).trim().split('\n');
    expect(argv).toEqual(
      expect.arrayContaining([
        '--backup',
        '--stream=xbstream',
        '--host=127.0.0.1',
        `--port=${server.port}`,
        '--user=root',
      ]),
    );
    expect(argv.some((a) => a.startsWith('--target-dir='))).toBe(true);
    expect(argv.some((a) => a.startsWith('--extra-lsndir='))).toBe(true);
    expect(await physicalObjects(r.archive)).toEqual([]);
  });
});

describe('preflight --pitr on MySQL', () => {
  /** preflight --pitr against the server as MySQL, PATH limited as for the backups above. */
  async function preflight(
    pathDirs: string[],
    user = 'root',
  ): Promise<{ code: number | null; stdout: string }> {
    const args = server.args().map((a) => (a === 'mariadb' ? 'mysql' : a === 'root' ? user : a));
    const dir = await tempDir('dbb-mysql-preflight-');
    archives.push(dir);
    return cli([...args, 'preflight', '--pitr', '--backup-dir', dir], {
      env: { PATH: [...pathDirs, '/usr/local/bin', '/usr/bin', '/bin'].join(':') },
    });
  }

  it('checks xtrabackup (naming percona-xtrabackup-80), not mariadb-backup, and says PITR is MariaDB only', async () => {
    const r = await preflight([]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /pitr: xtrabackup +FAIL +xtrabackup was not found: physical backups of MySQL need the package percona-xtrabackup-80/,
    );
    expect(r.stdout).toMatch(/hint \(pitr: xtrabackup\): .*apt-get install percona-xtrabackup-80/);
    expect(r.stdout).not.toMatch(/mariadb-backup/);
    // MySQL's backup lock is what is tried (this stand-in server is MariaDB and rejects it).
    expect(r.stdout).toMatch(
      /pitr: backup locks +FAIL .*\n(?:.*\n)*hint \(pitr: backup locks\): xtrabackup needs LOCK INSTANCE FOR BACKUP \(BACKUP_ADMIN\)/,
    );
    expect(r.stdout).toMatch(/pitr: mysqlbinlog, xbstream +FAIL/);
    expect(r.stdout).toMatch(
      /pitr: binlog archive, restore pitr +WARN +MariaDB only: this server is MySQL 8\.0\.36/,
    );
  });

  it("with xtrabackup of the server's series installed, its check passes", async () => {
    const shim = path.join(shims, 'xtrabackup');
    await writeFile(
      shim,
      `#!/bin/sh\necho "xtrabackup version 8.0.36-28 based on MySQL server 8.0.36 Linux (x86_64)" >&2\n`,
    );
    await chmod(shim, 0o755);
    const r = await preflight([shims]);
    expect(r.stdout).toMatch(new RegExp(`pitr: xtrabackup +ok +${shim} 8\\.0\\.36 for server 8\\.0\\.36`));
  });

  it('names the privileges as MySQL does: REPLICATION CLIENT, not BINLOG MONITOR', async () => {
    await server.query(
      "CREATE USER IF NOT EXISTS 'pf_lim'@'127.0.0.1'; GRANT RELOAD, PROCESS, LOCK TABLES, REPLICATION SLAVE ON *.* TO 'pf_lim'@'127.0.0.1'",
    );
    const r = await preflight([], 'pf_lim');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /pitr: privileges +FAIL +REPLICATION CLIENT \(for the binlog position of backups/,
    );
    expect(r.stdout).toMatch(/GRANT REPLICATION CLIENT ON \*\.\* TO pf_lim;/);
    expect(r.stdout).not.toMatch(/BINLOG MONITOR/);
  });
});
