/**
 * Throwaway MariaDB servers that write binary logs, for the MariaDB PITR tests (the shared harness
 * server runs with --skip-log-bin). One per test file: restartable on the same port and data
 * directory, so a binlog streamer sees what a real server restart looks like. Root over the socket
 * and TCP without a password; time zone UTC.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { findMyBinaries, installDataDir, MY_PREFIX, spawnServer, stopMyDir } from './my-server.js';
import { freePort, isAlive, isRoot, run, tail, waitFor } from './proc.js';

export interface BinlogServer {
  port: number;
  dir: string;
  dataDir: string;
  socket: string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** A clean shutdown and a start on the same port and data directory. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** Global options that point the CLI at this server. */
  args(): string[];
}

function serverArgs(dir: string, port: number, serverId: number): string[] {
  return [
    '--no-defaults',
    `--datadir=${path.join(dir, 'data')}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--socket=${path.join(dir, 'mysqld.sock')}`,
    `--pid-file=${path.join(dir, 'mysqld.pid')}`,
    `--log-error=${path.join(dir, 'error.log')}`,
    ...(isRoot ? ['--user=mysql'] : []),
    '--log-bin=mysql-bin',
    `--server-id=${serverId}`,
    '--binlog-format=ROW',
    '--default-time-zone=+00:00',
    '--skip-name-resolve',
    '--innodb-buffer-pool-size=64M',
    '--innodb-log-file-size=32M',
    '--innodb-flush-log-at-trx-commit=2',
    '--performance-schema=OFF',
    '--max-connections=50',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
  ];
}

/** `extra`: more server options (a test of the MySQL path starts one that reports a MySQL version). */
export async function startBinlogServer(serverId = 1, extra: string[] = []): Promise<BinlogServer> {
  const bins = await findMyBinaries();
  // The shared harness's prefix: a run that dies leaves nothing the next run does not reap.
  const dir = await mkdtemp(path.join(tmpdir(), `${MY_PREFIX}binlog-`));
  await writeFile(path.join(dir, 'owner.pid'), String(process.pid));
  if (isRoot) {
    const r = await run('chown', ['mysql:', dir]);
    if (r.code !== 0) throw new Error(`chown mysql ${dir}: ${r.stderr}`);
  }
  await installDataDir(bins.installDb, path.join(dir, 'data'));
  const socket = path.join(dir, 'mysqld.sock');
  const errorLog = path.join(dir, 'error.log');
  let port = 0;
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    const proc = await spawnServer(
      bins.server,
      [...serverArgs(dir, port, serverId), ...extra],
      path.join(dir, 'stdout.log'),
    );
    child = proc;
    await waitFor('the binlog server to accept connections', 60_000, async () => {
      if (proc.exitCode !== null) throw new Error(`mariadbd exited: ${await tail(errorLog)}`);
      const c = await mysql.createConnection({ socketPath: socket, user: 'root', connectTimeout: 2000 });
      await c.end();
      return true;
    });
  };
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await start();
      break;
    } catch (err) {
      if (attempt >= 3 || !/Bind on TCP\/IP port|already in use/i.test(await tail(errorLog))) {
        await stopMyDir(dir, child);
        throw err;
      }
    }
  }
  const query = socketQuery(socket);
  await query(
    "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
  );
  const stopServer = async (): Promise<void> => {
    const pid = Number((await readFile(path.join(dir, 'mysqld.pid'), 'utf8').catch(() => '0')).trim());
    if (!pid) return;
    process.kill(pid, 'SIGTERM');
    await waitFor('mariadbd to shut down', 60_000, async () => !isAlive(pid) || child?.exitCode !== null);
  };
  return {
    port,
    dir,
    dataDir: path.join(dir, 'data'),
    socket,
    query,
    async restart() {
      await stopServer();
      await start();
    },
    async stop() {
      await stopMyDir(dir, child);
    },
    args: () => ['--db-type', 'mariadb', '--host', '127.0.0.1', '--port', String(port), '--user', 'root'],
  };
}

/** Queries as root over a server's socket, one connection each (multi-statements, big numbers as strings). */
function socketQuery(socket: string): BinlogServer['query'] {
  return async <T>(sql: string, params?: unknown[]): Promise<T[]> => {
    const c = await mysql.createConnection({
      socketPath: socket,
      user: 'root',
      multipleStatements: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
    });
    try {
      const [rows] = await c.query(sql, params);
      return rows as T[];
    } finally {
      await c.end();
    }
  };
}

/** Every table of `db`: its rows and CHECKSUM TABLE, to compare two servers. */
export async function tableStates(
  query: BinlogServer['query'],
  db: string,
): Promise<Record<string, { rows: number; checksum: string }>> {
  const tables = await query<{ t: string }>(
    "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY 1",
    [db],
  );
  const out: Record<string, { rows: number; checksum: string }> = {};
  for (const { t } of tables) {
    const q = `\`${db}\`.\`${t}\``;
    const [n] = await query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${q}`);
    const [c] = await query<{ Checksum: string | null }>(`CHECKSUM TABLE ${q} EXTENDED`);
    out[t] = { rows: Number(n?.n), checksum: String(c?.Checksum) };
  }
  return out;
}

/** A server restored by `restore pitr --start`: queried over its socket, stopped by its pid file. */
export function restoredServer(dataDir: string): Pick<BinlogServer, 'query' | 'stop'> {
  const socket = path.join(dataDir, 'mysqld.sock');
  return {
    query: socketQuery(socket),
    async stop() {
      const pid = Number((await readFile(path.join(dataDir, 'mysqld.pid'), 'utf8').catch(() => '0')).trim());
      if (!pid || !isAlive(pid)) return;
      process.kill(pid, 'SIGTERM');
      await waitFor('the restored server to shut down', 60_000, async () => !isAlive(pid));
    },
  };
}
