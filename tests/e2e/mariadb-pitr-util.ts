import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot, type CliOptions, type CliResult } from '../harness/cli.js';
import { restoredServer, type BinlogServer } from '../harness/binlog-server.js';
import { freePort, isRoot, run, waitFor } from '../harness/proc.js';
import { cli } from './util.js';

/** A small shop: 50k orders, customers with balances; every write below touches both. */
export async function seedShop(s: BinlogServer, db: string): Promise<void> {
  await s.query(`CREATE DATABASE \`${db}\``);
  await s.query(
    `CREATE TABLE \`${db}\`.customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, balance DECIMAL(12,2) NOT NULL);
     CREATE TABLE \`${db}\`.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(10,2) NOT NULL,
       note VARCHAR(64) NOT NULL, created_at DATETIME(6) NOT NULL DEFAULT NOW(6), KEY (customer));
     INSERT INTO \`${db}\`.customers SELECT seq, CONCAT('customer ', seq), 0 FROM \`${db}\`.seq_1_to_1000;
     INSERT INTO \`${db}\`.orders (customer, amount, note) SELECT 1 + seq % 1000, seq % 997, MD5(seq) FROM \`${db}\`.seq_1_to_50000;`,
  );
}

/** One batch of writes: inserts, updates and deletes, each its own transaction. */
export async function writeBatch(s: BinlogServer, db: string, tag: string): Promise<void> {
  await s.query(
    `INSERT INTO \`${db}\`.orders (customer, amount, note) SELECT 1 + seq % 1000, seq % 89, CONCAT(?, seq) FROM \`${db}\`.seq_1_to_500`,
    [tag],
  );
  await s.query(`UPDATE \`${db}\`.customers SET balance = balance + 7 WHERE id % 5 = ?`, [tag.length % 5]);
  await s.query(`DELETE FROM \`${db}\`.orders WHERE id % 211 = ?`, [tag.length % 211]);
}

/**
 * A whole second T with every write so far stamped before it: waits until the server's clock has
 * passed T, so the next write is stamped at or after it.
 */
export async function markSecond(s: BinlogServer): Promise<string> {
  const [row] = await s.query<{ t: string }>(
    "SELECT DATE_FORMAT(NOW() + INTERVAL 1 SECOND, '%Y-%m-%d %H:%i:%s') AS t",
  );
  const t = row?.t ?? '';
  await waitFor('the server clock to pass the mark', 10_000, async () => {
    const [now] = await s.query<{ ok: number }>('SELECT NOW(6) >= ? + INTERVAL 50000 MICROSECOND AS ok', [t]);
    return Number(now?.ok) === 1;
  });
  return `${t}+00`;
}

/** A directory the mysql user can work in, for restored data directories. */
export async function mysqlOwnedDir(prefix = 'dbb-mdb-restore-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  if (isRoot) {
    const r = await run('chown', ['mysql:', dir]);
    if (r.code !== 0) throw new Error(`chown mysql ${dir}: ${r.stderr}`);
  }
  return dir;
}

export interface Restored {
  result: CliResult;
  /** The directory the data directory was made in: nothing else may appear there. */
  parent: string;
  dataDir: string;
  port: number;
  query: ReturnType<typeof restoredServer>['query'];
  stop(): Promise<void>;
}

/** `restore pitr … --confirm --start` into a new data directory on a free port. */
export async function restoreAndStart(args: string[], opts: CliOptions = {}): Promise<Restored> {
  const parent = await mysqlOwnedDir();
  const dataDir = path.join(parent, 'data');
  const port = await freePort();
  const result = await cli(
    ['restore', 'pitr', ...args, '--data-dir', dataDir, '--confirm', '--start', '--port', String(port)],
    { timeoutMs: 240_000, ...opts },
  );
  const server = restoredServer(dataDir);
  return {
    result,
    parent,
    dataDir,
    port,
    query: server.query,
    async stop() {
      await server.stop();
      await rm(parent, { recursive: true, force: true });
    },
  };
}

/** `binlog stream` running in the background, as a service would. */
export interface Streamer {
  proc: ChildProcess;
  output(): string;
  /** SIGTERM, and the exit code once it ended. */
  stop(): Promise<number | null>;
  kill(): Promise<void>;
}

export function startStreamer(s: BinlogServer, archive: string, extra: string[] = []): Streamer {
  const proc = spawn(
    process.execPath,
    [
      path.join(repoRoot, 'bin/dbbackup.js'),
      ...s.args(),
      'binlog',
      'stream',
      '--archive',
      archive,
      '--partial-interval',
      '1',
      ...extra,
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((r) => proc.on('close', (code) => r(code)));
  return {
    proc,
    output: () => out,
    async stop() {
      proc.kill('SIGTERM');
      return exited;
    },
    async kill() {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** The binlog objects in a directory archive: closed files and prefixes by name. */
export async function archivedBinlogs(archive: string): Promise<{ closed: string[]; partial: string[] }> {
  const names = await readdir(path.join(archive, 'binlog')).catch(() => [] as string[]);
  const data = names.filter((n) => !n.endsWith('.json'));
  const file = (n: string) => /^(.*?\.\d{6,})/.exec(n)?.[1] ?? n;
  return {
    closed: data
      .filter((n) => !n.includes('.partial-'))
      .map(file)
      .sort(),
    partial: data
      .filter((n) => n.includes('.partial-'))
      .map(file)
      .sort(),
  };
}

/** Closes the file being written (FLUSH BINARY LOGS) and waits until the archive holds it closed. */
export async function flushAndWaitArchived(s: BinlogServer, archive: string): Promise<string> {
  const logs = await s.query<{ Log_name: string }>('SHOW BINARY LOGS');
  const open = logs.at(-1)?.Log_name ?? '';
  await s.query('FLUSH BINARY LOGS');
  await waitFor(`${open} to be archived closed`, 60_000, async () =>
    (await archivedBinlogs(archive)).closed.includes(open),
  );
  return open;
}

export async function cliOk(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const r = await cli(args, { timeoutMs: 240_000, ...opts });
  if (r.code !== 0)
    throw new Error(`dbbackup ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}
