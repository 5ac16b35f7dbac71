import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { EncryptionKeyError } from '../../src/crypto/errors.js';
import {
  CHUNK_SIZE,
  headerLengthOf,
  isEncrypted,
  MAGIC,
  parseHeader,
  SEALED_CHUNK_SIZE,
  type CipherName,
} from '../../src/crypto/format.js';
import {
  identityUnlocker,
  keyProtector,
  keyUnlocker,
  passphraseProtector,
  passphraseUnlocker,
  recipientProtector,
  type KeyProtector,
  type KeyUnlocker,
} from '../../src/crypto/protectors.js';
import { createDecryptStream, createEncryptStream, decryptPrefix } from '../../src/crypto/stream.js';
import { generateIdentity } from '../../src/crypto/keys.js';
import { DbBackupError, IntegrityError } from '../../src/errors.js';

const FAST_SCRYPT = { logN: 10, r: 8, p: 1 };

function pieces(data: Buffer, sizes: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0, i = 0; offset < data.length; i++) {
    const size = Math.max(1, sizes[i % sizes.length] ?? 1);
    out.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return out;
}

/** Runs `chunks` through the stages; returns what reached the sink (even on failure) and the error. */
async function run(
  chunks: Buffer[],
  stage: NodeJS.ReadWriteStream,
): Promise<{ out: Buffer; error: unknown }> {
  const received: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      received.push(chunk);
      cb();
    },
  });
  let error: unknown;
  await pipeline(Readable.from(chunks, { objectMode: false }), stage, sink).catch((err: unknown) => {
    error = err;
  });
  return { out: Buffer.concat(received), error };
}

async function encrypt(
  plain: Buffer,
  protectors: KeyProtector[],
  opts: { sizes?: number[]; cipher?: CipherName } = {},
): Promise<Buffer> {
  const { stream } = createEncryptStream(protectors, { cipher: opts.cipher });
  const { out, error } = await run(pieces(plain, opts.sizes ?? [plain.length || 1]), stream);
  if (error) throw error;
  return out;
}

async function decrypt(sealed: Buffer, unlockers: KeyUnlocker[], sizes: number[] = [64 * 1024]) {
  return run(pieces(sealed, sizes), createDecryptStream(unlockers));
}

async function decryptOk(sealed: Buffer, unlockers: KeyUnlocker[], sizes?: number[]): Promise<Buffer> {
  const { out, error } = await decrypt(sealed, unlockers, sizes);
  if (error) throw error;
  return out;
}

function chunkCount(n: number): number {
  return n === 0 ? 1 : Math.ceil(n / CHUNK_SIZE);
}

/** [start, end) of sealed chunk i. */
function chunkAt(sealed: Buffer, i: number): [number, number] {
  const start = parseHeader(sealed).headerLength + i * SEALED_CHUNK_SIZE;
  return [start, Math.min(start + SEALED_CHUNK_SIZE, sealed.length)];
}

const key = randomBytes(32);
const keyOnly = (): KeyProtector[] => [keyProtector(key)];
const unlock = (): KeyUnlocker[] => [keyUnlocker(key, 'key in test.key')];

