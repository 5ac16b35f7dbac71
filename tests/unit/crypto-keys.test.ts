import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { keygenCommand } from '../../src/cli/commands/keygen.js';
import { bech32Decode, bech32Encode } from '../../src/crypto/bech32.js';
import { EncryptionKeyError } from '../../src/crypto/errors.js';
import { parseHeader } from '../../src/crypto/format.js';
import {
  DEFAULT_KEY_ENV,
  describeEncryption,
  formatIdentity,
  formatRecipient,
  generateIdentity,
  generateSymmetricKey,
  identityFileText,
  keyFileText,
  loadIdentityFile,
  loadKeyFile,
  loadKeyFromEnv,
  loadPassphraseFile,
  loadRecipients,
  parseIdentity,
  parseRecipient,
  protectorsFromFlags,
  recipientOf,
  unlockersFromFlags,
  type EncryptionFlags,
} from '../../src/crypto/keys.js';
import {
  identityUnlocker,
  keyId,
  keyProtector,
  keyUnlocker,
  passphraseProtector,
  passphraseUnlocker,
  recipientProtector,
  type KeyProtector,
  type KeyUnlocker,
} from '../../src/crypto/protectors.js';
import { encryptionSchemas } from '../../src/crypto/metadata.js';
import { rewrapHeader, RewrapStream } from '../../src/crypto/rewrap.js';
import { createDecryptStream, createEncryptStream } from '../../src/crypto/stream.js';
import { DbBackupError, SafetyError } from '../../src/errors.js';

const FAST_SCRYPT = { logN: 10, r: 8, p: 1 };

/** Real age-keygen output (published examples), to check bech32 and X25519 against age itself. */
const AGE_VECTORS = [
  {
    identity: 'AGE-SECRET-KEY-1N84CR29PJTUQA22ALHP4YDL5ZFMXPW5GVETVY3UK58ZD6NPNPDLS4MCZFS',
    recipient: 'age1c3jdepjm05aey2dq9dgkfn4utj9a776zwqzqcar3879smuh04ysqttvmyd',
  },
  {
    identity: 'AGE-SECRET-KEY-1JQ4L7CGCHC2TE7JUJ7YG4Y4DREUWFD7Y6U5XKFZ3EYTNY62Z5PES6MWJVN',
    recipient: 'age1f406y9syjcsa2gj2lgz0s2g7suxrytycqr79zccg3d4spcujegqsgl00rd',
  },
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'dbbackup-crypto-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function secretFile(name: string, content: string | Buffer, mode = 0o600): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, content, { mode });
  await chmod(file, mode);
  return file;
}

async function pass(chunks: Buffer[], ...stages: NodeJS.ReadWriteStream[]): Promise<Buffer> {
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk);
      cb();
    },
  });
  await pipeline([Readable.from(chunks, { objectMode: false }), ...stages, sink]);
  return Buffer.concat(out);
}

async function encrypt(plain: Buffer, protectors: KeyProtector[]): Promise<Buffer> {
  return pass([plain], createEncryptStream(protectors).stream);
}

async function decrypt(sealed: Buffer, unlockers: KeyUnlocker[]): Promise<Buffer> {
  return pass([sealed], createDecryptStream(unlockers));
}

const plain = randomBytes(150_000);

describe('bech32 and age encodings', () => {
  it('derives the published age recipients from their identities', () => {
    for (const v of AGE_VECTORS) {
      const secret = parseIdentity(v.identity);
      expect(secret).toBeDefined();
      expect(recipientOf(secret ?? Buffer.alloc(0))).toBe(v.recipient);
      expect(formatIdentity(secret ?? Buffer.alloc(0))).toBe(v.identity);
      expect(parseRecipient(v.recipient).length).toBe(32);
    }
  });

  it('rejects bad checksums, mixed case and wrong prefixes', () => {
    const [v] = AGE_VECTORS;
    const r = v?.recipient ?? '';
    expect(() => parseRecipient(`${r.slice(0, -1)}q`)).toThrow(EncryptionKeyError);
    expect(() => parseRecipient(r.toUpperCase().slice(0, 10) + r.slice(10))).toThrow(
      /not a valid X25519 recipient/,
    );
    expect(() => parseRecipient(v?.identity ?? '')).toThrow(EncryptionKeyError);
    try {
      parseRecipient(v?.identity ?? '');
    } catch (err) {
      expect((err as DbBackupError).hint).toMatch(/secret identity, not a recipient/);
    }
    expect(parseIdentity(v?.recipient ?? '')).toBeUndefined();
    expect(parseIdentity((v?.identity ?? '').toLowerCase())).toBeDefined();
    expect(bech32Decode('a12uel5l')).toEqual({ hrp: 'a', data: Buffer.alloc(0) }); // BIP 173 valid vector
    expect(bech32Decode('A12UEL5L')).toBeDefined();
    expect(bech32Decode('a12uel5L')).toBeUndefined();
    expect(bech32Encode('a', Buffer.alloc(0))).toBe('a12uel5l');
  });

  it('generates identities whose recipient round-trips', () => {
    const id = generateIdentity();
    expect(id.identity).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    expect(id.recipient).toMatch(/^age1[0-9a-z]{58}$/);
    expect(parseIdentity(id.identity)?.equals(id.privateKey)).toBe(true);
    expect(recipientOf(id.privateKey)).toBe(id.recipient);
    expect(identityFileText(id, new Date('2026-01-02T03:04:05.678Z'))).toBe(
      `# created: 2026-01-02T03:04:05Z\n# public key: ${id.recipient}\n${id.identity}\n`,
    );
  });
});

