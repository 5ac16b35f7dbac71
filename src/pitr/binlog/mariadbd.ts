import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import mysql from 'mysql2/promise';
import { whichFirst } from '../../engines/tools.js';
import { DbBackupError, errorMessage, MissingToolError, SafetyError } from '../../errors.js';
import { isRoot, type OsUser } from '../../os/user.js';
import { ExitCode } from '../../exit-codes.js';

/**
 * A restored MariaDB server, started on its data directory with the configuration `restore pitr`
 * wrote (restored.cnf): privately for the binlog replay (no network, no grant checks, nobody else
 * can connect), and, with --start, for the user on its port.
 */
export interface RunningServer {
  pid: number;
  socket: string;
  stop(): Promise<void>;
}

const SERVER_DIRS = ['/usr/sbin', '/usr/libexec', '/usr/local/sbin', '/usr/local/bin', '/usr/bin'];

export async function findMariadbd(): Promise<string> {
  const found =
    (await whichFirst(['mariadbd', 'mysqld'])) ??
    (await whichFirst(SERVER_DIRS.flatMap((d) => [`${d}/mariadbd`, `${d}/mysqld`])));
  if (!found)
    throw new MissingToolError('mariadbd was not found', {
      hint: "Install the MariaDB server of the backup's version (Debian: apt-get install mariadb-server).",
    });
  return found.path;
}

export interface StartOptions {
  cnf: string;
  socket: string;
  pidFile: string;
  errorLog: string;
  user: OsUser;
  /** Private: no TCP, no grant checks (the replay). */
  private: boolean;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Starts mariadbd detached (it outlives this process) and waits until it answers on its socket. */
export async function startMariadbd(o: StartOptions): Promise<RunningServer> {
  const file = await findMariadbd();
  const args = [`--defaults-file=${o.cnf}`];
  if (isRoot()) args.push(`--user=${o.user.name}`);
  if (o.private) args.push('--skip-networking', '--skip-grant-tables', `--socket=${o.socket}`);
  const child = spawn(file, args, { detached: true, stdio: 'ignore' });
  child.on('error', () => undefined);
  child.unref();
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  const pid = child.pid ?? 0;
  const server: RunningServer = { pid, socket: o.socket, stop: () => stopServer(pid, o.pidFile) };
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    if (exited !== undefined)
      throw new SafetyError(`mariadbd exited during startup (code ${exited ?? 'signal'})`, {
        details: (await tail(o.errorLog)).slice(-8),
        hint: `See ${o.errorLog}.`,
      });
    if (await answers(o.socket)) return server;
    if (o.signal?.aborted || Date.now() > deadline) {
      await server.stop();
      if (o.signal?.aborted) throw new DbBackupError('Interrupted', { exitCode: ExitCode.Interrupted });
      throw new SafetyError(
        `mariadbd did not accept connections within ${Math.round(o.timeoutMs / 1000)} s`,
        {
          details: (await tail(o.errorLog)).slice(-8),
          hint: `See ${o.errorLog}.`,
        },
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The server is up when its socket answers, even with "access denied". */
async function answers(socket: string): Promise<boolean> {
  try {
    const c = await mysql.createConnection({ socketPath: socket, user: 'root', connectTimeout: 2000 });
    await c.end();
    return true;
  } catch (err) {
    return /Access denied/i.test(errorMessage(err));
  }
}

/** SIGTERM (a clean shutdown), then waits for the process to be gone. */
export async function stopServer(pid: number, pidFile: string, timeoutMs = 120_000): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (alive(pid)) {
    process.kill(pid, 'SIGKILL');
    throw new SafetyError(
      `mariadbd (pid ${pid}) did not shut down within ${timeoutMs / 1000} s and was killed`,
      {
        hint: `Its data directory may need crash recovery at the next start; pid file ${pidFile}.`,
      },
    );
  }
}

function alive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped by us) counts as gone.
  try {
    return !/^\d+ \([^)]*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function tail(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);
}
