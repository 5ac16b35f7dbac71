import { createHmac, timingSafeEqual } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import { hkdf, KEY_BYTES, LABEL, TAG_BYTES, WRAPPED_BYTES } from './primitives.js';

/**
 * The encrypted-backup header (docs/encryption-format.md is the normative description):
 *
 *   0   8  magic "\x89DBBKENC"
 *   8   1  format version (1)
 *   9   1  payload cipher id (1 = AES-256-GCM, 2 = ChaCha20-Poly1305)
 *  10   4  header length H, u32 big-endian, from offset 0 through the MAC
 *  14  16  payload nonce (HKDF salt of the payload key)
 *  30   2  stanza count n, u16 big-endian, 1..1024
 *  32      n stanzas: type u8, body length u16 big-endian, body
 * H-32 32  HMAC-SHA256 over bytes [0, H-32) under HKDF(data key, "", "dbbackup-enc/v1 header")
 */

export const MAGIC = Buffer.from([0x89, 0x44, 0x42, 0x42, 0x4b, 0x45, 0x4e, 0x43]);
export const FORMAT_VERSION = 1;
/** Plaintext bytes per chunk; every chunk but the last is exactly this long. */
export const CHUNK_SIZE = 64 * 1024;
/** Bytes per sealed full chunk: ciphertext and tag. */
export const SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_BYTES;
export const PAYLOAD_NONCE_BYTES = 16;
export const MAC_BYTES = 32;
/** Bytes before the first stanza. */
export const FIXED_BYTES = 32;
export const MAX_STANZAS = 1024;
export const MAX_HEADER_BYTES = 256 * 1024;

export type CipherName = 'aes-256-gcm' | 'chacha20-poly1305';
const CIPHER_IDS: Record<CipherName, number> = { 'aes-256-gcm': 1, 'chacha20-poly1305': 2 };

export const STANZA_TYPE = { key: 1, scrypt: 2, x25519: 3 } as const;

/** The data key wrapped under a 32-byte symmetric key. */
export interface KeyStanza {
  kind: 'key';
  /** 8 bytes: HKDF(key, "", "dbbackup-enc/v1 key id"); tells "wrong key" from "corrupt". */
  keyId: Buffer;
  /** 16 random bytes: HKDF salt of this stanza's wrap key. */
  wrapSalt: Buffer;
  wrapped: Buffer;
}

/** The data key wrapped under a key derived from a passphrase with scrypt. */
export interface ScryptStanza {
  kind: 'scrypt';
  salt: Buffer;
  logN: number;
  r: number;
  p: number;
  /** 8 bytes derived from the scrypt output; tells "wrong passphrase" from "corrupt". */
  check: Buffer;
  wrapSalt: Buffer;
  wrapped: Buffer;
}

/** The data key wrapped for an X25519 recipient, as in age. */
export interface X25519Stanza {
  kind: 'x25519';
  recipient: Buffer;
  ephemeral: Buffer;
  wrapped: Buffer;
}

/** A stanza type this version does not know; kept (the MAC covers it) and skipped when unlocking. */
export interface UnknownStanza {
  kind: 'unknown';
  type: number;
  body: Buffer;
}

export type Stanza = KeyStanza | ScryptStanza | X25519Stanza | UnknownStanza;

export interface EncryptionHeader {
  version: number;
  cipher: CipherName;
  payloadNonce: Buffer;
  stanzas: Stanza[];
  mac: Buffer;
  /** The header exactly as written or read, MAC included. */
  bytes: Buffer;
}

const CORRUPT_HINT =
  'The backup file was damaged or modified after it was written; use another copy of the backup.';

function corrupt(message: string): IntegrityError {
  return new IntegrityError(`Encrypted backup header is invalid: ${message}`, { hint: CORRUPT_HINT });
}

/** True when `head` (the first bytes of a file; 8 are enough) starts with this format's magic. */
export function isEncrypted(head: Buffer): boolean {
  return head.length >= MAGIC.length && head.subarray(0, MAGIC.length).equals(MAGIC);
}

/**
 * The total header length announced by a prefix of the stream, or undefined if fewer than 14
 * bytes are available. Throws IntegrityError for a wrong magic, version or impossible length.
 */
