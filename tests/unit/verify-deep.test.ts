import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Line, writeMetadata, type BackupMetadata } from '../../src/catalog/metadata.js';
import { EncryptionKeyError } from '../../src/crypto/errors.js';
import { keyProtector, keyUnlocker, type KeyProtector } from '../../src/crypto/protectors.js';
import { createEncryptStream } from '../../src/crypto/stream.js';
import { LocalStorage } from '../../src/storage/local/local.js';
import { putBuffer } from '../../src/storage/storage.js';
import { verifyBackup } from '../../src/verify/verify.js';
import { metadataFor, tempDir } from './helpers.js';

/**
 * verify-backup --deep on synthetic backups: every compression, encryption, and the ways a dump
 * can be damaged or incomplete. PostgreSQL custom archives (pg_restore) are covered end to end.
 */
let dir: string;
let cleanup: () => Promise<void>;
let storage: LocalStorage;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  storage = new LocalStorage(dir);
});
afterEach(async () => {
  delete process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR;
  await cleanup();
});

const KEY = randomBytes(32);
const unlock = (keys = [keyUnlocker(KEY, 'key in test.key')]) => ({
  unlock: async () => keys,
});

/** A plain PostgreSQL dump of about `body` bytes (random notes: it compresses about 2:1), with its header and trailer. */
function pgPlain(body = 300_000): Buffer {
  const rows: string[] = [];
  for (let i = 0, n = 0; n < body; i++) {
    const line = `${i}\tnote ${randomBytes(20).toString('hex')}\n`;
    rows.push(line);
    n += line.length;
  }
  return Buffer.from(
    `--\n-- PostgreSQL database dump\n--\n\nCOPY public.notes (id, body) FROM stdin;\n${rows.join('')}\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n`,
  );
}

function zstd(data: Buffer): Buffer {
  const r = spawnSync('zstd', ['-q', '-3', '-c'], { input: data, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr.toString()}`);
  return r.stdout;
}

async function encrypt(data: Buffer, protectors: KeyProtector[] = [keyProtector(KEY)]): Promise<Buffer> {
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

/** Stores `data` as a finished backup: data, .sha256 and metadata describing exactly these bytes. */
async function store(key: string, data: Buffer, overrides: Partial<BackupMetadata> = {}): Promise<void> {
  const meta = metadataFor(key, data, { format: 'plain', ...overrides });
  await putBuffer(storage, key, data);
  await putBuffer(storage, `${key}.sha256`, sha256Line(meta.sha256, path.posix.basename(key)));
  await writeMetadata(storage, key, meta);
}

describe('verify --deep: complete dumps', () => {
  it('reads a plain, uncompressed dump to its trailer', async () => {
    const dump = pgPlain();
    await store('shop.sql', dump);
    const r = await verifyBackup(storage, 'shop.sql', { deep: unlock() });
    expect(r.state, r.detail).toBe('valid');
    expect(r.detail).toMatch(
      /^sha256 [0-9a-f]{16}… matches, .* of dump read, dump complete: it ends with "-- PostgreSQL database dump complete"$/,
    );
    expect(r.deep).toMatchObject({ encrypted: false, chunks: null, dumpBytes: dump.length });
  });

  for (const decoder of ['the zstd program', 'the in-process decoder'] as const) {
    it(`decompresses every frame of a multi-frame zstd stream with ${decoder} (the built-in compressor writes many)`, async () => {
      if (decoder === 'the in-process decoder') process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR = '1';
      const dump = pgPlain(600_000);
      const half = 200_000;
      await store('shop.sql.zst', Buffer.concat([zstd(dump.subarray(0, half)), zstd(dump.subarray(half))]));
      const r = await verifyBackup(storage, 'shop.sql.zst', { deep: unlock() });
      expect(r.state, r.detail).toBe('valid');
      expect(r.deep?.dumpBytes).toBe(dump.length);
      expect(r.detail).toContain('decompressed (zstd)');
    });
  }

  it('decompresses every member of a multi-member gzip stream (pigz and the built-in compressor)', async () => {
    const dump = pgPlain();
    const gz = Buffer.concat([zlib.gzipSync(dump.subarray(0, 1000)), zlib.gzipSync(dump.subarray(1000))]);
    await store('shop.sql.gz', gz);
    const r = await verifyBackup(storage, 'shop.sql.gz', { deep: unlock() });
    expect(r.state, r.detail).toBe('valid');
    expect(r.deep?.dumpBytes).toBe(dump.length);
  });

  it('authenticates every chunk of an encrypted backup and counts them', async () => {
    const compressed = zstd(pgPlain(2_000_000));
    const sealed = await encrypt(compressed);
    await store('shop.sql.zst.enc', sealed);
    const r = await verifyBackup(storage, 'shop.sql.zst.enc', { deep: unlock() });
    expect(r.state, r.detail).toBe('valid');
    const chunks = Math.ceil(compressed.length / 65536);
    expect(r.detail).toContain(`, ${chunks} chunks authenticated, `);
    expect(r.deep).toMatchObject({ encrypted: true, chunks });
  });

  it('knows the MySQL and MariaDB trailers', async () => {
    for (const trailer of [
      '-- Dump completed on 2026-11-26  5:00:00',
      '-- MariaDB dump completed on 2026-11-26',
    ]) {
      const dump = Buffer.from(
        `-- MariaDB dump 10.19\n/*!40101 SET NAMES utf8mb4 */;\nINSERT INTO t VALUES (1);\n${trailer}\n`,
      );
      await store('shop.sql', dump, { engine: 'mariadb' });
      const r = await verifyBackup(storage, 'shop.sql', { deep: unlock() });
      expect(r.state, r.detail).toBe('valid');
      expect(r.detail).toContain(`it ends with "${trailer.split(' on ')[0]}`);
    }
  });
});

