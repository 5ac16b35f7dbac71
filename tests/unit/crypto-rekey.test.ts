import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeManifest, type ClusterManifest } from '../../src/catalog/manifest.js';
import { readMetadata, sha256Line, writeMetadata } from '../../src/catalog/metadata.js';
import { EncryptionKeyError } from '../../src/crypto/errors.js';
import { describeEncryption, generateIdentity } from '../../src/crypto/keys.js';
import { parseHeader } from '../../src/crypto/format.js';
import {
  identityUnlocker,
  keyProtector,
  keyUnlocker,
  recipientProtector,
  type KeyProtector,
  type KeyUnlocker,
} from '../../src/crypto/protectors.js';
import { createDecryptStream, createEncryptStream } from '../../src/crypto/stream.js';
import { copyDecrypted } from '../../src/crypto/decrypt-copy.js';
import { planRekey, rekey, rekeyedName, type RekeyKeys } from '../../src/crypto/rekey-backup.js';
import { DbBackupError, IntegrityError, StorageError, UsageError } from '../../src/errors.js';
import { LocalStorage } from '../../src/storage/local/local.js';
import { putBuffer, type ObjectInfo, type PutOptions, type Storage } from '../../src/storage/storage.js';
import { verifyAny } from '../../src/verify/verify.js';
import { metadataFor, tempDir } from './helpers.js';

/**
 * Rekeying stored backups (src/crypto/rekey-backup.ts): the new keys open the data, the old ones no
 * longer do, the sidecars follow, and at no point — on success, on failure, when interrupted — is
 * there metadata that disagrees with the data.
 */
let dir: string;
let cleanup: () => Promise<void>;
let local: LocalStorage;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  local = new LocalStorage(dir);
});
afterEach(() => cleanup());

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function encrypt(data: Buffer, protectors: KeyProtector[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from([data]),
    createEncryptStream(protectors).stream,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

async function decrypt(data: Buffer, unlockers: KeyUnlocker[]): Promise<Buffer> {
  return collect(Readable.from([data]).pipe(createDecryptStream(unlockers)));
}

const PLAIN = randomBytes(300_000);
const OLD = randomBytes(32);
const NAME = 'shop_20261126_050000.dump.zst.enc';

async function storeSingle(storage: Storage = local, key = NAME, data?: Buffer): Promise<Buffer> {
  const sealed = data ?? (await encrypt(PLAIN, [keyProtector(OLD)]));
  const meta = metadataFor(key, sealed, {
    encryption: describeEncryption(parseHeader(sealed).header),
    compression: { algorithm: 'zstd', level: 3, implementation: 'zstd -3 -T2' },
  });
  await putBuffer(storage, key, sealed);
  await putBuffer(storage, `${key}.sha256`, sha256Line(meta.sha256, path.posix.basename(key)));
  await writeMetadata(storage, key, meta);
  return sealed;
}

/** Data, .sha256 and .meta.json of a backup, exactly as stored (by SHA-256: fast to compare). */
async function snapshot(key = NAME): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const f of [key, `${key}.sha256`, `${key}.meta.json`])
    files[f] = sha(await readFile(path.join(dir, f)));
  return files;
}

/**
 * A store that checks, after every write and delete, the rule rekey must keep: whenever the
 * metadata exists, it and the .sha256 match the data. It can also fail a put at the end.
 */
class CheckedStorage implements Storage {
  violations: string[] = [];
  operations: string[] = [];
  /** Make the next put of the data key fail after consuming its body; `land` stores it anyway. */
  failNextPut: { land: boolean } | undefined;

  constructor(
    private readonly inner: LocalStorage,
    private readonly key: string,
  ) {}

  get location(): string {
    return this.inner.location;
  }

  async put(key: string, body: Readable, options?: PutOptions): Promise<ObjectInfo> {
    const failing = key === this.key ? this.failNextPut : undefined;
    if (failing) {
      this.failNextPut = undefined;
      const bytes = await collect(body);
      if (failing.land) await putBuffer(this.inner, key, bytes);
      this.operations.push(`put ${key} (failed)`);
      await this.check();
      throw new StorageError('simulated upload failure');
    }
    const info = await this.inner.put(key, body, options);
    this.operations.push(`put ${key}`);
    await this.check();
    return info;
  }

  /** Called with the first chunk read of a whole object (not a ranged header read). */
  onFirstRead: (() => void) | undefined;

