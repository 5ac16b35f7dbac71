/**
 * Throwaway PostgreSQL servers for the PITR tests, one per test file (each gets its own
 * archive_command): 1 MiB WAL segments (initdb --wal-segsize=1), so a few thousand rows cross
 * several segments; track_commit_timestamp=on, so the rows committed by a target time are known
 * exactly. Servers run as the `postgres` OS user, as in production: archive_command and
 * restore_command then run as that user too.
 */
import { access, appendFile, chmod, chown, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { repoRoot } from './cli.js';
import { asUser, cmdlineHas, freePort, isAlive, isRoot, run, tail, waitFor } from './proc.js';

export const PITR_PREFIX = 'dbbackup-test-pitr-';
const BIN = '/usr/lib/postgresql/15/bin';

export interface PitrServer {
  port: number;
  /** Temp directory holding data/, the log, the socket; owned by postgres. */
  dir: string;
  dataDir: string;
  log: string;
  query<T extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** pg_ctl restart (as postgres), waiting until connections are accepted. */
  restart(): Promise<void>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Global options that point the CLI at this server. */
  args(): string[];
}

async function pgTool(tool: string, args: string[], cwd: string, bin = BIN) {
  const [file, argv] = await asUser('postgres', path.join(bin, tool), args);
  return run(file, argv, { cwd, timeoutMs: 120_000 });
}

const madeDirs: string[] = [];

/** Removes every directory postgresDir made in this test file (call it in afterAll, after stopping servers). */
export async function removePostgresDirs(): Promise<void> {
  for (const dir of madeDirs.splice(0)) await rm(dir, { recursive: true, force: true });
}

/** A directory the postgres user owns (mode 0700), under the system temp dir; see removePostgresDirs. */
export async function postgresDir(prefix = 'dbb-pitr-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  madeDirs.push(dir);
  if (isRoot) {
    const r = await run('chown', ['postgres:', dir]);
    if (r.code !== 0) throw new Error(`chown postgres ${dir}: ${r.stderr}`);
  }
  return dir;
}

/**
 * archive_command runs as postgres: Node, the repository (bin/, dist/) must be reachable by it.
 * In CI the checkout may sit under a 0700 home directory; the test opens the way (o+x on the
 * directories above, o+r on what is read) rather than weakening what the product checks.
 */
export async function letPostgresRunCli(): Promise<void> {
  if (!isRoot) return;
  const targets = [
    process.execPath,
    path.join(repoRoot, 'bin', 'dbbackup.js'),
    path.join(repoRoot, 'dist'),
    path.join(repoRoot, 'package.json'),
  ];
  for (const t of targets) {
    let dir = path.dirname(t);
    while (dir !== path.dirname(dir)) {
      const s = await stat(dir);
      if (!(s.mode & 0o001)) await chmod(dir, s.mode | 0o001);
      dir = path.dirname(dir);
    }
  }
  const r = await run('runuser', [
    '-u',
    'postgres',
    '--',
    process.execPath,
    path.join(repoRoot, 'bin', 'dbbackup.js'),
    'version',
  ]);
  if (r.code !== 0) throw new Error(`postgres cannot run the CLI: ${r.stderr}`);
}

const BASE_CONF = [
  "listen_addresses = '127.0.0.1'",
  'fsync = off',
  'full_page_writes = on',
  "timezone = 'UTC'",
  "log_timezone = 'UTC'",
  'track_commit_timestamp = on',
  'wal_level = replica',
  'max_wal_senders = 4',
  'shared_buffers = 16MB',
  'max_wal_size = 64MB',
  'checkpoint_timeout = 30s',
  'max_connections = 30',
];

/** `bin`: another server's programs (PostgreSQL 12, 14, 17 from npm, tests/harness/embedded-pg.ts). */
export async function startPitrServer(
  extraConf: string[] = [],
  initArgs: string[] = [],
  bin = BIN,
): Promise<PitrServer> {
  await letPostgresRunCli();
  const dir = await postgresDir(PITR_PREFIX);
  const dataDir = path.join(dir, 'data');
  const log = path.join(dir, 'postgres.log');
  const init = await pgTool(
    'initdb',
    [
      '-D',
      dataDir,
      '-A',
      'trust',
      '-U',
      'postgres',
      '--no-sync',
      '--wal-segsize=1',
      '--locale=C',
      ...initArgs,
    ],
    dir,
    bin,
  );
  if (init.code !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  await appendFile(
    path.join(dataDir, 'postgresql.conf'),
    `\n${[...BASE_CONF, `unix_socket_directories = '${dir}'`, ...extraConf].join('\n')}\n`,
  );
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    await appendFile(path.join(dataDir, 'postgresql.conf'), `port = ${port}\n`);
    const r = await pgTool('pg_ctl', ['-D', dataDir, '-l', log, '-w', '-t', '60', 'start'], dir, bin);
    if (r.code === 0) break;
    if (attempt >= 3 || !/could not bind|already in use/i.test(await tail(log))) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`pg_ctl start failed: ${r.stderr}\n${await tail(log)}`);
    }
  }
  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    await c.connect();
    return c;
  };
  const server: PitrServer = {
    port,
    dir,
    dataDir,
    log,
    async query<T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]> {
      const c = await connect();
      try {
        return (await c.query<T>(sql, params)).rows;
      } finally {
        await c.end();
      }
    },
    async restart() {
      const r = await pgTool(
        'pg_ctl',
        ['-D', dataDir, '-l', log, '-w', '-t', '60', '-m', 'fast', 'restart'],
        dir,
        bin,
      );
      if (r.code !== 0) throw new Error(`pg_ctl restart failed: ${r.stderr}\n${await tail(log)}`);
      await waitFor(
        'server after restart',
        30_000,
        async () => (await server.query('SELECT 1')).length === 1,
      );
    },
    async stop(mode = 'immediate') {
      await stopDataDir(dataDir, dir, mode);
      await rm(dir, { recursive: true, force: true });
    },
    args: () => ['--host', '127.0.0.1', '--port', String(port), '--user', 'postgres'],
  };
  return server;
}

/** Stops whatever server runs in `dataDir` (a restored copy too); no error when none does. */
export async function stopDataDir(
  dataDir: string,
  cwd: string,
  mode: 'fast' | 'immediate' = 'immediate',
): Promise<void> {
  const text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0 || !(await cmdlineHas(pid, dataDir))) return;
  await pgTool('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '30', 'stop'], cwd);
  await waitFor('postmaster to exit', 15_000, async () => !isAlive(pid)).catch(() =>
    process.kill(pid, 'SIGKILL'),
  );
}

/** A new, empty directory for an archive, owned by postgres. */
export async function archiveDir(): Promise<string> {
  const parent = await postgresDir('dbb-archive-');
  const dir = path.join(parent, 'archive');
  await mkdir(dir, { mode: 0o700 });
  if (isRoot) await chown(dir, (await stat(parent)).uid, (await stat(parent)).gid);
  return dir;
}

export async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** The psql of the tests' PostgreSQL, for arguments that need it. */
export const PG_BIN = BIN;
