import { spawn } from 'node:child_process';
import { errorMessage } from '../errors.js';
import type { OperationRecord } from './record.js';

/**
 * `--on-success` / `--on-failure` programs: run without a shell (argv as given), with the result in
 * environment variables, output captured, time-limited. Their failure is the caller's warning.
 */

export const HOOK_TIMEOUT_MS = 5 * 60_000;

/**
 * The result as DBBACKUP_RESULT_* variables (empty when unknown), plus the whole record as JSON. A
 * prefix of their own: DBBACKUP_USER or DBBACKUP_DATABASE would be settings to a dbbackup the hook runs.
 */
export function hookEnv(r: OperationRecord): Record<string, string> {
  const text = (v: string | number | undefined): string => (v === undefined ? '' : String(v));
  return {
    DBBACKUP_RESULT_OUTCOME: r.outcome,
    DBBACKUP_RESULT_EXIT_CODE: String(r.exitCode),
    DBBACKUP_RESULT_COMMAND: r.command,
    DBBACKUP_RESULT_KIND: r.kind,
    DBBACKUP_RESULT_OPERATION_ID: r.id,
    DBBACKUP_RESULT_STARTED_AT: r.started,
    DBBACKUP_RESULT_FINISHED_AT: r.time,
    DBBACKUP_RESULT_DURATION_SECONDS: r.durationSeconds.toFixed(3),
    DBBACKUP_RESULT_HOST: r.host,
    DBBACKUP_RESULT_USER: r.user,
    DBBACKUP_RESULT_PROFILE: text(r.profile),
    DBBACKUP_RESULT_ENGINE: text(r.engine),
    DBBACKUP_RESULT_SERVER: text(r.server),
    DBBACKUP_RESULT_DATABASE: text(r.database),
    DBBACKUP_RESULT_DESTINATION: text(r.destination),
    DBBACKUP_RESULT_BACKUP: text(r.backup),
    DBBACKUP_RESULT_BYTES: text(r.bytes),
    DBBACKUP_RESULT_ERROR: text(r.error),
    DBBACKUP_RESULT_HINT: text(r.hint),
    DBBACKUP_RESULT_JSON: JSON.stringify(r),
  };
}

export interface HookResult {
  argv: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** What it printed (stdout and stderr, at most 64 KiB). */
  output: string;
  error?: string;
}

const MAX_OUTPUT = 64 * 1024;

/** Runs the hook; never throws. */
export function runHook(
  argv: readonly string[],
  record: OperationRecord,
  timeoutMs = HOOK_TIMEOUT_MS,
  env: NodeJS.ProcessEnv = process.env,
): Promise<HookResult> {
  const [file, ...args] = argv;
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    const done = (r: Omit<HookResult, 'argv' | 'output' | 'timedOut'>): void => {
      clearTimeout(timer);
      resolve({ argv: [...argv], output, timedOut, ...r });
    };
    const child = spawn(file ?? '', args, {
      env: { ...env, ...hookEnv(record) },
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: false,
    });
    const collect = (chunk: Buffer): void => {
      if (output.length < MAX_OUTPUT) output += chunk.toString('utf8').slice(0, MAX_OUTPUT - output.length);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }, timeoutMs);
    child.on('error', (err) => done({ code: null, signal: null, error: errorMessage(err) }));
    child.on('close', (code, signal) => done({ code, signal }));
  });
}
