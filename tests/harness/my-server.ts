import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import type { MyServerInfo } from './context.js';
import { INSTALL_HINT, makeTestTls, type RunningServer, type TlsFiles } from './pg-server.js';
import { cmdlineHas, freePort, isAlive, isRoot, run, tail, waitFor } from './proc.js';

export const MY_PREFIX = 'dbbackup-test-my-';

async function findProgram(names: string[], dirs: string[]): Promise<string | null> {
  const pathDirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const name of names) {
    for (const dir of [...dirs, ...pathDirs]) {
      const file = path.join(dir, name);
      if (
        await access(file).then(
          () => true,
          () => false,
        )
      )
        return file;
    }
  }
  return null;
}

/**
 * mariadb-install-db into `datadir`. Its bootstrap server has been seen to crash (signal 11 in
 * ha_maria::drop_table, MariaDB 10.11.19, once in a CI run on a loaded machine): a crash is retried
 * once into an emptied directory; any other failure, or a second crash, fails loudly. The bootstrap
 * keeps its temporary tables in TMPDIR, the directory above `datadir` (the server's own --tmpdir):
 * a server removes every `#sql*` file of its tmpdir when it starts, so two bootstraps sharing /tmp
 * destroyed each other's ("Could not remove temporary table '/tmp/#sql-temptable-…'", then
 * "Unknown table 'mysql.tmp_user_sys'", seen once with test files starting side by side).
 */
export async function installDataDir(installDb: string, datadir: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const install = await run(
      installDb,
      [
        '--no-defaults',
        `--datadir=${datadir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        ...(isRoot ? ['--user=mysql'] : []),
      ],
      { env: { ...process.env, TMPDIR: path.dirname(datadir) } },
    );
    if (install.code === 0) return;
    const crashed = /got signal \d+/.test(`${install.stdout}\n${install.stderr}`);
    if (!crashed || attempt >= 2)
      throw new Error(`${installDb} failed:\n${install.stdout}\n${install.stderr}`);
    await rm(datadir, { recursive: true, force: true });
  }
}

export async function findMyBinaries(): Promise<{ server: string; installDb: string }> {
  const server = await findProgram(['mariadbd', 'mysqld'], ['/usr/sbin', '/usr/bin']);
  const installDb = await findProgram(
    ['mariadb-install-db', 'mysql_install_db'],
    ['/usr/bin', '/usr/scripts'],
  );
  if (!server || !installDb) {
    throw new Error(`MariaDB server binaries (mariadbd, mariadb-install-db) not found; ${INSTALL_HINT}`);
  }
  return { server, installDb };
}

function serverArgs(dir: string, port: number, tls: TlsFiles): string[] {
  return [
    '--no-defaults',
    `--datadir=${path.join(dir, 'data')}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    `--socket=${path.join(dir, 'mysqld.sock')}`,
    `--pid-file=${path.join(dir, 'mysqld.pid')}`,
    `--log-error=${path.join(dir, 'error.log')}`,
    // Its own temporary files stay in its own directory: a MariaDB server deletes the #sql files it finds in
    // its tmpdir when it starts, so servers sharing /tmp destroy each other's temporary tables.
    `--tmpdir=${dir}`,
    // As root, mariadbd drops to `mysql`, which therefore owns the whole temp dir.
    ...(isRoot ? ['--user=mysql'] : []),
    '--skip-log-bin',
    '--skip-name-resolve',
    '--event-scheduler=ON',
    '--innodb-buffer-pool-size=128M',
    '--innodb-flush-log-at-trx-commit=0',
    // The data is thrown away: skip the work a clean shutdown and a warm restart would need.
    '--innodb-fast-shutdown=3',
    '--innodb-buffer-pool-dump-at-shutdown=OFF',
    '--innodb-buffer-pool-load-at-startup=OFF',
    '--performance-schema=OFF',
    '--max-allowed-packet=256M',
    '--max-connections=200',
    // Debian's packaged config uses utf8mb4; --no-defaults would otherwise mean latin1.
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_general_ci',
    // SSL available to every client; only accounts created with REQUIRE SSL need it.
    `--ssl-ca=${tls.caFile}`,
    `--ssl-cert=${tls.certFile}`,
    `--ssl-key=${tls.keyFile}`,
  ];
}

/** Own process group (detached) so a kill reaches every thread/child; output goes to a file. */
export async function spawnServer(file: string, args: string[], logFile: string): Promise<ChildProcess> {
  const log = await open(logFile, 'a');
  try {
    const child = spawn(file, args, { detached: true, stdio: ['ignore', log.fd, log.fd] });
    child.on('error', () => undefined); // surfaced through exitCode/the log instead
    child.unref();
    return child;
  } finally {
    await log.close();
  }
}

const exited = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null;

async function ping(opts: mysql.ConnectionOptions): Promise<void> {
  const conn = await mysql.createConnection({ user: 'root', connectTimeout: 2_000, ...opts });
  await conn.end();
}

export async function startMy(): Promise<RunningServer<MyServerInfo>> {
  const bins = await findMyBinaries();
  const dir = await mkdtemp(path.join(tmpdir(), MY_PREFIX));
  await writeFile(path.join(dir, 'owner.pid'), String(process.pid));
  const errorLog = path.join(dir, 'error.log');
  const socket = path.join(dir, 'mysqld.sock');
  let child: ChildProcess | null = null;
  try {
    if (isRoot) {
      const chown = await run('chown', ['mysql:', dir]);
      if (chown.code !== 0) throw new Error(`chown mysql ${dir} failed (no mysql user?): ${chown.stderr}`);
    }
    await installDataDir(bins.installDb, path.join(dir, 'data'));
    const tls = await makeTestTls(dir, 'mysql');
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const proc = await spawnServer(bins.server, serverArgs(dir, port, tls), path.join(dir, 'stdout.log'));
      child = proc;
      // Until the socket answers or the process dies (e.g. port taken in the meantime).
      await waitFor('MariaDB to accept socket connections', 60_000, async () => {
        if (exited(proc)) return true;
        await ping({ socketPath: socket });
        return true;
      });
      if (!exited(proc)) {
        const info = { host: '127.0.0.1', port, user: 'root', socket, caFile: tls.caFile };
        await allowRootOverTcp(info);
        return handle(info, dir, proc);
      }
      if (attempt < 3 && /Bind on TCP\/IP port|already in use/i.test(await tail(errorLog))) continue;
      throw new Error(`mariadbd exited during startup (${proc.exitCode ?? proc.signalCode})`);
    }
  } catch (err) {
    const logTail = await tail(errorLog);
    await stopMyDir(dir, child);
    throw new Error(`${(err as Error).message}\n--- ${errorLog} ---\n${logTail}`, { cause: err });
  }
}