describe('key sources round-trip', () => {
  it('a key file with 32 raw bytes', async () => {
    const key = randomBytes(32);
    const file = await secretFile('raw.key', key);
    const loaded = await loadKeyFile(file);
    expect(loaded.equals(key)).toBe(true);
    const sealed = await encrypt(plain, [keyProtector(loaded)]);
    expect((await decrypt(sealed, [keyUnlocker(await loadKeyFile(file))])).equals(plain)).toBe(true);
  });

  it('a key file with base64 (what keygen --symmetric writes), with or without a newline', async () => {
    const key = generateSymmetricKey();
    const file = await secretFile('b64.key', keyFileText(key));
    expect((await loadKeyFile(file)).equals(key)).toBe(true);
    const bare = await secretFile('b64-bare.key', key.toString('base64'));
    expect((await loadKeyFile(bare)).equals(key)).toBe(true);
    const sealed = await encrypt(plain, [keyProtector(key)]);
    expect((await decrypt(sealed, [keyUnlocker(await loadKeyFile(bare))])).equals(plain)).toBe(true);
  });

  it('refuses key files that are not a key, never treating them as a passphrase', async () => {
    const short = await secretFile('short.key', 'hunter2\n');
    await expect(loadKeyFile(short)).rejects.toThrow(
      /expected 32 raw bytes or the base64 of 32 bytes, found 8 bytes/,
    );
    const b64short = await secretFile('b64short.key', randomBytes(16).toString('base64'));
    await expect(loadKeyFile(b64short)).rejects.toThrow(EncryptionKeyError);
    await expect(loadKeyFile(path.join(dir, 'missing.key'))).rejects.toThrow(/does not exist/);
  });

  it('the environment variable (base64 of 32 bytes)', async () => {
    const key = generateSymmetricKey();
    const env = { [DEFAULT_KEY_ENV]: key.toString('base64'), OTHER: ` ${key.toString('base64')}\n` };
    expect(loadKeyFromEnv(undefined, env)?.equals(key)).toBe(true);
    expect(loadKeyFromEnv('OTHER', env)?.equals(key)).toBe(true);
    expect(loadKeyFromEnv('UNSET', env)).toBeUndefined();
    expect(() => loadKeyFromEnv('BAD', { BAD: 'x'.repeat(32) })).toThrow(/does not hold a key/);
    const sealed = await encrypt(plain, await protectorsFromFlags({ encrypt: true }, env));
    expect((await decrypt(sealed, await unlockersFromFlags({}, env))).equals(plain)).toBe(true);
  });

  it('a passphrase file (scrypt; parameters and salt in the header)', async () => {
    const file = await secretFile('pass.txt', 'correct horse battery staple\n');
    const passphrase = await loadPassphraseFile(file);
    expect(passphrase.toString()).toBe('correct horse battery staple');
    const sealed = await encrypt(plain, [await passphraseProtector(passphrase, FAST_SCRYPT)]);
    const stanza = parseHeader(sealed).header.stanzas[0];
    expect(stanza).toMatchObject({ kind: 'scrypt', logN: 10, r: 8, p: 1 });
    const unlocker = passphraseUnlocker(await loadPassphraseFile(file), `passphrase in ${file}`);
    expect((await decrypt(sealed, [unlocker])).equals(plain)).toBe(true);
    await expect(loadPassphraseFile(await secretFile('empty.txt', '\n'))).rejects.toThrow(/is empty/);
  });

  it('one recipient: its identity decrypts', async () => {
    const id = generateIdentity();
    const idFile = await secretFile('one.txt', identityFileText(id));
    const sealed = await encrypt(plain, [recipientProtector(parseRecipient(id.recipient))]);
    expect((await decrypt(sealed, [identityUnlocker(await loadIdentityFile(idFile))])).equals(plain)).toBe(
      true,
    );
  });

  it('several recipients (flags and a file): each identity alone decrypts', async () => {
    const ids = [generateIdentity(), generateIdentity(), generateIdentity()];
    const list = await secretFile(
      'recipients.txt',
      `# ops team\n${ids[1]?.recipient}\n\n  ${ids[2]?.recipient}  \n${ids[0]?.recipient}\n`,
      0o644,
    );
    const keys = await loadRecipients([ids[0]?.recipient ?? ''], [list]);
    expect(keys.length).toBe(3); // the duplicate is dropped
    const sealed = await encrypt(plain, keys.map(recipientProtector));
    expect(describeEncryption(parseHeader(sealed).header).protections).toEqual(
      keys.map((k) => ({ kind: 'recipient', recipient: formatRecipient(k) })),
    );
    for (const id of ids) {
      expect((await decrypt(sealed, [identityUnlocker([id.privateKey])])).equals(plain)).toBe(true);
    }
  });

  it('an identity file with several identities and age-keygen comments', async () => {
    const [a, b] = [generateIdentity(), generateIdentity()];
    const file = await secretFile('two.txt', identityFileText(a) + identityFileText(b));
    expect((await loadIdentityFile(file)).length).toBe(2);
    const sealed = await encrypt(plain, [recipientProtector(b.publicKey)]);
    expect((await decrypt(sealed, [identityUnlocker(await loadIdentityFile(file))])).equals(plain)).toBe(
      true,
    );
    const wrongLine = await secretFile('wrong.txt', `${a.recipient}\n`);
    await expect(loadIdentityFile(wrongLine)).rejects.toThrow(/is not an X25519 identity/);
    await expect(loadIdentityFile(await secretFile('none.txt', '# nothing\n'))).rejects.toThrow(
      /holds no identity/,
    );
  });

  it('key file, passphrase and recipient together: any one decrypts', async () => {
    const key = randomBytes(32);
    const id = generateIdentity();
    const passphrase = Buffer.from('pass phrase');
    const sealed = await encrypt(plain, [
      keyProtector(key),
      await passphraseProtector(passphrase, FAST_SCRYPT),
      recipientProtector(id.publicKey),
    ]);
    for (const u of [keyUnlocker(key), passphraseUnlocker(passphrase), identityUnlocker([id.privateKey])]) {
      expect((await decrypt(sealed, [u])).equals(plain)).toBe(true);
    }
  });
});

