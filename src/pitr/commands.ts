import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EncryptionFlags } from '../crypto/index.js';
import { isCloudUri } from '../storage/cloud-uri.js';

/**
 * The `archive_command` and `restore_command` dbbackup writes into a server's configuration. They
 * run under `sh -c` as the server's OS user, in the data directory, with the server's environment:
 * so every program and file is an absolute path, and nothing relies on PATH or the caller's
 * working directory. Pure, apart from locating this installation.
 */

/** The Node binary and CLI script of this installation, as absolute paths. */
export function installation(): { node: string; cli: string } {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // dist/pitr/commands.js → bin/dbbackup.js
  return { node: process.execPath, cli: path.resolve(here, '../../bin/dbbackup.js') };
}

/** A POSIX shell word: single-quoted, with `%` doubled because PostgreSQL expands %p, %f and %%. */
export function shellWord(value: string): string {
  return `'${value.replaceAll("'", `'\\''`).replaceAll('%', '%%')}'`;
}

export interface WalCommandSpec {
  node: string;
  cli: string;
  archive: string;
  /** Key options, paths already absolute (e.g. ['--encryption-key-file', '/etc/…']). */
  keyArgs: string[];
  envFile?: string;
  /** Async push through a spool directory (and prefetching fetch). */
  spoolDir?: string;
  asyncPush?: boolean;
  prefetch?: number;
}

/** The key options as archive_command (push) or restore_command (fetch) passes them, paths absolute. */
export function keyArgs(flags: EncryptionFlags, use: 'push' | 'fetch'): string[] {
  const args: string[] = [];
  if (flags.encryptionKeyFile) args.push('--encryption-key-file', path.resolve(flags.encryptionKeyFile));
  if (flags.encryptionKeyEnv) args.push('--encryption-key-env', flags.encryptionKeyEnv);
  if (use === 'push') {
    for (const r of flags.recipient ?? []) args.push('--recipient', r);
    for (const f of flags.recipientsFile ?? []) args.push('--recipients-file', path.resolve(f));
  } else for (const f of flags.identityFile ?? []) args.push('--identity-file', path.resolve(f));
  if (flags.insecureKeyFile) args.push('--insecure-key-file');
  return args;
}

/** What a WAL command written into the server's configuration needs, from the user's options. */
export function walCommandSpec(
  o: {
    archive: string;
    flags: EncryptionFlags;
    envFile?: string;
    spoolDir?: string;
    asyncPush?: boolean;
    prefetch?: number;
  },
  use: 'push' | 'fetch',
): WalCommandSpec {
  const { node, cli } = installation();
  const absolute = (f: string | undefined): string | undefined =>
    f === undefined ? undefined : path.resolve(f);
  return {
    node,
    cli,
    archive: isCloudUri(o.archive) ? o.archive : path.resolve(o.archive),
    keyArgs: keyArgs(o.flags, use),
    envFile: absolute(o.envFile),
    spoolDir: absolute(o.spoolDir),
    asyncPush: use === 'push' ? o.asyncPush : undefined,
    prefetch: use === 'fetch' ? o.prefetch : undefined,
  };
}

function common(spec: WalCommandSpec): string[] {
  const words = ['--archive', spec.archive, ...spec.keyArgs];
  if (spec.envFile) words.push('--env-file', spec.envFile);
  return words;
}

/** archive_command: `'node' 'cli' wal push %p --archive '…' …`. */
export function archiveCommandFor(spec: WalCommandSpec): string {
  const words = common(spec);
  if (spec.asyncPush && spec.spoolDir) words.push('--async', '--spool-dir', spec.spoolDir);
  return [shellWord(spec.node), shellWord(spec.cli), 'wal', 'push', '%p', ...words.map(shellWord)].join(' ');
}

/** restore_command: `'node' 'cli' wal fetch %f %p --archive '…' …`. */
export function restoreCommandFor(spec: WalCommandSpec): string {
  const words = common(spec);
  if (spec.prefetch && spec.spoolDir)
    words.push('--prefetch', String(spec.prefetch), '--spool-dir', spec.spoolDir);
  return [
    shellWord(spec.node),
    shellWord(spec.cli),
    'wal',
    'fetch',
    '%f',
    '%p',
    ...words.map(shellWord),
  ].join(' ');
}

/** Whether an archive_command is one dbbackup wrote. */
export function isDbbackupArchiveCommand(command: string): boolean {
  return /\bwal (push|archive)\b/.test(command) && /dbbackup/.test(command);
}

/** The words of a command written by archiveCommandFor, unquoted (for reading back --archive, keys…). */
export function commandWords(command: string): string[] {
  const words: string[] = [];
  const re = /'((?:[^']|'\\'')*)'|(\S+)/g;
  for (let m = re.exec(command); m; m = re.exec(command)) {
    const quoted = m[1];
    words.push(quoted !== undefined ? quoted.replaceAll(`'\\''`, "'").replaceAll('%%', '%') : (m[2] ?? ''));
  }
  return words;
}

/** The value of `--flag` in a command written by dbbackup. */
export function commandOption(command: string, flag: string): string | undefined {
  const words = commandWords(command);
  const i = words.indexOf(flag);
  return i >= 0 ? words[i + 1] : undefined;
}
