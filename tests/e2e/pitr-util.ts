import { chown, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { CliOptions, CliResult } from '../harness/cli.js';
import { postgresDir, stopDataDir, type PitrServer } from '../harness/pitr-server.js';
import { freePort, isRoot, run, waitFor } from '../harness/proc.js';
import { cli, expectExit } from './util.js';

/** One table, written in batches by one client: commit order is time order. */
export async function createTable(s: PitrServer): Promise<void> {
  await s.query('CREATE TABLE t (id bigserial PRIMARY KEY, batch text NOT NULL, v text NOT NULL)');
}

/** Inserts `rows` rows in `commits` transactions, each its own commit (and commit timestamp). */
export async function writeBatch(s: PitrServer, batch: string, commits = 3, rows = 400): Promise<void> {
  for (let i = 0; i < commits; i++)
    await s.query(
      `INSERT INTO t (batch, v) SELECT $1, repeat(md5(g::text), 4) FROM generate_series(1, $2) g`,
      [batch, rows],
    );
}

/** A moment between two commits: the server's clock, with commits strictly before and after it. */
export async function markTime(s: PitrServer): Promise<string> {
  const [row] = await s.query<{ t: string }>(
    "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS t",
  );
  await new Promise((r) => setTimeout(r, 20));
  return row?.t ?? '';
}

/** Rows committed at or before `time`, from the commit timestamps (track_commit_timestamp). */
export async function rowsCommittedBy(s: PitrServer, time: string): Promise<number> {
  const [row] = await s.query<{ n: string }>(
    'SELECT count(*) AS n FROM t WHERE pg_xact_commit_timestamp(xmin) <= $1::timestamptz',
    [time],
  );
  return Number(row?.n);
}

export async function rowCount(s: PitrServer): Promise<number> {
  const [row] = await s.query<{ n: string }>('SELECT count(*) AS n FROM t');
  return Number(row?.n);
}

/** Ends the current segment and waits until the archiver has pushed it. */
export async function switchAndArchive(s: PitrServer): Promise<string> {
  const [row] = await s.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f');
  const file = row?.f ?? '';
  await waitFor(`${file} to be archived`, 60_000, async () => {
    const [a] = await s.query<{ w: string | null }>('SELECT last_archived_wal AS w FROM pg_stat_archiver');
    return (a?.w ?? '') >= file;
  });
  return file;
}

export interface Restored {
  result: CliResult;
  dataDir: string;
  port: number;
  rows(): Promise<number>;
  query<T extends pg.QueryResultRow>(sql: string): Promise<T[]>;
  stop(): Promise<void>;
}

/** `restore pitr … --confirm --start` into a new directory on a free port. */
export async function restoreAndStart(args: string[], opts: CliOptions = {}): Promise<Restored> {
  const parent = await postgresDir('dbb-restored-');
  const dataDir = path.join(parent, 'data');
  const port = await freePort();
  const result = await cli(
    [
      'restore',
      'pitr',
      ...args,
      '--data-dir',
      dataDir,
      '--confirm',
      '--start',
      '--port',
      String(port),
      '--timeout',
      '120',
    ],
    {
      timeoutMs: 180_000,
      ...opts,
    },
  );
  const query = async <T extends pg.QueryResultRow>(sql: string): Promise<T[]> => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      return (await c.query<T>(sql)).rows;
    } finally {
      await c.end();
    }
  };
  return {
    result,
    dataDir,
    port,
    query,
    rows: async () => Number((await query<{ n: string }>('SELECT count(*) AS n FROM t'))[0]?.n),
    stop: () => stopDataDir(dataDir, parent),
  };
}

/** Runs the CLI and fails with its output unless it exits `code`. */
export async function cliOk(args: string[], code = 0, opts: CliOptions = {}): Promise<CliResult> {
  const r = await cli(args, { timeoutMs: 180_000, ...opts });
  expectExit(r, code);
  return r;
}

/** A secret file only the server's user can read (0600, owned by postgres when we are root). */
export async function postgresSecret(dir: string, name: string, content: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, content, { mode: 0o600 });
  if (isRoot) {
    const u = await run('id', ['-u', 'postgres']);
    const g = await run('id', ['-g', 'postgres']);
    await chown(file, Number(u.stdout), Number(g.stdout));
  }
  return file;
}