describe('wrong or missing keys', () => {
  async function failure(sealed: Buffer, unlockers: KeyUnlocker[]): Promise<DbBackupError> {
    const err = await decrypt(sealed, unlockers).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EncryptionKeyError);
    return err as DbBackupError;
  }

  it('wrong key', async () => {
    const sealed = await encrypt(plain, [keyProtector(randomBytes(32))]);
    const err = await failure(sealed, [keyUnlocker(randomBytes(32), 'key in /etc/other.key')]);
    expect(err.message).toBe('The backup is encrypted and the key in /etc/other.key does not unlock it');
  });

  it('wrong passphrase', async () => {
    const sealed = await encrypt(plain, [await passphraseProtector(Buffer.from('right'), FAST_SCRYPT)]);
    const err = await failure(sealed, [passphraseUnlocker(Buffer.from('wrong'), 'passphrase in p.txt')]);
    expect(err.message).toBe('The backup is encrypted and the passphrase in p.txt does not unlock it');
    expect(err.hint).toMatch(/passphrase \(--passphrase-file\)/);
  });

  it('wrong identity', async () => {
    const right = generateIdentity();
    const sealed = await encrypt(plain, [recipientProtector(right.publicKey)]);
    const err = await failure(sealed, [
      identityUnlocker([generateIdentity().privateKey], 'identity in id.txt'),
    ]);
    expect(err.message).toBe('The backup is encrypted and the identity in id.txt does not unlock it');
    expect(err.hint).toContain(right.recipient);
  });

  it('the wrong kind of key', async () => {
    const sealed = await encrypt(plain, [await passphraseProtector(Buffer.from('pw'), FAST_SCRYPT)]);
    const err = await failure(sealed, [keyUnlocker(randomBytes(32), 'key in k')]);
    expect(err.hint).toMatch(/--passphrase-file/);
  });

  it('missing key', async () => {
    const sealed = await encrypt(plain, [keyProtector(randomBytes(32))]);
    const err = await failure(sealed, await unlockersFromFlags({}, {}));
    expect(err.message).toMatch(/no key, passphrase or identity was given/);
  });
});

