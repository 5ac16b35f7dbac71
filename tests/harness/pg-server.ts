import { randomBytes } from 'node:crypto';
import {
  access,
  appendFile,
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { PgServerInfo } from './context.js';
import { asUser, cmdlineHas, freePort, isAlive, isRoot, run, tail, waitFor } from './proc.js';

export const INSTALL_HINT = 'apt-get install postgresql mariadb-server';
export const PG_PREFIX = 'dbbackup-test-pg-';

/**
 * The one role the throwaway server authenticates by password (scram-sha-256, local socket and
 * TCP); every other role, the `postgres` superuser included, keeps trust auth. The role itself is
 * not created here: a test creates it with the password it wants (tests/e2e/pg-password.test.ts).
 */
export const PASSWORD_ROLE = 'dbb_pw';

/** pg_hba.conf lines for PASSWORD_ROLE; prepended, as the first matching line wins. */
const PASSWORD_HBA = [
  `local all ${PASSWORD_ROLE} scram-sha-256`,
  `host all ${PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256`,
  `host all ${PASSWORD_ROLE} ::1/128 scram-sha-256`,
];

/**
 * The one role that may connect only over SSL (TCP 127.0.0.1 with SSL: trust; anything else:
 * reject). Like PASSWORD_ROLE it is not created here: tests/e2e/ssl.test.ts creates it.
 */
export const SSL_ROLE = 'dbb_ssl';

/** pg_hba.conf lines for SSL_ROLE; prepended with PASSWORD_HBA (the first matching line wins). */
const SSL_HBA = [
  `hostssl all ${SSL_ROLE} 127.0.0.1/32 trust`,
  `hostnossl all ${SSL_ROLE} 127.0.0.1/32 reject`,
  `local all ${SSL_ROLE} reject`,
  `host all ${SSL_ROLE} ::1/128 reject`,
];

/** A throwaway server's TLS material (see makeTestTls). */
export interface TlsFiles {
  /** The test CA's certificate: what a client needs to verify the server. */
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * Generates, with openssl, a small CA and a server certificate it signs for CN 127.0.0.1 with
 * subjectAltName IP:127.0.0.1 and DNS:localhost, into `<dir>/tls`. As root, the files are given to
 * `owner` (the server's OS user); the key is 0600, the certificates 0644. The CA key is removed
 * once the server certificate is signed: nothing else is ever signed by it.
 */
export async function makeTestTls(dir: string, owner: string): Promise<TlsFiles> {
  const tls = path.join(dir, 'tls');
  await mkdir(tls, { mode: 0o755 });
  const file = (name: string) => path.join(tls, name);
  const openssl = async (args: string[]) => {
    const r = await run('openssl', args, { cwd: tls, timeoutMs: 60_000 }).catch((err: Error) => ({
      code: -1,
      stdout: '',
      stderr: err.message,
    }));
    if (r.code !== 0) throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${r.stderr.trim()}`);
  };
  // Explicit configs: the system's openssl.cnf must not add or duplicate extensions.
  await writeFile(
    file('ca.cnf'),
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      'x509_extensions = v3_ca',
      '[dn]',
      'CN = dbbackup test CA',
      '[v3_ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  await writeFile(
    file('server.cnf'),
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      'CN = 127.0.0.1',
      '[server]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature, keyEncipherment',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = IP:127.0.0.1, DNS:localhost',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'),
  );
  const rsa = ['-newkey', 'rsa:2048', '-nodes', '-sha256'];
  await openssl([
    'req',
    '-x509',
    ...rsa,
    '-config',
    file('ca.cnf'),
    '-days',
    '30',
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
  ]);
  await openssl([
    'req',
    '-new',
    ...rsa,
    '-config',
    file('server.cnf'),
    '-keyout',
    file('server.key'),
    '-out',
    file('server.csr'),
  ]);
  await openssl([
    'x509',
    '-req',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.crt'),
    '-CAkey',
    file('ca.key'),
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-days',
    '30',
    '-sha256',
    '-extfile',
    file('server.cnf'),
    '-extensions',
    'server',
    '-out',
    file('server.crt'),
  ]);
  for (const name of ['ca.key', 'server.csr', 'ca.cnf', 'server.cnf']) await rm(file(name), { force: true });
  await chmod(file('server.key'), 0o600);
  await chmod(file('server.crt'), 0o644);
  await chmod(file('ca.crt'), 0o644);
  if (isRoot) {
    const chown = await run('chown', ['-R', `${owner}:`, tls]);
    if (chown.code !== 0) throw new Error(`chown ${owner} ${tls} failed: ${chown.stderr}`);
  }
  return { caFile: file('ca.crt'), certFile: file('server.crt'), keyFile: file('server.key') };
}

export interface RunningServer<I> {
  info: I;
  dir: string;
  /** Graceful-enough stop plus temp dir removal; safe to call twice. */
  stop(): Promise<void>;
  /** Last resort from a process 'exit' handler, which cannot await. */
  killSync(): void;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** Newest /usr/lib/postgresql/<major>/bin (Debian layout), else whatever `pg_config --bindir` says. */
async function findPgBinDir(): Promise<string> {
  const root = '/usr/lib/postgresql';
  const majors = (await readdir(root).catch(() => [] as string[]))
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
  for (const major of majors) {
    const dir = path.join(root, major, 'bin');
    if (await exists(path.join(dir, 'initdb'))) return dir;
  }
  const cfg = await run('pg_config', ['--bindir']).catch(() => null);
  const dir = cfg?.code === 0 ? cfg.stdout.trim() : '';
  if (dir && (await exists(path.join(dir, 'initdb')))) return dir;
  throw new Error(`PostgreSQL server binaries (initdb, pg_ctl) not found; ${INSTALL_HINT}`);
}

async function pgTool(binDir: string, tool: string, args: string[], cwd: string) {
  const [file, argv] = await asUser('postgres', path.join(binDir, tool), args);
  return run(file, argv, { cwd, timeoutMs: 120_000 });
}

/** Postmaster PID from the first line of postmaster.pid, or null when not running. */
export async function postmasterPid(dataDir: string): Promise<number | null> {
  const text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

export async function startPg(): Promise<RunningServer<PgServerInfo>> {
  const binDir = await findPgBinDir();
  const dir = await mkdtemp(path.join(tmpdir(), PG_PREFIX));
  await writeFile(path.join(dir, 'owner.pid'), String(process.pid));
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'postgres.log');
  try {
    if (isRoot) {
      const chown = await run('chown', ['postgres:', dir]);
      if (chown.code !== 0)
        throw new Error(`chown postgres ${dir} failed (no postgres user?): ${chown.stderr}`);
    }
    const base = ['-D', data, '-A', 'trust', '-U', 'postgres', '--encoding=UTF8', '--no-sync'];
    let init = await pgTool(binDir, 'initdb', [...base, '--locale=C.UTF-8'], dir);
    if (init.code !== 0) {
      await rm(data, { recursive: true, force: true });
      init = await pgTool(binDir, 'initdb', [...base, '--locale=C'], dir);
    }
    if (init.code !== 0) throw new Error(`initdb failed:\n${init.stdout}\n${init.stderr}`);
    const hba = path.join(data, 'pg_hba.conf');
    // Written in place (not replaced), so the file keeps initdb's owner and mode.
    await writeFile(hba, `${[...PASSWORD_HBA, ...SSL_HBA].join('\n')}\n${await readFile(hba, 'utf8')}`);
    // SSL is on for everyone (libpq's default sslmode=prefer then uses it); only SSL_ROLE requires it.
    const tls = await makeTestTls(dir, 'postgres');
    // Settings go into postgresql.conf rather than pg_ctl -o, which pg_ctl passes through a shell.
    const conf = [
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${dir}'`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 100',
      "timezone = 'UTC'",
      "log_timezone = 'UTC'",
      "password_encryption = 'scram-sha-256'",
      'ssl = on',
      `ssl_cert_file = '${tls.certFile}'`,
      `ssl_key_file = '${tls.keyFile}'`,
    ];
    await appendFile(path.join(data, 'postgresql.conf'), `\n${conf.join('\n')}\n`);
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      // A later `port` line wins, so retries just append another one.
      await appendFile(path.join(data, 'postgresql.conf'), `port = ${port}\n`);
      const start = await pgTool(binDir, 'pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', 'start'], dir);
      if (start.code === 0) {
        const info = {
          host: '127.0.0.1',
          port,
          user: 'postgres',
          socketDir: dir,
          binDir,
          caFile: tls.caFile,
        };
        await waitFor('PostgreSQL to accept connections', 30_000, () => pgPing(info));
        return handle(info, dir, data);
      }
      const logTail = await tail(log);
      if (attempt < 3 && /could not bind|already in use/i.test(logTail)) continue;
      throw new Error(`pg_ctl start failed: ${start.stderr.trim()}`);
    }
  } catch (err) {
    const logTail = await tail(log);
    await stopPgDir(binDir, dir);
    throw new Error(`${(err as Error).message}\n--- ${log} ---\n${logTail}`, { cause: err });
  }
}

