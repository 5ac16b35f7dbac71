import { describe, expect, it } from 'vitest';
import { DbBackupError, StorageError, ToolError } from '../../src/errors.js';
import { storageFailure, onceUntilDone, type Classifier } from '../../src/storage/failure.js';
import { withRetries } from '../../src/storage/retry.js';
import { IdleTimeoutError, requestLimits, type Agents } from '../../src/storage/transport.js';

/**
 * The two pieces every backend shares: one way a failure becomes the message the user reads, and
 * one retry loop. Each backend's own classifier is tested with its SDK's errors in
 * *-config.test.ts; here the rules that hold for all of them.
 */
const classifier: Classifier = {
  diagnose: (err, action) => {
    const status = (err as { status?: number }).status;
    if (status === 404 && action === 'read') return { text: 'no such key', kind: 'object-missing' };
    if (status === 403) return { text: `denied (HTTP 403)`, kind: 'auth' };
    return { text: err instanceof Error ? err.message : 'unknown error' };
  },
  hints: { auth: 'Check the credentials.', 'object-missing': 'Check the name.' },
  missing: (where) => `Not found: ${where}`,
};

/** Agents whose last attempt timed out (as transport.ts records it), or not. */
function agentsWith(timeout?: IdleTimeoutError): Agents {
  let last = timeout;
  return {
    takeTimeout: () => {
      const t = last;
      last = undefined;
      return t;
    },
  } as Agents;
}

describe('storageFailure: one message shape for every backend', () => {
  it('"Could not <action> <where>: <cause>" with the hint of the kind the backend names', () => {
    const err = storageFailure(Object.assign(new Error('x'), { status: 403 }), 'upload', 's3://b/p/k', {
      classifier,
    });
    expect(err).toBeInstanceOf(StorageError);
    expect(err.message).toBe('Could not upload s3://b/p/k: denied (HTTP 403)');
    expect(err.hint).toBe('Check the credentials.');
  });

  it('a missing object is "not found" in the backend\'s words, even after an earlier attempt timed out', () => {
    const agents = agentsWith(new IdleTimeoutError('http://e', 2000));
    const err = storageFailure({ status: 404 }, 'read', 'gs://b/k', { classifier, agents });
    expect(err.message).toBe('Not found: gs://b/k');
    expect(err.hint).toBe('Check the name.');
  });

  it('an attempt that timed out is reported as such, naming the endpoint, the wait and the attempts', () => {
    const agents = agentsWith(new IdleTimeoutError('http://127.0.0.1:9', 2000));
    const err = storageFailure(new Error('socket hang up'), 'list', 'azure://c/p/', {
      classifier,
      agents,
      limits: requestLimits(2),
    });
    expect(err.message).toBe(
      'Could not list azure://c/p/: no answer from http://127.0.0.1:9 within 2 s (3 attempts at most)',
    );
    expect(err.hint).toMatch(/--cloud-timeout/);
  });

  it('masks every secret of four characters or more, anywhere in the message', () => {
    const key = 'c2VjcmV0LWtleQ==';
    const err = storageFailure(new Error(`signature for ${key} does not match`), 'read', 'azure://c/k', {
      classifier,
      secrets: [key, 'ab', ''],
    });
    expect(err.message).toBe('Could not read azure://c/k: signature for **** does not match');
  });

  it("an upstream DbBackupError (the dump's, a checksum's) passes through unchanged", () => {
    const upstream = new ToolError('pg_dump: error: connection lost', { hint: 'check the server' });
    expect(storageFailure(upstream, 'upload', 'x', { classifier })).toBe(upstream);
  });
});

describe('withRetries: the one retry loop (parts and blocks whose bytes are in memory)', () => {
  const busy = (): Error => Object.assign(new Error('busy'), { transient: true });
  const transient = (err: unknown): boolean => (err as { transient?: boolean }).transient === true;

  it('retries a transient failure up to the attempts, then gives up with the last error', async () => {
    let calls = 0;
    const ok = await withRetries(
      async () => {
        if (++calls < 3) throw busy();
        return 'done';
      },
      { attempts: 3, transient, delayMs: 1 },
    );
    expect([ok, calls]).toEqual(['done', 3]);
    calls = 0;
    await expect(
      withRetries(
        async () => {
          calls++;
          throw busy();
        },
        { attempts: 2, transient, delayMs: 1 },
      ),
    ).rejects.toThrow('busy');
    expect(calls).toBe(2);
  });

  it('never retries a refusal, a timeout (the SDK already waited it out) or an aborted upload', async () => {
    for (const [err, signal] of [
      [new DbBackupError('denied'), undefined],
      [Object.assign(new IdleTimeoutError('e', 1000), { transient: true }), undefined],
      [busy(), AbortSignal.abort()],
    ] as const) {
      let calls = 0;
      await expect(
        withRetries(
          async () => {
            calls++;
            throw err;
          },
          { attempts: 5, transient, delayMs: 1, signal },
        ),
      ).rejects.toBe(err);
      expect(calls).toBe(1);
    }
  });
});

describe('onceUntilDone: bucket and container set-up', () => {
  it('runs once for concurrent callers; a failure is forgotten so the next call tries again', async () => {
    let calls = 0;
    let fail = true;
    const ensure = onceUntilDone(async () => {
      calls++;
      await Promise.resolve();
      if (fail) throw new Error('not yet');
    });
    await expect(Promise.all([ensure(), ensure()])).rejects.toThrow('not yet');
    expect(calls).toBe(1);
    fail = false;
    await Promise.all([ensure(), ensure()]);
    await ensure();
    expect(calls).toBe(2);
  });
});
