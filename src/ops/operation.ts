import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { DbBackupError, errorMessage } from '../errors.js';
import { log, type LogFields } from '../log/logger.js';
import { maskUri } from '../storage/cloud-uri.js';
import { TOOL_VERSION } from '../version.js';
import type { NotifyFormat, NotifyOn } from '../config/settings.js';
import type { MetricSample } from './metrics.js';
import type { OperationRecord, Outcome } from './record.js';
import { ExitCode } from '../exit-codes.js';
import { secrets } from '../secrets.js';

/**
 * One run of a command that changes or checks data, from start to its record. The CLI begins one
 * before the command's action and finishes it after (src/cli/operation-run.ts), whatever the
 * outcome; the command only reports what it alone knows, with `reportResult`:
 *
 *   reportResult({ database, destination: store.location });          // as soon as known
 *   reportResult({ backup: metadata.name, bytes: metadata.sizeBytes });  // when stored
 *
 * Finishing appends the audit record, updates the metrics file, and sends the notifications and
 * runs the hooks; none of these can change the operation's outcome or exit code.
 */

export interface OperationReport {
  database?: string;
  engine?: string;
  server?: string;
  destination?: string;
  backup?: string;
  bytes?: number;
  /** Nothing was changed (a plan); inferred from --dry-run or a missing --confirm when not said. */
  dryRun?: boolean;
  /** Extra fields for the audit record (counts, names). */
  details?: Record<string, string | number | boolean>;
  /** Extra series for the metrics file (PITR archive lag, a drill's RTO…), merged like the others. */
  metrics?: MetricSample[];
}

export interface OperationStart extends OperationReport {
  /** The command as typed: `backup single`. */
  command: string;
  /** Whether it leaves an audit record, metrics and notifications (commands that change or check data). */
  audited: boolean;
  profile?: string;
}

export class Operation {
  readonly id = randomUUID();
  readonly started = new Date();
  private readonly state: OperationStart;
  private readonly extraMetrics: MetricSample[] = [];

  constructor(start: OperationStart) {
    this.state = { ...start };
    if (start.metrics) this.extraMetrics.push(...start.metrics);
  }

  get command(): string {
    return this.state.command;
  }

  get audited(): boolean {
    return this.state.audited;
  }

  get database(): string | undefined {
    return this.state.database;
  }

  /** The server as configured (`host:port`), for commands that talk to one. */
  get server(): string | undefined {
    return this.state.server;
  }

  get dryRun(): boolean {
    return Boolean(this.state.dryRun);
  }

  report(r: OperationReport): void {
    const { details, metrics, ...rest } = r;
    const given = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
    Object.assign(this.state, given);
    if (details) this.state.details = { ...this.state.details, ...details };
    if (metrics) this.extraMetrics.push(...metrics);
    if (r.database !== undefined) log.setContext({ database: r.database });
  }

  get metrics(): MetricSample[] {
    return [...this.extraMetrics];
  }

  toRecord(end: OperationEnd, now = new Date()): OperationRecord {
    const s = this.state;
    const mask = (text: string | undefined): string | undefined =>
      text === undefined ? undefined : secrets.mask(text);
    const failure = end.error === undefined ? undefined : describeError(end.error);
    const outcome: Outcome =
      end.exitCode === ExitCode.Ok ? 'success' : end.interrupted ? 'interrupted' : 'failure';
    const record: OperationRecord = {
      v: 1,
      id: this.id,
      time: now.toISOString(),
      started: this.started.toISOString(),
      durationSeconds: Math.round((now.getTime() - this.started.getTime()) / 10) / 100,
      command: s.command,
      kind: s.command.replace(/[^A-Za-z0-9]+/g, '_'),
      outcome,
      exitCode: end.exitCode,
      dryRun: Boolean(s.dryRun),
      user: userName(),
      host: os.hostname(),
      pid: process.pid,
      version: TOOL_VERSION,
      profile: s.profile,
      engine: s.engine,
      server: s.server,
      database: s.database,
      destination: mask(s.destination === undefined ? undefined : maskUri(s.destination)),
      backup: mask(s.backup === undefined ? undefined : maskUri(s.backup)),
      bytes: s.bytes,
      error: mask(failure?.message),
      hint: mask(failure?.hint),
      details: s.details,
    };
    // Every text, whatever field it is in (a password typed as a database name is still a password).
    const masked = JSON.parse(JSON.stringify(record), (_key, value: unknown) =>
      typeof value === 'string' ? mask(value) : value,
    ) as OperationRecord;
    return masked;
  }
}

export interface OperationEnd {
  exitCode: number;
  error?: unknown;
  /** Stopped by SIGINT/SIGTERM. */
  interrupted?: boolean;
}

function userName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? String(process.getuid?.() ?? '?');
  }
}