describe('encrypt and decrypt streams', () => {
  const sizes = [
    0,
    1,
    100,
    CHUNK_SIZE - 1,
    CHUNK_SIZE,
    CHUNK_SIZE + 1,
    2 * CHUNK_SIZE,
    2 * CHUNK_SIZE + 1,
    300_000,
  ];
  for (const cipher of ['aes-256-gcm', 'chacha20-poly1305'] as CipherName[]) {
    for (const n of sizes) {
      it(`round-trips ${n} bytes with ${cipher}, whatever the write sizes`, async () => {
        const plain = randomBytes(n);
        for (const [inSizes, outSizes] of [
          [[n || 1], [1 << 20]],
          [
            [1, 7, 4093],
            [3, 65_552, 100_000],
          ],
          [[CHUNK_SIZE], [SEALED_CHUNK_SIZE]],
          [[70_000, 5], [1]],
        ] as const) {
          if (n > 100_000 && (inSizes[0] === 1 || outSizes[0] === 1)) continue; // keep the test quick
          const sealed = await encrypt(plain, keyOnly(), { sizes: [...inSizes], cipher });
          const header = parseHeader(sealed);
          expect(header.header.cipher).toBe(cipher);
          expect(sealed.length).toBe(header.headerLength + n + 16 * chunkCount(n));
          expect(isEncrypted(sealed)).toBe(true);
          const back = await decryptOk(sealed, unlock(), [...outSizes]);
          expect(back.equals(plain)).toBe(true);
        }
      });
    }
  }

  it('encrypts empty input as one final empty chunk', async () => {
    const sealed = await encrypt(Buffer.alloc(0), keyOnly());
    expect(sealed.length).toBe(parseHeader(sealed).headerLength + 16);
    expect((await decryptOk(sealed, unlock())).length).toBe(0);
  });

  it('uses a fresh data key and nonce for every backup', async () => {
    const plain = Buffer.from('same input');
    const a = await encrypt(plain, keyOnly());
    const b = await encrypt(plain, keyOnly());
    expect(a.equals(b)).toBe(false);
    expect(parseHeader(a).header.payloadNonce.equals(parseHeader(b).header.payloadNonce)).toBe(false);
  });

  it('reports its header at once and counts bytes and chunks', async () => {
    const { stream, header } = createEncryptStream(keyOnly());
    expect(header.stanzas.map((s) => s.kind)).toEqual(['key']);
    const { out } = await run([randomBytes(CHUNK_SIZE * 2 + 5)], stream);
    expect(out.subarray(0, header.bytes.length).equals(header.bytes)).toBe(true);
    expect(stream.plaintextBytes).toBe(CHUNK_SIZE * 2 + 5);
    expect(stream.chunks).toBe(3);
  });

  it('applies back-pressure: an unread stream stops pulling input', async () => {
    let produced = 0;
    const source = new Readable({
      read() {
        produced += 1 << 20;
        this.push(randomBytes(1 << 20));
      },
    });
    const { stream } = createEncryptStream(keyOnly());
    source.pipe(stream);
    await new Promise((r) => setTimeout(r, 300));
    expect(produced).toBeLessThanOrEqual(8 << 20);
    source.unpipe(stream);
    source.destroy();
    stream.destroy();
  });
});

describe('tampering and damage are detected', () => {
  const plain = randomBytes(3 * CHUNK_SIZE - 1000); // chunks 0 and 1 full, chunk 2 partial
  let sealedPromise: Promise<Buffer> | undefined;
  const sealed = (): Promise<Buffer> => (sealedPromise ??= encrypt(plain, keyOnly()));

  async function expectDamage(bad: Buffer, message: RegExp): Promise<Buffer> {
    const { out, error } = await decrypt(bad, unlock(), [10_000]);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toMatch(message);
    // Whatever was emitted authenticated and is a prefix of the plaintext.
    expect(plain.subarray(0, out.length).equals(out)).toBe(true);
    return out;
  }

  it('a flipped bit in a middle chunk fails on that chunk, after only the chunks before it', async () => {
    const bad = Buffer.from(await sealed());
    const [start] = chunkAt(bad, 1);
    bad[start + 1234] = (bad[start + 1234] ?? 0) ^ 0x10;
    const out = await expectDamage(bad, /chunk 1 failed authentication/);
    expect(out.length).toBe(CHUNK_SIZE);
  });

  it('a flipped bit in a tag fails too', async () => {
    const bad = Buffer.from(await sealed());
    const [, end] = chunkAt(bad, 0);
    bad[end - 1] = (bad[end - 1] ?? 0) ^ 1;
    await expectDamage(bad, /chunk 0 failed authentication/);
  });

  it('truncation exactly at a chunk boundary is detected', async () => {
    const s = await sealed();
    const [start] = chunkAt(s, 2);
    await expectDamage(s.subarray(0, start), /truncated: it ends with chunk 1, which is not the final chunk/);
    const [second] = chunkAt(s, 1);
    await expectDamage(s.subarray(0, second), /truncated: it ends with chunk 0/);
  });

  it('truncation inside a chunk, inside the header, or right after it is detected', async () => {
    const s = await sealed();
    const h = parseHeader(s).headerLength;
    await expectDamage(s.subarray(0, s.length - 1), /chunk 2 \(the last\) failed authentication/);
    await expectDamage(
      s.subarray(0, h + 10),
      /chunk 0 \(the last\) failed authentication|truncated inside chunk 0/,
    );
    await expectDamage(s.subarray(0, h), /data is missing/);
    await expectDamage(s.subarray(0, h - 1), /truncated inside its header/);
    await expectDamage(s.subarray(0, 5), /truncated inside its header/);
    await expectDamage(Buffer.alloc(0), /is empty/);
  });

  it('two swapped chunks are detected', async () => {
    const s = await sealed();
    const [a0, a1] = chunkAt(s, 0);
    const [b0, b1] = chunkAt(s, 1);
    const swapped = Buffer.concat([
      s.subarray(0, a0),
      s.subarray(b0, b1),
      s.subarray(a0, a1),
      s.subarray(b1),
    ]);
    await expectDamage(swapped, /chunk 0 failed authentication/);
  });

  it('a chunk repeated or dropped in the middle is detected', async () => {
    const s = await sealed();
    const [a0, a1] = chunkAt(s, 0);
    await expectDamage(Buffer.concat([s.subarray(0, a1), s.subarray(a0)]), /chunk 1 failed authentication/);
    const [b0, b1] = chunkAt(s, 1);
    await expectDamage(Buffer.concat([s.subarray(0, b0), s.subarray(b1)]), /chunk 1 .*failed authentication/);
  });

  it('data appended after the final chunk is detected', async () => {
    const s = await sealed();
    await expectDamage(Buffer.concat([s, Buffer.from([0])]), /failed authentication/);
    await expectDamage(Buffer.concat([s, s.subarray(chunkAt(s, 0)[0])]), /after its final chunk 2|failed/);
    // A full-size final chunk followed by anything: named precisely.
    const full = await encrypt(randomBytes(CHUNK_SIZE), keyOnly());
    const { error } = await decrypt(Buffer.concat([full, Buffer.from('more')]), unlock());
    expect((error as Error).message).toMatch(/unexpected data after its final chunk 0/);
  });

  it('a body spliced from another backup with another data key fails', async () => {
    const other = await encrypt(plain, keyOnly());
    const s = await sealed();
    const h = parseHeader(s).headerLength;
    await expectDamage(Buffer.concat([s.subarray(0, h), other.subarray(h)]), /chunk 0 failed authentication/);
  });
});

