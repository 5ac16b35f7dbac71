import type { Command } from 'commander';
import { DbBackupError, errorMessage } from '../errors.js';
import { out } from './context.js';
import { walExitCode } from './wal-main.js';

/** What the archive_command / restore_command leaves of `wal` share. */

/** The same code the lean entry point returns, through the full CLI's error report. */
export async function asWalCommand(
  command: string,
  run: () => Promise<string>,
  verbose?: boolean,
): Promise<void> {
  try {
    const message = await run();
    if (verbose) out.note(`dbbackup: ${message}`);
  } catch (err) {
    const code = walExitCode(command, err);
    if (err instanceof DbBackupError && err.exitCode === code) throw err;
    throw new DbBackupError(errorMessage(err), {
      exitCode: code,
      hint: err instanceof DbBackupError ? err.hint : undefined,
      details: err instanceof DbBackupError ? err.details : [],
      cause: err,
    });
  }
}

export function walOptions(cmd: Command): Command {
  return cmd
    .option('--archive <dir|uri>', 'the WAL archive')
    .option('--env-file <file>', 'KEY=VALUE file with cloud credentials (mode 0600)')
    .option('--verbose', 'say what was done on stderr');
}