/** mariadb-install-db usually creates root@127.0.0.1 already; make sure, check SSL is on, then prove TCP works. */
async function allowRootOverTcp(info: MyServerInfo): Promise<void> {
  const conn = await mysql.createConnection({ socketPath: info.socket, user: 'root' });
  try {
    for (const host of ['127.0.0.1', '%']) {
      await conn.query(`CREATE USER IF NOT EXISTS 'root'@'${host}'`);
      await conn.query(`GRANT ALL PRIVILEGES ON *.* TO 'root'@'${host}' WITH GRANT OPTION`);
    }
    // mariadbd starts without SSL (only logging why) when it cannot load the certificate or key.
    const [rows] = await conn.query(`SHOW GLOBAL VARIABLES LIKE 'have_ssl'`);
    const haveSsl = (rows as Array<{ Value?: string }>)[0]?.Value;
    if (haveSsl !== 'YES')
      throw new Error(`MariaDB started without SSL (have_ssl = ${haveSsl ?? 'unknown'})`);
  } finally {
    await conn.end();
  }
  await ping({ host: info.host, port: info.port });
}

/** SIGTERM lets mariadbd shut down (fast on a small instance); SIGKILL the group if it hangs. */
export async function stopMyDir(dir: string, child: ChildProcess | null): Promise<void> {
  let pid = child?.pid;
  if (!child) {
    // A leftover from a crashed run: trust mysqld.pid only if that process is this server.
    const fromFile = Number.parseInt(
      await readFile(path.join(dir, 'mysqld.pid'), 'utf8').catch(() => ''),
      10,
    );
    if (Number.isInteger(fromFile) && (await cmdlineHas(fromFile, dir))) pid = fromFile;
  }
  // Our own child is reaped by Node, so ask it rather than kill(0), which also succeeds on zombies.
  const isGone = () => (child ? exited(child) : !isAlive(pid ?? 0));
  if (pid && !isGone()) {
    killGroup(pid, 'SIGTERM');
    const gone = await waitFor('mariadbd to exit', 30_000, async () => isGone()).then(
      () => true,
      () => false,
    );
    if (!gone) killGroup(pid, 'SIGKILL');
  }
  await rm(dir, { recursive: true, force: true });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function handle(info: MyServerInfo, dir: string, child: ChildProcess): RunningServer<MyServerInfo> {
  let stopped = false;
  return {
    info,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopMyDir(dir, child);
    },
    killSync() {
      if (!stopped && child.pid && !exited(child)) killGroup(child.pid, 'SIGKILL');
    },
  };
}