describe('header tampering', () => {
  const plain = randomBytes(1000);

  it('a wrong magic or version is named', async () => {
    const s = await encrypt(plain, keyOnly());
    const badMagic = Buffer.from(s);
    badMagic[3] = 0;
    let r = await decrypt(badMagic, unlock());
    expect((r.error as Error).message).toMatch(/magic/);
    const badVersion = Buffer.from(s);
    badVersion[8] = 2;
    r = await decrypt(badVersion, unlock());
    expect((r.error as Error).message).toMatch(/format version 2/);
    expect(r.error).toBeInstanceOf(IntegrityError);
    expect(() => headerLengthOf(Buffer.from('PGDMP'))).toThrow(/magic/);
  });

  it('a changed payload nonce, cipher or MAC byte fails the MAC check', async () => {
    const s = await encrypt(plain, keyOnly());
    const h = parseHeader(s).headerLength;
    for (const offset of [14, 29, h - 32, h - 1]) {
      const bad = Buffer.from(s);
      bad[offset] = (bad[offset] ?? 0) ^ 0x01;
      const r = await decrypt(bad, unlock());
      expect(r.error).toBeInstanceOf(IntegrityError);
      expect((r.error as Error).message).toMatch(/MAC does not match/);
      expect(r.out.length).toBe(0);
    }
    const otherCipher = Buffer.from(s);
    otherCipher[9] = 2;
    expect((await decrypt(otherCipher, unlock())).error).toBeInstanceOf(IntegrityError);
  });

  it('a changed key id is reported as modification, not as a wrong key', async () => {
    const s = await encrypt(plain, keyOnly());
    const bad = Buffer.from(s);
    bad[32 + 3] = (bad[32 + 3] ?? 0) ^ 0x80; // first byte of the key id
    const r = await decrypt(bad, unlock());
    expect((r.error as Error).message).toMatch(/MAC does not match/);
  });

  it('a changed key stanza salt or wrapped key is reported as damage', async () => {
    const s = await encrypt(plain, keyOnly());
    for (const offset of [32 + 3 + 8, 32 + 3 + 30]) {
      const bad = Buffer.from(s);
      bad[offset] = (bad[offset] ?? 0) ^ 0x01;
      const r = await decrypt(bad, unlock());
      expect((r.error as Error).message).toMatch(
        /header is damaged: the stanza for key [0-9a-f]{16} does not open/,
      );
    }
  });

  it('every single-bit change anywhere in a header with all stanza kinds is refused, with nothing emitted', async () => {
    const id = generateIdentity();
    const passphrase = Buffer.from('correct horse battery staple');
    const protectors = [
      keyProtector(key),
      await passphraseProtector(passphrase, FAST_SCRYPT),
      recipientProtector(id.publicKey),
    ];
    const s = await encrypt(plain, protectors);
    const h = parseHeader(s).headerLength;
    const unlockerSets: KeyUnlocker[][] = [
      unlock(),
      [passphraseUnlocker(passphrase)],
      [identityUnlocker([id.privateKey])],
    ];
    for (const unlockers of unlockerSets) expect((await decryptOk(s, unlockers)).equals(plain)).toBe(true);
    for (let offset = 0; offset < h; offset++) {
      for (const unlockers of unlockerSets) {
        const bad = Buffer.from(s);
        bad[offset] = (bad[offset] ?? 0) ^ (1 << (offset % 8));
        const r = await decrypt(bad, unlockers);
        expect(r.error, `byte ${offset}`).toBeInstanceOf(DbBackupError);
        expect(r.out.length, `byte ${offset}`).toBe(0);
      }
    }
  }, 120_000);
});

