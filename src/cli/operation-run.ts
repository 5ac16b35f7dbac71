import type { Command } from 'commander';
import { describeSource } from '../config/resolve.js';
import type { NotifyFormat, NotifyOn } from '../config/settings.js';
import { splitCommand } from '../config/words.js';
import { log, type LogFormat, type LogLevel } from '../log/logger.js';
import { defaultAuditFile } from '../ops/audit.js';
import { beginOperation, finishOperation, type Operation, type OperationOutputs } from '../ops/operation.js';
import { maskUri } from '../storage/cloud-uri.js';
import { applyConfiguration, type AppliedConfig } from './apply-config.js';
import { backupDir, cloudUri, commandPath, globals, rootOf, type GlobalOptions } from './context.js';
import { parseInteger } from './numbers.js';
import { ExitCode } from '../exit-codes.js';
import { engineFamily } from '../engines/family.js';

/**
 * Around every command: configuration applied, logging set up, and — for the commands that change
 * or check data — one operation begun before the action and finished after it (audit record,
 * metrics, notifications, hooks), in main.ts. A command reports what only it knows with
 * `reportResult` (src/ops/operation.ts).
 */

type Infer = (cmd: Command, g: GlobalOptions) => string | undefined;

interface AuditedCommand {
  /** It talks to a database server (the record and the metrics name it). */
  server?: boolean;
  /** The database, before the command reports it (so a failure still names it). */
  database?: Infer;
  /** Where it reads or writes, likewise. */
  destination?: Infer;
  /** The backup it reads, changes or deletes, likewise. */
  backup?: Infer;
}

const arg =
  (i: number): Infer =>
  (cmd) =>
    cmd.args[i];
const lastArg: Infer = (cmd) => cmd.args[cmd.args.length - 1];
const option =
  (name: string): Infer =>
  (cmd) => {
    const v: unknown = cmd.getOptionValue(name);
    return typeof v === 'string' ? v : undefined;
  };
const ALL: Infer = () => '*';
/** The backup directory, the cloud URI, or both, as a backup command would write to them. */
const backupDestination: Infer = (cmd, g) => {
  const cloud = cloudUri(g, option('cloud')(cmd, g));
  const local = !cloud || g.backupDir ? backupDir(g) : undefined;
  return [local, cloud ? maskUri(cloud) : undefined].filter(Boolean).join(' and ');
};

/**
 * The commands that change or check data: each run leaves an audit record, updates the metrics and
 * may notify. A new such command gets one line here.
 */
export const AUDITED: Readonly<Record<string, AuditedCommand>> = {
  'backup single': { server: true, database: arg(0), destination: backupDestination },
  'backup sample': { server: true, database: arg(0), destination: backupDestination },
  'backup cluster': { server: true, database: ALL, destination: backupDestination },
  'restore single': { server: true, database: option('target'), backup: arg(0) },
  'restore cluster': { server: true, database: ALL, backup: arg(0) },
  'verify-backup': { backup: arg(0) },
  cleanup: { database: option('database'), destination: arg(0) },
  rekey: { backup: arg(0) },
  'cloud upload': { backup: arg(0), destination: lastArg },
  'cloud copy': { backup: arg(0), destination: arg(1) },
  'cloud delete': { backup: arg(0) },
  'cloud verify': { backup: arg(0) },
  // PITR (issues 13-16) and drills (issue 17), by the names their branches give them.
  'pitr enable': { server: true },
  'pitr disable': { server: true },
  'pitr status': { server: true },
  'backup base': { server: true, database: ALL },
  'restore pitr': { server: true, database: ALL },
  'wal verify': {},
  'backup physical': { server: true, database: ALL },
  'binlog archive': { server: true },
  drill: { server: true, database: option('database'), backup: arg(0) },
};

interface RunOptions extends GlobalOptions {
  logFormat?: LogFormat;
  logFile?: string;
  logLevel?: LogLevel;
  quiet?: boolean;
  verbose?: boolean;
  auditLog?: string;
  metricsFile?: string;
  notify?: string[];
  notifyOn?: NotifyOn;
  notifyFormat?: NotifyFormat;
  notifyTimeout?: string;
  onSuccess?: string | string[];
  onFailure?: string | string[];
}

/** The log level: -v, then -q, then --log-level (or its environment variable or profile). */
function level(o: RunOptions): LogLevel {
  if (o.verbose) return 'debug';
  if (o.quiet) return 'warn';
  return o.logLevel ?? 'info';
}

