import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliOptions, CliResult } from '../harness/cli.js';
import { loadPgFidelity } from '../harness/fixtures.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { pgSnapshot, type PgSnapshot } from '../harness/pg-snapshot.js';
import { DUMMY_CREDENTIALS, startS3Emulator } from '../harness/s3-emulator.js';
import { cli, expectExit, onlyBackup, pgArgs, removeDir, sha256File, tempDir, uniqueName } from './util.js';

/**
 * Encrypted backups end to end: the real CLI against the throwaway PostgreSQL server, every key
 * source, the refusals, tampering detected by the encryption layer, and a trip through the S3
 * emulator.
 */
const MAGIC = Buffer.from('894442424b454e43', 'hex');
const CHUNK = 65536;
const SEALED_CHUNK = CHUNK + 16;
const SLOW = 300_000;

const small = uniqueName('pg_enc_small');
const fidelity = uniqueName('pg_enc_fid');
const created: string[] = [small, fidelity];
let smallBefore: PgSnapshot;
let fidelityBefore: PgSnapshot;
let keys: string;

/** No key leaks in from the caller's environment unless a test puts it there. */
const NO_KEY_ENV = { DBBACKUP_ENCRYPTION_KEY: undefined };

function run(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return cli(args, { timeoutMs: SLOW, ...opts, env: { ...NO_KEY_ENV, ...opts.env } });
}

beforeAll(async () => {
  keys = await tempDir('dbb-enc-keys-');
  await createPgDatabase(small);
  await pgExec(
    small,
    `CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);
     INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 200) AS i;`,
  );
  smallBefore = await pgSnapshot(small);
  await createPgDatabase(fidelity);
  await loadPgFidelity(fidelity);
  fidelityBefore = await pgSnapshot(fidelity);
}, SLOW);

afterAll(async () => {
  for (const db of created) await dropPgDatabase(db);
  await removeDir(keys);
}, SLOW);