async function pgPing(info: PgServerInfo): Promise<boolean> {
  const client = new pg.Client({ host: info.host, port: info.port, user: info.user, database: 'postgres' });
  await client.connect();
  try {
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end();
  }
}

/** Immediate shutdown (the data is thrown away anyway), SIGKILL as a fallback, then rm -rf. */
export async function stopPgDir(binDir: string | null, dir: string): Promise<void> {
  const data = path.join(dir, 'data');
  const pid = await postmasterPid(data);
  // postmaster.pid outlives a crash and PIDs get reused: only signal what really is this server.
  if (pid !== null && (await cmdlineHas(pid, data))) {
    if (binDir)
      await pgTool(binDir, 'pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop'], dir);
    else signal(pid, 'SIGQUIT'); // PostgreSQL's "immediate shutdown" signal
    await waitFor('postmaster to exit', 10_000, async () => !isAlive(pid)).catch(() =>
      signal(pid, 'SIGKILL'),
    );
  }
  await rm(dir, { recursive: true, force: true });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function handle(info: PgServerInfo, dir: string, data: string): Promise<RunningServer<PgServerInfo>> {
  const pid = await postmasterPid(data);
  let stopped = false;
  return {
    info,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopPgDir(info.binDir, dir);
    },
    killSync() {
      // SIGQUIT is PostgreSQL's immediate shutdown; its backends follow the postmaster.
      if (!stopped && pid) signal(pid, 'SIGQUIT');
    },
  };
}

/**
 * Stops a throwaway server the way a crash does (`pg_ctl stop -m immediate`: no checkpoint, every
 * backend killed); `startPgAgain` brings it back on the same port and socket, after crash recovery.
 */
export async function stopPgImmediately(server: RunningServer<PgServerInfo>): Promise<void> {
  const r = await pgTool(
    server.info.binDir,
    'pg_ctl',
    ['-D', path.join(server.dir, 'data'), '-m', 'immediate', '-w', '-t', '60', 'stop'],
    server.dir,
  );
  if (r.code !== 0) throw new Error(`pg_ctl stop failed: ${r.stderr.trim()}`);
}

export async function startPgAgain(server: RunningServer<PgServerInfo>): Promise<void> {
  const log = path.join(server.dir, 'postgres.log');
  const r = await pgTool(
    server.info.binDir,
    'pg_ctl',
    ['-D', path.join(server.dir, 'data'), '-l', log, '-w', '-t', '60', 'start'],
    server.dir,
  );
  if (r.code !== 0) throw new Error(`pg_ctl start failed: ${r.stderr.trim()}\n${await tail(log)}`);
  await waitFor('PostgreSQL to accept connections again', 60_000, () => pgPing(server.info));
}
