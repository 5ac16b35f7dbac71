import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { findPgTool } from '../engines/tools.js';
import { DbBackupError, MissingToolError, SafetyError } from '../errors.js';
import { settingsAsServerOptions, type ServerSetting } from './isolation.js';
import { giveTo, runAsUser, type OsUser } from '../os/user.js';
import type { TargetAction } from './recovery.js';
import { ExitCode } from '../exit-codes.js';

/**
 * `restore pitr --start`: starts the restored server and follows its recovery until it reaches
 * the target (promoted, paused or shut down, as the target action says), or fails. PostgreSQL's
 * own log lines say where recovery stopped.
 */
export interface RecoveryReached {
  state: 'promoted' | 'paused' | 'shut down';
  /** "recovery stopping before commit of transaction 4642, time …" and the like. */
  stoppedAt: string | null;
  lastTransactionTime: string | null;
  replayLsn: string | null;
  timeline: number | null;
  seconds: number;
  log: string;
}

export interface StartInput {
  dataDir: string;
  user: OsUser;
  port?: number;
  action: TargetAction;
  /** Where the server's output goes (pg_ctl -l). */
  logFile: string;
  /** Settings for this start only, on the server's command line (src/pitr/isolation.ts). */
  settings?: readonly ServerSetting[];
  timeoutMs: number;
  signal?: AbortSignal;
}

export async function startAndFollow(s: StartInput): Promise<RecoveryReached> {
  const pgCtl = await findPgTool('pg_ctl');
  if (!pgCtl)
    throw new MissingToolError('pg_ctl was not found', {
      hint: 'Install the PostgreSQL server programs, or start the server yourself.',
    });
  const started = Date.now();
  await writeFile(s.logFile, '', { mode: 0o600, flag: 'a' });
  await giveTo(s.logFile, s.user);
  const options = s.settings?.length ? ['-o', settingsAsServerOptions(s.settings)] : [];
  const r = await runAsUser(s.user, pgCtl, ['start', '-D', s.dataDir, '-l', s.logFile, ...options, '-W'], {
    cwd: s.dataDir,
  });
  if (r.code !== 0)
    throw new SafetyError(`pg_ctl start failed: ${r.stderr.trim().split('\n')[0] ?? r.code}`, {
      hint: `See ${s.logFile}.`,
    });
  const deadline = Date.now() + s.timeoutMs;
  let stopping = false;
  let seenRunning = false;
  const onAbort = () => (stopping = true);
  s.signal?.addEventListener('abort', onAbort);
  try {
    for (;;) {
      const log = await readFile(s.logFile, 'utf8').catch(() => '');
      const fatal = /(?:FATAL|PANIC):\s+(.*)/.exec(log);
      const running = await postmasterRunning(s.dataDir);
      if (stopping) {
        await stopServer(s, pgCtl);
        throw new DbBackupError(
          `Interrupted; the server was stopped. ${s.dataDir} is restored and recovery resumes when it is started again`,
          { exitCode: ExitCode.Interrupted },
        );
      }
      if (running) seenRunning = true;
      if (!running && (seenRunning || fatal || Date.now() - started > 30_000)) {
        if (fatal)
          throw new SafetyError(`Recovery stopped with an error: ${fatal[1]?.trim() ?? ''}`, {
            hint: `Nothing was promoted. The server's log is ${s.logFile}; the data directory is left as restored.`,
            details: lastLines(log, 8),
          });
        if (s.action === 'shutdown' && /shutdown at recovery target/.test(log))
          return reached('shut down', log, started, null);
        throw new SafetyError('The restored server exited during recovery', {
          hint: `See ${s.logFile}.`,
          details: lastLines(log, 8),
        });
      }
      if (
        s.action !== 'pause' &&
        /archive recovery complete/.test(log) &&
        /database system is ready to accept connections/.test(log)
      )
        return reached(
          'promoted',
          log,
          started,
          await query(
            s,
            "SELECT pg_last_wal_replay_lsn()::text || '|' || (SELECT timeline_id FROM pg_control_checkpoint())::text",
          ),
        );
      if (s.action === 'pause' && /pausing at the end of recovery/.test(log))
        return reached(
          'paused',
          log,
          started,
          await query(s, "SELECT pg_last_wal_replay_lsn()::text || '|'"),
        );
      if (Date.now() > deadline) {
        await stopServer(s, pgCtl);
        throw new SafetyError(
          `Recovery did not reach its target in ${Math.round(s.timeoutMs / 1000)} s; the server was stopped`,
          {
            hint: `See ${s.logFile}; start it yourself to let recovery go on.`,
            details: lastLines(log, 5),
          },
        );
      }
      await new Promise((res) => setTimeout(res, 200));
    }
  } finally {
    s.signal?.removeEventListener('abort', onAbort);
  }
}

function reached(
  state: RecoveryReached['state'],
  log: string,
  started: number,
  lsnTli: string | null,
): RecoveryReached {
  const stop =
    /recovery stopping (?:before|after) .*|recovery stopping at .*|recovery stopping after reaching consistency/.exec(
      log,
    )?.[0] ?? null;
  const last = /last completed transaction was at log time (.*)/.exec(log)?.[1] ?? null;
  const tli = /selected new timeline ID: (\d+)/.exec(log)?.[1];
  const [lsn, tl] = (lsnTli ?? '').split('|');
  return {
    state,
    stoppedAt: stop,
    lastTransactionTime: last?.trim() ?? null,
    replayLsn: lsn || null,
    timeline: tli ? Number(tli) : tl ? Number(tl) : null,
    seconds: (Date.now() - started) / 1000,
    log: '',
  };
}

function lastLines(text: string, n: number): string[] {
  return text.trim().split('\n').slice(-n);
}

async function postmasterRunning(dataDir: string): Promise<boolean> {
  const text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One value through psql as the server's user over the server's own socket (peer or trust auth). */
async function query(s: StartInput, sql: string): Promise<string | null> {
  const psql = await findPgTool('psql');
  const pid = await readFile(path.join(s.dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const lines = pid.split('\n');
  const port = lines[3]?.trim() || String(s.port ?? 5432);
  const socket = lines[4]?.trim() || '/var/run/postgresql';
  if (!psql) return null;
  const r = await runAsUser(
    s.user,
    psql,
    ['-X', '-A', '-t', '-h', socket, '-p', port, '-U', s.user.name, '-d', 'postgres', '-c', sql],
    {
      cwd: s.dataDir,
      timeoutMs: 15_000,
    },
  );
  return r.code === 0 ? r.stdout.trim() : null;
}

async function stopServer(s: StartInput, pgCtl: string): Promise<void> {
  await runAsUser(s.user, pgCtl, ['stop', '-D', s.dataDir, '-m', 'fast', '-w', '-t', '60'], {
    cwd: s.dataDir,
    timeoutMs: 90_000,
  });
}
