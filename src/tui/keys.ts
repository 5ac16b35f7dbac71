import {
  DEFAULT_SCRYPT,
  passphraseProtector,
  passphraseUnlocker,
  protectorsFromFlags,
  unlockersFromFlags,
  type KeyProtector,
  type KeyUnlocker,
} from '../crypto/index.js';
import { secrets } from '../secrets.js';

/**
 * A key the user gave on a screen: a key file's path, or a passphrase typed (masked) into the UI.
 * Resolved by the same functions as the CLI's --encryption-key-file / --passphrase-file
 * (src/crypto/keys.ts); a typed passphrase is remembered as a secret, so no log line, error or
 * audit record can show it.
 */
export interface KeyEntry {
  file: string;
  passphrase: string;
}

export const NO_KEY: KeyEntry = { file: '', passphrase: '' };

export const hasKey = (k: KeyEntry | undefined): boolean => Boolean(k?.file.trim() || k?.passphrase);

function remember(k: KeyEntry): Buffer | undefined {
  if (!k.passphrase) return undefined;
  secrets.remember(k.passphrase);
  return Buffer.from(k.passphrase, 'utf8');
}

/** What a backup is encrypted for; undefined: not encrypted. */
export async function protectorsFor(k: KeyEntry | undefined): Promise<KeyProtector[] | undefined> {
  if (!k || !hasKey(k)) return undefined;
  const file = k.file.trim();
  const protectors = file ? await protectorsFromFlags({ encryptionKeyFile: file }, {}) : [];
  const phrase = remember(k);
  if (phrase) protectors.push(await passphraseProtector(phrase, DEFAULT_SCRYPT));
  return protectors;
}

/**
 * The keys that may unlock an encrypted backup: those given here, plus the environment key
 * (DBBACKUP_ENCRYPTION_KEY), exactly as the CLI's restore and verify read them.
 */
export async function unlockersFor(k: KeyEntry | undefined): Promise<KeyUnlocker[]> {
  const file = k?.file.trim();
  const unlockers = await unlockersFromFlags(file ? { encryptionKeyFile: file } : {});
  const phrase = k ? remember(k) : undefined;
  if (phrase) unlockers.push(passphraseUnlocker(phrase, 'passphrase typed in the UI'));
  return unlockers;
}
