import { ExitCode } from './exit-codes.js';
import { maskSecrets, secrets } from './secrets.js';

/**
 * Every failure a user can see is a DbBackupError: a one-line message saying what went wrong,
 * a hint saying what to do about it, and the process exit code to use.
 */
export class DbBackupError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: number;
  /** Extra lines (for example the relevant stderr of a child process) shown under the message. */
  readonly details: string[];

  constructor(
    message: string,
    opts: { hint?: string; exitCode?: number; details?: string[]; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? ExitCode.Failure;
    this.details = opts.details ?? [];
  }
}

/** Bad command-line input: unknown option values, missing arguments. Exit code 2, like most CLIs. */
export class UsageError extends DbBackupError {
  constructor(message: string, hint?: string) {
    super(message, { hint, exitCode: ExitCode.Usage });
  }
}

/** The database server could not be reached or refused us. */
export class ConnectionError extends DbBackupError {}

/** A dump or restore tool failed, or produced output we cannot trust. */
export class ToolError extends DbBackupError {}

/** A required program is missing or too old. */
export class MissingToolError extends DbBackupError {}

/** A backup's bytes do not match its metadata, or the metadata is missing or invalid. */
export class IntegrityError extends DbBackupError {}

/** A storage backend failed (disk full, permission denied, object missing). */
export class StorageError extends DbBackupError {}

/** The operation would change something the user did not explicitly allow. */
export class SafetyError extends DbBackupError {}

/** Stopped by SIGINT/SIGTERM: the message says what was stopped and cleaned up. Exit 130, as backup. */
export class InterruptedError extends DbBackupError {
  constructor(message: string, opts: { hint?: string; details?: string[] } = {}) {
    super(message, { ...opts, exitCode: ExitCode.Interrupted });
  }
}

/**
 * Exit code of a run refused because another run holds the lock on the same target (src/locks/):
 * 75 is EX_TEMPFAIL of sysexits.h, "try again later", which is what the refused run should do.
 */
export const LOCKED_EXIT_CODE = ExitCode.Locked;

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Node system errors carry a `code` such as ENOENT; this narrows unknown errors safely. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/*
 * The secrets to mask live in src/secrets.ts (one registry with a clear API); these names stay for
 * the modules that still use them.
 */
export { maskSecrets };

/** A secret read at run time (a password or passphrase file), so that error reports mask it too. */
export function rememberSecret(value: string): void {
  secrets.remember(value);
}

export function rememberedSecrets(): string[] {
  return secrets.list();
}