export function headerLengthOf(prefix: Buffer): number | undefined {
  const seen = Math.min(prefix.length, MAGIC.length);
  if (!prefix.subarray(0, seen).equals(MAGIC.subarray(0, seen))) {
    throw new IntegrityError('Not an encrypted dbbackup stream: the first bytes are not its magic', {
      hint: 'The file is not encrypted by dbbackup, or its beginning was damaged.',
    });
  }
  if (prefix.length < 14) return undefined;
  const version = prefix[8] ?? 0;
  if (version !== FORMAT_VERSION) {
    throw new IntegrityError(
      `Encrypted backup uses format version ${version}; this dbbackup reads version ${FORMAT_VERSION}`,
      {
        hint: version > FORMAT_VERSION ? 'Upgrade dbbackup to read this backup.' : CORRUPT_HINT,
      },
    );
  }
  const length = prefix.readUInt32BE(10);
  if (length < FIXED_BYTES + MAC_BYTES || length > MAX_HEADER_BYTES) {
    throw corrupt(`header length ${length} is outside ${FIXED_BYTES + MAC_BYTES}..${MAX_HEADER_BYTES}`);
  }
  return length;
}

function stanzaBody(stanza: Stanza): { type: number; body: Buffer } {
  switch (stanza.kind) {
    case 'key':
      return { type: STANZA_TYPE.key, body: Buffer.concat([stanza.keyId, stanza.wrapSalt, stanza.wrapped]) };
    case 'scrypt':
      return {
        type: STANZA_TYPE.scrypt,
        body: Buffer.concat([
          stanza.salt,
          Buffer.from([stanza.logN, stanza.r, stanza.p]),
          stanza.check,
          stanza.wrapSalt,
          stanza.wrapped,
        ]),
      };
    case 'x25519':
      return {
        type: STANZA_TYPE.x25519,
        body: Buffer.concat([stanza.recipient, stanza.ephemeral, stanza.wrapped]),
      };
    case 'unknown':
      return { type: stanza.type, body: stanza.body };
  }
}

const KEY_BODY = 8 + 16 + WRAPPED_BYTES;
const SCRYPT_BODY = 16 + 3 + 8 + 16 + WRAPPED_BYTES;
const X25519_BODY = KEY_BYTES + KEY_BYTES + WRAPPED_BYTES;

function parseStanza(type: number, body: Buffer, index: number): Stanza {
  const expect = (length: number, name: string): void => {
    if (body.length !== length)
      throw corrupt(`stanza ${index} (${name}) has ${body.length} bytes, expected ${length}`);
  };
  // Copies, so a parsed header does not pin the (possibly large) buffer it was read from.
  const take = (start: number, end: number): Buffer => Buffer.from(body.subarray(start, end));
  switch (type) {
    case STANZA_TYPE.key:
      expect(KEY_BODY, 'key');
      return { kind: 'key', keyId: take(0, 8), wrapSalt: take(8, 24), wrapped: take(24, KEY_BODY) };
    case STANZA_TYPE.scrypt:
      expect(SCRYPT_BODY, 'scrypt');
      return {
        kind: 'scrypt',
        salt: take(0, 16),
        logN: body[16] ?? 0,
        r: body[17] ?? 0,
        p: body[18] ?? 0,
        check: take(19, 27),
        wrapSalt: take(27, 43),
        wrapped: take(43, SCRYPT_BODY),
      };
    case STANZA_TYPE.x25519:
      expect(X25519_BODY, 'x25519');
      return {
        kind: 'x25519',
        recipient: take(0, 32),
        ephemeral: take(32, 64),
        wrapped: take(64, X25519_BODY),
      };
    default:
      return { kind: 'unknown', type, body: take(0, body.length) };
  }
}

/** The MAC of a header's bytes before the MAC, keyed from the data key. */
export function computeHeaderMac(dataKey: Buffer, authenticated: Buffer): Buffer {
  const macKey = hkdf(dataKey, Buffer.alloc(0), LABEL.headerMac, 32);
  return createHmac('sha256', macKey).update(authenticated).digest();
}