async function dbExists(name: string): Promise<boolean> {
  return (await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0;
}

/** `keygen --symmetric`: a 0600 key file; returns its path and content. */
async function symmetricKey(name: string): Promise<{ file: string; text: string; keyId: string }> {
  const file = path.join(keys, name);
  const r = await run(['keygen', '--symmetric', '--output', file, '--json']);
  expectExit(r, 0);
  const out = JSON.parse(r.stdout) as { keyId?: string };
  const text = (await readFile(file, 'utf8')).trim();
  expect(out.keyId).toMatch(/^[0-9a-f]{16}$/);
  return { file, text, keyId: out.keyId ?? '' };
}

/** `keygen`: a 0600 identity file; returns its path, its secret line and the recipient. */
async function identity(name: string): Promise<{ file: string; secret: string; recipient: string }> {
  const file = path.join(keys, name);
  const r = await run(['keygen', '--output', file, '--json']);
  expectExit(r, 0);
  const { recipient } = JSON.parse(r.stdout) as { recipient: string };
  expect(recipient).toMatch(/^age1[0-9a-z]+$/);
  const secret = (await readFile(file, 'utf8')).split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'));
  if (!secret) throw new Error(`no identity in ${file}`);
  return { file, secret, recipient };
}

async function passphraseFile(name: string, passphrase: string): Promise<string> {
  const file = path.join(keys, name);
  await writeFile(file, `${passphrase}\n`, { mode: 0o600 });
  return file;
}

async function backup(
  db: string,
  dir: string,
  extra: string[],
  opts: { env?: Record<string, string | undefined>; global?: string[] } = {},
): Promise<string> {
  const r = await run(
    [...pgArgs(), '--backup-dir', dir, ...(opts.global ?? []), 'backup', 'single', db, ...extra],
    { env: opts.env },
  );
  expectExit(r, 0);
  expect(r.stdout).toContain('Backup complete:');
  return onlyBackup(dir);
}

function restoreArgs(file: string, target: string, extra: string[] = []): string[] {
  return [...pgArgs(), 'restore', 'single', file, '--target', target, '--create', '--confirm', ...extra];
}

async function restoreInto(
  file: string,
  target: string,
  extra: string[],
  env?: Record<string, string | undefined>,
): Promise<void> {
  created.push(target);
  const r = await run(restoreArgs(file, target, extra), { env });
  expectExit(r, 0);
  expect(r.stdout).toContain(`Restore complete: "${target}"`);
}

interface EncryptionMeta {
  format: string;
  formatVersion: number;
  cipher: string;
  chunkSize: number;
  protections: Array<{ kind: string; keyId?: string; recipient?: string; kdf?: string }>;
}

/**
 * The checks every encrypted backup passes: `.enc` name, magic, verify-backup without a key,
 * metadata describing the encryption with none of `secrets` in it. Returns the encryption metadata.
 */
async function checkEncrypted(file: string, secrets: string[]): Promise<EncryptionMeta> {
  expect(path.basename(file)).toMatch(/\.enc$/);
  const bytes = await readFile(file);
  expect(bytes.subarray(0, 8).equals(MAGIC)).toBe(true);
  expect(bytes.subarray(0, 4).toString('hex')).not.toBe('28b52ffd');
  expect(bytes.subarray(0, 5).toString('latin1')).not.toBe('PGDMP');

  const verify = await run(['verify-backup', file]);
  expectExit(verify, 0);
  expect(verify.stdout).toMatch(/^OK\s/m);

  const metaText = await readFile(`${file}.meta.json`, 'utf8');
  for (const s of secrets) expect(metaText).not.toContain(s);
  const meta = JSON.parse(metaText) as { sha256: string; sizeBytes: number; encryption?: EncryptionMeta };
  expect(meta.sha256).toBe(await sha256File(file));
  expect(meta.sizeBytes).toBe(bytes.length);
  expect(meta.encryption).toMatchObject({
    format: 'dbbackup-enc',
    formatVersion: 1,
    cipher: 'aes-256-gcm',
    chunkSize: CHUNK,
  });
  return meta.encryption as EncryptionMeta;
}

/** A refused command: exit code, one `error:` line matching `message`, a `hint:` line matching `hint`. */
function expectRefused(r: CliResult, code: number, message: RegExp, hint?: RegExp): void {
  expectExit(r, code);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('dbbackup: error:'));
  expect(errors, r.stderr).toHaveLength(1);
  expect(errors[0]).toMatch(message);
  const hints = r.stderr.split('\n').filter((l) => l.startsWith('hint:'));
  expect(hints, r.stderr).toHaveLength(1);
  if (hint) expect(hints[0]).toMatch(hint);
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

describe('encrypted round trips, one per key source', () => {
  it(
    '--encryption-key-file from keygen --symmetric',
    async () => {
      const key = await symmetricKey('sym.key');
      const { mode } = await stat(key.file);
      expect(mode & 0o777).toBe(0o600);
      const dir = await tempDir();
      try {
        const file = await backup(small, dir, ['--encryption-key-file', key.file]);
        const enc = await checkEncrypted(file, [key.text]);
        expect(enc.protections).toEqual([{ kind: 'key', keyId: expect.stringMatching(/^[0-9a-f]{16}$/) }]);
        expect(enc.protections[0]?.keyId).toBe(key.keyId);
        const target = uniqueName('pg_enc_kf');
        await restoreInto(file, target, ['--encryption-key-file', key.file]);
        expect(await pgSnapshot(target)).toEqual(smallBefore);
      } finally {
        await removeDir(dir);
      }
    },
    SLOW,
  );

  it(
    '--encrypt with DBBACKUP_ENCRYPTION_KEY (base64 of 32 bytes)',
    async () => {
      const key = Buffer.alloc(32, 7).toString('base64');
      const env = { DBBACKUP_ENCRYPTION_KEY: key };
      const dir = await tempDir();
      try {
        const file = await backup(small, dir, ['--encrypt'], { env });
        const enc = await checkEncrypted(file, [key]);
        expect(enc.protections).toEqual([{ kind: 'key', keyId: expect.stringMatching(/^[0-9a-f]{16}$/) }]);
        const target = uniqueName('pg_enc_env');
        await restoreInto(file, target, [], env);
        expect(await pgSnapshot(target)).toEqual(smallBefore);
      } finally {
        await removeDir(dir);
      }
    },
    SLOW,
  );

  it(
    '--passphrase-file',
    async () => {
      const passphrase = 'correct horse battery staple e2e';
      const file0 = await passphraseFile('pass.txt', passphrase);
      const dir = await tempDir();
      try {
        const file = await backup(small, dir, ['--passphrase-file', file0]);
        const enc = await checkEncrypted(file, [passphrase]);
        expect(enc.protections).toEqual([
          expect.objectContaining({ kind: 'passphrase', kdf: 'scrypt', logN: 18, r: 8, p: 1 }),
        ]);
        const target = uniqueName('pg_enc_pp');
        await restoreInto(file, target, ['--passphrase-file', file0]);
        expect(await pgSnapshot(target)).toEqual(smallBefore);
      } finally {
        await removeDir(dir);
      }
    },
    SLOW,
  );

  it(
    '--recipient, restored with --identity-file (the fidelity fixture)',
    async () => {
      const id = await identity('id-rt.txt');
      const dir = await tempDir();
      try {
        const file = await backup(fidelity, dir, ['--recipient', id.recipient]);
        const enc = await checkEncrypted(file, [id.secret, id.secret.slice('AGE-SECRET-KEY-1'.length)]);
        expect(enc.protections).toEqual([{ kind: 'recipient', recipient: id.recipient }]);
        const target = uniqueName('pg_enc_id');
        await restoreInto(file, target, ['--identity-file', id.file]);
        expect(await pgSnapshot(target)).toEqual(fidelityBefore);
      } finally {
        await removeDir(dir);
      }
    },
    SLOW,
  );

  it(
    'two recipients: each identity alone restores',
    async () => {
      const a = await identity('id-a.txt');
      const b = await identity('id-b.txt');
      const dir = await tempDir();
      try {
        const file = await backup(small, dir, ['--recipient', a.recipient, '--recipient', b.recipient]);
        const enc = await checkEncrypted(file, [a.secret, b.secret]);
        expect(enc.protections).toEqual([
          { kind: 'recipient', recipient: a.recipient },
          { kind: 'recipient', recipient: b.recipient },
        ]);
        for (const id of [a, b]) {
          const target = uniqueName('pg_enc_2r');
          await restoreInto(file, target, ['--identity-file', id.file]);
          expect(await pgSnapshot(target)).toEqual(smallBefore);
        }
      } finally {
        await removeDir(dir);
      }
    },
    SLOW,
  );
});

describe('refusals: the target database is never created', () => {
  let dir: string;
  let keyFile: { file: string; text: string; keyId: string };
  let keyFileBackup: string;

  beforeAll(async () => {
    dir = await tempDir();
    keyFile = await symmetricKey('refuse.key');
    keyFileBackup = await backup(small, dir, ['--encryption-key-file', keyFile.file]);
  }, SLOW);

  afterAll(async () => {
    await removeDir(dir);
  });

  async function refusedRestore(
    file: string,
    extra: string[],
    code: number,
    message: RegExp,
    hint?: RegExp,
    env?: Record<string, string | undefined>,
  ): Promise<void> {
    const target = uniqueName('pg_enc_no');
    created.push(target);
    const r = await run(restoreArgs(file, target, extra), { env });
    expectRefused(r, code, message, hint);
    expect(await dbExists(target)).toBe(false);
  }

  it('missing key', async () => {
    await refusedRestore(keyFileBackup, [], 1, /is encrypted and no key was given/, /--encryption-key-file/);
  });

  it('wrong key file', async () => {
    const other = await symmetricKey('other.key');
    await refusedRestore(
      keyFileBackup,
      ['--encryption-key-file', other.file],
      1,
      /the key in .*other\.key does not unlock it/,
      new RegExp(`key with id ${keyFile.keyId}`),
    );
  });

  it(
    'wrong passphrase',
    async () => {
      const sub = await tempDir();
      try {
        const good = await passphraseFile('good-pass.txt', 'the right passphrase');
        const bad = await passphraseFile('bad-pass.txt', 'the wrong passphrase');
        const file = await backup(small, sub, ['--passphrase-file', good]);
        await refusedRestore(
          file,
          ['--passphrase-file', bad],
          1,
          /the passphrase in .*bad-pass\.txt does not unlock it/,
          /--passphrase-file/,
        );
      } finally {
        await removeDir(sub);
      }
    },
    SLOW,
  );

  it(
    'wrong identity',
    async () => {
      const right = await identity('id-right.txt');
      const wrong = await identity('id-wrong.txt');
      const sub = await tempDir();
      try {
        const file = await backup(small, sub, ['--recipient', right.recipient]);
        await refusedRestore(
          file,
          ['--identity-file', wrong.file],
          1,
          /the identity in .*id-wrong\.txt does not unlock it/,
          new RegExp(`recipient ${right.recipient}`),
        );
      } finally {
        await removeDir(sub);
      }
    },
    SLOW,
  );

  it(
    'a world-readable key file is refused (hint: chmod 600), and accepted with --insecure-key-file',
    async () => {
      const loose = await symmetricKey('loose.key');
      await chmod(loose.file, 0o644);
      const sub = await tempDir();
      try {
        // On backup: refused, nothing written.
        const b = await run([
          ...pgArgs(),
          '--backup-dir',
          sub,
          'backup',
          'single',
          small,
          '--encryption-key-file',
          loose.file,
        ]);
        expectRefused(b, 1, /accessible by other users/, /chmod 600/);
        // With --insecure-key-file it is used.
        const file = await backup(small, sub, ['--encryption-key-file', loose.file, '--insecure-key-file']);
        await checkEncrypted(file, [loose.text]);
        // On restore: refused first, restored with --insecure-key-file.
        await refusedRestore(
          file,
          ['--encryption-key-file', loose.file],
          1,
          /accessible by other users/,
          /chmod 600/,
        );
        const target = uniqueName('pg_enc_insec');
        await restoreInto(file, target, ['--encryption-key-file', loose.file, '--insecure-key-file']);
        expect(await pgSnapshot(target)).toEqual(smallBefore);
      } finally {
        await removeDir(sub);
      }
    },
    SLOW,
  );

  it('--identity-file on a backup is refused, alone or with a recipient, before anything is written', async () => {
    const id = await identity('id-backup.txt');
    const sub = await tempDir();
    try {
      for (const extra of [['--recipient', id.recipient], []]) {
        const r = await run([
          ...pgArgs(),
          '--backup-dir',
          sub,
          'backup',
          'single',
          small,
          ...extra,
          '--identity-file',
          id.file,
        ]);
        expectRefused(r, 2, /--identity-file is for decrypting/, /--recipient|age1/);
        expect(r.stderr).not.toContain(id.secret);
        expect(await readdir(sub)).toEqual([]);
      }
    } finally {
      await removeDir(sub);
    }
  });
});

describe('tampering is detected by the encryption layer', () => {
  let dir: string;
  let key: { file: string; text: string; keyId: string };
  let pristine: Buffer;
  let headerLength: number;
  let name: string;

  beforeAll(async () => {
    dir = await tempDir();
    key = await symmetricKey('tamper.key');
    const file = await backup(fidelity, dir, ['--encryption-key-file', key.file], {
      global: ['--compression', '0'],
    });
    name = path.basename(file);
    pristine = await readFile(file);
    headerLength = pristine.readUInt32BE(10);
    // Several full chunks, so there is a middle one and a boundary before the last.
    expect(pristine.length - headerLength).toBeGreaterThan(3 * SEALED_CHUNK);
  }, SLOW);

  afterAll(async () => {
    await removeDir(dir);
  });

  /** Writes `damaged` as a new backup (with the pristine sidecars), so every case starts clean. */
  async function stage(label: string, damaged: Buffer): Promise<string> {
    const sub = path.join(dir, label);
    await mkdir(sub);
    const file = path.join(sub, name);
    await writeFile(file, damaged);
    await writeFile(`${file}.meta.json`, await readFile(path.join(dir, `${name}.meta.json`)));
    await writeFile(`${file}.sha256`, await readFile(path.join(dir, `${name}.sha256`)));
    return file;
  }

  /** Makes the sidecars describe the damaged file, so only the encryption layer can notice. */
  async function rewriteChecksums(file: string): Promise<void> {
    const bytes = await readFile(file);
    const sha = await sha256File(file);
    const meta = JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as Record<string, unknown>;
    meta.sha256 = sha;
    meta.sizeBytes = bytes.length;
    await writeFile(`${file}.meta.json`, JSON.stringify(meta, null, 2));
    await writeFile(`${file}.sha256`, `${sha}  ${path.basename(file)}\n`);
  }

  async function expectDetected(label: string, damaged: Buffer, message: RegExp): Promise<void> {
    const file = await stage(label, damaged);
    // The checksum catches it without any key.
    const verify = await run(['verify-backup', file]);
    expect(verify.code, verify.stdout + verify.stderr).not.toBe(0);

    // --force skips the checksum: decryption must refuse, and no database is left behind.
    const forced = uniqueName('pg_enc_tf');
    created.push(forced);
    const r1 = await run(restoreArgs(file, forced, ['--encryption-key-file', key.file, '--force']));
    expectRefused(r1, 1, message, /damaged|modified/);
    expect(r1.stdout).not.toContain('Restore complete');
    expect(await dbExists(forced)).toBe(false);

    // Checksums rewritten to match: verify passes, verify --deep and the restore are refused by decryption.
    await rewriteChecksums(file);
    expectExit(await run(['verify-backup', file]), 0);
    const deep = await run(['verify-backup', file, '--deep', '--encryption-key-file', key.file]);
    expectExit(deep, 1);
    expect(deep.stdout).toMatch(new RegExp(`^FAIL\\s.*corrupt: ${message.source}`, 'm'));
    const matched = uniqueName('pg_enc_tm');
    created.push(matched);
    const r2 = await run(restoreArgs(file, matched, ['--encryption-key-file', key.file]));
    expectRefused(r2, 1, message, /damaged|modified/);
    expect(r2.stdout).not.toContain('Restore complete');
    expect(await dbExists(matched)).toBe(false);
  }

  it(
    'a flipped bit in a middle chunk',
    async () => {
      const damaged = Buffer.from(pristine);
      // A chunk in the middle: past the prefix read before the restore starts, so it is caught while streaming.
      const middle = Math.floor((pristine.length - headerLength) / SEALED_CHUNK / 2);
      expect(middle).toBeGreaterThan(1);
      const at = headerLength + middle * SEALED_CHUNK + 1000;
      damaged[at] = (damaged[at] ?? 0) ^ 0x01;
      await expectDetected(
        'bitflip',
        damaged,
        new RegExp(`Encrypted backup chunk ${middle} failed authentication`),
      );
    },
    SLOW,
  );

  it(
    'truncation exactly at a chunk boundary',
    async () => {
      const full = Math.floor((pristine.length - headerLength) / SEALED_CHUNK);
      const k = Math.max(1, full - 1);
      const damaged = pristine.subarray(0, headerLength + k * SEALED_CHUNK);
      expect(damaged.length).toBeLessThan(pristine.length);
      await expectDetected(
        'cut',
        damaged,
        new RegExp(
          `Encrypted backup is truncated: it ends with chunk ${k - 1}, which is not the final chunk`,
        ),
      );
    },
    SLOW,
  );

  it(
    'a changed byte in the header',
    async () => {
      const damaged = Buffer.from(pristine);
      damaged[20] = (damaged[20] ?? 0) ^ 0x40; // inside the payload nonce: only the header MAC can tell
      await expectDetected('header', damaged, /Encrypted backup header was modified: its MAC does not match/);
    },
    SLOW,
  );

  it('never touched the original backup', async () => {
    expect((await readFile(path.join(dir, name))).equals(pristine)).toBe(true);
  });
});

describe('through the S3 emulator', () => {
  it(
    'backs up to minio:// for a recipient, lists it valid, restores it with the identity',
    async () => {
      const emu = await startS3Emulator();
      try {
        const id = await identity('id-s3.txt');
        const env = {
          AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
          AWS_EC2_METADATA_DISABLED: 'true',
          AWS_REGION: undefined,
          AWS_PROFILE: undefined,
          AWS_ENDPOINT_URL: undefined,
          AWS_ENDPOINT_URL_S3: undefined,
          DBBACKUP_CLOUD_ENDPOINT: undefined,
        };
        const q = `?endpoint=${encodeURIComponent(emu.endpoint)}`;
        const prefix = `minio://bucket/p/${q}&create_bucket=true`;
        const b = await run(
          [...pgArgs(), 'backup', 'single', small, '--cloud', prefix, '--recipient', id.recipient, '--json'],
          { env },
        );
        expectExit(b, 0);
        const key = (JSON.parse(b.stdout) as { metadata: { file: string } }).metadata.file;
        expect(key).toMatch(/\.enc$/);

        const list = await run(['list', 'backups', '--cloud', `minio://bucket/p/${q}`], { env });
        expectExit(list, 0);
        expect(list.stdout).toMatch(new RegExp(`^${key.replaceAll('.', '\\.')}\\s.*\\sunverified$`, 'm'));

        const verify = await run(['verify-backup', `minio://bucket/p/${key}${q}`], { env });
        expectExit(verify, 0);

        const target = uniqueName('pg_enc_s3');
        await restoreInto(`minio://bucket/p/${key}${q}`, target, ['--identity-file', id.file], env);
        expect(await pgSnapshot(target)).toEqual(smallBefore);

        // Rekeyed in place in the bucket: a second recipient added, the first one kept.
        const id2 = await identity('id-s3-2.txt');
        const uri = `minio://bucket/p/${key}${q}`;
        const rk = await run(
          ['rekey', uri, '--identity-file', id.file, '--new-recipient', id2.recipient, '--add', '--confirm'],
          { env },
        );
        expectExit(rk, 0);
        expect(rk.stdout).toContain(`now recipient ${id.recipient}, recipient ${id2.recipient}`);
        for (const idFile of [id.file, id2.file]) {
          const deep = await run(['verify-backup', uri, '--deep', '--identity-file', idFile], { env });
          expectExit(deep, 0);
          expect(deep.stdout).toMatch(/^OK\s.*chunks authenticated, .*pg_restore read the data of 1 table/m);
        }

        // Downloaded as stored: still encrypted, checksum preserved, and it says so.
        const local = await tempDir();
        try {
          const dl = await run(['cloud', 'download', uri, local], { env });
          expectExit(dl, 0);
          expect(dl.stdout).toContain(`encrypted for recipient ${id.recipient}, recipient ${id2.recipient}`);
          const stored = path.join(local, key);
          const meta = JSON.parse(await readFile(`${stored}.meta.json`, 'utf8')) as { sha256: string };
          expect(meta.sha256).toBe(await sha256File(stored));
          expectExit(await run(['verify-backup', stored]), 0);

          // Downloaded with --decrypt: the plaintext (compressed) dump with its own sidecars.
          const plainDir = await tempDir();
          try {
            const dd = await run(
              ['cloud', 'download', uri, plainDir, '--decrypt', '--identity-file', id2.file],
              {
                env,
              },
            );
            expectExit(dd, 0);
            expect(dd.stdout).toMatch(/chunks authenticated.*NOT encrypted/);
            const plainFile = path.join(plainDir, key.replace(/\.enc$/, ''));
            expect((await readFile(plainFile)).subarray(0, 4).toString('hex')).toBe('28b52ffd');
            const plainMeta = JSON.parse(await readFile(`${plainFile}.meta.json`, 'utf8')) as {
              sha256: string;
              encryption: unknown;
            };
            expect(plainMeta).toMatchObject({ sha256: await sha256File(plainFile), encryption: null });
            const deep = await run(['verify-backup', plainFile, '--deep']);
            expectExit(deep, 0);
            expect(deep.stdout).toMatch(/^OK\s.*dump complete: pg_restore read the data of 1 table/m);
          } finally {
            await removeDir(plainDir);
          }
        } finally {
          await removeDir(local);
        }
      } finally {
        await emu.stop();
      }
    },
    SLOW,
  );
});

interface VerifyJson {
  results: Array<{
    state: string;
    deep?: {
      encrypted: boolean;
      chunks: number | null;
      files: Array<{ format: string; completeness: string }>;
    };
  }>;
}

async function files3(file: string): Promise<Buffer[]> {
  return Promise.all([file, `${file}.sha256`, `${file}.meta.json`].map((f) => readFile(f)));
}

describe('verify-backup --deep', () => {
  let dir: string;
  let key: { file: string; text: string; keyId: string };

  beforeAll(async () => {
    dir = await tempDir();
    key = await symmetricKey('deep.key');
    const enc = await tempDir();
    const plain = await tempDir();
    try {
      // One encrypted custom archive (zstd) and one plain SQL dump (gzip), side by side.
      const a = await backup(small, enc, ['--encryption-key-file', key.file]);
      const b = await backup(small, plain, ['--format', 'plain'], { global: ['--compression-algo', 'gzip'] });
      for (const f of [a, b])
        for (const suffix of ['', '.sha256', '.meta.json'])
          await writeFile(path.join(dir, path.basename(f) + suffix), await readFile(f + suffix));
    } finally {
      await removeDir(enc);
      await removeDir(plain);
    }
  }, SLOW);

  afterAll(async () => {
    await removeDir(dir);
  });

  it('decrypts, decompresses and checks every dump is complete; --json says the same', async () => {
    const r = await run(['verify-backup', dir, '--deep', '--encryption-key-file', key.file]);
    expectExit(r, 0);
    expect(r.stdout).toMatch(
      /^OK\s.*\.dump\.zst\.enc \(.*\): sha256 [0-9a-f]{16}… matches, \d+ chunks authenticated, .* decompressed \(zstd\), dump complete: pg_restore read the data of 1 table$/m,
    );
    expect(r.stdout).toMatch(
      /^OK\s.*\.sql\.gz \(.*\): sha256 [0-9a-f]{16}… matches, .* decompressed \(gzip\), dump complete: it ends with "-- PostgreSQL database dump complete"$/m,
    );
    expect(r.stdout).toContain('All 2 backups verified.');
    const json = await run(['verify-backup', dir, '--deep', '--encryption-key-file', key.file, '--json']);
    expectExit(json, 0);
    const { results } = JSON.parse(json.stdout) as VerifyJson;
    expect(results.map((x) => x.state)).toEqual(['valid', 'valid']);
    expect(results.map((x) => x.deep?.encrypted).sort()).toEqual([false, true]);
  });

  it('a missing or wrong key: one error line with a hint, before anything is read', async () => {
    const none = await run(['verify-backup', dir, '--deep']);
    expectRefused(
      none,
      1,
      /\.enc is encrypted and --deep needs its key/,
      new RegExp(`key with id ${key.keyId}.*Without --deep`),
    );
    expect(none.stdout).toBe('');
    const other = await symmetricKey('deep-other.key');
    const wrong = await run(['verify-backup', dir, '--deep', '--encryption-key-file', other.file]);
    expectRefused(
      wrong,
      1,
      /the key in .*deep-other\.key does not unlock it/,
      new RegExp(`key with id ${key.keyId}`),
    );
    expect(wrong.stdout).toBe('');
    // Without --deep no key is needed, and a key alone is a usage error.
    expectExit(await run(['verify-backup', dir]), 0);
    expectRefused(
      await run(['verify-backup', dir, '--encryption-key-file', key.file]),
      2,
      /only used with --deep/,
    );
  });
});

describe('rekey', () => {
  it(
    'key file → age recipient: a dry run first, a wrong key changes nothing; then the new identity restores, the old key is refused, the checksums match',
    async () => {
      const key = await symmetricKey('rekey-old.key');
      const wrong = await symmetricKey('rekey-wrong.key');
      const id = await identity('rekey-id.txt');
      const dir = await tempDir();
      try {
        const file = await backup(small, dir, ['--encryption-key-file', key.file]);
        const before = await files3(file);
        const args = ['--backup-dir', dir, 'rekey', path.basename(file), '--new-recipient', id.recipient];
        const dry = await run([...args, '--encryption-key-file', key.file]);
        expectExit(dry, 0);
        expect(dry.stdout).toContain(`now:   key ${key.keyId}`);
        expect(dry.stdout).toContain(`after: recipient ${id.recipient}`);
        expect(dry.stdout).toContain('Dry run: nothing was changed');
        expect(await files3(file)).toEqual(before);

        // A failed rekey leaves the backup exactly as it was, still verifiable with its key.
        const failed = await run([...args, '--encryption-key-file', wrong.file, '--confirm']);
        expectRefused(
          failed,
          1,
          /the key in .*rekey-wrong\.key does not unlock it/,
          new RegExp(`key with id ${key.keyId}`),
        );
        expect(await files3(file)).toEqual(before);
        expect(await readdir(dir)).toHaveLength(3);
        const deep = await run(['verify-backup', file, '--deep', '--encryption-key-file', key.file]);
        expectExit(deep, 0);

        const done = await run([...args, '--encryption-key-file', key.file, '--confirm']);
        expectExit(done, 0);
        expect(done.stdout).toMatch(
          new RegExp(
            `^Rekeyed .*${path.basename(file).replaceAll('.', '\\.')}: now recipient ${id.recipient}`,
            'm',
          ),
        );
        expect(done.stdout + done.stderr).not.toContain(key.text);
        const enc = await checkEncrypted(file, [key.text, id.secret]);
        expect(enc.protections).toEqual([{ kind: 'recipient', recipient: id.recipient }]);
        const sha = await sha256File(file);
        expect(await readFile(`${file}.sha256`, 'utf8')).toBe(`${sha}  ${path.basename(file)}\n`);
        // Only the header changed: the encrypted body is the same, byte for byte.
        const [oldData = Buffer.alloc(0)] = before;
        const [data = Buffer.alloc(0)] = await files3(file);
        expect(data.subarray(data.readUInt32BE(10)).equals(oldData.subarray(oldData.readUInt32BE(10)))).toBe(
          true,
        );

        const refused = uniqueName('pg_enc_rk_old');
        created.push(refused);
        expectRefused(
          await run(restoreArgs(file, refused, ['--encryption-key-file', key.file])),
          1,
          /does not unlock it/,
          new RegExp(`recipient ${id.recipient}`),
        );
        expect(await dbExists(refused)).toBe(false);
        const target = uniqueName('pg_enc_rk');
        await restoreInto(file, target, ['--identity-file', id.file]);
        expect(await pgSnapshot(target)).toEqual(smallBefore);
      } finally {
        await removeDir(dir);
      }
    },
    SLOW,
  );

  it(
    'a cluster backup: every member rewrapped, the manifest rewritten; verify --deep before and after; restore with the new identity',
    async () => {
      const key = await symmetricKey('rekey-cluster.key');
      const id = await identity('rekey-cluster-id.txt');
      const dir = await tempDir();
      try {
        const b = await run([
          ...pgArgs(),
          '--backup-dir',
          dir,
          'backup',
          'cluster',
          '--include-database',
          small,
          '--encryption-key-file',
          key.file,
        ]);
        expectExit(b, 0);
        const [cluster] = await readdir(dir);
        if (!cluster) throw new Error('no cluster backup written');
        const deep = await run([
          'verify-backup',
          path.join(dir, cluster),
          '--deep',
          '--encryption-key-file',
          key.file,
        ]);
        expectExit(deep, 0);
        expect(deep.stdout).toMatch(
          /^OK\s.*1 databases and globals match their checksums, \d+ chunks authenticated, .*every dump complete$/m,
        );

        const r = await run([
          '--backup-dir',
          dir,
          'rekey',
          cluster,
          '--encryption-key-file',
          key.file,
          '--new-recipient',
          id.recipient,
          '--confirm',
        ]);
        expectExit(r, 0);
        const manifest = JSON.parse(await readFile(path.join(dir, cluster, 'manifest.json'), 'utf8')) as {
          encryption: { protections: unknown[] };
          globals: { file: string; sha256: string };
          databases: Array<{ file: string; sha256: string }>;
        };
        expect(manifest.encryption.protections).toEqual([{ kind: 'recipient', recipient: id.recipient }]);
        const members = [manifest.globals, ...manifest.databases];
        expect((await readdir(path.join(dir, cluster))).sort()).toEqual(
          ['manifest.json', ...members.map((m) => path.basename(m.file))].sort(),
        );
        for (const m of members) expect(await sha256File(path.join(dir, m.file))).toBe(m.sha256);

        const after = await run([
          'verify-backup',
          path.join(dir, cluster),
          '--deep',
          '--identity-file',
          id.file,
        ]);
        expectExit(after, 0);
        expectRefused(
          await run(['verify-backup', path.join(dir, cluster), '--deep', '--encryption-key-file', key.file]),
          1,
          /does not unlock it/,
        );
        const target = uniqueName('pg_enc_rkc');
        created.push(target);
        const restored = await run([
          ...pgArgs(),
          '--backup-dir',
          dir,
          'restore',
          'single',
          '--from-cluster',
          cluster,
          '--database',
          small,
          '--target',
          target,
          '--create',
          '--confirm',
          '--identity-file',
          id.file,
        ]);
        expectExit(restored, 0);
        expect(await pgSnapshot(target)).toEqual(smallBefore);
      } finally {
        await removeDir(dir);
      }
    },
    SLOW,
  );
});

describe('plaintext backups ignore the key sources', () => {
  it(
    'restores a plaintext backup while DBBACKUP_ENCRYPTION_KEY holds garbage',
    async () => {
      const dir = await tempDir();
      try {
        const file = await backup(small, dir, []);
        expect(path.basename(file)).not.toMatch(/\.enc$/);
        expect((await readFile(file)).subarray(0, 8).equals(MAGIC)).toBe(false);
        const target = uniqueName('pg_enc_plain');
        await restoreInto(file, target, [], { DBBACKUP_ENCRYPTION_KEY: 'not a key at all' });
        expect(await pgSnapshot(target)).toEqual(smallBefore);
      } finally {
        await removeDir(dir);
      }
    },
    SLOW,
  );
});
