import { DbBackupError, errorMessage, UsageError } from '../errors.js';
import { requireIdentity } from '../pitr/archive.js';
import { FETCH_FATAL_EXIT, WalNotFoundError } from '../pitr/errors.js';
import { fetchWalFile } from '../pitr/wal-fetch.js';
import { lazyUnlockers, loadEnvFile, protectorsForArchive } from '../pitr/wal-keys.js';
import { recordPushFailure } from '../pitr/push-status.js';
import { pushWalFile } from '../pitr/wal-push.js';
import { putBuffer, type Storage } from '../storage/storage.js';
import { openStore } from '../storage/uri.js';
import { archiveOf, parseWalArgs, type WalOptions } from './wal-args.js';
import { ExitCode } from '../exit-codes.js';
import { secrets } from '../secrets.js';

/**
 * The lean entry point of `dbbackup wal push|archive|fetch`, which PostgreSQL runs once per WAL
 * segment: bin/dbbackup.js comes straight here, without the command-line library, the engines or
 * any cloud SDK the archive does not need. The full CLI's `wal` commands call the same functions.
 */

export const WAL_FAST_COMMANDS = ['push', 'archive', 'fetch', 'probe', 'uploader', 'prefetcher'];

const USAGE = `Usage:
  dbbackup wal push <path> --archive <dir|uri> [key options] [--env-file FILE] [--async --spool-dir DIR]
  dbbackup wal fetch <name> <dest> --archive <dir|uri> [--identity-file F | --encryption-key-file F] [--env-file FILE] [--prefetch N --spool-dir DIR]
  ("wal archive" is "wal push".) Run "dbbackup wal --help" for every option.`;

async function openArchive(o: WalOptions): Promise<Storage> {
  if (o.envFile) await loadEnvFile(o.envFile);
  return openStore(archiveOf(o));
}

/** The options a helper process needs to reach the same archive with the same keys. */
function helperArgs(o: WalOptions): string[] {
  const args = ['--archive', archiveOf(o), '--spool-dir', o.spoolDir ?? ''];
  if (o.envFile) args.push('--env-file', o.envFile);
  if (o.encryptionKeyFile) args.push('--encryption-key-file', o.encryptionKeyFile);
  if (o.encryptionKeyEnv) args.push('--encryption-key-env', o.encryptionKeyEnv);
  for (const r of o.recipient ?? []) args.push('--recipient', r);
  for (const f of o.recipientsFile ?? []) args.push('--recipients-file', f);
  for (const f of o.identityFile ?? []) args.push('--identity-file', f);
  if (o.insecureKeyFile) args.push('--insecure-key-file');
  return args;
}

function spoolOf(o: WalOptions, what: string): string {
  if (!o.spoolDir)
    throw new UsageError(
      `${what} needs --spool-dir`,
      'Give a directory on local disk that the server user owns.',
    );
  return o.spoolDir;
}

/**
 * Root writing into a local archive would leave directories only root can enter, and the server's
 * own pushes would fail from then on: a push runs as the archive's owner.
 */
async function checkWriter(storage: Storage): Promise<void> {
  if (process.getuid?.() !== 0 || !storage.localPath) return;
  const { stat } = await import('node:fs/promises');
  const owner = await stat(storage.location).then(
    (s) => s.uid,
    () => 0,
  );
  if (owner !== 0)
    throw new UsageError(
      `The archive ${storage.location} belongs to uid ${owner}: root must not write into it`,
      "Run WAL commands as the archive's owner, as the server does (e.g. runuser -u postgres -- dbbackup wal push …).",
    );
}

export async function walPush(file: string, o: WalOptions, signal?: AbortSignal): Promise<string> {
  if (o.async) {
    const { handOver } = await import('../pitr/async-push.js');
    return handOver(file, {
      spoolDir: spoolOf(o, '--async'),
      timeoutMs: (o.asyncTimeout ?? 60) * 1000,
      uploaderArgs: helperArgs(o),
    });
  }
  const storage = await openArchive(o);
  await checkWriter(storage);
  const identity = await requireIdentity(storage);
  const protectors = await protectorsForArchive(o, identity);
  const r = await pushWalFile(storage, identity, file, protectors, signal);
  return r.status === 'stored'
    ? `archived ${r.name} (${r.bytes} bytes, ${r.storedBytes} stored) as ${r.key}`
    : `${r.name} is already in the archive with identical content (${r.key})`;
}

export async function walFetch(name: string, dest: string, o: WalOptions): Promise<string> {
  if (o.prefetch) {
    const { takePrefetched, wantNext } = await import('../pitr/prefetch.js');
    const spool = spoolOf(o, '--prefetch');
    const args = [...helperArgs(o), '--prefetch', String(o.prefetch)];
    if (await takePrefetched(spool, name, dest)) {
      await wantNext(spool, name, args);
      return `restored ${name} (prefetched)`;
    }
    const storage = await openArchive(o);
    const r = await fetchWalFile(storage, name, dest, lazyUnlockers(o));
    await wantNext(spool, name, args);
    return `restored ${r.name} (${r.bytes} bytes) from ${r.key}`;
  }
  const storage = await openArchive(o);
  const r = await fetchWalFile(storage, name, dest, lazyUnlockers(o));
  return `restored ${r.name} (${r.bytes} bytes) from ${r.key}`;
}

/** An AbortSignal for a helper: SIGINT/SIGTERM stop it cleanly. */
function helperSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return controller.signal;
}

const log = (line: string): void => void process.stderr.write(`${line}\n`);