function describeError(err: unknown): { message: string; hint?: string } {
  if (err instanceof DbBackupError) {
    const details = err.details.length ? ` (${err.details.slice(0, 3).join('; ')})` : '';
    return { message: `${err.message}${details}`, hint: err.hint };
  }
  return {
    message: errorMessage(err),
    hint: 'this looks like a bug in dbbackup; run again with --debug and report it.',
  };
}

let current: Operation | undefined;

export function beginOperation(start: OperationStart): Operation {
  current = new Operation(start);
  log.setContext({ command: start.command, operationId: current.id, database: start.database });
  return current;
}

export function currentOperation(): Operation | undefined {
  return current;
}

/** What a command tells about its run (see the top of this file); a no-op outside one. */
export function reportResult(r: OperationReport): void {
  current?.report(r);
}

export interface OperationOutputs {
  auditFile: string;
  metricsFile?: string;
  notify: { urls: readonly string[]; format: NotifyFormat; on: NotifyOn; timeoutMs: number };
  hooks: { onSuccess?: readonly string[]; onFailure?: readonly string[] };
  hookTimeoutMs?: number;
}

/** Logs the end of the run and, for an audited one, records, measures and tells. Never throws. */
export async function finishOperation(
  op: Operation,
  outputs: OperationOutputs,
  end: OperationEnd,
): Promise<OperationRecord> {
  const record = op.toRecord(end);
  const fields: LogFields = {
    outcome: record.outcome,
    exitCode: record.exitCode,
    durationSeconds: record.durationSeconds,
    dryRun: record.dryRun,
    destination: record.destination,
    backup: record.backup,
    bytes: record.bytes,
    error: record.error,
    hint: record.hint,
  };
  log.event(
    record.outcome === 'success' ? 'info' : 'error',
    'finish',
    `${record.command}: ${record.outcome}`,
    fields,
  );
  if (!op.audited) return record;
  // Loaded only now: a command that is not audited (list, status, version) never pays for them.
  const { appendAudit } = await import('./audit.js');
  try {
    appendAudit(outputs.auditFile, record);
    log.debug('audit', `recorded in ${outputs.auditFile}`);
  } catch (err) {
    log.warn(`could not append to the audit log ${outputs.auditFile}: ${errorMessage(err)}`);
  }
  if (record.dryRun) return record;
  await Promise.all([writeMetrics(op, outputs, record), tell(outputs, record)]);
  return record;
}

async function writeMetrics(
  op: Operation,
  outputs: OperationOutputs,
  record: OperationRecord,
): Promise<void> {
  if (!outputs.metricsFile) return;
  const { operationSamples, updateTextfile } = await import('./metrics.js');
  try {
    await updateTextfile(outputs.metricsFile, [...operationSamples(record), ...op.metrics]);
    log.debug('metrics', `written to ${outputs.metricsFile}`);
  } catch (err) {
    log.warn(`could not write the metrics file ${outputs.metricsFile}: ${errorMessage(err)}`);
  }
}

async function tell(outputs: OperationOutputs, record: OperationRecord): Promise<void> {
  const failed = record.outcome !== 'success';
  const urls = failed || outputs.notify.on === 'always' ? outputs.notify.urls : [];
  const hook = failed ? outputs.hooks.onFailure : outputs.hooks.onSuccess;
  if (!urls.length && !hook?.length) return;
  const [{ notifyAll, redactUrl }, { runHook, HOOK_TIMEOUT_MS }] = await Promise.all([
    import('./notify.js'),
    import('./hooks.js'),
  ]);
  await Promise.all([
    (async () => {
      for (const r of await notifyAll(urls, outputs.notify.format, record, {
        timeoutMs: outputs.notify.timeoutMs,
      })) {
        const where = `${redactUrl(r.url)} (${r.format})`;
        if (r.ok) log.debug('notify', `notified ${where}`, { attempts: r.attempts });
        else
          log.warn(
            `notification to ${where} failed after ${r.attempts} attempt${r.attempts === 1 ? '' : 's'} (${(r.elapsedMs / 1000).toFixed(1)} s): ${r.error ?? 'unknown error'}; the ${record.command} result is unchanged`,
          );
      }
    })(),
    (async () => {
      if (!hook?.length) return;
      const r = await runHook(hook, record, outputs.hookTimeoutMs ?? HOOK_TIMEOUT_MS);
      for (const line of r.output.split('\n').filter(Boolean)) log.note(`${hook[0]}: ${line}`);
      const name = failed ? '--on-failure' : '--on-success';
      if (r.error) log.warn(`${name} command ${hook[0]} could not run: ${r.error}`);
      else if (r.timedOut)
        log.warn(
          `${name} command ${hook[0]} was stopped after ${Math.round((outputs.hookTimeoutMs ?? HOOK_TIMEOUT_MS) / 1000)} s`,
        );
      else if (r.code !== 0) log.warn(`${name} command ${hook[0]} exited with ${r.code ?? r.signal}`);
      else log.debug('hook', `${name} command ${hook[0]} ran`);
    })(),
  ]);
}
