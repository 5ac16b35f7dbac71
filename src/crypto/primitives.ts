import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
} from 'node:crypto';

/** Every label this format feeds into HKDF, so the specification and the code cannot drift apart. */
export const LABEL = {
  payload: 'dbbackup-enc/v1 payload',
  headerMac: 'dbbackup-enc/v1 header',
  keyId: 'dbbackup-enc/v1 key id',
  keyWrap: 'dbbackup-enc/v1 key wrap',
  scryptSalt: 'dbbackup-enc/v1 scrypt',
  scryptCheck: 'dbbackup-enc/v1 scrypt check',
  scryptWrap: 'dbbackup-enc/v1 scrypt wrap',
  x25519: 'dbbackup-enc/v1 X25519',
} as const;

export const KEY_BYTES = 32;
export const TAG_BYTES = 16;
/** A wrapped data key: 32 bytes of ChaCha20-Poly1305 ciphertext and its 16-byte tag. */
export const WRAPPED_BYTES = KEY_BYTES + TAG_BYTES;

const ZERO_NONCE = Buffer.alloc(12);

export function hkdf(ikm: Buffer, salt: Buffer, info: string, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

/**
 * Wraps the data key under a single-use wrap key (every stanza derives its own from fresh random
 * input), so the all-zero nonce is never reused under one key. As in age.
 */
export function wrapKey(wrapKeyBytes: Buffer, dataKey: Buffer): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', wrapKeyBytes, ZERO_NONCE, { authTagLength: TAG_BYTES });
  const body = cipher.update(dataKey);
  cipher.final();
  return Buffer.concat([body, cipher.getAuthTag()]);
}

/** The data key, or undefined if the wrap key is wrong or the wrapped bytes were altered. */
export function unwrapKey(wrapKeyBytes: Buffer, wrapped: Buffer): Buffer | undefined {
  if (wrapped.length !== WRAPPED_BYTES) return undefined;
  const decipher = createDecipheriv('chacha20-poly1305', wrapKeyBytes, ZERO_NONCE, {
    authTagLength: TAG_BYTES,
  });
  decipher.setAuthTag(wrapped.subarray(KEY_BYTES));
  const key = decipher.update(wrapped.subarray(0, KEY_BYTES));
  try {
    decipher.final();
  } catch {
    key.fill(0);
    return undefined;
  }
  return key;
}

// DER wrappers that turn a raw 32-byte X25519 key into what node:crypto accepts (RFC 8410).
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

export function x25519PrivateKey(raw: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' });
}

export function x25519PublicKey(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' });
}

export function rawPublicKey(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_X25519.length);
}

export function rawPrivateKey(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_X25519.length);
}

/** The public key that belongs to a raw private key. */
export function x25519PublicOf(privateRaw: Buffer): Buffer {
  return rawPublicKey(createPublicKey(x25519PrivateKey(privateRaw)));
}

export function x25519KeyPair(): { privateKey: Buffer; publicKey: Buffer } {
  const pair = generateKeyPairSync('x25519');
  return { privateKey: rawPrivateKey(pair.privateKey), publicKey: rawPublicKey(pair.publicKey) };
}

/** X25519(private, public); undefined for an all-zero result (a low-order public key), as age requires. */
export function x25519Shared(privateRaw: Buffer, publicRaw: Buffer): Buffer | undefined {
  let shared: Buffer;
  try {
    shared = diffieHellman({
      privateKey: x25519PrivateKey(privateRaw),
      publicKey: x25519PublicKey(publicRaw),
    });
  } catch {
    return undefined; // OpenSSL refuses some low-order points outright
  }
  return shared.every((b) => b === 0) ? undefined : shared;
}
