import { bech32Decode, bech32Encode } from './bech32.js';
import { EncryptionKeyError } from './errors.js';
import { KEY_BYTES } from './primitives.js';

/** Recipients and identities use age's encodings, so `age-keygen` output works with dbbackup and back. */
export const RECIPIENT_HRP = 'age';
export const IDENTITY_HRP = 'AGE-SECRET-KEY-';

/** `age1…`: the bech32 encoding of a 32-byte X25519 public key. */
export function formatRecipient(publicKey: Buffer): string {
  return bech32Encode(RECIPIENT_HRP, publicKey);
}

/** `AGE-SECRET-KEY-1…`: the upper-case bech32 encoding of a 32-byte X25519 private key. */
export function formatIdentity(privateKey: Buffer): string {
  return bech32Encode(IDENTITY_HRP, privateKey);
}

/** The 32-byte public key of an `age1…` recipient; EncryptionKeyError if it is not one. */
export function parseRecipient(text: string, source = 'recipient'): Buffer {
  const trimmed = text.trim();
  const decoded = bech32Decode(trimmed);
  if (!decoded || decoded.hrp !== RECIPIENT_HRP || decoded.data.length !== KEY_BYTES) {
    const shown = trimmed.length > 24 ? `${trimmed.slice(0, 24)}…` : trimmed;
    throw new EncryptionKeyError(`${source} "${shown}" is not a valid X25519 recipient`, {
      hint:
        trimmed.startsWith(IDENTITY_HRP) || trimmed.startsWith(IDENTITY_HRP.toLowerCase())
          ? 'That is a secret identity, not a recipient: never put it on the backup host. Use the "age1…" public key printed by "dbbackup keygen".'
          : 'A recipient looks like "age1…" (62 characters), as printed by "dbbackup keygen" or age-keygen.',
    });
  }
  return decoded.data;
}

/** The 32-byte private key of an `AGE-SECRET-KEY-1…` identity, or undefined if it is not one. */
export function parseIdentity(text: string): Buffer | undefined {
  const decoded = bech32Decode(text.trim());
  if (!decoded || decoded.hrp !== IDENTITY_HRP.toLowerCase() || decoded.data.length !== KEY_BYTES)
    return undefined;
  return decoded.data;
}
