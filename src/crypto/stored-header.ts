import {
  describeUnlockOptions,
  EncryptionKeyError,
  headerLengthOf,
  isEncrypted,
  parseHeader,
  unlockHeader,
  type EncryptionDescription,
  type EncryptionHeader,
  type KeyProtector,
  type KeyUnlocker,
} from './index.js';
import type { Storage } from '../storage/storage.js';

/** Enough for any header dbbackup writes (one stanza is at most 115 bytes); longer ones take a second read. */
const FIRST_READ = 64 * 1024;

async function readRange(storage: Storage, key: string, start: number, end: number): Promise<Buffer> {
  const stream = await storage.get(key, { start, end });
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The encryption header at the start of a stored object, or undefined when the object is not
 * encrypted. Reads only the header. Throws IntegrityError for a damaged or truncated header.
 */
export async function readStoredHeader(storage: Storage, key: string): Promise<EncryptionHeader | undefined> {
  const first = await readRange(storage, key, 0, FIRST_READ - 1);
  if (!isEncrypted(first)) return undefined;
  const length = headerLengthOf(first);
  const bytes =
    length !== undefined && length > first.length ? await readRange(storage, key, 0, length - 1) : first;
  return parseHeader(bytes).header;
}

/** `location` is encrypted and needs a key: none was given (→ the hint says which would open it). */
export function noKeyError(
  location: string,
  header: EncryptionHeader,
  why: string,
  moreHint = '',
): EncryptionKeyError {
  return new EncryptionKeyError(`${location} is encrypted and ${why} needs its key`, {
    hint: `${describeUnlockOptions(header)}${moreHint ? ` ${moreHint}` : ''}`,
  });
}

/**
 * Checks that `unlockers` open `header` (and its MAC), before any long work starts. Key errors
 * name the backup; the data key is wiped at once.
 */
export async function checkUnlocks(
  location: string,
  header: EncryptionHeader,
  unlockers: readonly KeyUnlocker[],
  why: string,
  moreHint = '',
): Promise<void> {
  if (!unlockers.length) throw noKeyError(location, header, why, moreHint);
  try {
    (await unlockHeader(header, unlockers)).fill(0);
  } catch (err) {
    if (err instanceof EncryptionKeyError) {
      const message = err.message.replace(/^The backup is encrypted and /, '');
      throw new EncryptionKeyError(`${location}: ${message}`, { hint: err.hint, cause: err });
    }
    throw err;
  }
}

/** A one-line description of how a backup is protected: "key 7860504a4cf4b513, recipient age1…". */
export function describeProtections(encryption: EncryptionDescription | null | undefined): string {
  if (!encryption) return 'not encrypted';
  return encryption.protections
    .map((p) => {
      switch (p.kind) {
        case 'key':
          return `key ${p.keyId}`;
        case 'passphrase':
          return 'passphrase';
        case 'recipient':
          return `recipient ${p.recipient}`;
        case 'unknown':
          return `protection type ${p.type}`;
      }
    })
    .join(', ');
}

/** The same for protectors about to be applied. */
export function describeProtectors(protectors: readonly KeyProtector[]): string {
  return protectors
    .map((p) =>
      p.kind === 'x25519' ? `recipient ${p.description}` : p.kind === 'scrypt' ? 'passphrase' : p.description,
    )
    .join(', ');
}
