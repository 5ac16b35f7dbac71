import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import { formatRecipient } from './encoding.js';
import { EncryptionKeyError } from './errors.js';
import { verifyHeaderMac, type EncryptionHeader, type ScryptStanza, type Stanza } from './format.js';
import {
  hkdf,
  KEY_BYTES,
  LABEL,
  unwrapKey,
  wrapKey,
  x25519KeyPair,
  x25519PublicOf,
  x25519Shared,
} from './primitives.js';

export type ProtectionKind = 'key' | 'scrypt' | 'x25519';

/** Protects a backup's data key: each protector adds one stanza to the header. */
export interface KeyProtector {
  readonly kind: ProtectionKind;
  /** Safe to print or record: a key id, "passphrase", or a recipient; never key material. */
  readonly description: string;
  wrap(dataKey: Buffer): Stanza;
}

/** Tries to recover a backup's data key from the header's stanzas. */
export interface KeyUnlocker {
  readonly kind: ProtectionKind;
  /** Names the source for messages: "key in /etc/dbbackup.key", "passphrase in …", "identity in …". */
  readonly label: string;
  /**
   * The data key, or undefined when no stanza is for this key. Throws IntegrityError when a
   * stanza that is for this key (same key id, passphrase check or recipient) does not open.
   */
  unlock(stanzas: readonly Stanza[]): Promise<Buffer | undefined>;
}

const EMPTY = Buffer.alloc(0);
const DAMAGED_HINT =
  'The backup file was damaged or modified after it was written; use another copy of the backup.';

function stanzaDamaged(what: string): IntegrityError {
  return new IntegrityError(`Encrypted backup header is damaged: ${what}`, { hint: DAMAGED_HINT });
}

function requireKey(key: Buffer, what: string): void {
  if (key.length !== KEY_BYTES) throw new RangeError(`${what} must be ${KEY_BYTES} bytes, got ${key.length}`);
}

/** The 8-byte id recorded with a symmetric key's stanza (and in metadata); it reveals nothing else. */
export function keyId(key: Buffer): Buffer {
  requireKey(key, 'an encryption key');
  return hkdf(key, EMPTY, LABEL.keyId, 8);
}

/** Wraps under a 32-byte symmetric key. */
export function keyProtector(key: Buffer): KeyProtector {
  requireKey(key, 'an encryption key');
  const secret = Buffer.from(key);
  const id = keyId(secret);
  return {
    kind: 'key',
    description: `key ${id.toString('hex')}`,
    wrap(dataKey) {
      const wrapSalt = randomBytes(16);
      const wrapped = wrapKey(hkdf(secret, wrapSalt, LABEL.keyWrap, KEY_BYTES), dataKey);
      return { kind: 'key', keyId: Buffer.from(id), wrapSalt, wrapped };
    },
  };
}

export function keyUnlocker(key: Buffer, label = 'key'): KeyUnlocker {
  requireKey(key, 'an encryption key');
  const secret = Buffer.from(key);
  const id = keyId(secret);
  return {
    kind: 'key',
    label,
    async unlock(stanzas) {
      const candidates = stanzas.filter((s) => s.kind === 'key');
      const matching = candidates.filter((s) => s.keyId.equals(id));
      // Stanzas whose id differs are tried too (it is cheap): if one opens, its id was altered,
      // and the header MAC check that follows reports the modification instead of "wrong key".
      for (const s of [...matching, ...candidates.filter((c) => !matching.includes(c))]) {
        const dataKey = unwrapKey(hkdf(secret, s.wrapSalt, LABEL.keyWrap, KEY_BYTES), s.wrapped);
        if (dataKey) return dataKey;
      }
      if (matching.length) throw stanzaDamaged(`the stanza for key ${id.toString('hex')} does not open`);
      return undefined;
    },
  };
}

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  logN: number;
  r: number;
  p: number;
}

/** 2^18 × 8 × 128 bytes = 256 MiB and about a second, like age. */
export const DEFAULT_SCRYPT: ScryptParams = { logN: 18, r: 8, p: 1 };
/** Readers refuse more than this much scrypt memory, so a crafted header cannot exhaust the host. */
const MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024;

function scryptMemory({ logN, r }: ScryptParams): number {
  return 128 * r * 2 ** logN;
}