describe('verify --deep: damage and incompleteness', () => {
  it('a dump cut short (sidecars describing it) lacks its trailer: corrupt, and says the checksum matched', async () => {
    const dump = pgPlain();
    await store('cut.sql.zst', zstd(dump.subarray(0, dump.length - 100)));
    const quickish = await verifyBackup(storage, 'cut.sql.zst', false);
    expect(quickish.state).toBe('valid'); // the checksum alone cannot tell
    const r = await verifyBackup(storage, 'cut.sql.zst', { deep: unlock() });
    expect(r.state).toBe('corrupt');
    expect(r.detail).toMatch(
      /does not end with its completion trailer \("-- PostgreSQL database dump complete"\): it is incomplete/,
    );
    expect(r.detail).toContain('the stored bytes match their checksum');
  });

  for (const decoder of ['the zstd program', 'the in-process decoder'] as const) {
    it(`a truncated zstd stream is caught by ${decoder}`, async () => {
      if (decoder === 'the in-process decoder') process.env.DBBACKUP_NO_EXTERNAL_COMPRESSOR = '1';
      const z = zstd(pgPlain());
      await store('trunc.sql.zst', z.subarray(0, z.length - 50));
      const r = await verifyBackup(storage, 'trunc.sql.zst', { deep: unlock() });
      expect(r.state).toBe('corrupt');
      expect(r.detail).toMatch(/the zstd stream (is damaged|ends in the middle of a frame)/i);
    });
  }

  it('garbage after a gzip stream is caught', async () => {
    await store('tail.sql.gz', Buffer.concat([zlib.gzipSync(pgPlain()), Buffer.from('garbage!garbage!')]));
    const r = await verifyBackup(storage, 'tail.sql.gz', { deep: unlock() });
    expect(r.state).toBe('corrupt');
    expect(r.detail).toMatch(/the gzip stream is damaged/);
  });

  it('an encrypted chunk altered before the checksum was taken fails authentication', async () => {
    const sealed = await encrypt(zstd(pgPlain(1_000_000)));
    const headerLength = sealed.readUInt32BE(10);
    expect(sealed.length).toBeGreaterThan(headerLength + 4 * 65552);
    const damaged = Buffer.from(sealed);
    const at = headerLength + 2 * 65552 + 10;
    damaged[at] = (damaged[at] ?? 0) ^ 1;
    await store('flip.sql.zst.enc', damaged);
    expect((await verifyBackup(storage, 'flip.sql.zst.enc', false)).state).toBe('valid');
    const r = await verifyBackup(storage, 'flip.sql.zst.enc', { deep: unlock() });
    expect(r.state).toBe('corrupt');
    expect(r.detail).toMatch(/chunk 2 failed authentication/);
  });

  it('bytes changed after the backup: the checksum mismatch is the reason given', async () => {
    const sealed = await encrypt(zstd(pgPlain()));
    await store('later.sql.zst.enc', sealed);
    const damaged = Buffer.from(sealed);
    damaged[sealed.length - 5] = (damaged[sealed.length - 5] ?? 0) ^ 1;
    await putBuffer(storage, 'later.sql.zst.enc', damaged);
    const r = await verifyBackup(storage, 'later.sql.zst.enc', { deep: unlock() });
    expect(r.state).toBe('corrupt');
    expect(r.detail).toMatch(/^checksum mismatch: expected sha256 [0-9a-f]{64}, computed [0-9a-f]{64}$/);
  });

  it('content that is not a dump is corrupt', async () => {
    await store('noise.sql', randomBytes(10_000));
    const r = await verifyBackup(storage, 'noise.sql', { deep: unlock() });
    expect(r.state).toBe('corrupt');
    expect(r.detail).toMatch(/not a PostgreSQL or MySQL dump/);
  });
});

describe('verify --deep: keys', () => {
  it('a wrong key or no key is an error naming the backup and what would open it, not a verdict', async () => {
    await store('k.sql.enc', await encrypt(pgPlain()));
    const wrong = verifyBackup(storage, 'k.sql.enc', {
      deep: unlock([keyUnlocker(randomBytes(32), 'key in other.key')]),
    });
    await expect(wrong).rejects.toThrow(EncryptionKeyError);
    await expect(wrong).rejects.toThrow(/k\.sql\.enc: the key in other\.key does not unlock it/);
    const none = verifyBackup(storage, 'k.sql.enc', { deep: unlock([]) });
    await expect(none).rejects.toThrow(/k\.sql\.enc is encrypted and --deep needs its key/);
    await none.catch((err: EncryptionKeyError) => {
      expect(err.hint).toMatch(/key with id [0-9a-f]{16}/);
      expect(err.hint).toMatch(/Without --deep/);
    });
  });

  it('plaintext backups never ask for the keys', async () => {
    await store('plain.sql', pgPlain());
    const r = await verifyBackup(storage, 'plain.sql', {
      deep: {
        unlock: () => {
          throw new Error('keys read for a plaintext backup');
        },
      },
    });
    expect(r.state, r.detail).toBe('valid');
  });
});
