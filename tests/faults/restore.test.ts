/**
 * Fault matrix: restore. Each case injects one fault into a running restore (the server stopped,
 * SIGINT/SIGTERM, a lock held by another session, the object store killed…) and asserts what a
 * user relies on afterwards: the target database fully restored, or gone, or reported as left —
 * truthfully —, no child process left running, no temporary file left behind, the right exit code.
 *
 * Cases that stop the server run on a PRIVATE throwaway PostgreSQL (startPg), never the shared one.
 */
import { spawn } from 'node:child_process';
import { watch } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/cli.js';
import mysql from 'mysql2/promise';
import type { MyServerInfo, PgServerInfo } from '../harness/context.js';
import { startMy } from '../harness/my-server.js';
import { DUMMY_CREDENTIALS, startS3Emulator, type S3Emulator } from '../harness/s3-emulator.js';
import { startPg, startPgAgain, stopPgImmediately, type RunningServer } from '../harness/pg-server.js';
import { createMyDatabase, dropMyDatabase, myConnect, myExec, myIdent, myQuery } from '../harness/mysql.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgIdent, pgQuery } from '../harness/pg.js';
import { pgServer } from '../harness/servers.js';
import { expectExit, cli, myArgs, onlyBackup, pgArgs, removeDir, tempDir, uniqueName } from '../e2e/util.js';
import { dbbackupTempFiles } from './invariants.js';

// ---------------------------------------------------------------------------------------------
// Helpers

interface Running {
  pid: number;
  /** Every child process seen while the command ran: pid and command name. */
  children: Map<number, string>;
  exited: Promise<{ code: number | null; stdout: string; stderr: string }>;
  stderr(): string;
  signal(sig: NodeJS.Signals): void;
}

/** Starts the CLI in the background, recording its child processes as they appear (SHOW_CLI=1 prints its output). */
function startCli(args: string[], env: Record<string, string | undefined> = {}): Running {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/dbbackup.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      PGHOST: undefined,
      PGPORT: undefined,
      PGUSER: undefined,
      PGDATABASE: undefined,
      ...env,
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const pid = child.pid ?? 0;
  const children = new Map<number, string>();
  const watcher = setInterval(() => {
    void childProcesses(pid).then((found) => found.forEach((name, p) => children.set(p, name)));
  }, 50);
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code) => {
      if (process.env.SHOW_CLI) console.log(`--- ${args.join(' ')}\nexit ${code}\n${stdout}${stderr}`);
      clearInterval(watcher);
      resolve({ code, stdout, stderr });
    }),
  );
  return {
    pid,
    children,
    exited,
    stderr: () => stderr,
    signal: (sig) => child.kill(sig),
  };
}

/** Direct children of `ppid` (Linux /proc): pid → command name. */
async function childProcesses(ppid: number): Promise<Map<number, string>> {
  const found = new Map<number, string>();
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const close = stat.lastIndexOf(')');
    if (close < 0) continue;
    const ppidField = Number(stat.slice(close + 2).split(' ')[1]);
    if (ppidField === ppid) found.set(Number(entry), stat.slice(stat.indexOf('(') + 1, close));
  }
  return found;
}

/** Processes among `seen` that still run the same program (a survivor is re-parented, not gone). */
async function survivors(seen: Map<number, string>): Promise<string[]> {
  const alive: string[] = [];
  for (const [pid, name] of seen) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (stat && stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) === name)
      alive.push(`${name} (${pid})`);
  }
  return alive;
}