/** `wal uploader`: started by an async push; pushes pg_wal's ready segments until idle. */
export async function walUploader(o: WalOptions): Promise<string> {
  const { runUploader } = await import('../pitr/async-push.js');
  const storage = await openArchive(o);
  await checkWriter(storage);
  const identity = await requireIdentity(storage);
  if (!o.pgWal) throw new UsageError('wal uploader needs --pg-wal');
  const signal = helperSignal();
  // A stopped uploader leaves within seconds even if a store does not answer: a push is atomic,
  // so one cut off mid-request leaves nothing (or a complete object, found as present next time).
  signal.addEventListener('abort', () => {
    setTimeout(() => {
      void import('../pitr/spool.js')
        .then(({ releaseLock }) => releaseLock(`${o.spoolDir}/uploader.pid`))
        .finally(() => process.exit(ExitCode.Terminated));
    }, 5000).unref();
  });
  const r = await runUploader({
    storage,
    identity,
    protectors: await protectorsForArchive(o, identity),
    pgWal: o.pgWal,
    spoolDir: spoolOf(o, 'wal uploader'),
    concurrency: o.concurrency ?? 2,
    idleExitMs: (o.idleExit ?? 60) * 1000,
    signal,
    log,
  });
  return `uploader done: ${r.pushed} pushed, ${r.failed} failed attempts`;
}

/** `wal prefetcher`: started by a prefetching fetch; keeps the next segments ready. */
export async function walPrefetcher(o: WalOptions): Promise<string> {
  const { runPrefetcher } = await import('../pitr/prefetch.js');
  const storage = await openArchive(o);
  const identity = await requireIdentity(storage);
  const n = await runPrefetcher({
    storage,
    identity,
    spoolDir: spoolOf(o, 'wal prefetcher'),
    count: o.prefetch ?? 4,
    idleExitMs: (o.idleExit ?? 30) * 1000,
    unlockers: lazyUnlockers(o),
    signal: helperSignal(),
    log,
  });
  return `prefetcher done: ${n} segments fetched ahead`;
}

/**
 * `wal probe push|fetch`: what `pitr enable` and `restore pitr` run as the server's user before
 * writing a command into the server's configuration — the archive opens, its identity reads, the
 * keys load and (push) an object can be written and deleted.
 */
export async function walProbe(mode: string, o: WalOptions): Promise<string> {
  const storage = await openArchive(o);
  const identity = await requireIdentity(storage);
  if (mode === 'push') {
    await checkWriter(storage);
    await protectorsForArchive(o, identity);
    const key = `wal/.dbbackup-probe-${process.pid}-${Date.now()}`;
    await putBuffer(storage, key, 'probe\n');
    await storage.delete(key);
    return `the archive at ${storage.location} is writable`;
  }
  if (mode !== 'fetch') throw new UsageError(`wal probe takes push or fetch, not "${mode}"`);
  if (identity.encryption) await lazyUnlockers(o)();
  for await (const _ of storage.list('wal/')) break;
  return `the archive at ${storage.location} is readable`;
}

/** The exit status PostgreSQL must see for a failed push or fetch. */
export function walExitCode(command: string, err: unknown): number {
  if (command === 'fetch') return err instanceof WalNotFoundError ? ExitCode.Failure : FETCH_FATAL_EXIT;
  // archive_command: any non-zero status makes PostgreSQL keep the segment and retry; above 125
  // it would also restart the archiver process.
  const code = err instanceof DbBackupError ? err.exitCode : ExitCode.Failure;
  return code >= 1 && code <= 125 ? code : ExitCode.Failure;
}

function report(err: unknown, debug: boolean): void {
  const mask = (s: string): string => secrets.mask(s);
  process.stderr.write(`dbbackup: error: ${mask(errorMessage(err))}\n`);
  if (err instanceof DbBackupError) {
    for (const d of err.details) process.stderr.write(`  ${mask(d)}\n`);
    if (err.hint) process.stderr.write(`hint: ${mask(err.hint)}\n`);
  }
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${mask(err.stack)}\n`);
}

function parseWalArgsSafe(args: readonly string[]): string[] {
  try {
    return parseWalArgs(args).positional;
  } catch {
    return [];
  }
}

/** `wal <command> …args`; returns the exit status. */
export async function walMain(argv: readonly string[]): Promise<number> {
  const [command = '', ...rest] = argv;
  let options: WalOptions = {};
  try {
    const parsed = parseWalArgs(rest);
    options = parsed.options;
    const [a, b, extra] = parsed.positional;
    let message: string;
    if (command === 'push' || command === 'archive') {
      if (!a || b !== undefined) throw new UsageError('wal push takes one path (%p)', USAGE);
      message = await walPush(a, options);
    } else if (command === 'fetch') {
      if (!a || !b || extra !== undefined)
        throw new UsageError('wal fetch takes a name and a destination (%f %p)', USAGE);
      message = await walFetch(a, b, options);
    } else if (command === 'probe') {
      message = await walProbe(a ?? '', options);
    } else if (command === 'uploader') {
      message = await walUploader(options);
    } else if (command === 'prefetcher') {
      message = await walPrefetcher(options);
    } else throw new UsageError(`Unknown wal command "${command}"`, USAGE);
    if (options.verbose) process.stderr.write(`dbbackup: ${message}\n`);
    return 0;
  } catch (err) {
    // PostgreSQL asks for files that do not exist as a matter of course (the next timeline's
    // history, the segment after the last): a miss is not worth a line in its log.
    if (!(err instanceof WalNotFoundError) || options.verbose) report(err, Boolean(options.debug));
    if (command === 'push' || command === 'archive') {
      const file = parseWalArgsSafe(rest)[0];
      if (file) await recordPushFailure(file, secrets.mask(errorMessage(err)));
    }
    return walExitCode(command, err);
  }
}
