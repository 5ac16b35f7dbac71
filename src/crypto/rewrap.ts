import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '../errors.js';
import { encodeHeader, headerLengthOf, parseHeader, type EncryptionHeader } from './format.js';
import { unlockHeader, type KeyProtector, type KeyUnlocker } from './protectors.js';

export interface RewrapOptions {
  /** Keep the existing stanzas and add the new ones (add a recipient) instead of replacing them. */
  keepExisting?: boolean;
}

const DAMAGED_HINT =
  'The backup file was damaged or cut short after it was written; use another copy of the backup.';

/**
 * A new header for the same data key, payload nonce and cipher, protected by `newProtectors`
 * instead of (or, with keepExisting, besides) the old protections. The body is unchanged: the
 * caller replaces the old header's bytes, `headerLengthOf(oldHeaderBytes)` of them, by the
 * result. `oldHeaderBytes` may run on into the body. Throws like decryption for a wrong key.
 */
export async function rewrapHeader(
  oldHeaderBytes: Buffer,
  unlockers: readonly KeyUnlocker[],
  newProtectors: readonly KeyProtector[],
  options: RewrapOptions = {},
): Promise<Buffer> {
  if (newProtectors.length === 0 && !options.keepExisting)
    throw new RangeError('rewrapHeader needs at least one new key, passphrase or recipient');
  const { header } = parseHeader(oldHeaderBytes);
  const dataKey = await unlockHeader(header, unlockers);
  try {
    const stanzas = [
      ...(options.keepExisting ? header.stanzas : []),
      ...newProtectors.map((p) => p.wrap(dataKey)),
    ];
    return encodeHeader({ cipher: header.cipher, payloadNonce: header.payloadNonce, stanzas }, dataKey).bytes;
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Copies an encrypted stream with its header rewrapped (see rewrapHeader) and the body passed
 * through untouched, for rekeying a stored backup without a temporary copy. Nothing is emitted
 * before the old header is unlocked, so a wrong key fails before a byte reaches the writer.
 */
export class RewrapStream extends Transform {
  /** The header read from the input, and the one written in its place; set once rewrapped. */
  oldHeader: EncryptionHeader | undefined;
  newHeader: EncryptionHeader | undefined;
  private parts: Buffer[] = [];
  private seen = 0;
  private done = false;

  constructor(
    private readonly unlockers: readonly KeyUnlocker[],
    private readonly protectors: readonly KeyProtector[],
    private readonly options: RewrapOptions = {},
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.done) return cb(null, chunk);
    this.parts.push(chunk);
    this.seen += chunk.length;
    let length: number | undefined;
    try {
      const prefix = this.parts.length === 1 ? chunk : Buffer.concat(this.parts);
      this.parts = [prefix];
      length = headerLengthOf(prefix);
    } catch (err) {
      return cb(err instanceof Error ? err : new Error(String(err)));
    }
    if (length === undefined || this.seen < length) return cb();
    const all = this.parts[0] ?? Buffer.alloc(0);
    this.parts = [];
    rewrapHeader(all, this.unlockers, this.protectors, this.options).then(
      (header) => {
        this.oldHeader = parseHeader(all).header;
        this.newHeader = parseHeader(header).header;
        this.done = true;
        this.push(header);
        cb(null, all.subarray(length));
      },
      (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
    );
  }

  override _flush(cb: TransformCallback): void {
    cb(
      this.done
        ? null
        : new IntegrityError(
            this.seen === 0 ? 'Encrypted backup is empty' : 'Encrypted backup is truncated inside its header',
            { hint: DAMAGED_HINT },
          ),
    );
  }
}