  async get(key: string, range?: { start: number; end?: number }): Promise<Readable> {
    const stream = await this.inner.get(key, range);
    const hook = this.onFirstRead;
    if (hook && !range) stream.once('data', hook);
    return stream;
  }

  stat(key: string): Promise<ObjectInfo | undefined> {
    return this.inner.stat(key);
  }

  list(prefix?: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }

  async delete(key: string): Promise<void> {
    await this.inner.delete(key);
    this.operations.push(`delete ${key}`);
    await this.check();
  }

  private async check(): Promise<void> {
    const meta = await readMetadata(this.inner, this.key).catch(() => undefined);
    if (!meta) return;
    const data = await readFile(path.join(this.inner.location, this.key)).catch(() => undefined);
    if (!data || sha(data) !== meta.sha256 || data.length !== meta.sizeBytes)
      this.violations.push(`metadata disagrees with the data after: ${this.operations.at(-1)}`);
    const line = await readFile(path.join(this.inner.location, `${this.key}.sha256`), 'utf8').catch(() => '');
    if (line && !line.startsWith(meta.sha256))
      this.violations.push(`.sha256 disagrees with the metadata after: ${this.operations.at(-1)}`);
  }
}

describe('rekey a single backup', () => {
  it('rewraps for a recipient: the identity opens it, the old key does not, the body is untouched, sidecars follow', async () => {
    const sealed = await storeSingle();
    const id = generateIdentity();
    const storage = new CheckedStorage(local, NAME);
    const keys: RekeyKeys = {
      unlockers: [keyUnlocker(OLD)],
      protectors: [recipientProtector(id.publicKey)],
      add: false,
    };
    const target = await planRekey(storage, NAME, keys.unlockers);
    expect(target).toMatchObject({ kind: 'single', files: [NAME] });
    expect(target.before.protections).toEqual([
      { kind: 'key', keyId: expect.stringMatching(/^[0-9a-f]{16}$/) },
    ]);
    const outcome = await rekey(target, keys);

    const data = await readFile(path.join(dir, NAME));
    const { headerLength } = parseHeader(data);
    expect(data.subarray(headerLength).equals(sealed.subarray(parseHeader(sealed).headerLength))).toBe(true);
    expect((await decrypt(data, [identityUnlocker([id.privateKey])])).equals(PLAIN)).toBe(true);
    await expect(decrypt(data, [keyUnlocker(OLD)])).rejects.toThrow(/does not unlock it/);

    const meta = await readMetadata(local, NAME);
    expect(meta?.sha256).toBe(sha(data));
    expect(meta?.sizeBytes).toBe(data.length);
    expect(meta?.encryption?.protections).toEqual([{ kind: 'recipient', recipient: id.recipient }]);
    expect(await readFile(path.join(dir, `${NAME}.sha256`), 'utf8')).toBe(sha256Line(sha(data), NAME));
    expect(outcome.files).toEqual([{ from: NAME, to: NAME, sizeBytes: data.length, sha256: sha(data) }]);
    expect((await verifyAny(local, NAME, false)).state).toBe('valid');
    expect(storage.violations).toEqual([]);
    // Sidecars gone before the data changes; checksum, then metadata, written after.
    expect(storage.operations).toEqual([
      `delete ${NAME}.meta.json`,
      `delete ${NAME}.sha256`,
      `put ${NAME}`,
      `put ${NAME}.sha256`,
      `put ${NAME}.meta.json`,
    ]);
    expect((await readdir(dir)).sort()).toEqual([NAME, `${NAME}.meta.json`, `${NAME}.sha256`]);
  });

  it('--add keeps the old key and adds the new one', async () => {
    await storeSingle();
    const newKey = randomBytes(32);
    const keys = { unlockers: [keyUnlocker(OLD)], protectors: [keyProtector(newKey)], add: true };
    const outcome = await rekey(await planRekey(local, NAME, keys.unlockers), keys);
    const data = await readFile(path.join(dir, NAME));
    expect((await decrypt(data, [keyUnlocker(OLD)])).equals(PLAIN)).toBe(true);
    expect((await decrypt(data, [keyUnlocker(newKey)])).equals(PLAIN)).toBe(true);
    expect(outcome.after.protections).toHaveLength(2);
  });

  it('a wrong key is refused by the plan, before anything is read or written', async () => {
    await storeSingle();
    const before = await snapshot();
    await expect(planRekey(local, NAME, [keyUnlocker(randomBytes(32), 'key in wrong.key')])).rejects.toThrow(
      EncryptionKeyError,
    );
    await expect(planRekey(local, NAME, [])).rejects.toThrow(/is encrypted and rekey needs its key/);
    expect(await snapshot()).toEqual(before);
  });

  it('plaintext and incomplete backups are refused', async () => {
    await putBuffer(local, 'plain.dump', Buffer.from('PGDMP plain'));
    await writeMetadata(local, 'plain.dump', metadataFor('plain.dump', Buffer.from('PGDMP plain')));
    await expect(planRekey(local, 'plain.dump', [keyUnlocker(OLD)])).rejects.toThrow(UsageError);
    await putBuffer(local, 'orphan.dump.enc', await encrypt(PLAIN, [keyProtector(OLD)]));
    await expect(planRekey(local, 'orphan.dump.enc', [keyUnlocker(OLD)])).rejects.toThrow(/has no metadata/);
  });

  it('a source that no longer matches its checksum is refused at the end, and nothing changes', async () => {
    const sealed = await storeSingle();
    const damaged = Buffer.from(sealed);
    damaged[damaged.length - 3] = (damaged[damaged.length - 3] ?? 0) ^ 1;
    await putBuffer(local, NAME, damaged);
    const before = await snapshot();
    const storage = new CheckedStorage(local, NAME);
    const keys = { unlockers: [keyUnlocker(OLD)], protectors: [keyProtector(randomBytes(32))], add: false };
    await expect(rekey(await planRekey(storage, NAME, keys.unlockers), keys)).rejects.toThrow(IntegrityError);
    expect(await snapshot()).toEqual(before);
    expect(storage.operations).toEqual([]);
  });

  it('an upload that fails at the commit puts the old sidecars back: the old backup stays valid', async () => {
    await storeSingle();
    const before = await snapshot();
    const storage = new CheckedStorage(local, NAME);
    storage.failNextPut = { land: false };
    const keys = { unlockers: [keyUnlocker(OLD)], protectors: [keyProtector(randomBytes(32))], add: false };
    const err = await rekey(await planRekey(storage, NAME, keys.unlockers), keys).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as DbBackupError).details).toContain('The backup was left as it was.');
    expect(await snapshot()).toEqual(before);
    expect((await verifyAny(local, NAME, false)).state).toBe('valid');
    expect(storage.violations).toEqual([]);
  });

  it('an upload that succeeded but reported a failure is detected and completed', async () => {
    await storeSingle();
    const storage = new CheckedStorage(local, NAME);
    storage.failNextPut = { land: true };
    const newKey = randomBytes(32);
    const keys = { unlockers: [keyUnlocker(OLD)], protectors: [keyProtector(newKey)], add: false };
    await rekey(await planRekey(storage, NAME, keys.unlockers), keys);
    expect((await verifyAny(local, NAME, false)).state).toBe('valid');
    const data = await readFile(path.join(dir, NAME));
    expect((await decrypt(data, [keyUnlocker(newKey)])).equals(PLAIN)).toBe(true);
    expect(storage.violations).toEqual([]);
  });

  it('an interruption while streaming leaves the backup as it was (exit code 130)', async () => {
    await storeSingle(local, NAME, await encrypt(randomBytes(8_000_000), [keyProtector(OLD)]));
    const before = await snapshot();
    const keys = { unlockers: [keyUnlocker(OLD)], protectors: [keyProtector(randomBytes(32))], add: false };
    const controller = new AbortController();
    const storage = new CheckedStorage(local, NAME);
    storage.onFirstRead = () => controller.abort();
    const target = await planRekey(storage, NAME, keys.unlockers);
    const err = await rekey(target, keys, controller.signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DbBackupError);
    expect((err as DbBackupError).exitCode).toBe(130);
    expect(await snapshot()).toEqual(before);
    expect((await readdir(dir)).sort()).toEqual([NAME, `${NAME}.meta.json`, `${NAME}.sha256`]);
    expect(storage.operations).toEqual([]);
  });
});

