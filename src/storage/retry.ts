import { setTimeout as sleep } from 'node:timers/promises';
import { backoff, isTimeout, requestLimits, type RequestLimits } from './transport.js';

/**
 * The one retry loop of the storage layer, around a request whose body is still in memory (an S3
 * part, an Azure block): re-sending it costs nothing. Each request already goes through its SDK's
 * own attempts (bounded by transport.ts's limits); this loop adds whole-request attempts only for
 * answers the backend calls transient, never for timeouts (the SDK already waited those out
 * `attempts` times) and never once the caller aborted or the command was interrupted (`backoff`
 * rejects then), so SIGINT/SIGTERM still end a command promptly.
 */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Whether this failure is worth another attempt (the backend reads its SDK's error). */
  transient(err: unknown): boolean;
  /** Aborted: the other parts failed, give up at once. */
  signal?: AbortSignal;
  limits?: RequestLimits;
  /** A fixed pause between attempts (unit tests); otherwise transport.ts's backoff with jitter. */
  delayMs?: number;
}

export async function withRetries<T>(request: () => Promise<T>, policy: RetryPolicy): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await request();
    } catch (err) {
      if (policy.signal?.aborted || attempt >= policy.attempts || !policy.transient(err) || isTimeout(err))
        throw err;
      if (policy.delayMs === undefined) await backoff(policy.limits ?? requestLimits(), attempt);
      else await sleep(policy.delayMs);
      if (policy.signal?.aborted) throw err;
    }
  }
}
