import type { Command } from 'commander';
import { ExitCode } from '../exit-codes.js';

/**
 * Standard output that cannot be written — a reader that went away (`list backups | head -1`), a
 * full disk (`> /dev/full`) — must neither crash dbbackup with a stack trace nor turn a stored backup
 * into a failure. The first write error is remembered; the command goes on and decides the exit.
 */
let lost: NodeJS.ErrnoException | undefined;
let command = '';

/** Commands whose output is all they produce: losing it is their failure. */
const REPORTS = new Set([
  'list',
  'list backups',
  'restore list',
  'status',
  'version',
  'verify-backup',
  'preflight',
  'cloud list',
  'cloud verify',
  'cloud doctor',
]);

export function guardStdout(program: Command): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    lost ??= err;
  });
  program.hook('preAction', (_program, action) => {
    const names: string[] = [];
    for (let c: Command | null = action; c?.parent; c = c.parent) names.unshift(c.name());
    command = names.join(' ');
  });
}

/**
 * The exit code, given the command's own. A reader that stopped reading (EPIPE) wanted no more:
 * nothing to say. Any other loss is said on stderr; it fails a command whose output is its result,
 * and leaves the result of one that did something (a backup stored, backups deleted) as it is.
 */
export async function exitAfterOutput(code: number): Promise<number> {
  // A failed write is reported on a later tick: let it arrive.
  await new Promise((resolve) => setImmediate(resolve));
  if (!lost || lost.code === 'EPIPE') return code;
  const fails = code === 0 && REPORTS.has(command);
  process.stderr.write(
    `dbbackup: ${fails ? 'error' : 'warning'}: standard output could not be written (${lost.code ?? lost.message}): what ${command || 'the command'} printed there is lost${fails ? '' : '; its exit status is its own'}\n`,
  );
  return fails ? ExitCode.Failure : code;
}
