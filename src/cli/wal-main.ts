import { maskSecrets } from '../engines/connection.js';
import { DbBackupError, errorMessage, rememberedSecrets, UsageError } from '../errors.js';
import { requireIdentity } from '../pitr/archive.js';
import { FETCH_FATAL_EXIT, WalNotFoundError } from '../pitr/errors.js';
import { fetchWalFile } from '../pitr/wal-fetch.js';
import { lazyUnlockers, loadEnvFile, protectorsForArchive } from '../pitr/wal-keys.js';
import { recordPushFailure } from '../pitr/push-status.js';
import { pushWalFile } from '../pitr/wal-push.js';
import { putBuffer, type Storage } from '../storage/storage.js';
import { openStore } from '../storage/uri.js';
import { archiveOf, parseWalArgs, type WalOptions } from './wal-args.js';

/**
 * The lean entry point of `dbbackup wal push|archive|fetch`, which PostgreSQL runs once per WAL
 * segment: bin/dbbackup.js comes straight here, without the command-line library, the engines or
 * any cloud SDK the archive does not need. The full CLI's `wal` commands call the same functions.
 */

export const WAL_FAST_COMMANDS = ['push', 'archive', 'fetch', 'probe'];

const USAGE = `Usage:
  dbbackup wal push <path> --archive <dir|uri> [key options] [--env-file FILE] [--async --spool-dir DIR]
  dbbackup wal fetch <name> <dest> --archive <dir|uri> [--identity-file F | --encryption-key-file F] [--env-file FILE] [--prefetch N --spool-dir DIR]
  ("wal archive" is "wal push".) Run "dbbackup wal --help" for every option.`;

async function openArchive(o: WalOptions): Promise<Storage> {
  if (o.envFile) await loadEnvFile(o.envFile);
  return openStore(archiveOf(o));
}

export async function walPush(file: string, o: WalOptions, signal?: AbortSignal): Promise<string> {
  const storage = await openArchive(o);
  const identity = await requireIdentity(storage);
  const protectors = await protectorsForArchive(o, identity);
  const r = await pushWalFile(storage, identity, file, protectors, signal);
  return r.status === 'stored'
    ? `archived ${r.name} (${r.bytes} bytes, ${r.storedBytes} stored) as ${r.key}`
    : `${r.name} is already in the archive with identical content (${r.key})`;
}

export async function walFetch(name: string, dest: string, o: WalOptions): Promise<string> {
  const storage = await openArchive(o);
  const r = await fetchWalFile(storage, name, dest, lazyUnlockers(o));
  return `restored ${r.name} (${r.bytes} bytes) from ${r.key}`;
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
  if (command === 'fetch') return err instanceof WalNotFoundError ? 1 : FETCH_FATAL_EXIT;
  // archive_command: any non-zero status makes PostgreSQL keep the segment and retry; above 125
  // it would also restart the archiver process.
  const code = err instanceof DbBackupError ? err.exitCode : 1;
  return code >= 1 && code <= 125 ? code : 1;
}

function report(err: unknown, debug: boolean): void {
  const mask = (s: string): string => maskSecrets(s, rememberedSecrets());
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
    } else throw new UsageError(`Unknown wal command "${command}"`, USAGE);
    if (options.verbose) process.stderr.write(`dbbackup: ${message}\n`);
    return 0;
  } catch (err) {
    // PostgreSQL asks for files that do not exist as a matter of course (the next timeline's
    // history, the segment after the last): a miss is not worth a line in its log.
    if (!(err instanceof WalNotFoundError) || options.verbose) report(err, Boolean(options.debug));
    if (command === 'push' || command === 'archive') {
      const file = parseWalArgsSafe(rest)[0];
      if (file) await recordPushFailure(file, maskSecrets(errorMessage(err), rememberedSecrets()));
    }
    return walExitCode(command, err);
  }
}