function checkScryptParams(params: ScryptParams): string | undefined {
  const { logN, r, p } = params;
  if (!Number.isInteger(logN) || logN < 1 || logN > 30) return `logN ${logN} is outside 1..30`;
  if (!Number.isInteger(r) || r < 1 || r > 255) return `r ${r} is outside 1..255`;
  if (!Number.isInteger(p) || p < 1 || p > 255) return `p ${p} is outside 1..255`;
  if (scryptMemory(params) > MAX_SCRYPT_MEMORY || logN + Math.log2(r * p) > 30)
    return `logN ${logN}, r ${r}, p ${p} need more than ${MAX_SCRYPT_MEMORY / 2 ** 20} MiB or too much work`;
  return undefined;
}

function scrypt(passphrase: Buffer, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = {
    N: 2 ** params.logN,
    r: params.r,
    p: params.p,
    maxmem: scryptMemory(params) * 2 + 16 * 1024 * 1024,
  };
  const fullSalt = Buffer.concat([Buffer.from(LABEL.scryptSalt), salt]);
  return new Promise((resolve, reject) => {
    scryptCallback(passphrase, fullSalt, KEY_BYTES, options, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/**
 * Wraps under a passphrase. scrypt runs once, here (about a second with the defaults); each wrap
 * then uses a fresh random wrap salt, so one protector can safely serve many backups.
 */
export async function passphraseProtector(
  passphrase: Buffer,
  params: ScryptParams = DEFAULT_SCRYPT,
): Promise<KeyProtector> {
  if (passphrase.length === 0) throw new RangeError('the passphrase is empty');
  const problem = checkScryptParams(params);
  if (problem) throw new RangeError(`scrypt parameters: ${problem}`);
  const salt = randomBytes(16);
  const derived = await scrypt(passphrase, salt, params);
  const check = hkdf(derived, EMPTY, LABEL.scryptCheck, 8);
  return {
    kind: 'scrypt',
    description: `passphrase (scrypt logN=${params.logN} r=${params.r} p=${params.p})`,
    wrap(dataKey) {
      const wrapSalt = randomBytes(16);
      const wrapped = wrapKey(hkdf(derived, wrapSalt, LABEL.scryptWrap, KEY_BYTES), dataKey);
      return {
        kind: 'scrypt',
        salt: Buffer.from(salt),
        ...params,
        check: Buffer.from(check),
        wrapSalt,
        wrapped,
      };
    },
  };
}

export function passphraseUnlocker(passphrase: Buffer, label = 'passphrase'): KeyUnlocker {
  const secret = Buffer.from(passphrase);
  // scrypt is the slow part: remember it per (salt, parameters), so that checking a header before a
  // restore and decrypting the stream afterwards cost one derivation, not two.
  const cache = new Map<string, Buffer>();
  const derive = async (s: ScryptStanza): Promise<Buffer> => {
    const id = `${s.salt.toString('hex')}/${s.logN}/${s.r}/${s.p}`;
    let derived = cache.get(id);
    if (!derived) {
      derived = await scrypt(secret, s.salt, s);
      cache.set(id, derived);
    }
    return derived;
  };
  return {
    kind: 'scrypt',
    label,
    async unlock(stanzas) {
      for (const s of stanzas) {
        if (s.kind !== 'scrypt') continue;
        const problem = checkScryptParams(s);
        if (problem) {
          throw new IntegrityError(`Encrypted backup header asks for unsafe scrypt parameters: ${problem}`, {
            hint: 'dbbackup never writes such parameters; the header was damaged or crafted.',
          });
        }
        const derived = await derive(s);
        const checkMatches = timingSafeEqual(hkdf(derived, EMPTY, LABEL.scryptCheck, 8), s.check);
        const dataKey = unwrapKey(hkdf(derived, s.wrapSalt, LABEL.scryptWrap, KEY_BYTES), s.wrapped);
        if (dataKey) return dataKey;
        if (checkMatches)
          throw stanzaDamaged('the passphrase stanza does not open although the passphrase is right');
      }
      return undefined;
    },
  };
}

/** Wraps for an X25519 public key (`age1…` recipient): the backup host never holds a decrypting key. */
export function recipientProtector(publicKey: Buffer): KeyProtector {
  requireKey(publicKey, 'a recipient public key');
  const recipient = Buffer.from(publicKey);
  const description = formatRecipient(recipient);
  if (!x25519Shared(x25519KeyPair().privateKey, recipient)) {
    throw new EncryptionKeyError(`Recipient ${description} is not a usable X25519 public key`, {
      hint: 'Use the public key printed by "dbbackup keygen".',
    });
  }
  return {
    kind: 'x25519',
    description,
    wrap(dataKey) {
      const ephemeral = x25519KeyPair();
      const shared = x25519Shared(ephemeral.privateKey, recipient);
      if (!shared) throw new Error('X25519 produced an all-zero shared secret');
      const salt = Buffer.concat([ephemeral.publicKey, recipient]);
      const wrapped = wrapKey(hkdf(shared, salt, LABEL.x25519, KEY_BYTES), dataKey);
      return { kind: 'x25519', recipient: Buffer.from(recipient), ephemeral: ephemeral.publicKey, wrapped };
    },
  };
}

/** Unlocks with one or more X25519 private keys (the identities of an identity file). */
export function identityUnlocker(privateKeys: readonly Buffer[], label = 'identity'): KeyUnlocker {
  const identities = privateKeys.map((privateKey) => {
    requireKey(privateKey, 'an identity');
    return { privateKey: Buffer.from(privateKey), publicKey: x25519PublicOf(privateKey) };
  });
  return {
    kind: 'x25519',
    label,
    async unlock(stanzas) {
      const candidates = stanzas.filter((s) => s.kind === 'x25519');
      for (const id of identities) {
        const mine = candidates.filter((s) => s.recipient.equals(id.publicKey));
        // Other stanzas are tried as well, with our own public key in the salt: if one opens, its
        // recipient field was altered, which the header MAC check then reports.
        for (const s of [...mine, ...candidates.filter((c) => !mine.includes(c))]) {
          const shared = x25519Shared(id.privateKey, s.ephemeral);
          if (!shared) continue;
          const salt = Buffer.concat([s.ephemeral, id.publicKey]);
          const dataKey = unwrapKey(hkdf(shared, salt, LABEL.x25519, KEY_BYTES), s.wrapped);
          if (dataKey) return dataKey;
        }
        if (mine.length)
          throw stanzaDamaged(`the stanza for recipient ${formatRecipient(id.publicKey)} does not open`);
      }
      return undefined;
    },
  };
}

/** What could open this header, for hints; never key material. */
export function describeUnlockOptions(header: EncryptionHeader): string {
  const parts: string[] = [];
  for (const s of header.stanzas) {
    if (s.kind === 'key')
      parts.push(
        `the key with id ${s.keyId.toString('hex')} (--encryption-key-file or --encryption-key-env)`,
      );
    else if (s.kind === 'scrypt') parts.push('its passphrase (--passphrase-file)');
    else if (s.kind === 'x25519')
      parts.push(`the identity of recipient ${formatRecipient(s.recipient)} (--identity-file)`);
  }
  const unknown = header.stanzas.filter((s) => s.kind === 'unknown').length;
  if (unknown) parts.push(`${unknown} protection(s) this version of dbbackup does not understand`);
  return `It can be decrypted with ${[...new Set(parts)].join('; or ')}.`;
}

/**
 * Recovers the data key with the first unlocker that opens a stanza, then checks the header MAC.
 * EncryptionKeyError when nothing given unlocks it; IntegrityError when the header was altered.
 */
export async function unlockHeader(
  header: EncryptionHeader,
  unlockers: readonly KeyUnlocker[],
): Promise<Buffer> {
  if (unlockers.length === 0) {
    throw new EncryptionKeyError('The backup is encrypted and no key, passphrase or identity was given', {
      hint: describeUnlockOptions(header),
    });
  }
  for (const unlocker of unlockers) {
    const dataKey = await unlocker.unlock(header.stanzas);
    if (dataKey) {
      verifyHeaderMac(header, dataKey);
      return dataKey;
    }
  }
  const labels = unlockers.map((u) => u.label).join(' or the ');
  throw new EncryptionKeyError(`The backup is encrypted and the ${labels} does not unlock it`, {
    hint: describeUnlockOptions(header),
  });
}