/** Before the configuration is read: what the command line alone says (so its errors look right). */
export function configureLogFromFlags(root: Command): void {
  const o = root.opts<RunOptions>();
  log.configure({
    format: o.logFormat ?? (process.env.DBBACKUP_LOG_FORMAT === 'json' ? 'json' : 'text'),
    level: level(o),
  });
}

function argv(value: string | string[] | undefined, flag: string): string[] | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value : splitCommand(value, flag);
}

/** Where the end of an operation goes, from the (configured) options. */
export function operationOutputs(o: RunOptions, env: NodeJS.ProcessEnv = process.env): OperationOutputs {
  const seconds =
    o.notifyTimeout === undefined
      ? 30
      : parseInteger('--notify-timeout', o.notifyTimeout, { min: 1, max: 600 });
  return {
    auditFile: o.auditLog ?? defaultAuditFile(env),
    metricsFile: o.metricsFile,
    notify: {
      urls: o.notify ?? [],
      format: o.notifyFormat ?? 'auto',
      on: o.notifyOn ?? 'failure',
      timeoutMs: seconds * 1000,
    },
    hooks: { onSuccess: argv(o.onSuccess, '--on-success'), onFailure: argv(o.onFailure, '--on-failure') },
  };
}

/** The server as configured (not as connected): the same string for a run that fails early and one that works. */
function serverOf(g: GlobalOptions, applied: AppliedConfig, env: NodeJS.ProcessEnv): string {
  const family = engineFamily(applied.engine);
  const host = g.host ?? env[family.hostEnv] ?? 'localhost';
  const port = g.port ?? env[family.portEnv] ?? family.defaultPort;
  return host.startsWith('/') ? `${host}/.s.PGSQL.${port}` : `${host}:${port}`;
}

/** Nothing is changed: --dry-run, or a command that needs --confirm without it. */
function isDryRun(cmd: Command): boolean {
  if (cmd.getOptionValue('dryRun') === true) return true;
  return cmd.options.some((o) => o.attributeName() === 'confirm') && cmd.getOptionValue('confirm') !== true;
}

/** Commands that must work on a broken or missing configuration file (they check or create it). */
const WITHOUT_CONFIG = new Set(['config validate', 'config init']);

export interface Run {
  operation: Operation;
  outputs: OperationOutputs;
}

/** preAction: configuration, logging, and the operation's start. */
export async function startRun(action: Command, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  const root = rootOf(action);
  configureLogFromFlags(root);
  const path = commandPath(action);
  const applied = WITHOUT_CONFIG.has(path) ? undefined : await applyConfiguration(action, env);
  const o = globals(action) as RunOptions;
  log.configure({ format: o.logFormat ?? 'text', level: level(o), file: o.logFile });
  for (const warning of applied?.reference?.warnings ?? []) log.warn(warning);
  if (applied?.config) {
    log.debug(
      'config',
      `configuration ${applied.config.location.path}${applied.profile ? `, profile ${applied.profile}` : ''}`,
    );
  }
  for (const r of applied?.resolved.values() ?? []) {
    if (r.source.tier !== 'default')
      log.debug('setting', `${r.setting.key} from ${describeSource(r.source)}`);
  }
  const audited = AUDITED[path];
  const g = globals(action);
  const operation = beginOperation({
    command: path,
    audited: audited !== undefined,
    profile: applied?.profile,
    engine: audited?.server && applied ? applied.engine : undefined,
    server: audited?.server && applied ? serverOf(g, applied, env) : undefined,
    database: audited?.database?.(action, g),
    destination: audited?.destination?.(action, g),
    backup: audited?.backup?.(action, g),
    dryRun: isDryRun(action),
    // A run started by `dbbackup schedule` (issue 17): schedule list finds its last result by this.
    details: env.DBBACKUP_SCHEDULE ? { schedule: env.DBBACKUP_SCHEDULE } : undefined,
  });
  const outputs = operationOutputs(o, env);
  log.event('info', 'start', `${path} started`, { profile: applied?.profile });
  return { operation, outputs };
}

/** After the action (or its failure): the record, metrics, notifications and hooks. */
export async function endRun(run: Run, exitCode: number, error?: unknown): Promise<void> {
  await finishOperation(run.operation, run.outputs, {
    exitCode,
    error,
    interrupted: exitCode === ExitCode.Interrupted,
  });
}