describe('keys that do not unlock', () => {
  const plain = Buffer.from('secret rows');

  it('a wrong key is "does not unlock it", before anything is emitted', async () => {
    const s = await encrypt(plain, keyOnly());
    const r = await decrypt(s, [keyUnlocker(randomBytes(32), 'key in other.key')]);
    expect(r.error).toBeInstanceOf(EncryptionKeyError);
    expect((r.error as DbBackupError).message).toBe(
      'The backup is encrypted and the key in other.key does not unlock it',
    );
    expect((r.error as DbBackupError).hint).toMatch(/key with id [0-9a-f]{16}/);
    expect(r.out.length).toBe(0);
  });

  it('no key at all says so and lists what would open it', async () => {
    const id = generateIdentity();
    const s = await encrypt(plain, [recipientProtector(id.publicKey), keyProtector(key)]);
    const r = await decrypt(s, []);
    expect(r.error).toBeInstanceOf(EncryptionKeyError);
    expect((r.error as DbBackupError).message).toMatch(/no key, passphrase or identity was given/);
    expect((r.error as DbBackupError).hint).toContain(id.recipient);
    expect((r.error as DbBackupError).hint).toContain('--encryption-key-file');
  });

  it('several unlockers: the first that fits is used, the message names them all', async () => {
    const s = await encrypt(plain, keyOnly());
    const wrong = keyUnlocker(randomBytes(32), 'key from DBBACKUP_ENCRYPTION_KEY');
    expect((await decryptOk(s, [wrong, ...unlock()])).equals(plain)).toBe(true);
    const r = await decrypt(s, [wrong, passphraseUnlocker(Buffer.from('x'), 'passphrase in p.txt')]);
    expect((r.error as Error).message).toBe(
      'The backup is encrypted and the key from DBBACKUP_ENCRYPTION_KEY or the passphrase in p.txt does not unlock it',
    );
  });
});

describe('decryptPrefix', () => {
  it('decrypts the whole chunks of a prefix and says whether the end was reached', async () => {
    const plain = randomBytes(1 << 20);
    const s = await encrypt(plain, keyOnly());
    const partial = await decryptPrefix(s.subarray(0, 256 * 1024), unlock());
    expect(partial.complete).toBe(false);
    expect(partial.plaintext.length).toBe(3 * CHUNK_SIZE);
    expect(plain.subarray(0, partial.plaintext.length).equals(partial.plaintext)).toBe(true);
    const small = Buffer.from('-- PostgreSQL database dump\n');
    const whole = await decryptPrefix(await encrypt(small, keyOnly()), unlock());
    expect(whole.complete).toBe(true);
    expect(whole.plaintext.equals(small)).toBe(true);
    const exact = randomBytes(CHUNK_SIZE);
    expect((await decryptPrefix(await encrypt(exact, keyOnly()), unlock())).complete).toBe(true);
  });

  it('fails on a wrong key or a damaged first chunk', async () => {
    const s = await encrypt(randomBytes(200_000), keyOnly());
    await expect(decryptPrefix(s, [keyUnlocker(randomBytes(32))])).rejects.toThrow(/does not unlock it/);
    const bad = Buffer.from(s);
    const at = chunkAt(s, 0)[0] + 5;
    bad[at] = (bad[at] ?? 0) ^ 1;
    await expect(decryptPrefix(bad, unlock())).rejects.toThrow(/chunk 0 failed authentication/);
  });

  it('tells the format from the magic alone', () => {
    expect(isEncrypted(MAGIC)).toBe(true);
    expect(isEncrypted(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]))).toBe(false);
    expect(isEncrypted(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]))).toBe(false);
    expect(isEncrypted(MAGIC.subarray(0, 7))).toBe(false);
  });
});
