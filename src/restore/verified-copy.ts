import { bytesMismatch, type ExpectedBytes } from '../catalog/metadata.js';
import type { DetectedFormat } from '../catalog/format.js';
import { InterruptedError } from '../errors.js';
import type { ByteMeter } from '../pipeline/progress.js';
import type { Storage } from '../storage/storage.js';
import { checkStored } from '../verify/checksum.js';
import { decompressToTemp, type TempCopy } from './feed.js';
import type { RestorePlan } from './plan.js';

/**
 * The temporary copy a `restore --jobs N` needs, made in the same read that verifies the backup's
 * checksum, before the target is created or dropped.
 *
 * Why one read: the copy used to be decoded after a separate SHA-256 pass, so every --jobs restore read
 * the backup twice — from a bucket, downloaded twice. Now the stored bytes are hashed on their way
 * into the decompressor; the copy is used only if they match the metadata, and removed otherwise.
 * Size and the `.sha256` sidecar are checked first (no read). A decoding failure is re-examined by
 * a full checksum read, so a damaged backup is reported as damaged rather than as a decompressor
 * error — the same order as verify-backup's.
 */
export async function verifiedCopy(
  storage: Storage,
  key: string,
  detected: DetectedFormat,
  plan: RestorePlan,
  o: {
    expected: ExpectedBytes | undefined;
    workdir: string | undefined;
    meter: ByteMeter;
    signal: AbortSignal | undefined;
    /** The error for bytes that are not the recorded ones. */
    corrupt: (problem: string) => Error;
    /** The message of an interrupt (nothing was changed yet). */
    interrupted: string;
  },
): Promise<TempCopy> {
  const expected = plan.checksum === 'to verify' ? o.expected : undefined;
  if (expected) {
    const quick = await checkStored(storage, key, expected, { read: false });
    if (quick.state !== 'valid') throw o.corrupt(quick.problem);
  }
  let copy: TempCopy;
  try {
    copy = await decompressToTemp(storage, key, detected, plan, o.workdir, o.meter, o.signal);
  } catch (err) {
    if (o.signal?.aborted) throw new InterruptedError(o.interrupted);
    if (expected) {
      const full = await checkStored(storage, key, expected, { read: true });
      if (full.state !== 'valid') throw o.corrupt(full.problem);
    }
    throw err;
  }
  const problem =
    expected &&
    (copy.stored.sha256 === null || copy.stored.bytes === null
      ? 'the backup was not read to its end'
      : bytesMismatch(expected, { bytes: copy.stored.bytes, sha256: copy.stored.sha256 }));
  if (problem) {
    await copy.cleanup();
    throw o.corrupt(problem);
  }
  return copy;
}