/** Polls `probe` until it is true; fails at once, with the command's output, if the command ended first. */
async function waitUntil(
  run: Running,
  what: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  let ended = false;
  void run.exited.then(() => (ended = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    if (ended) throw new Error(`the command ended before ${what}:\n${run.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${run.stderr()}`);
}

function hasChild(run: Running, name: string): boolean {
  return [...run.children.values()].includes(name);
}

/** A query on a private server (a fresh connection per call: the server may have restarted). */
async function query<R extends pg.QueryResultRow>(
  info: PgServerInfo,
  db: string,
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  const c = new pg.Client({ host: info.host, port: info.port, user: info.user, database: db });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<R>(sql, params)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function exists(info: PgServerInfo, db: string): Promise<boolean> {
  return (await query(info, 'postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [db])).length > 0;
}

/** A restore tool's session is at work in `db` (loading data or building an index). */
async function restoring(info: PgServerInfo, db: string): Promise<boolean> {
  const rows = await query(
    info,
    'postgres',
    `SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND application_name = 'dbbackup'`,
    [db],
  );
  return rows.length > 0;
}

async function dropIfExists(info: PgServerInfo, db: string): Promise<void> {
  await query(info, 'postgres', `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(db)} WITH (FORCE)`);
}

function args(info: PgServerInfo): string[] {
  return ['--host', info.host, '--port', String(info.port), '--user', info.user];
}

// ---------------------------------------------------------------------------------------------
// A private server with one big database, backed up once (custom format, zstd).

let server: RunningServer<PgServerInfo>;
let info: PgServerInfo;
let dir: string;
let backup: string;
const big = 'big';

beforeAll(async () => {
  server = await startPg();
  info = server.info;
  await query(info, 'postgres', `CREATE DATABASE ${big}`);
  // Random text compresses poorly: a restore of it lasts seconds, long enough to break into.
  await query(
    info,
    big,
    `CREATE TABLE t (id int PRIMARY KEY, v text, w text);
     INSERT INTO t SELECT g, md5(random()::text) || md5(random()::text), md5(random()::text) FROM generate_series(1, 1000000) g;
     CREATE INDEX t_v ON t (v); CREATE INDEX t_w ON t (w);`,
  );
  dir = await tempDir('dbb-faults-');
  expectExit(await cli([...args(info), '--backup-dir', dir, 'backup', 'single', big]), 0);
  backup = await onlyBackup(dir);
}, 600_000);

afterAll(async () => {
  await server?.stop();
  if (dir) await removeDir(dir);
});

describe('restore: the server stops mid-restore (private server)', () => {
  for (const jobs of ['1', '2']) {
    it(`restore single --jobs ${jobs}: server stopped (immediate) and started again → the half-restored database is dropped once it is back, and only then said to be`, async () => {
      const target = uniqueName('crash');
      const run = startCli([
        ...args(info),
        'restore',
        'single',
        backup,
        '--target',
        target,
        '--create',
        '--jobs',
        jobs,
        '--confirm',
      ]);
      try {
        await waitUntil(run, 'the restore to be loading data', 120_000, () => restoring(info, target));
        await stopPgImmediately(server);
        // The restore tool has lost its server; dbbackup is now trying to drop the database.
        await waitUntil(
          run,
          'pg_restore to have exited',
          60_000,
          async () => !(await childProcesses(run.pid)).size,
        );
        await startPgAgain(server);
        const r = await run.exited;
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toContain(`The partially restored database "${target}" was dropped.`);
        expect(await exists(info, target)).toBe(false);
        expect(r.stdout).not.toContain('Restore complete');
        // The cause is named: the restore tool lost its server (not a decompressor's broken pipe).
        expect(r.stderr).toMatch(/^dbbackup: error: pg_restore failed/m);
      } finally {
        await startPgAgain(server).catch(() => undefined);
        await dropIfExists(info, target);
      }
    });
  }

  it('restore single: server stopped and not back within --server-wait → exit 1, the database named as NOT dropped, with what to do', async () => {
    const target = uniqueName('crash_left');
    const run = startCli([
      ...args(info),
      'restore',
      'single',
      backup,
      '--target',
      target,
      '--create',
      '--server-wait',
      '2',
      '--confirm',
    ]);
    try {
      await waitUntil(run, 'the restore to be loading data', 120_000, () => restoring(info, target));
      await stopPgImmediately(server);
      const r = await run.exited;
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^dbbackup: error: pg_restore failed/m);
      expect(r.stderr).toContain(
        `The partially restored database "${target}" on ${info.host}:${info.port} was NOT dropped`,
      );
      expect(r.stderr).toContain(`DROP DATABASE "${target}"`);
      expect(r.stderr).not.toMatch(/was dropped/);
      await startPgAgain(server);
      // The report was true: the database is still there.
      expect(await exists(info, target)).toBe(true);
    } finally {
      await startPgAgain(server).catch(() => undefined);
      await dropIfExists(info, target);
    }
  });
});

describe('restore: SIGINT/SIGTERM', () => {
  it('restore single (streamed): SIGTERM → children stopped, created database dropped, exit 130, one line', async () => {
    const target = uniqueName('sigterm');
    const run = startCli([
      ...args(info),
      'restore',
      'single',
      backup,
      '--target',
      target,
      '--create',
      '--confirm',
    ]);
    try {
      await waitUntil(
        run,
        'the restore to be loading data',
        120_000,
        async () => hasChild(run, 'pg_restore') && (await restoring(info, target)),
      );
      run.signal('SIGTERM');
      const r = await run.exited;
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).toMatch(
        new RegExp(
          `^dbbackup: error: Interrupted: the restore into "${target}" was stopped and its processes ended\\. The partially restored database "${target}" was dropped\\.$`,
          'm',
        ),
      );
      expect(await survivors(run.children)).toEqual([]);
      expect(await exists(info, target)).toBe(false);
    } finally {
      run.signal('SIGKILL');
      await dropIfExists(info, target);
    }
  });

  /** A --jobs 2 restore interrupted while pg_restore loads data, or while the copy is decompressed. */
  async function interruptJobs(sig: NodeJS.Signals, moment: 'restoring' | 'decompressing'): Promise<string> {
    const target = uniqueName(`${sig.toLowerCase()}_${moment}`);
    const workdir = await tempDir('dbb-workdir-');
    // The copy can be decompressed faster than a poll of /proc notices (seen: the restore was past
    // it before the test looked): the signal goes the moment the copy appears in the workdir.
    let sent = false;
    const watcher =
      moment === 'decompressing'
        ? watch(workdir, () => {
            if (sent) return;
            sent = true;
            run.signal(sig);
          })
        : undefined;
    const run = startCli([
      ...args(info),
      ...[
        'restore',
        'single',
        backup,
        '--target',
        target,
        '--create',
        '--jobs',
        '2',
        '--workdir',
        workdir,
        '--confirm',
      ],
    ]);
    try {
      if (moment === 'restoring') {
        await waitUntil(
          run,
          'pg_restore --jobs to be loading data',
          120_000,
          async () => hasChild(run, 'pg_restore') && (await restoring(info, target)),
        );
        expect(await dbbackupTempFiles(workdir)).not.toEqual([]);
        run.signal(sig);
      }
      const r = await run.exited;
      watcher?.close();
      expect(sent || moment === 'restoring').toBe(true);
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).toContain('its temporary files were removed');
      expect(await survivors(run.children)).toEqual([]);
      expect(await readdir(workdir)).toEqual([]);
      expect(await exists(info, target)).toBe(false);
      return r.stderr.replaceAll(target, '<target>');
    } finally {
      run.signal('SIGKILL');
      await dropIfExists(info, target);
      await removeDir(workdir);
    }
  }

  it('restore single --jobs 2: SIGINT during pg_restore → children stopped, workdir empty, created database dropped, exit 130', async () => {
    expect(await interruptJobs('SIGINT', 'restoring')).toContain(
      'The partially restored database "<target>" was dropped.',
    );
  });

  it('restore single --jobs 2: SIGTERM while decompressing into --workdir → decompressor stopped, workdir empty, nothing created (the copy is made before the target is touched), exit 130', async () => {
    const stderr = await interruptJobs('SIGTERM', 'decompressing');
    expect(stderr).toContain('nothing was changed');
    expect(stderr).not.toContain('partially restored');
  });
});

describe('restore cluster: SIGTERM (private server)', () => {
  it('restore cluster: SIGTERM while a database is restoring → children stopped, that database dropped, the others named, exit 130', async () => {
    const small = 'cl_a_small';
    const large = 'cl_b_big';
    await query(info, 'postgres', `CREATE DATABASE ${small}`);
    await query(
      info,
      small,
      'CREATE TABLE s (id int PRIMARY KEY); INSERT INTO s SELECT generate_series(1, 100);',
    );
    await query(info, 'postgres', `CREATE DATABASE ${large} TEMPLATE ${big}`);
    const clusterDir = await tempDir('dbb-faults-cluster-');
    try {
      const b = await cli([
        ...args(info),
        '--backup-dir',
        clusterDir,
        'backup',
        'cluster',
        '--include-database',
        'cl_*',
      ]);
      expectExit(b, 0);
      const name = (await readdir(clusterDir)).find((n) => n.startsWith('cluster_')) ?? '';
      await dropIfExists(info, small);
      await dropIfExists(info, large);
      const run = startCli([
        ...args(info),
        '--backup-dir',
        clusterDir,
        'restore',
        'cluster',
        name,
        '--jobs',
        '1',
        '--confirm',
      ]);
      await waitUntil(
        run,
        `${large} to be restoring`,
        120_000,
        async () => hasChild(run, 'pg_restore') && (await restoring(info, large)),
      );
      run.signal('SIGTERM');
      const r = await run.exited;
      expect(r.code, r.stderr).toBe(130);
      expect(r.stderr).toMatch(
        new RegExp(
          `^dbbackup: error: Interrupted: the cluster restore was stopped and its processes ended; restored: ${small}; stopped and dropped: ${large}; not restored: none$`,
          'm',
        ),
      );
      expect(await survivors(run.children)).toEqual([]);
      expect(await exists(info, large)).toBe(false);
      expect(await query(info, small, 'SELECT count(*)::int AS n FROM s')).toEqual([{ n: 100 }]);
    } finally {
      await dropIfExists(info, small);
      await dropIfExists(info, large);
      await removeDir(clusterDir);
    }
  });
});

describe('restore: the restore itself fails', () => {
  it('restore single --clean: a statement of the dump fails → the recreated database dropped, and the message says --clean had dropped the old one', async () => {
    const db = uniqueName('pg_clean_fail');
    const dir = await tempDir();
    try {
      await createPgDatabase(db);
      await pgExec(db, 'CREATE TABLE old (id int);');
      const file = path.join(dir, 'broken.sql');
      await writeFile(
        file,
        [
          '--',
          '-- PostgreSQL database dump',
          '--',
          'CREATE TABLE a (id int);',
          'SELECT no_such_function();',
          '',
          '-- PostgreSQL database dump complete',
          '',
        ].join('\n'),
      );
      const r = await cli([
        ...pgArgs(),
        'restore',
        'single',
        file,
        '--target',
        db,
        '--clean',
        '--force',
        '--confirm',
      ]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^dbbackup: error: psql failed/m);
      expect(r.stderr).toContain(
        `The partially restored database "${db}" was dropped. Its previous contents had been dropped by --clean before the restore began.`,
      );
      expect(await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [db])).toEqual([]);
    } finally {
      await dropPgDatabase(db);
      await removeDir(dir);
    }
  });
});

describe('hostile names: longer than the server keeps', () => {
  /** A name of exactly `n` ASCII characters, unique to this run. */
  const exact = (prefix: string, n: number): string => uniqueName(prefix).padEnd(n, 'x');

  it('restore single --clean: --target over 63 bytes on PostgreSQL → exit 2, the existing 63-byte database untouched', async () => {
    const existing = exact('pg63', 63);
    const backupDir = await tempDir();
    try {
      await createPgDatabase(existing);
      await pgExec(existing, 'CREATE TABLE keep (id int); INSERT INTO keep SELECT generate_series(1, 10);');
      expectExit(await cli([...pgArgs(), '--backup-dir', backupDir, 'backup', 'single', existing]), 0);
      const file = await onlyBackup(backupDir);
      await pgExec(existing, 'INSERT INTO keep VALUES (11);'); // a change the restore would undo
      // PostgreSQL cuts "<63 bytes>_copy" to the existing name: this once dropped and replaced it.
      const r = await cli([
        ...pgArgs(),
        'restore',
        'single',
        file,
        '--target',
        `${existing}_copy`,
        '--clean',
        '--create',
        '--confirm',
      ]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`Database name "${existing}_copy" is 68 bytes long`);
      expect(r.stderr).toMatch(/^hint: Use a name of at most 63 bytes/m);
      expect(r.stdout).not.toContain('Restore complete');
      expect(await pgQuery(existing, 'SELECT count(*)::int AS n FROM keep')).toEqual([{ n: 11 }]);
    } finally {
      await dropPgDatabase(existing);
      await removeDir(backupDir);
    }
  });

  it('backup single: a database name over 63 bytes (non-ASCII counts in bytes) → exit 2, nothing written', async () => {
    const backupDir = await tempDir();
    try {
      for (const name of [`${exact('pg63', 63)}_other`, 'é'.repeat(32)]) {
        const r = await cli([...pgArgs(), '--backup-dir', backupDir, 'backup', 'single', name]);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain(`Database name "${name}" is ${Buffer.byteLength(name)} bytes long`);
        expect(await readdir(backupDir)).toEqual([]);
      }
    } finally {
      await removeDir(backupDir);
    }
  });

  it('restore cluster --include-database: a name over 63 bytes → exit 2, nothing changed (private server)', async () => {
    const clusterDir = await tempDir('dbb-faults-names-');
    try {
      await query(info, 'postgres', 'CREATE DATABASE tiny');
      expectExit(
        await cli([
          ...args(info),
          '--backup-dir',
          clusterDir,
          'backup',
          'cluster',
          '--include-database',
          'tiny',
        ]),
        0,
      );
      await dropIfExists(info, 'tiny');
      const name = (await readdir(clusterDir)).find((n) => n.startsWith('cluster_')) ?? '';
      const long = 'd'.repeat(64);
      const r = await cli([
        ...args(info),
        '--backup-dir',
        clusterDir,
        'restore',
        'cluster',
        name,
        '--include-database',
        long,
        '--confirm',
      ]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`Database name "${long}" is 64 bytes long`);
      expect(await exists(info, 'tiny')).toBe(false);
    } finally {
      await dropIfExists(info, 'tiny');
      await removeDir(clusterDir);
    }
  });

  it('restore single --clean: --target over 64 characters on MariaDB → exit 2, the existing 64-character database untouched', async () => {
    const existing = exact('my64', 64);
    const backupDir = await tempDir();
    try {
      await createMyDatabase(existing);
      await myExec(existing, 'CREATE TABLE keep (id int); INSERT INTO keep VALUES (1), (2), (3);');
      expectExit(await cli([...myArgs(), '--backup-dir', backupDir, 'backup', 'single', existing]), 0);
      const file = await onlyBackup(backupDir);
      const r = await cli([
        ...myArgs(),
        'restore',
        'single',
        file,
        '--target',
        `${existing}_copy`,
        '--clean',
        '--create',
        '--confirm',
      ]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(
        `Database name "${existing}_copy" is 69 characters long: MariaDB allows at most 64`,
      );
      expect(await myQuery(existing, 'SELECT COUNT(*) AS n FROM keep')).toEqual([{ n: '3' }]);
      const backupAgain = await cli([
        ...myArgs(),
        '--backup-dir',
        backupDir,
        'backup',
        'single',
        `${existing}_copy`,
      ]);
      expect(backupAgain.code, backupAgain.stderr).toBe(2);
    } finally {
      await dropMyDatabase(existing);
      await removeDir(backupDir);
    }
  });
});

describe('restore: another session holds a lock', () => {
  it('restore single --clean (PostgreSQL): a lock on the target held by another session → gives up after --lock-timeout, names that session, nothing changed', async () => {
    const db = uniqueName('pg_locked');
    const backupDir = await tempDir();
    const s = pgServer();
    const holder = new pg.Client({ host: s.host, port: s.port, user: s.user, database: 'postgres' });
    try {
      await createPgDatabase(db);
      await pgExec(db, 'CREATE TABLE keep (id int); INSERT INTO keep SELECT generate_series(1, 5);');
      expectExit(await cli([...pgArgs(), '--backup-dir', backupDir, 'backup', 'single', db]), 0);
      const file = await onlyBackup(backupDir);
      await pgExec(db, 'INSERT INTO keep VALUES (6);');
      await holder.connect();
      // An open transaction that touched the database object: DROP DATABASE waits for it, forever by default.
      const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      await holder.query('BEGIN');
      await holder.query(`COMMENT ON DATABASE ${pgIdent(db)} IS 'held by a test'`);
      const r = await cli(
        [...pgArgs(), 'restore', 'single', file, '--clean', '--lock-timeout', '2', '--confirm'],
        { timeoutMs: 60_000 },
      );
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`Could not drop database "${db}": canceling statement due to lock timeout`);
      expect(r.stderr).toMatch(
        new RegExp(
          `pid ${pid} \\(user postgres from 127\\.0\\.0\\.1\\) holds a lock on it: idle in transaction`,
        ),
      );
      expect(r.stderr).toContain('COMMENT ON DATABASE');
      expect(r.stderr).toMatch(/^hint: Nothing was changed/m);
      await holder.query('ROLLBACK');
      expect(await pgQuery(db, 'SELECT count(*)::int AS n FROM keep')).toEqual([{ n: 6 }]);
    } finally {
      await holder.end().catch(() => undefined);
      await dropPgDatabase(db);
      await removeDir(backupDir);
    }
  });

  it('restore single --clean (MariaDB): a metadata lock held by another session → gives up after --lock-timeout, names that session, nothing changed', async () => {
    const db = uniqueName('my_locked');
    const backupDir = await tempDir();
    const holder = await myConnect();
    try {
      await createMyDatabase(db);
      await myExec(
        db,
        'CREATE TABLE keep (id int PRIMARY KEY) ENGINE=InnoDB; INSERT INTO keep VALUES (1), (2);',
      );
      expectExit(await cli([...myArgs(), '--backup-dir', backupDir, 'backup', 'single', db]), 0);
      const file = await onlyBackup(backupDir);
      // A transaction that read the table holds its metadata lock until it ends: DROP DATABASE waits.
      await holder.query('START TRANSACTION');
      await holder.query(`SELECT * FROM ${myIdent(db)}.keep`);
      const r = await cli(
        [...myArgs(), 'restore', 'single', file, '--clean', '--lock-timeout', '2', '--confirm'],
        { timeoutMs: 60_000 },
      );
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain(`Could not drop database "${db}": Lock wait timeout exceeded`);
      expect(r.stderr).toMatch(
        new RegExp(`session ${holder.threadId} \\(root@127\\.0\\.0\\.1:\\d+\\) has an open transaction`),
      );
      await holder.query('COMMIT');
      expect(await myQuery(db, 'SELECT COUNT(*) AS n FROM keep')).toEqual([{ n: '2' }]);
    } finally {
      await holder.end().catch(() => undefined);
      await dropMyDatabase(db);
      await removeDir(backupDir);
    }
  });
});

describe('restore cluster (MariaDB over TCP): grants the connecting user cannot give (private server)', () => {
  let my: RunningServer<MyServerInfo>;
  const admin = { user: 'dbb_admin', password: 'admin-pw-1' };
  const weak = { user: 'dbb_nogrant', password: 'weak-pw-2' };
  const tcp = (): string[] => ['--db-type', 'mariadb', '--host', '127.0.0.1', '--port', String(my.info.port)];
  const rootSql = async (sql: string): Promise<unknown> => {
    const conn = await mysql.createConnection({
      socketPath: my.info.socket,
      user: 'root',
      multipleStatements: true,
    });
    try {
      return (await conn.query(sql))[0];
    } finally {
      await conn.end();
    }
  };
  let clusterDir: string;
  let name: string;

  beforeAll(async () => {
    my = await startMy();
    // Full rights, but no PROXY: root@localhost's GRANT PROXY ON ''@'%' is not this account's to give.
    await rootSql(
      `CREATE USER ${admin.user}@'%' IDENTIFIED BY '${admin.password}';
       GRANT ALL PRIVILEGES ON *.* TO ${admin.user}@'%' WITH GRANT OPTION;
       CREATE USER ${weak.user}@'%' IDENTIFIED BY '${weak.password}';
       GRANT ALL PRIVILEGES ON *.* TO ${weak.user}@'%';
       CREATE DATABASE shop; USE shop; CREATE TABLE orders (id INT PRIMARY KEY); INSERT INTO orders SELECT seq FROM seq_1_to_50;`,
    );
    clusterDir = await tempDir('dbb-faults-mycl-');
    const b = await cli(
      [
        ...tcp(),
        '--user',
        admin.user,
        '--backup-dir',
        clusterDir,
        'backup',
        'cluster',
        '--include-database',
        'shop',
      ],
      {
        env: { MYSQL_PWD: admin.password },
      },
    );
    expectExit(b, 0);
    name = (await readdir(clusterDir)).find((n) => n.startsWith('cluster_')) ?? '';
  }, 300_000);

  afterAll(async () => {
    await my?.stop();
    if (clusterDir) await removeDir(clusterDir);
  });

  it('restore cluster over TCP: GRANT PROXY the user cannot give → skipped with a warning naming it, everything else restored', async () => {
    await rootSql('DROP DATABASE shop');
    const r = await cli(
      [...tcp(), '--user', admin.user, '--backup-dir', clusterDir, 'restore', 'cluster', name, '--confirm'],
      { env: { MYSQL_PWD: admin.password } },
    );
    expectExit(r, 0);
    expect(r.stderr).toMatch(
      /^warning: skipped, the connecting user "dbb_admin" cannot grant it: GRANT PROXY ON ``@`%` TO `root`@`localhost` WITH GRANT OPTION \(Access denied/m,
    );
    expect(r.stdout).toMatch(/^Cluster restore complete: 1 databases/m);
    expect(await rootSql('SELECT COUNT(*) AS n FROM shop.orders')).toEqual([{ n: 50 }]);
  });

  it('restore cluster over TCP: grants fail for a user without GRANT OPTION → exit 1, says the other statements ran (never "nothing was kept")', async () => {
    await rootSql('DROP DATABASE IF EXISTS shop');
    const r = await cli(
      [...tcp(), '--user', weak.user, '--backup-dir', clusterDir, 'restore', 'cluster', name, '--confirm'],
      { env: { MYSQL_PWD: weak.password } },
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^dbbackup: error: Roles and grants were restored only in part: /m);
    expect(r.stderr).toContain(
      `The other statements ran: users and grants on 127.0.0.1:${my.info.port} were changed; no database was restored yet.`,
    );
    expect(r.stderr).not.toContain('nothing was kept');
    expect(await rootSql("SHOW DATABASES LIKE 'shop'")).toEqual([]);
  });
});

describe('restore from an object store that dies mid-transfer', () => {
  let emu: S3Emulator;
  let uri: string;
  const env = {
    AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_REGION: undefined,
    AWS_PROFILE: undefined,
    AWS_ENDPOINT_URL: undefined,
    DBBACKUP_CLOUD_ENDPOINT: undefined,
  };

  beforeAll(async () => {
    emu = await startS3Emulator();
    await emu.bucket('faults');
    const where = `s3://faults/restore/?endpoint=${encodeURIComponent(emu.endpoint)}`;
    const b = await cli([...args(info), 'backup', 'single', big, '--cloud', where], {
      env,
      timeoutMs: 300_000,
    });
    expectExit(b, 0);
    const key = /Backup complete: s3:\/\/faults\/restore\/(\S+)/.exec(b.stdout)?.[1];
    if (!key) throw new Error(`no backup key in: ${b.stdout}`);
    uri = `s3://faults/restore/${key}?endpoint=${encodeURIComponent(emu.endpoint)}`;
  }, 600_000);

  afterAll(async () => {
    await emu?.stop();
  });

  it("restore single from S3: object store killed while the restore streams → the storage named as the cause (not a bug, not pg_restore's end of file), created database dropped, exit 1", async () => {
    const target = uniqueName('s3cut');
    // --force skips the checksum pass, so the cut lands in the restore itself.
    const run = startCli(
      [...args(info), 'restore', 'single', uri, '--target', target, '--create', '--force', '--confirm'],
      env,
    );
    try {
      await waitUntil(run, 'the restore to be loading data', 120_000, () => restoring(info, target));
      emu.kill();
      const r = await run.exited;
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(
        /^dbbackup: error: Reading the backup from s3:\/\/faults\/restore\/\S+ failed while restoring: /m,
      );
      expect(r.stderr).not.toContain('looks like a bug');
      expect(r.stderr).toContain(`The partially restored database "${target}" was dropped.`);
      expect(await exists(info, target)).toBe(false);
    } finally {
      run.signal('SIGKILL');
      await dropIfExists(info, target);
      emu = await restartEmulator(emu);
    }
  });

  it('restore single from S3: object store killed while the checksum is verified → the storage named as the cause, nothing changed, exit 1', async () => {
    const target = uniqueName('s3cut_sum');
    const run = startCli(
      [...args(info), 'restore', 'single', uri, '--target', target, '--create', '--progress', '--confirm'],
      env,
    );
    try {
      await waitUntil(run, 'the checksum to be verified', 120_000, async () =>
        run.stderr().includes('restore: verifying the checksum: '),
      );
      // Mid-body: the CLI has read a few MiB of the 55 MB object since the step began.
      const base = await bytesRead(run.pid);
      await waitUntil(
        run,
        'the checksum read to be under way',
        60_000,
        async () => (await bytesRead(run.pid)) - base > 4 << 20,
      );
      emu.kill();
      const r = await run.exited;
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(
        /^dbbackup: error: (Reading the backup from|Could not read) s3:\/\/faults\/restore\/\S+/m,
      );
      expect(r.stderr).not.toContain('looks like a bug');
      expect(await exists(info, target)).toBe(false);
    } finally {
      run.signal('SIGKILL');
      await dropIfExists(info, target);
      emu = await restartEmulator(emu);
    }
  });
});

/** Bytes a process has read (Linux /proc/<pid>/io rchar: files and sockets). */
async function bytesRead(pid: number): Promise<number> {
  const io = await readFile(`/proc/${pid}/io`, 'utf8').catch(() => '');
  return Number(/^rchar:\s*(\d+)/m.exec(io)?.[1] ?? 0);
}

/** A new emulator on the same port and storage directory (the old one was killed). */
async function restartEmulator(old: S3Emulator): Promise<S3Emulator> {
  old.kill();
  return startS3Emulator({ dir: old.dir, port: old.port });
}
