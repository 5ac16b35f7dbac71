/**
 * Every exit code dbbackup uses, in one table (docs: README "Exit codes"). Code that ends a run
 * names one of these instead of writing a number, so the table and the behaviour cannot drift.
 */
export const ExitCode = {
  /** Everything asked for happened. */
  Ok: 0,
  /** A failure: the message says what happened and what was (or was not) kept. */
  Failure: 1,
  /** Bad usage: unknown option, malformed value, missing argument. Nothing was changed. */
  Usage: 2,
  /** `backup cluster --allow-partial` finished with some databases missing (recorded as partial). */
  Partial: 3,
  /** A bug in dbbackup (an error that is not a DbBackupError): please report it. */
  Internal: 70,
  /** Another run holds the lock on the same target: EX_TEMPFAIL of sysexits.h, "try again later". */
  Locked: 75,
  /**
   * `wal fetch` only: a segment that exists but cannot be trusted. PostgreSQL logs 126/127 as
   * "command not executable / not found", so 128: recovery stops instead of treating it as the end.
   */
  WalFetchFatal: 128,
  /** Stopped by SIGINT or SIGTERM; the message says what was stopped and cleaned up. */
  Interrupted: 130,
  /** `wal push`/`wal fetch` killed by SIGTERM (128 + 15), as PostgreSQL expects of an archiver. */
  Terminated: 143,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];
