import { DbBackupError, StorageError, errorMessage } from '../errors.js';
import { TIMEOUT_HINT, requestLimits, timeoutText, type Agents, type RequestLimits } from './transport.js';

/**
 * One way for every backend to turn a failure into a StorageError: "Could not <action> <where>:
 * <cause>" with a hint, the endpoint named, secrets masked, a timed-out attempt reported as such.
 * What differs per backend is only how its SDK's errors read (a `Classifier`) and the words of its
 * hints (its credential sources, its bucket-creation command).
 */

/** What went wrong, in terms every backend shares; each backend words the hint for each kind. */
export type FailureKind =
  /** The bucket or container does not exist. */
  | 'bucket-missing'
  /** The object does not exist (reported as "not found", not as "Could not …"). */
  | 'object-missing'
  /** Credentials missing, wrong, expired, or not allowed to do this. */
  | 'auth'
  /** The endpoint could not be reached (refused, reset, no DNS, timed out). */
  | 'unreachable'
  /** The server refused the request's size. */
  | 'too-large'
  /** The bucket is in another region. */
  | 'region'
  /** The stored object's checksum differs from the data sent. */
  | 'corrupt'
  /** No space left on the device, or the quota is used up. */
  | 'no-space'
  | 'quota'
  /** The file system (or the place) is read-only. */
  | 'read-only'
  /** A path that does not exist. */
  | 'path'
  /** Another writer took the name at the same moment. */
  | 'conflict';

export interface Diagnosis {
  /** One line of cause, in the provider's words where they help. */
  text: string;
  kind?: FailureKind;
  /** A hint that depends on the error itself (the directory it names), instead of the kind's. */
  hint?: string;
}

/** What a backend supplies: how to read its SDK's errors, and the hint for each kind it can name. */
export interface Classifier {
  /** `action` is what was attempted ('read', 'upload', 'list' …): a bare 404 means different things. */
  diagnose(err: unknown, action: string): Diagnosis;
  hints: Partial<Record<FailureKind, string>>;
  /** How this backend has always worded a missing object (kept: tests and users read it). */
  missing(where: string): string;
}

/** The text and hint a classifier gives for an error (no location, no masking). */
export function describeFailure(
  classifier: Classifier,
  err: unknown,
  action = '',
): { text: string; hint?: string } {
  const d = classifier.diagnose(err, action);
  return { text: d.text, hint: hintOf(classifier, d) };
}

function hintOf(classifier: Classifier, d: Diagnosis): string | undefined {
  return d.hint ?? (d.kind ? classifier.hints[d.kind] : undefined);
}

/** Everything about one store that its failures need. */
export interface FailureContext {
  classifier: Classifier;
  /** The timed sockets the request went through (their last timeout names the cause best). */
  agents?: Agents;
  limits?: RequestLimits;
  /** Values masked out of every message: keys, SAS tokens, connection strings. */
  secrets?: readonly string[];
}

/** Secrets shorter than this are not masked: replacing every 'a' in a message helps nobody. */
const MIN_SECRET = 4;

function mask(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s.length >= MIN_SECRET) out = out.split(s).join('****');
  return out;
}

/**
 * The attempt ran out of time on one of `agents`' sockets: the one message every backend gives for
 * it (network errors name it poorly, e.g. "socket hang up"). Undefined if none timed out.
 */
export function timedOut(
  err: unknown,
  action: string,
  where: string,
  agents: Agents | undefined,
  limits: RequestLimits = requestLimits(),
): StorageError | undefined {
  const timeout = agents?.takeTimeout();
  if (!timeout) return undefined;
  return new StorageError(`Could not ${action} ${where}: ${timeoutText(timeout, limits)}`, {
    hint: TIMEOUT_HINT,
    cause: err,
  });
}

/**
 * A failed request as the error the user sees. Errors raised upstream (a failed dump, a bad
 * checksum, one of ours) keep their own message and hint.
 */
export function storageFailure(
  err: unknown,
  action: string,
  where: string,
  ctx: FailureContext,
): DbBackupError {
  if (err instanceof DbBackupError) return err;
  const d = ctx.classifier.diagnose(err, action);
  const hint = hintOf(ctx.classifier, d);
  // The server answered "no such object": an earlier attempt's timeout is not the cause.
  if (d.kind === 'object-missing')
    return new StorageError(ctx.classifier.missing(where), { hint, cause: err });
  const late = timedOut(err, action, where, ctx.agents, ctx.limits);
  if (late) return late;
  return new StorageError(mask(`Could not ${action} ${where}: ${d.text}`, ctx.secrets), { hint, cause: err });
}

/** Refusing to replace an object (PutOptions.noOverwrite): the same words on every backend. */
export function alreadyExists(where: string): StorageError {
  return new StorageError(`${where} already exists`, { hint: 'Choose another name or remove it first.' });
}

/** The first line of an error's message, trimmed ('' if none). */
export function firstLine(err: unknown): string {
  return (errorMessage(err).split('\n')[0] ?? '').trim();
}

/**
 * Run `create` once per store, sharing it among concurrent callers (the data and its sidecars);
 * a failure is not remembered, so the next call tries again.
 */
export function onceUntilDone(create: () => Promise<void>): () => Promise<void> {
  let ready: Promise<void> | undefined;
  return () => {
    ready ??= create().catch((err: unknown) => {
      ready = undefined;
      throw err;
    });
    return ready;
  };
}
