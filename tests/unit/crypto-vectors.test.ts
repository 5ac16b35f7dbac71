import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DbBackupError } from '../../src/errors.js';
import { CHUNK_SIZE, parseHeader, SEALED_CHUNK_SIZE, type CipherName } from '../../src/crypto/format.js';
import {
  generateIdentity,
  generateSymmetricKey,
  identityFileText,
  keyFileText,
  loadIdentityFile,
  loadKeyFile,
  loadPassphraseFile,
} from '../../src/crypto/keys.js';
import { hkdf, LABEL } from '../../src/crypto/primitives.js';
import {
  identityUnlocker,
  keyId,
  keyProtector,
  keyUnlocker,
  passphraseProtector,
  passphraseUnlocker,
  recipientProtector,
  unlockHeader,
  type KeyProtector,
  type KeyUnlocker,
} from '../../src/crypto/protectors.js';
import { createDecryptStream, createEncryptStream } from '../../src/crypto/stream.js';

/**
 * The test vectors of docs/encryption-format.md. They are checked in and must keep decrypting:
 * a change that breaks them breaks every existing encrypted backup. To regenerate them (only for
 * a new format version), run with DBBACKUP_REGEN_VECTORS=1.
 */
const DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/encryption');
const TEST_SCRYPT = { logN: 10, r: 8, p: 1 }; // cheap, for the vectors only; dbbackup writes logN 18

type Unlock = 'key' | 'passphrase' | 'identityA' | 'identityB';
type Plaintext = { utf8: string } | { pattern: 'i mod 251'; length: number };

interface Vector {
  file: string;
  comment: string;
  /** Each of these alone must decrypt the file (or, with `error`, must fail with it). */
  unlockWith: Unlock[];
  plaintext?: Plaintext;
  sha256?: string;
  error?: { class: 'IntegrityError' | 'EncryptionKeyError'; message: string };
  intermediate?: Record<string, string>;
}

interface VectorFile {
  comment: string;
  keys: Record<Unlock, string>;
  vectors: Vector[];
}

function plaintextOf(p: Plaintext): Buffer {
  if ('utf8' in p) return Buffer.from(p.utf8, 'utf8');
  return Buffer.from(Array.from({ length: p.length }, (_, i) => i % 251));
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function through(data: Buffer, stage: NodeJS.ReadWriteStream): Promise<Buffer> {
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk);
      cb();
    },
  });
  await pipeline(Readable.from([data]), stage, sink);
  return Buffer.concat(out);
}

// Checked-in files lose their 0600 mode in git, hence `insecure` for these fixtures only.
const insecure = { insecure: true };

async function unlockersFor(keys: Record<Unlock, string>): Promise<Record<Unlock, KeyUnlocker>> {
  const at = (name: string): string => path.join(DIR, name);
  return {
    key: keyUnlocker(await loadKeyFile(at(keys.key), insecure), 'test vector key'),
    passphrase: passphraseUnlocker(
      await loadPassphraseFile(at(keys.passphrase), insecure),
      'test vector passphrase',
    ),
    identityA: identityUnlocker(
      await loadIdentityFile(at(keys.identityA), insecure),
      'test vector identity A',
    ),
    identityB: identityUnlocker(
      await loadIdentityFile(at(keys.identityB), insecure),
      'test vector identity B',
    ),
  };
}

