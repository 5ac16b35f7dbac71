import { DbBackupError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';

/**
 * `restore_command`'s exit status for everything except "not in the archive". PostgreSQL takes
 * any status above 125 as fatal and stops recovery; any other non-zero status means "no such
 * file", and recovery then ends there and promotes — with the WAL after it silently lost. 126 and
 * 127 would be logged as "command not executable / not found", so 128: the server logs "child
 * process exited with exit code 128" right after dbbackup's own line saying why.
 */
export const FETCH_FATAL_EXIT = ExitCode.WalFetchFatal;

/** A WAL file that does not belong in this archive: pushing it again will not help. */
export class WalRefusedError extends DbBackupError {}

/** A fetch found nothing under this name: the only failure `restore_command` may report as exit 1. */
export class WalNotFoundError extends DbBackupError {
  constructor(message: string) {
    super(message, { exitCode: ExitCode.Failure });
  }
}