describe('key file permissions', () => {
  it('refuses a world- or group-readable key file with a chmod hint, accepts it with insecure', async () => {
    const key = randomBytes(32);
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      const file = await secretFile(`open-${mode.toString(8)}.key`, keyFileText(key), mode);
      const err = await loadKeyFile(file).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(EncryptionKeyError);
      expect((err as DbBackupError).message).toMatch(/accessible by other users/);
      expect((err as DbBackupError).hint).toContain(`chmod 600 ${file}`);
      expect((await loadKeyFile(file, { insecure: true })).equals(key)).toBe(true);
    }
    const ok = await secretFile('ok.key', keyFileText(key), 0o400);
    expect((await loadKeyFile(ok)).equals(key)).toBe(true);
  });

  it('applies to passphrase and identity files too, and to the flags', async () => {
    const pf = await secretFile('open-pass.txt', 'pw\n', 0o644);
    await expect(loadPassphraseFile(pf)).rejects.toThrow(/accessible by other users/);
    const idf = await secretFile('open-id.txt', identityFileText(generateIdentity()), 0o644);
    await expect(loadIdentityFile(idf)).rejects.toThrow(/accessible by other users/);
    await expect(unlockersFromFlags({ identityFile: [idf] }, {})).rejects.toThrow(/chmod|accessible/);
    expect((await unlockersFromFlags({ identityFile: [idf], insecureKeyFile: true }, {})).length).toBe(1);
  });
});

describe('flags', () => {
  it('no encryption unless asked', async () => {
    expect(
      await protectorsFromFlags({}, { [DEFAULT_KEY_ENV]: generateSymmetricKey().toString('base64') }),
    ).toEqual([]);
  });

  it('--encrypt without any key source fails clearly', async () => {
    await expect(protectorsFromFlags({ encrypt: true }, {})).rejects.toThrow(
      /Encryption was requested but DBBACKUP_ENCRYPTION_KEY is not set/,
    );
    await expect(protectorsFromFlags({ encryptionKeyEnv: 'MY_KEY' }, {})).rejects.toThrow(
      /MY_KEY is not set/,
    );
  });

  it('combines sources into several stanzas', async () => {
    const keyFile = await secretFile('flags.key', keyFileText(generateSymmetricKey()));
    const passFile = await secretFile('flags-pass.txt', 'pw');
    const id = generateIdentity();
    const flags: EncryptionFlags = {
      encryptionKeyFile: keyFile,
      passphraseFile: passFile,
      recipient: [id.recipient],
    };
    const protectors = await protectorsFromFlags(flags, {}, FAST_SCRYPT);
    expect(protectors.map((p) => p.kind)).toEqual(['key', 'scrypt', 'x25519']);
    expect(protectors[2]?.description).toBe(id.recipient);
    await expect(protectorsFromFlags({ recipient: [id.recipient], identityFile: ['x'] }, {})).rejects.toThrow(
      /--identity-file is for decrypting/,
    );
  });
});

