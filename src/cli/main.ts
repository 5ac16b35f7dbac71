#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { DbBackupError, errorMessage } from '../errors.js';
import { log } from '../log/logger.js';
import { endRun, startRun, type Run } from './operation-run.js';
import { configureTree, createProgram } from './program.js';
import { exitAfterOutput, guardStdout } from './stdout.js';
import { interruptedBy } from './signals.js';
import { lockRun } from './run-locks.js';
import { releaseRunLocks } from '../locks/run-lock.js';
import { setProgressRenderer } from '../pipeline/progress.js';
import { TerminalProgress } from './progress.js';
import { ExitCode } from '../exit-codes.js';
import { secrets } from '../secrets.js';

/**
 * The commands, in help order. A command's module (and all it imports: engines and their drivers, cloud SDKs,
 * schemas…) is loaded only when its name is on the command line; help, or no known name, loads them all.
 */
const COMMANDS: ReadonlyArray<readonly [name: string, load: () => Promise<Command>]> = [
  ['backup', async () => (await import('./commands/backup.js')).backupCommand()],
  ['restore', async () => (await import('./commands/restore.js')).restoreCommand()],
  ['verify-backup', async () => (await import('./commands/verify.js')).verifyCommand()],
  ['cleanup', async () => (await import('./commands/cleanup.js')).cleanupCommand()],
  ['cloud', async () => (await import('./commands/cloud.js')).cloudCommand()],
  ['list', async () => (await import('./commands/list.js')).listCommand()],
  ['keygen', async () => (await import('./commands/keygen.js')).keygenCommand()],
  ['rekey', async () => (await import('./commands/rekey.js')).rekeyCommand()],
  ['status', async () => (await import('./commands/status.js')).statusCommand()],
  ['pitr', async () => (await import('./commands/pitr.js')).pitrCommand()],
  ['wal', async () => (await import('./commands/wal.js')).walCommand()],
  ['binlog', async () => (await import('./commands/binlog.js')).binlogCommand()],
  ['preflight', async () => (await import('./commands/preflight.js')).preflightCommand()],
  ['config', async () => (await import('./commands/config.js')).configCommand()],
  ['history', async () => (await import('./commands/history.js')).historyCommand()],
  ['drill', async () => (await import('./commands/drill.js')).drillCommand()],
  ['schedule', async () => (await import('./commands/schedule.js')).scheduleCommand()],
  ['version', async () => (await import('./commands/version.js')).versionCommand()],
  ['tui', async () => (await import('./commands/tui.js')).tuiCommand()],
];

/** Other names of a command, for loading only the module named on the command line. */
const ALIASES: Readonly<Record<string, readonly string[]>> = { tui: ['interactive'] };

async function buildProgram(argv: string[]): Promise<Command> {
  const program = createProgram();
  const first = commandWord(program, argv.slice(2));
  const isFirst = ([name]: readonly [string, unknown]): boolean =>
    name === first || (ALIASES[name] ?? []).some((a) => a === first);
  // Otherwise every command name anywhere (`help restore`): a value that happens to equal a command
  // name (a database called "backup") only loads one module more.
  const named = COMMANDS.some(isFirst)
    ? COMMANDS.filter(isFirst)
    : COMMANDS.filter(([name]) => argv.includes(name) || (ALIASES[name] ?? []).some((a) => argv.includes(a)));
  for (const [, load] of named.length ? named : COMMANDS) program.addCommand(await load());
  configureTree(program);
  return program;
}

/**
 * The first word that is neither a global option nor its value: the command. Its subcommand may
 * share a command's name (`restore pitr`, `pitr status`, `wal list`), and loading that command too
 * cost `restore pitr` 57 files more (commands/pitr.js and what it imports).
 */
function commandWord(program: Command, args: readonly string[]): string | undefined {
  const takesValue = new Set(
    program.options.filter((o) => o.required || o.optional).flatMap((o) => [o.long, o.short]),
  );
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--') return args[i + 1];
    if (!arg.startsWith('-') || arg === '-') return arg;
    if (!arg.includes('=') && takesValue.has(arg)) i++;
  }
  return undefined;
}

