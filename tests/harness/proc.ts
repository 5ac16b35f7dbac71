import { spawn } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import net from 'node:net';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program without a shell and collects its output; never rejects on a non-zero exit. */
export function run(
  file: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 120_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

export const isRoot = process.getuid?.() === 0;

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * initdb/pg_ctl refuse to run as root, so as root we drop to the service user with runuser
 * (util-linux), or su where runuser is missing.
 */
let hasRunuser: Promise<boolean> | undefined;

export async function asUser(user: string, file: string, args: string[]): Promise<[string, string[]]> {
  if (!isRoot) return [file, args];
  hasRunuser ??= run('sh', ['-c', 'command -v runuser']).then((r) => r.code === 0);
  if (await hasRunuser) return ['runuser', ['-u', user, '--', file, ...args]];
  return ['su', [user, '-s', '/bin/sh', '-c', [file, ...args].map(shellQuote).join(' ')]];
}

/** A currently free TCP port on 127.0.0.1 (the kernel picks it; a tiny race remains, callers retry). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function tail(file: string, lines = 40): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return `(no log at ${file})`;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when `pid` runs a program whose command line mentions `needle` (guards against PID reuse). */
export async function cmdlineHas(pid: number, needle: string): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes(needle);
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `probe` until it resolves true; throws the last error (or a timeout) otherwise. */
export async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${String(last ?? '')}`);
}

/** Children of `ppid` whose command name is `comm` (Linux /proc). */
export async function childrenNamed(ppid: number, comm: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...; comm may contain spaces, so split at the last ')'.
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const ppidField = Number(stat.slice(close + 2).split(' ')[1]);
    if (name === comm && ppidField === ppid) found.push(Number(entry));
  }
  return found;
}