describe('rewrapHeader', () => {
  it('moves a backup to a new key without touching the body; only the new key opens it', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const sealed = await encrypt(plain, [keyProtector(oldKey)]);
    const { headerLength } = parseHeader(sealed);
    const header = await rewrapHeader(
      sealed.subarray(0, headerLength),
      [keyUnlocker(oldKey)],
      [keyProtector(newKey)],
    );
    const rekeyed = Buffer.concat([header, sealed.subarray(headerLength)]);
    expect((await decrypt(rekeyed, [keyUnlocker(newKey)])).equals(plain)).toBe(true);
    await expect(decrypt(rekeyed, [keyUnlocker(oldKey)])).rejects.toThrow(/does not unlock it/);
    expect(describeEncryption(parseHeader(rekeyed).header).protections).toEqual([
      { kind: 'key', keyId: keyId(newKey).toString('hex') },
    ]);
  });

  it('adds a recipient while keeping the old protections; refuses a wrong key', async () => {
    const key = randomBytes(32);
    const id = generateIdentity();
    const sealed = await encrypt(plain, [keyProtector(key)]);
    const header = await rewrapHeader(sealed, [keyUnlocker(key)], [recipientProtector(id.publicKey)], {
      keepExisting: true,
    });
    const rekeyed = Buffer.concat([header, sealed.subarray(parseHeader(sealed).headerLength)]);
    expect((await decrypt(rekeyed, [keyUnlocker(key)])).equals(plain)).toBe(true);
    expect((await decrypt(rekeyed, [identityUnlocker([id.privateKey])])).equals(plain)).toBe(true);
    await expect(rewrapHeader(sealed, [keyUnlocker(randomBytes(32))], [keyProtector(key)])).rejects.toThrow(
      EncryptionKeyError,
    );
  });

  it('RewrapStream rekeys a stream, whatever its chunking', async () => {
    const passphrase = Buffer.from('old passphrase');
    const sealed = await encrypt(plain, [await passphraseProtector(passphrase, FAST_SCRYPT)]);
    const id = generateIdentity();
    const chunks: Buffer[] = [];
    for (let i = 0; i < sealed.length; i += 7) chunks.push(sealed.subarray(i, i + 7));
    const rekeyed = await pass(
      chunks,
      new RewrapStream([passphraseUnlocker(passphrase)], [recipientProtector(id.publicKey)]),
    );
    expect(
      rekeyed
        .subarray(parseHeader(rekeyed).headerLength)
        .equals(sealed.subarray(parseHeader(sealed).headerLength)),
    ).toBe(true);
    expect((await decrypt(rekeyed, [identityUnlocker([id.privateKey])])).equals(plain)).toBe(true);
  });
});

describe('describeEncryption', () => {
  it('records cipher, kinds, key ids and recipients, never key material', async () => {
    const key = randomBytes(32);
    const id = generateIdentity();
    const { header } = createEncryptStream([
      keyProtector(key),
      await passphraseProtector(Buffer.from('pw'), FAST_SCRYPT),
      recipientProtector(id.publicKey),
    ]);
    const d = describeEncryption(header);
    expect(d).toEqual({
      format: 'dbbackup-enc',
      formatVersion: 1,
      cipher: 'aes-256-gcm',
      chunkSize: 65536,
      protections: [
        { kind: 'key', keyId: keyId(key).toString('hex') },
        { kind: 'passphrase', kdf: 'scrypt', logN: 10, r: 8, p: 1 },
        { kind: 'recipient', recipient: id.recipient },
      ],
    });
    expect(encryptionSchemas().encryptionDescription.parse(d)).toEqual(d);
    const json = JSON.stringify(d);
    for (const secret of [key, id.privateKey]) {
      expect(json).not.toContain(secret.toString('hex'));
      expect(json).not.toContain(secret.toString('base64'));
    }
  });
});

describe('keygen command', () => {
  async function keygen(...args: string[]): Promise<{ stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      stdout += String(s);
      return true;
    });
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
      stderr += String(s);
      return true;
    });
    try {
      await keygenCommand().exitOverride().parseAsync(args, { from: 'user' });
    } finally {
      o.mockRestore();
      e.mockRestore();
    }
    return { stdout, stderr };
  }

  it('writes a 0600 identity file, prints its recipient, and refuses to overwrite', async () => {
    const file = path.join(dir, 'keygen-id.txt');
    const { stdout } = await keygen('--output', file);
    const recipient = stdout.trim();
    expect(recipient).toMatch(/^age1[0-9a-z]{58}$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const ids = await loadIdentityFile(file);
    expect(recipientOf(ids[0] ?? Buffer.alloc(0))).toBe(recipient);
    const before = await readFile(file, 'utf8');
    await expect(keygen('--output', file)).rejects.toThrow(SafetyError);
    expect(await readFile(file, 'utf8')).toBe(before);
    await keygen('--output', file, '--force');
    expect(await readFile(file, 'utf8')).not.toBe(before);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('--symmetric writes a base64 32-byte key that loads as a key file', async () => {
    const file = path.join(dir, 'keygen.key');
    const { stdout } = await keygen('--symmetric', '--output', file);
    const key = await loadKeyFile(file);
    expect(stdout).toContain(`Key written to ${file} (key id ${keyId(key).toString('hex')})`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const json = await keygen('--symmetric', '--output', path.join(dir, 'keygen2.key'), '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ kind: 'key' });
  });
});