function report(err: unknown, debug: boolean): number {
  const known = err instanceof DbBackupError ? err : undefined;
  const message = known ? known.message : errorMessage(err);
  const details = known ? known.details : [];
  const hint = known
    ? known.hint
    : 'this looks like a bug in dbbackup; run again with --debug and report it.';
  const exitCode = known ? known.exitCode : ExitCode.Failure;
  const lines = [`dbbackup: error: ${message}`, ...details.map((d) => `  ${d}`)];
  if (hint) lines.push(`hint: ${hint}`);
  if (debug && err instanceof Error && err.stack) lines.push(err.stack);
  // Masked there, with every secret remembered so far (see rememberArgSecrets).
  log.failure(message, { hint, details, exitCode }, lines);
  return exitCode;
}

/** Passwords, secret keys and webhook URLs from the command line and the environment: never shown. */
function rememberArgSecrets(argv: string[]): void {
  for (const flag of ['--password', '--cloud-secret-key', '--notify']) {
    argv.forEach((arg, i) => {
      if (arg === flag && argv[i + 1]) secrets.remember(argv[i + 1] ?? '');
      else if (arg.startsWith(`${flag}=`)) secrets.remember(arg.slice(flag.length + 1));
    });
  }
  for (const name of [
    'PGPASSWORD',
    'MYSQL_PWD',
    'AWS_SECRET_ACCESS_KEY',
    'AZURE_STORAGE_KEY',
    'DBBACKUP_CLOUD_SECRET_KEY',
  ]) {
    const value = process.env[name];
    if (value) secrets.remember(value);
  }
  for (const url of (process.env.DBBACKUP_NOTIFY_URL ?? '').split(/\s+/)) if (url) secrets.remember(url);
}

/** `--log-format json` (or DBBACKUP_LOG_FORMAT=json) seen before the command could be parsed. */
function jsonLogsAsked(argv: string[]): boolean {
  const i = argv.indexOf('--log-format');
  if (i >= 0) return argv[i + 1] === 'json';
  if (argv.includes('--log-format=json')) return true;
  return process.env.DBBACKUP_LOG_FORMAT === 'json';
}

/**
 * A usage error found by the parser, as one JSON line on stderr beside commander's text: a log
 * collector reading JSON lines sees why a run never started (no operation id: none began).
 */
function writeUsageErrorJson(message: string): void {
  const line = {
    time: new Date().toISOString(),
    level: 'error',
    event: 'usage',
    message: message.replace(/^error: /, ''),
    hint: 'add --help for usage',
    exitCode: ExitCode.Usage,
    pid: process.pid,
  };
  process.stderr.write(`${JSON.stringify(line)}\n`);
}

async function main(given: string[]): Promise<number> {
  // No arguments on a terminal: the interactive UI (issue 18). Without one, help and exit 2 as before.
  const argv = given.length <= 2 && process.stdin.isTTY && process.stdout.isTTY ? [...given, 'tui'] : given;
  rememberArgSecrets(argv);
  // The domain reports progress; on the command line it is drawn on stderr.
  setProgressRenderer((t) => new TerminalProgress(t.mode, t.label, t.source, t.estimate));
  const program = await buildProgram(argv);
  guardStdout(program);
  if (argv.includes('--debug')) process.env.DBBACKUP_DEBUG = '1';
  // The operation around the command's action: configuration, logs, audit, metrics, notifications.
  let run: Run | undefined;
  program.hook('preAction', async (_program, action) => {
    run = await startRun(action);
    // Run locks per target (issue 17): a second run of the same job is refused, exit 75.
    await lockRun(action);
  });
  let code: number = ExitCode.Ok;
  let error: unknown;
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version output are successes; commander has already printed usage errors.
      if (err.exitCode === 0) return ExitCode.Ok;
      if (jsonLogsAsked(argv)) writeUsageErrorJson(err.message);
      return ExitCode.Usage;
    }
    error = err;
    code = report(err, argv.includes('--debug'));
    // A failure caused by the user's Ctrl-C / SIGTERM (a request cut short) exits as interrupted.
    if (interruptedBy()) code = ExitCode.Interrupted;
  }
  code = await exitAfterOutput(code);
  if (run) await endRun(run, code, error);
  await releaseRunLocks();
  return code;
}

// A promise that can never settle (a stream waiting on a pipe nobody reads) would otherwise end the
// process with Node's bare exit code 13 and no word of what happened.
const stalled = (): void => {
  process.stderr.write(
    'dbbackup: error: the command stopped with work unfinished and nothing left to wait for\n' +
      'hint: this is a bug in dbbackup; nothing is reported as done. Run again with --debug and report it.\n',
  );
  process.exit(ExitCode.Internal);
};
process.once('beforeExit', stalled);
process.exitCode = await main(process.argv);
process.off('beforeExit', stalled);