describe('rekey a cluster backup', () => {
  const CLUSTER = 'cluster_20261126_050000';

  async function storeCluster(): Promise<ClusterManifest> {
    const files = [
      `${CLUSTER}/globals.sql.zst.enc`,
      `${CLUSTER}/shop.dump.zst.enc`,
      `${CLUSTER}/my%20db.dump.zst.enc`,
    ];
    const sealed: Buffer[] = [];
    for (const f of files) {
      const data = await encrypt(Buffer.concat([Buffer.from(f), PLAIN]), [keyProtector(OLD)]);
      sealed.push(data);
      await putBuffer(local, f, data);
    }
    const member = (i: number, database: string) => ({
      database,
      file: files[i] ?? null,
      status: 'ok' as const,
      error: null,
      sizeBytes: sealed[i]?.length ?? 0,
      sha256: sha(sealed[i] ?? Buffer.alloc(0)),
      format: 'custom' as const,
      properties: {},
      tables: [],
      durationSeconds: 1,
    });
    const manifest: ClusterManifest = {
      schema: 'dbbackup.cluster',
      schemaVersion: 1,
      tool: { name: 'dbbackup', version: '0.1.0' },
      engine: 'postgres',
      server: { version: '15.20', versionString: 'PostgreSQL 15.20' },
      connection: { host: 'localhost', port: 5432, user: 'postgres' },
      name: CLUSTER,
      status: 'complete',
      compression: { algorithm: 'zstd', level: 3, implementation: 'zstd -3 -T2' },
      encryption: describeEncryption(parseHeader(sealed[0] ?? Buffer.alloc(0)).header),
      globals: {
        file: files[0] ?? '',
        sizeBytes: sealed[0]?.length ?? 0,
        sha256: sha(sealed[0] ?? Buffer.alloc(0)),
        warnings: [],
      },
      databases: [member(1, 'shop'), member(2, 'my db')],
      startedAt: '2026-11-26T05:00:00.000Z',
      finishedAt: '2026-11-26T05:00:10.000Z',
      durationSeconds: 10,
      totalBytes: sealed.reduce((n, b) => n + b.length, 0),
    };
    await writeManifest(local, manifest);
    return manifest;
  }

  it('rewrites every member under a new name, commits with the manifest, removes the old files', async () => {
    const old = await storeCluster();
    const id = generateIdentity();
    const keys = {
      unlockers: [keyUnlocker(OLD)],
      protectors: [recipientProtector(id.publicKey)],
      add: false,
    };
    const target = await planRekey(local, `${CLUSTER}/`, keys.unlockers);
    expect(target).toMatchObject({
      kind: 'cluster',
      files: [old.globals.file, ...old.databases.map((d) => d.file)],
    });
    const outcome = await rekey(target, keys);
    const manifest = JSON.parse(
      await readFile(path.join(dir, CLUSTER, 'manifest.json'), 'utf8'),
    ) as ClusterManifest;
    const names = (await readdir(path.join(dir, CLUSTER))).sort();
    expect(names).toHaveLength(4);
    expect(names).toContain('manifest.json');
    expect(manifest.globals.file).toMatch(
      new RegExp(`^${CLUSTER}/globals~rekey\\d{8}_\\d{6}\\.sql\\.zst\\.enc$`),
    );
    expect(manifest.databases.map((d) => d.file)).toEqual([
      expect.stringMatching(/\/shop~rekey\d{8}_\d{6}\.dump\.zst\.enc$/),
      expect.stringMatching(/\/my%20db~rekey\d{8}_\d{6}\.dump\.zst\.enc$/),
    ]);
    expect(manifest.encryption?.protections).toEqual([{ kind: 'recipient', recipient: id.recipient }]);
    for (const [i, file] of [
      manifest.globals.file,
      ...manifest.databases.map((d) => d.file ?? ''),
    ].entries()) {
      const data = await readFile(path.join(dir, file));
      const original = [old.globals.file, ...old.databases.map((d) => d.file)][i] ?? '';
      expect(
        (await decrypt(data, [identityUnlocker([id.privateKey])])).equals(
          Buffer.concat([Buffer.from(original), PLAIN]),
        ),
      ).toBe(true);
      await expect(decrypt(data, [keyUnlocker(OLD)])).rejects.toThrow(/does not unlock/);
    }
    expect(outcome.files.map((f) => f.to)).toEqual([
      manifest.globals.file,
      ...manifest.databases.map((d) => d.file),
    ]);
    expect(outcome.leftovers).toEqual([]);
    expect((await verifyAny(local, `${CLUSTER}/`, false)).state).toBe('valid');

    // Rekeyed again: the previous tag is replaced, not stacked.
    const again = {
      unlockers: [identityUnlocker([id.privateKey])],
      protectors: [keyProtector(OLD)],
      add: false,
    };
    await rekey(await planRekey(local, `${CLUSTER}/`, again.unlockers), again);
    for (const f of await readdir(path.join(dir, CLUSTER)))
      expect(f.split('~').length).toBeLessThanOrEqual(2);
    expect((await verifyAny(local, `${CLUSTER}/`, false)).state).toBe('valid');
  });

  it('a member that fails (its checksum no longer matches) removes the new files; the old backup is untouched', async () => {
    const old = await storeCluster();
    const victim = path.join(dir, old.databases[1]?.file ?? '');
    const bytes = await readFile(victim);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
    await putBuffer(local, old.databases[1]?.file ?? '', bytes);
    const before = (await readdir(path.join(dir, CLUSTER))).sort();
    const manifestBefore = await readFile(path.join(dir, CLUSTER, 'manifest.json'));
    const keys = { unlockers: [keyUnlocker(OLD)], protectors: [keyProtector(randomBytes(32))], add: false };
    await expect(rekey(await planRekey(local, `${CLUSTER}/`, keys.unlockers), keys)).rejects.toThrow(
      /Checksum mismatch/,
    );
    expect((await readdir(path.join(dir, CLUSTER))).sort()).toEqual(before);
    expect((await readFile(path.join(dir, CLUSTER, 'manifest.json'))).equals(manifestBefore)).toBe(true);
  });

  it('names: a tag per rekey, never colliding, never stacking', () => {
    const taken = new Set(['c/shop~rekey20261127_080000.dump.zst.enc']);
    expect(rekeyedName('c/shop.dump.zst.enc', '20261127_080000', taken)).toBe(
      'c/shop~rekey20261127_080000-1.dump.zst.enc',
    );
    expect(rekeyedName('c/shop~rekey20261127_080000-1.dump.zst.enc', '20261128_090000', new Set())).toBe(
      'c/shop~rekey20261128_090000.dump.zst.enc',
    );
    expect(rekeyedName('c/a.dump.b.sql.gz.enc', 'T', new Set())).toBe('c/a.dump.b~rekeyT.sql.gz.enc');
  });
});