describe('test vectors in tests/fixtures/encryption', () => {
  it('decrypt (or fail as documented) with every listed key', async () => {
    const spec = JSON.parse(await readFile(path.join(DIR, 'vectors.json'), 'utf8')) as VectorFile;
    const unlockers = await unlockersFor(spec.keys);
    expect(spec.vectors.length).toBeGreaterThanOrEqual(10);
    for (const v of spec.vectors) {
      const sealed = await readFile(path.join(DIR, v.file));
      for (const u of v.unlockWith) {
        const label = `${v.file} with ${u}`;
        const result = await through(sealed, createDecryptStream([unlockers[u]])).then(
          (out) => ({ out, error: undefined }),
          (error: unknown) => ({ out: undefined, error }),
        );
        if (v.error) {
          expect(result.error, label).toBeInstanceOf(DbBackupError);
          expect((result.error as Error).constructor.name, label).toBe(v.error.class);
          expect((result.error as Error).message, label).toMatch(new RegExp(v.error.message));
        } else {
          expect(result.error, label).toBeUndefined();
          const out = result.out ?? Buffer.alloc(0);
          expect(sha256(out), label).toBe(v.sha256);
          if (v.plaintext) expect(out.equals(plaintextOf(v.plaintext)), label).toBe(true);
        }
      }
      if (v.intermediate) {
        const { header } = parseHeader(sealed);
        const dataKey = await unlockHeader(header, [unlockers.key]);
        expect(dataKey.toString('hex')).toBe(v.intermediate.dataKey);
        expect(hkdf(dataKey, header.payloadNonce, LABEL.payload, 32).toString('hex')).toBe(
          v.intermediate.payloadKey,
        );
      }
    }
  });

  // A generator, not a test: registered only when asked for.
  if (process.env.DBBACKUP_REGEN_VECTORS === '1')
    it('regenerate', async () => {
      const key = generateSymmetricKey();
      const passphrase = 'dbbackup test vector passphrase';
      const [a, b] = [generateIdentity(), generateIdentity()];
      const keys: Record<Unlock, string> = {
        key: 'key.b64',
        passphrase: 'passphrase.txt',
        identityA: 'identity-a.txt',
        identityB: 'identity-b.txt',
      };
      const created = new Date('2026-01-01T00:00:00Z');
      await writeFile(path.join(DIR, keys.key), keyFileText(key), { mode: 0o600 });
      await writeFile(path.join(DIR, keys.passphrase), `${passphrase}\n`, { mode: 0o600 });
      await writeFile(path.join(DIR, keys.identityA), identityFileText(a, created), { mode: 0o600 });
      await writeFile(path.join(DIR, keys.identityB), identityFileText(b, created), { mode: 0o600 });

      const pass = await passphraseProtector(Buffer.from(passphrase), TEST_SCRYPT);
      const hello: Plaintext = { utf8: 'Hello, dbbackup!\n' };
      const p150k: Plaintext = { pattern: 'i mod 251', length: 150_000 };
      const p64k: Plaintext = { pattern: 'i mod 251', length: CHUNK_SIZE };
      const vectors: Vector[] = [];
      const files = new Map<string, Buffer>();

      const add = async (
        file: string,
        comment: string,
        protectors: KeyProtector[],
        plaintext: Plaintext,
        unlockWith: Unlock[],
        cipher: CipherName = 'aes-256-gcm',
      ): Promise<Buffer> => {
        const plain = plaintextOf(plaintext);
        const sealed = await through(plain, createEncryptStream(protectors, { cipher }).stream);
        files.set(file, sealed);
        vectors.push({ file, comment, unlockWith, plaintext, sha256: sha256(plain) });
        return sealed;
      };
      const addBad = (
        file: string,
        comment: string,
        sealed: Buffer,
        unlockWith: Unlock[],
        error: Vector['error'],
      ) => {
        files.set(file, sealed);
        vectors.push({ file, comment, unlockWith, error });
      };

      const helloKey = await add(
        'key-hello.enc',
        'symmetric key, one short final chunk',
        [keyProtector(key)],
        hello,
        ['key'],
      );
      {
        const { header } = parseHeader(helloKey);
        const dataKey = await unlockHeader(header, [keyUnlocker(key)]);
        const stanza = header.stanzas[0];
        const wrapSalt = stanza?.kind === 'key' ? stanza.wrapSalt : Buffer.alloc(0);
        const last = vectors[vectors.length - 1];
        if (last)
          last.intermediate = {
            keyId: keyId(key).toString('hex'),
            keyStanzaWrapKey: hkdf(key, wrapSalt, LABEL.keyWrap, 32).toString('hex'),
            dataKey: dataKey.toString('hex'),
            headerMacKey: hkdf(dataKey, Buffer.alloc(0), LABEL.headerMac, 32).toString('hex'),
            payloadKey: hkdf(dataKey, header.payloadNonce, LABEL.payload, 32).toString('hex'),
            chunk0Nonce: '000000000000000000000001',
          };
      }
      await add(
        'key-empty.enc',
        'empty plaintext: one final empty chunk',
        [keyProtector(key)],
        { utf8: '' },
        ['key'],
      );
      const three = await add(
        'key-3chunks.enc',
        '150000 bytes: two full chunks and a final partial one',
        [keyProtector(key)],
        p150k,
        ['key'],
      );
      await add(
        'chacha-3chunks.enc',
        'as key-3chunks.enc with ChaCha20-Poly1305 (cipher id 2)',
        [keyProtector(key)],
        p150k,
        ['key'],
        'chacha20-poly1305',
      );
      await add('passphrase-hello.enc', 'scrypt stanza (logN 10: test-only cost)', [pass], hello, [
        'passphrase',
      ]);
      const full = await add(
        'recipients-64k.enc',
        'two X25519 recipients; exactly 65536 bytes, so one full final chunk',
        [recipientProtector(a.publicKey), recipientProtector(b.publicKey)],
        p64k,
        ['identityA', 'identityB'],
      );
      const all = await add(
        'all-kinds.enc',
        'key, passphrase and recipient A stanzas in one header',
        [keyProtector(key), pass, recipientProtector(a.publicKey)],
        hello,
        ['key', 'passphrase', 'identityA'],
      );

      const h3 = parseHeader(three).headerLength;
      addBad(
        'bad-truncated.enc',
        'key-3chunks.enc without its final chunk (cut at a chunk boundary)',
        three.subarray(0, h3 + 2 * SEALED_CHUNK_SIZE),
        ['key'],
        {
          class: 'IntegrityError',
          message: 'truncated: it ends with chunk 1, which is not the final chunk',
        },
      );
      const c0 = three.subarray(h3, h3 + SEALED_CHUNK_SIZE);
      const c1 = three.subarray(h3 + SEALED_CHUNK_SIZE, h3 + 2 * SEALED_CHUNK_SIZE);
      addBad(
        'bad-swapped.enc',
        'key-3chunks.enc with chunks 0 and 1 swapped',
        Buffer.concat([three.subarray(0, h3), c1, c0, three.subarray(h3 + 2 * SEALED_CHUNK_SIZE)]),
        ['key'],
        { class: 'IntegrityError', message: 'chunk 0 failed authentication' },
      );
      const badNonce = Buffer.from(helloKey);
      badNonce[14] = (badNonce[14] ?? 0) ^ 1;
      addBad(
        'bad-header-mac.enc',
        'key-hello.enc with a bit of the payload nonce flipped',
        badNonce,
        ['key'],
        {
          class: 'IntegrityError',
          message: 'MAC does not match',
        },
      );
      addBad(
        'bad-appended.enc',
        'recipients-64k.enc with one byte appended after its full final chunk',
        Buffer.concat([full, Buffer.from([0])]),
        ['identityA'],
        { class: 'IntegrityError', message: 'unexpected data after its final chunk 0' },
      );
      addBad('all-kinds.enc', 'identity B is not among the recipients', all, ['identityB'], {
        class: 'EncryptionKeyError',
        message: 'does not unlock it',
      });

      for (const [file, data] of files) await writeFile(path.join(DIR, file), data);
      const spec: VectorFile = {
        comment:
          'Test vectors for docs/encryption-format.md. Key files are relative to this directory; plaintext "i mod 251" means byte i has value i % 251.',
        keys,
        vectors,
      };
      await writeFile(path.join(DIR, 'vectors.json'), `${JSON.stringify(spec, null, 2)}\n`);
    });
});
