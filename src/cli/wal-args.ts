import type { EncryptionFlags } from '../crypto/index.js';
import { UsageError } from '../errors.js';
import { parseInteger } from './numbers.js';
import type { TimelineChoice } from '../pitr/inventory.js';

/**
 * The options of `wal push` and `wal fetch`, parsed by hand: PostgreSQL runs these once per WAL
 * segment, and a command-line library would cost start-up time on every call. The full CLI
 * (commander) declares the same options for help and calls the same functions.
 */
export interface WalOptions extends EncryptionFlags {
  archive?: string;
  envFile?: string;
  /** push: hand the segment to a long-lived uploader through a spool directory. */
  async?: boolean;
  spoolDir?: string;
  /** fetch: segments to fetch ahead of the one asked for (into the spool directory). */
  prefetch?: number;
  /** How long a push waits for the async uploader, in seconds. */
  asyncTimeout?: number;
  /** Helpers (uploader, prefetcher): the server's pg_wal, parallel transfers, seconds idle before leaving. */
  pgWal?: string;
  concurrency?: number;
  idleExit?: number;
  verbose?: boolean;
  debug?: boolean;
}

const VALUE_OPTIONS: Record<string, keyof WalOptions> = {
  '--archive': 'archive',
  '--env-file': 'envFile',
  '--spool-dir': 'spoolDir',
  '--prefetch': 'prefetch',
  '--async-timeout': 'asyncTimeout',
  '--pg-wal': 'pgWal',
  '--concurrency': 'concurrency',
  '--idle-exit': 'idleExit',
  '--encryption-key-file': 'encryptionKeyFile',
  '--encryption-key-env': 'encryptionKeyEnv',
  '--passphrase-file': 'passphraseFile',
  '--recipient': 'recipient',
  '--recipients-file': 'recipientsFile',
  '--identity-file': 'identityFile',
};

const FLAG_OPTIONS: Record<string, keyof WalOptions> = {
  '--async': 'async',
  '--encrypt': 'encrypt',
  '--insecure-key-file': 'insecureKeyFile',
  '--verbose': 'verbose',
  '--debug': 'debug',
};

const REPEATABLE = new Set<keyof WalOptions>(['recipient', 'recipientsFile', 'identityFile']);

export function parseWalArgs(args: readonly string[]): { positional: string[]; options: WalOptions } {
  const positional: string[] = [];
  const options: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (!arg.startsWith('--') || arg === '--') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const boolKey = FLAG_OPTIONS[flag];
    if (boolKey && eq < 0) {
      options[boolKey] = true;
      continue;
    }
    const key = VALUE_OPTIONS[flag];
    if (!key) throw new UsageError(`Unknown option ${flag}`, 'Run "dbbackup wal --help" for the options.');
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    if (REPEATABLE.has(key)) options[key] = [...((options[key] as string[] | undefined) ?? []), value];
    else options[key] = value;
  }
  const o = options as WalOptions & {
    prefetch?: unknown;
    asyncTimeout?: unknown;
    concurrency?: unknown;
    idleExit?: unknown;
  };
  if (o.concurrency !== undefined)
    o.concurrency = parseInteger('--concurrency', String(o.concurrency), { min: 1, max: 32 });
  if (o.idleExit !== undefined)
    o.idleExit = parseInteger('--idle-exit', String(o.idleExit), { min: 1, max: 86400 });
  if (o.prefetch !== undefined)
    o.prefetch = parseInteger('--prefetch', String(o.prefetch), { min: 0, max: 64 });
  if (o.asyncTimeout !== undefined)
    o.asyncTimeout = parseInteger('--async-timeout', String(o.asyncTimeout), { min: 1, max: 86400 });
  return { positional, options: o };
}

/** The archive location, required by every WAL command. */
export function archiveOf(o: WalOptions): string {
  if (!o.archive)
    throw new UsageError(
      '--archive is required',
      'Give the archive directory or URI that "dbbackup pitr enable" set up.',
    );
  return o.archive;
}

/** `--target-timeline current|latest|N`. */
export function parseTimelineChoice(value: string | undefined, fallback: TimelineChoice): TimelineChoice {
  if (value === undefined) return fallback;
  if (value === 'current' || value === 'latest') return value;
  return parseInteger('--target-timeline', value, { min: 1, max: 0xffffffff });
}
