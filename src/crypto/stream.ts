import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '../errors.js';
import {
  CHUNK_SIZE,
  encodeHeader,
  headerLengthOf,
  parseHeader,
  PAYLOAD_NONCE_BYTES,
  SEALED_CHUNK_SIZE,
  type CipherName,
  type EncryptionHeader,
} from './format.js';
import { unlockHeader, type KeyProtector, type KeyUnlocker } from './protectors.js';
import { hkdf, KEY_BYTES, LABEL, TAG_BYTES } from './primitives.js';

/** The largest chunk counter (2^48 chunks of 64 KiB = 16 EiB): far beyond any backup. */
const MAX_COUNTER = 2 ** 48 - 1;
const DAMAGED_HINT =
  'The backup file was damaged, cut short or modified after it was written; use another copy of the backup.';

function payloadKey(dataKey: Buffer, payloadNonce: Buffer): KeyObject {
  const raw = hkdf(dataKey, payloadNonce, LABEL.payload, KEY_BYTES);
  try {
    return createSecretKey(raw); // copies the bytes
  } finally {
    raw.fill(0);
  }
}

/** STREAM nonce: 11-byte big-endian chunk counter, then 1 for the final chunk and 0 otherwise. */
function setNonce(nonce: Buffer, counter: number, last: boolean): Buffer {
  if (counter > MAX_COUNTER) throw new RangeError('encrypted stream too long');
  nonce.fill(0, 0, 5);
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

// Narrowed per cipher, so node's typings pick the AEAD overloads (with authTagLength and getAuthTag).
function newCipher(cipher: CipherName, key: KeyObject, nonce: Buffer) {
  return cipher === 'aes-256-gcm'
    ? createCipheriv(cipher, key, nonce, { authTagLength: TAG_BYTES })
    : createCipheriv(cipher, key, nonce, { authTagLength: TAG_BYTES });
}

function newDecipher(cipher: CipherName, key: KeyObject, nonce: Buffer) {
  return cipher === 'aes-256-gcm'
    ? createDecipheriv(cipher, key, nonce, { authTagLength: TAG_BYTES })
    : createDecipheriv(cipher, key, nonce, { authTagLength: TAG_BYTES });
}

/** Opens one sealed chunk (ciphertext ‖ 16-byte tag); undefined if it does not authenticate. */
function openChunk(
  key: KeyObject,
  cipher: CipherName,
  nonce: Buffer,
  counter: number,
  last: boolean,
  sealed: Buffer,
): Buffer | undefined {
  if (sealed.length < TAG_BYTES) return undefined;
  const decipher = newDecipher(cipher, key, setNonce(nonce, counter, last));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
  try {
    decipher.final();
  } catch {
    return undefined;
  }
  return plain;
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Encrypts a byte stream: writes the header, then 64 KiB plaintext chunks, each sealed with the
 * payload AEAD under the STREAM nonce. Holds back at most one chunk (it must know whether more
 * data follows before it can seal a chunk as the last); memory is that plus one input chunk.
 */
export class EncryptStream extends Transform {
  /** Plaintext bytes consumed and chunks sealed so far. */
  plaintextBytes = 0;
  chunks = 0;
  private readonly pending = Buffer.allocUnsafe(CHUNK_SIZE);
  private pendingLength = 0;
  private readonly nonce = Buffer.alloc(12);
  private headerSent = false;

  constructor(
    private readonly key: KeyObject,
    private readonly cipher: CipherName,
    /** The header, written before the first chunk. */
    readonly headerBytes: Buffer,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.sendHeader();
      this.plaintextBytes += chunk.length;
      const length = chunk.length;
      if (length === 0) return cb();
      let offset = 0;
      if (this.pendingLength === CHUNK_SIZE) this.sealPending(false);
      if (this.pendingLength > 0) {
        offset = chunk.copy(
          this.pending,
          this.pendingLength,
          0,
          Math.min(length, CHUNK_SIZE - this.pendingLength),
        );
        this.pendingLength += offset;
        if (offset === length) return cb();
        this.sealPending(false);
      }
      // Whole chunks straight from the input, without a copy, while more input follows them.
      for (; length - offset > CHUNK_SIZE; offset += CHUNK_SIZE) {
        this.seal(chunk.subarray(offset, offset + CHUNK_SIZE), false);
      }
      this.pendingLength = chunk.copy(this.pending, 0, offset);
      cb();
    } catch (err) {
      cb(toError(err));
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.sendHeader();
      // Also right for an empty input: one final, empty chunk.
      this.sealPending(true);
      cb();
    } catch (err) {
      cb(toError(err));
    }
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    this.push(this.headerBytes);
  }

  private sealPending(last: boolean): void {
    this.seal(this.pending.subarray(0, this.pendingLength), last);
    this.pendingLength = 0;
  }

  private seal(plain: Buffer, last: boolean): void {
    const c = newCipher(this.cipher, this.key, setNonce(this.nonce, this.chunks, last));
    const body = c.update(plain);
    c.final();
    if (body.length) this.push(body);
    this.push(c.getAuthTag());
    this.chunks++;
  }
}

export interface EncryptOptions {
  /** Payload AEAD; AES-256-GCM (the default) is fastest with AES-NI. */
  cipher?: CipherName;
}

/**
 * A fresh random data key, wrapped for every protector, and a stream that writes the header and
 * the encrypted body. `header` is known at once (for metadata: see describeEncryption).
 */
export function createEncryptStream(
  protectors: readonly KeyProtector[],
  options: EncryptOptions = {},
): { stream: EncryptStream; header: EncryptionHeader } {
  if (protectors.length === 0)
    throw new RangeError('encryption needs at least one key, passphrase or recipient');
  const cipher = options.cipher ?? 'aes-256-gcm';
  const dataKey = randomBytes(KEY_BYTES);
  try {
    const payloadNonce = randomBytes(PAYLOAD_NONCE_BYTES);
    const header = encodeHeader(
      { cipher, payloadNonce, stanzas: protectors.map((p) => p.wrap(dataKey)) },
      dataKey,
    );
    const stream = new EncryptStream(payloadKey(dataKey, payloadNonce), cipher, header.bytes);
    return { stream, header };
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Decrypts a stream written by EncryptStream. Nothing is emitted before the header is parsed,
 * unlocked and its MAC checked, so a wrong key fails before any byte reaches the next stage. Each
 * chunk is emitted only once it authenticates; truncation, reordering, swapping and appended data
 * fail with an IntegrityError naming the chunk.
 */
export class DecryptStream extends Transform {
  /** Set once the header is unlocked. */
  header: EncryptionHeader | undefined;
  plaintextBytes = 0;
  chunks = 0;
  private headerParts: Buffer[] = [];
  private headerBytesSeen = 0;
  private headerLength: number | undefined;
  private key: KeyObject | undefined;
  private readonly pending = Buffer.allocUnsafe(SEALED_CHUNK_SIZE);
  private pendingLength = 0;
  private readonly nonce = Buffer.alloc(12);

  constructor(private readonly unlockers: readonly KeyUnlocker[]) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.key) {
      try {
        this.body(chunk, 0);
        cb();
      } catch (err) {
        cb(toError(err));
      }
      return;
    }
    this.collectHeader(chunk).then(
      () => cb(),
      (err: unknown) => cb(toError(err)),
    );
  }

  override _flush(cb: TransformCallback): void {
    try {
      if (!this.key) {
        throw new IntegrityError(
          this.headerBytesSeen === 0
            ? 'Encrypted backup is empty'
            : 'Encrypted backup is truncated inside its header',
          { hint: DAMAGED_HINT },
        );
      }
      if (this.pendingLength === 0) {
        // Only possible before the first chunk: the encryptor always writes a final chunk.
        throw this.damaged('ends right after its header: the data is missing');
      }
      const sealed = this.pending.subarray(0, this.pendingLength);
      const plain = openChunk(this.key, this.cipherName(), this.nonce, this.chunks, true, sealed);
      if (!plain) {
        if (
          sealed.length === SEALED_CHUNK_SIZE &&
          openChunk(this.key, this.cipherName(), this.nonce, this.chunks, false, sealed)
        ) {
          throw this.damaged(`is truncated: it ends with chunk ${this.chunks}, which is not the final chunk`);
        }
        throw this.damaged(
          sealed.length < TAG_BYTES
            ? `is truncated inside chunk ${this.chunks}`
            : `chunk ${this.chunks} (the last) failed authentication: the file was cut short, extended or altered`,
        );
      }
      if (plain.length === 0 && this.chunks > 0)
        throw this.damaged(`has an empty final chunk ${this.chunks}`);
      this.deliver(plain);
      cb();
    } catch (err) {
      cb(toError(err));
    }
  }

  private cipherName(): CipherName {
    return this.header?.cipher ?? 'aes-256-gcm';
  }

  private async collectHeader(chunk: Buffer): Promise<void> {
    this.headerParts.push(chunk);
    this.headerBytesSeen += chunk.length;
    if (this.headerLength === undefined) {
      const prefix = this.headerParts.length === 1 ? chunk : Buffer.concat(this.headerParts);
      this.headerParts = [prefix];
      this.headerLength = headerLengthOf(prefix);
    }
    if (this.headerLength === undefined || this.headerBytesSeen < this.headerLength) return;
    const all = Buffer.concat(this.headerParts);
    this.headerParts = [];
    const { header, headerLength } = parseHeader(all);
    const dataKey = await unlockHeader(header, this.unlockers);
    try {
      this.key = payloadKey(dataKey, header.payloadNonce);
    } finally {
      dataKey.fill(0);
    }
    this.header = header;
    this.body(all, headerLength);
  }

  private body(chunk: Buffer, start: number): void {
    const length = chunk.length;
    let offset = start;
    if (offset === length) return;
    if (this.pendingLength === SEALED_CHUNK_SIZE) this.openPending();
    if (this.pendingLength > 0) {
      const copied = chunk.copy(
        this.pending,
        this.pendingLength,
        offset,
        Math.min(length, offset + SEALED_CHUNK_SIZE - this.pendingLength),
      );
      this.pendingLength += copied;
      offset += copied;
      if (offset === length) return;
      this.openPending();
    }
    for (; length - offset > SEALED_CHUNK_SIZE; offset += SEALED_CHUNK_SIZE) {
      this.openMiddle(chunk.subarray(offset, offset + SEALED_CHUNK_SIZE));
    }
    this.pendingLength = chunk.copy(this.pending, 0, offset);
  }

  private openPending(): void {
    this.openMiddle(this.pending.subarray(0, this.pendingLength));
    this.pendingLength = 0;
  }

  /** A full chunk that more data follows, so it must not be the last. */
  private openMiddle(sealed: Buffer): void {
    const key = this.key;
    if (!key) throw new Error('DecryptStream: body before header');
    const plain = openChunk(key, this.cipherName(), this.nonce, this.chunks, false, sealed);
    if (!plain) {
      if (openChunk(key, this.cipherName(), this.nonce, this.chunks, true, sealed)) {
        throw this.damaged(`has unexpected data after its final chunk ${this.chunks}`);
      }
      throw this.damaged(`chunk ${this.chunks} failed authentication: it was altered, reordered or replaced`);
    }
    this.deliver(plain);
  }

  private deliver(plain: Buffer): void {
    this.chunks++;
    this.plaintextBytes += plain.length;
    if (plain.length) this.push(plain);
  }

  private damaged(what: string): IntegrityError {
    const at = (this.headerLength ?? 0) + this.chunks * SEALED_CHUNK_SIZE;
    return new IntegrityError(`Encrypted backup ${what} (byte offset ${at})`, { hint: DAMAGED_HINT });
  }
}

export function createDecryptStream(unlockers: readonly KeyUnlocker[]): DecryptStream {
  return new DecryptStream(unlockers);
}

/**
 * Unlocks the header at the start of `raw` (a prefix of an encrypted backup, e.g. its first
 * 256 KiB) and decrypts the whole chunks it holds: for format detection before a restore, and to
 * fail on a wrong key before anything is written. `complete` is true when the final chunk was
 * among them. Throws like DecryptStream.
 */
export async function decryptPrefix(
  raw: Buffer,
  unlockers: readonly KeyUnlocker[],
): Promise<{ header: EncryptionHeader; plaintext: Buffer; complete: boolean }> {
  const { header, headerLength } = parseHeader(raw);
  const dataKey = await unlockHeader(header, unlockers);
  const key = payloadKey(dataKey, header.payloadNonce);
  dataKey.fill(0);
  const nonce = Buffer.alloc(12);
  const out: Buffer[] = [];
  let counter = 0;
  let complete = false;
  for (let offset = headerLength; offset < raw.length && !complete; offset += SEALED_CHUNK_SIZE, counter++) {
    const sealed = raw.subarray(offset, offset + SEALED_CHUNK_SIZE);
    const full = sealed.length === SEALED_CHUNK_SIZE;
    let plain = full ? openChunk(key, header.cipher, nonce, counter, false, sealed) : undefined;
    if (!plain) {
      plain = openChunk(key, header.cipher, nonce, counter, true, sealed);
      if (plain) {
        complete = true;
        if (offset + sealed.length < raw.length) {
          throw new IntegrityError(`Encrypted backup has unexpected data after its final chunk ${counter}`, {
            hint: DAMAGED_HINT,
          });
        }
      } else if (full) {
        throw new IntegrityError(`Encrypted backup chunk ${counter} failed authentication`, {
          hint: DAMAGED_HINT,
        });
      } else {
        break; // a chunk cut off by the end of the prefix
      }
    }
    out.push(plain);
  }
  return { header, plaintext: Buffer.concat(out), complete };
}
