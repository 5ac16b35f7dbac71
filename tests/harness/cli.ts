import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Merged over process.env; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is otherwise /dev/null. */
  input?: string;
  timeoutMs?: number;
  cwd?: string;
}

/** Runs `node bin/dbbackup.js ...args` without a shell; resolves on any exit code. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(opts.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin/dbbackup.js'), ...args], {
      cwd: opts.cwd ?? repoRoot,
      env,
      // No input means /dev/null on stdin, so a prompt sees EOF instead of hanging the test.
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 120_000);
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    if (child.stdin) {
      child.stdin.on('error', () => undefined); // EPIPE when the CLI exits without reading stdin
      child.stdin.end(opts.input);
    }
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) stderr += `\n[runCli] killed after ${opts.timeoutMs ?? 120_000} ms`;
      // Like a shell: 128 + signal number when killed.
      resolve({ code: code ?? 128 + (signal ? constants.signals[signal] : 0), stdout, stderr });
    });
  });
}