/** Builds and MACs a header. */
export function encodeHeader(
  fields: { cipher: CipherName; payloadNonce: Buffer; stanzas: readonly Stanza[] },
  dataKey: Buffer,
): EncryptionHeader {
  if (fields.stanzas.length < 1 || fields.stanzas.length > MAX_STANZAS)
    throw new RangeError(`an encryption header needs 1..${MAX_STANZAS} stanzas`);
  if (fields.payloadNonce.length !== PAYLOAD_NONCE_BYTES)
    throw new RangeError('payload nonce must be 16 bytes');
  const parts: Buffer[] = [];
  for (const stanza of fields.stanzas) {
    const { type, body } = stanzaBody(stanza);
    if (body.length > 0xffff) throw new RangeError('stanza body too long');
    const head = Buffer.alloc(3);
    head[0] = type;
    head.writeUInt16BE(body.length, 1);
    parts.push(head, body);
  }
  const stanzaBytes = Buffer.concat(parts);
  const length = FIXED_BYTES + stanzaBytes.length + MAC_BYTES;
  if (length > MAX_HEADER_BYTES) throw new RangeError('encryption header too long');
  const fixed = Buffer.alloc(FIXED_BYTES);
  MAGIC.copy(fixed, 0);
  fixed[8] = FORMAT_VERSION;
  fixed[9] = CIPHER_IDS[fields.cipher];
  fixed.writeUInt32BE(length, 10);
  fields.payloadNonce.copy(fixed, 14);
  fixed.writeUInt16BE(fields.stanzas.length, 30);
  const authenticated = Buffer.concat([fixed, stanzaBytes]);
  const mac = computeHeaderMac(dataKey, authenticated);
  return {
    version: FORMAT_VERSION,
    cipher: fields.cipher,
    payloadNonce: Buffer.from(fields.payloadNonce),
    stanzas: [...fields.stanzas],
    mac,
    bytes: Buffer.concat([authenticated, mac]),
  };
}

/**
 * Parses the header at the start of `buf` (which may continue with the body). Checks magic,
 * version, lengths and stanza layout; the MAC needs the data key, see verifyHeaderMac.
 */
export function parseHeader(buf: Buffer): { header: EncryptionHeader; headerLength: number } {
  const length = headerLengthOf(buf);
  if (length === undefined || buf.length < length) {
    throw new IntegrityError('Encrypted backup is truncated inside its header', { hint: CORRUPT_HINT });
  }
  const cipherId = buf[9];
  const cipher = (Object.keys(CIPHER_IDS) as CipherName[]).find((name) => CIPHER_IDS[name] === cipherId);
  if (!cipher) throw corrupt(`unknown cipher id ${cipherId}`);
  const count = buf.readUInt16BE(30);
  if (count < 1 || count > MAX_STANZAS) throw corrupt(`stanza count ${count} is outside 1..${MAX_STANZAS}`);
  const end = length - MAC_BYTES;
  const stanzas: Stanza[] = [];
  let offset = FIXED_BYTES;
  for (let i = 0; i < count; i++) {
    if (offset + 3 > end) throw corrupt(`stanza ${i} starts beyond the end of the header`);
    const type = buf[offset] ?? 0;
    const bodyLength = buf.readUInt16BE(offset + 1);
    offset += 3;
    if (offset + bodyLength > end) throw corrupt(`stanza ${i} runs beyond the end of the header`);
    stanzas.push(parseStanza(type, buf.subarray(offset, offset + bodyLength), i));
    offset += bodyLength;
  }
  if (offset !== end) throw corrupt(`${end - offset} unexpected bytes after the last stanza`);
  const bytes = Buffer.from(buf.subarray(0, length));
  return {
    header: {
      version: FORMAT_VERSION,
      cipher,
      payloadNonce: Buffer.from(buf.subarray(14, 30)),
      stanzas,
      mac: bytes.subarray(end),
      bytes,
    },
    headerLength: length,
  };
}

/** Throws IntegrityError unless the header's MAC matches under `dataKey`. */
export function verifyHeaderMac(header: EncryptionHeader, dataKey: Buffer): void {
  const expected = computeHeaderMac(dataKey, header.bytes.subarray(0, header.bytes.length - MAC_BYTES));
  if (!timingSafeEqual(expected, header.mac)) {
    throw new IntegrityError('Encrypted backup header was modified: its MAC does not match', {
      hint: CORRUPT_HINT,
    });
  }
}

export function cipherId(cipher: CipherName): number {
  return CIPHER_IDS[cipher];
}