describe('decrypted copy (cloud download --decrypt)', () => {
  it('writes the plaintext dump with its own checksum and metadata; the stored bytes are checked on the way', async () => {
    await storeSingle();
    const out = await tempDir();
    try {
      const to = new LocalStorage(out.dir);
      const copy = await copyDecrypted(local, NAME, to, [keyUnlocker(OLD)]);
      expect(copy).toMatchObject({
        key: NAME.replace(/\.enc$/, ''),
        bytes: PLAIN.length,
        sha256: sha(PLAIN),
      });
      expect(copy?.chunks).toBe(Math.ceil(PLAIN.length / 65536));
      const key = copy?.key ?? '';
      expect((await readFile(path.join(out.dir, key))).equals(PLAIN)).toBe(true);
      const meta = await readMetadata(to, key);
      expect(meta).toMatchObject({
        file: key,
        encryption: null,
        sha256: sha(PLAIN),
        sizeBytes: PLAIN.length,
      });
      expect((await verifyAny(to, key, false)).state).toBe('valid');

      // A damaged source leaves nothing behind.
      const bytes = await readFile(path.join(dir, NAME));
      bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
      await putBuffer(local, NAME, bytes);
      const empty = await tempDir();
      try {
        await expect(
          copyDecrypted(local, NAME, new LocalStorage(empty.dir), [keyUnlocker(OLD)]),
        ).rejects.toThrow();
        expect(await readdir(empty.dir)).toEqual([]);
      } finally {
        await empty.cleanup();
      }
    } finally {
      await out.cleanup();
    }
  });

  it('never replaces a file of the same name unless told to (issue 21: no silent overwrite)', async () => {
    await storeSingle();
    const out = await tempDir();
    try {
      const to = new LocalStorage(out.dir);
      const key = NAME.replace(/\.enc$/, '');
      await putBuffer(to, key, 'a different file');
      await expect(copyDecrypted(local, NAME, to, [keyUnlocker(OLD)])).rejects.toThrow(/already exists/);
      expect((await readFile(path.join(out.dir, key))).toString()).toBe('a different file');
      const copy = await copyDecrypted(local, NAME, to, [keyUnlocker(OLD)], true);
      expect(copy?.sha256).toBe(sha(PLAIN));
      expect((await readFile(path.join(out.dir, key))).equals(PLAIN)).toBe(true);
    } finally {
      await out.cleanup();
    }
  });
});
