import { Readable } from 'node:stream';
import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeResult, isReferenceClusterName, listBackups } from '../../src/verify/listing.js';
import { metadataKey, sha256Line, writeMetadata, type BackupMetadata } from '../../src/catalog/metadata.js';
import { runCleanup } from '../../src/retention/cleanup.js';
import { LocalStorage, TEMP_MARKER } from '../../src/storage/local/local.js';
import { putBuffer } from '../../src/storage/storage.js';
import {
  referenceClusterExpectation,
  referenceCreated,
  referenceEngine,
  summarizeReferenceCluster,
  verifyBackup,
} from '../../src/verify/verify.js';
import { collect, metadataFor, random, repetitive, sha256, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let storage: LocalStorage;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  storage = new LocalStorage(dir);
});
afterEach(() => cleanup());

/** A finished backup: data, .sha256 sidecar and metadata, as `dbbackup backup` leaves them. */
async function writeBackup(
  key: string,
  data: Buffer,
  overrides: Partial<BackupMetadata> = {},
): Promise<BackupMetadata> {
  const meta = metadataFor(key, data, overrides);
  await putBuffer(storage, key, data);
  await putBuffer(storage, `${key}.sha256`, sha256Line(meta.sha256, path.posix.basename(key)));
  await writeMetadata(storage, key, meta);
  return meta;
}

async function flipByte(key: string, offset: number): Promise<void> {
  const file = storage.localPath(key);
  const bytes = await readFile(file);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x01;
  await writeFile(file, bytes);
}

const DATA = Buffer.concat([Buffer.from('PGDMP'), random(100_000), repetitive(50_000)]);

describe('verifyBackup', () => {
  it('says valid for an intact backup, in quick and full mode', async () => {
    const meta = await writeBackup('shop_20260329_013000.dump', DATA);
    const full = await verifyBackup(storage, 'shop_20260329_013000.dump', false);
    expect(full.state).toBe('valid');
    expect(full.sizeBytes).toBe(DATA.length);
    expect(full.metadata?.sha256).toBe(meta.sha256);
    expect(full.location).toBe(path.join(dir, 'shop_20260329_013000.dump'));
    expect((await verifyBackup(storage, 'shop_20260329_013000.dump', true)).state).toBe('valid');
  });

  it('finds one flipped byte in full mode only (the size is unchanged)', async () => {
    await writeBackup('x.dump', DATA);
    await flipByte('x.dump', 77_777);
    const full = await verifyBackup(storage, 'x.dump', false);
    expect(full.state).toBe('corrupt');
    expect(full.detail).toContain('checksum mismatch');
    const quick = await verifyBackup(storage, 'x.dump', true);
    expect(quick.state).toBe('valid');
  });

  it('finds a truncated backup in both modes', async () => {
    await writeBackup('x.dump', DATA);
    await truncate(storage.localPath('x.dump'), DATA.length - 1);
    for (const quick of [true, false]) {
      const result = await verifyBackup(storage, 'x.dump', quick);
      expect(result.state).toBe('corrupt');
      expect(result.detail).toContain('size mismatch');
      expect(result.sizeBytes).toBe(DATA.length - 1);
    }
  });

  it('says incomplete for data without metadata, and for metadata without data', async () => {
    await putBuffer(storage, 'orphan.sql.zst', DATA);
    const orphan = await verifyBackup(storage, 'orphan.sql.zst', false);
    expect(orphan.state).toBe('incomplete');
    expect(orphan.detail).toContain('no metadata');

    await writeBackup('gone.dump', DATA);
    await storage.delete('gone.dump');
    const gone = await verifyBackup(storage, 'gone.dump', false);
    expect(gone.state).toBe('incomplete');
    expect(gone.detail).toContain('missing');
  });

  it('says corrupt for metadata that is not JSON or does not match the schema', async () => {
    await writeBackup('a.dump', DATA);
    await putBuffer(storage, metadataKey('a.dump'), '{"schema": "dbbackup.backup", ');
    const notJson = await verifyBackup(storage, 'a.dump', true);
    expect(notJson.state).toBe('corrupt');
    expect(notJson.detail).toContain('not valid JSON');

    const bad = { ...metadataFor('b.dump', DATA), sha256: 'not-a-digest' };
    await putBuffer(storage, 'b.dump', DATA);
    await putBuffer(storage, metadataKey('b.dump'), JSON.stringify(bad));
    const invalid = await verifyBackup(storage, 'b.dump', true);
    expect(invalid.state).toBe('corrupt');
    expect(invalid.detail).toContain('sha256');
  });

  it('says corrupt when the .sha256 sidecar disagrees with the metadata', async () => {
    await writeBackup('x.dump', DATA);
    await putBuffer(storage, 'x.dump.sha256', sha256Line('0'.repeat(64), 'x.dump'));
    const result = await verifyBackup(storage, 'x.dump', false);
    expect(result.state).toBe('corrupt');
    expect(result.detail).toContain('.sha256');
  });
});

describe('listBackups', () => {
  it('lists every backup once with its state, newest first, ignoring sidecars and other files', async () => {
    await writeBackup('old_20250101_000000.dump', DATA, { startedAt: '2025-01-01T00:00:00.000Z' });
    await writeBackup('new_20260101_000000.sql.gz', DATA, {
      startedAt: '2026-01-01T00:00:00.000Z',
      database: 'new',
      engine: 'mariadb',
    });
    // Backups live at the top of a store; sub-directories are other people's business (or cluster backups).
    await writeBackup('nested/dir/mid_20250601_000000.dump', DATA, { startedAt: '2025-06-01T00:00:00.000Z' });
    await writeBackup('short_20250301_000000.dump', DATA, { startedAt: '2025-03-01T00:00:00.000Z' });
    await truncate(storage.localPath('short_20250301_000000.dump'), 10);
    await putBuffer(storage, 'orphan_20250201_000000.sql', 'CREATE TABLE t ();');
    await putBuffer(storage, 'badmeta_20250401_000000.dump', DATA);
    await putBuffer(storage, metadataKey('badmeta_20250401_000000.dump'), 'not json');
    await writeFile(path.join(dir, `${TEMP_MARKER}0a1b2c-crash_20250501_000000.dump`), 'partial');
    await putBuffer(storage, 'notes.txt', 'not a backup');

    const entries = await listBackups(storage);
    const byKey = new Map(entries.map((e) => [e.key, e]));
    expect(entries).toHaveLength(byKey.size);
    expect([...byKey.keys()].sort()).toEqual(
      [
        'old_20250101_000000.dump',
        'new_20260101_000000.sql.gz',
        'short_20250301_000000.dump',
        'orphan_20250201_000000.sql',
        'badmeta_20250401_000000.dump',
        `${TEMP_MARKER}0a1b2c-crash_20250501_000000.dump`,
      ].sort(),
    );
    const state = (key: string): string | undefined => byKey.get(key)?.state;
    // Sizes only: intact is "unverified", never "valid", until every byte has been read.
    expect(state('old_20250101_000000.dump')).toBe('unverified');
    expect(state('new_20260101_000000.sql.gz')).toBe('unverified');
    expect(state('nested/dir/mid_20250601_000000.dump')).toBeUndefined();
    expect(state('short_20250301_000000.dump')).toBe('corrupt');
    expect(state('orphan_20250201_000000.sql')).toBe('incomplete');
    expect(state('badmeta_20250401_000000.dump')).toBe('corrupt');
    expect(state(`${TEMP_MARKER}0a1b2c-crash_20250501_000000.dump`)).toBe('incomplete');

    const newest = byKey.get('new_20260101_000000.sql.gz');
    expect(newest?.database).toBe('new');
    expect(newest?.engine).toBe('mariadb');
    expect(newest?.created?.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    // Entries without metadata are dated by their file time; all are sorted newest first.
    const times = entries.map((e) => e.created?.getTime() ?? 0);
    expect(times).toEqual([...times].sort((a, b) => b - a));
    const dated = entries.filter((e) => e.database !== null).map((e) => e.key);
    expect(dated).toEqual([
      'new_20260101_000000.sql.gz',
      'short_20250301_000000.dump',
      'old_20250101_000000.dump',
    ]);
  });

  it('is empty for an empty or missing directory', async () => {
    expect(await listBackups(storage)).toEqual([]);
    expect(await listBackups(new LocalStorage(path.join(dir, 'does-not-exist')))).toEqual([]);
  });
});

/** A single backup as the reference tool leaves it: data, `.sha256` (absolute path) and its own `.meta.json`. */
async function writeReferenceSingle(
  key: string,
  data: Buffer,
  overrides: Record<string, unknown> = {},
): Promise<void> {
  await putBuffer(storage, key, data);
  await putBuffer(storage, `${key}.sha256`, `${sha256(data)}  ${path.join(dir, key)}\n`);
  const meta = {
    version: '2.0',
    timestamp: '2025-11-26T12:00:00.123456789+01:00',
    database: 'shop',
    database_type: 'postgres',
    database_version: 'unknown',
    host: 'localhost',
    port: 5432,
    user: 'postgres',
    backup_file: path.join(dir, key),
    size_bytes: data.length,
    sha256: sha256(data),
    compression: 'gzip-6',
    backup_type: 'single',
    duration_seconds: 0.01,
    encrypted: false,
    ...overrides,
  };
  await putBuffer(storage, `${key}.meta.json`, JSON.stringify(meta, null, 2));
}

/** A gzip-compressed tar as the reference's `tar -czf`: ./globals.sql and ./dumps/<db>.<ext>. */
async function referenceArchive(dumps: Record<string, Buffer>): Promise<Buffer> {
  const p = pack();
  p.entry({ name: './globals.sql' }, '--\n-- PostgreSQL database cluster dump\n--\nCREATE ROLE x;\n');
  for (const [name, body] of Object.entries(dumps)) p.entry({ name: `./dumps/${name}` }, body);
  p.finalize();
  return gzipSync(await collect(p as unknown as NodeJS.ReadableStream));
}

async function writeReferenceCluster(
  key: string,
  archive: Buffer,
  extra: Record<string, string> = {},
  overrides: Record<string, unknown> = {},
): Promise<void> {
  await putBuffer(storage, key, archive);
  const meta = {
    version: '2.0',
    timestamp: '2025-11-27T03:00:00Z',
    cluster_name: 'localhost:5432',
    database_type: 'postgres',
    databases: [{ database: 'a' }, { database: 'b' }],
    total_size_bytes: archive.length,
    extra_info: {
      database_count: '2',
      success_count: '2',
      failure_count: '0',
      archive_sha256: sha256(archive),
      ...extra,
    },
    ...overrides,
  };
  await putBuffer(storage, `${key}.meta.json`, JSON.stringify(meta, null, 2));
}

const PLAIN_SQL = gzipSync(
  Buffer.from(
    '--\n-- PostgreSQL database dump\n--\nCREATE TABLE t ();\n-- PostgreSQL database dump complete\n',
  ),
);

describe("the reference tool's backups", () => {
  it('are listed with their database, engine, time and size, marked as the reference’s, outside retention groups', async () => {
    const my = Buffer.concat([Buffer.from('-- MariaDB dump 10.19\n'), repetitive(5_000)]);
    await writeReferenceSingle('db_shop_20251126_120000.dump', DATA);
    await writeReferenceSingle('db_app_20251126_120000.sql.gz', my, {
      database: 'app',
      database_type: 'mariadb',
      timestamp: '2025-11-26T13:00:00Z',
    });
    await writeReferenceSingle('db_short_20251126_120000.dump', DATA, { database: 'short' });
    await truncate(storage.localPath('db_short_20251126_120000.dump'), 100);
    await putBuffer(storage, 'db_bare_20251126_120000.dump', DATA);
    const archive = await referenceArchive({ 'a.dump': DATA, 'b.sql.gz': PLAIN_SQL });
    await writeReferenceCluster('cluster_20251127_030000.tar.gz', archive);
    await putBuffer(storage, 'cluster_20251128_030000.tar.gz', archive);
    await putBuffer(storage, 'cluster_20251127_030000.tar.gz.info', '{"type":"cluster"}');

    const byKey = new Map((await listBackups(storage)).map((e) => [e.key, e]));
    expect([...byKey.keys()].sort()).toEqual([
      'cluster_20251127_030000.tar.gz',
      'cluster_20251128_030000.tar.gz',
      'db_app_20251126_120000.sql.gz',
      'db_bare_20251126_120000.dump',
      'db_shop_20251126_120000.dump',
      'db_short_20251126_120000.dump',
    ]);
    expect(byKey.get('db_shop_20251126_120000.dump')).toMatchObject({
      state: 'unverified',
      database: 'shop',
      engine: 'postgres',
      sizeBytes: DATA.length,
      producer: 'reference',
      kind: 'single',
      group: null,
      created: new Date('2025-11-26T11:00:00.123Z'),
    });
    expect(byKey.get('db_app_20251126_120000.sql.gz')).toMatchObject({
      state: 'unverified',
      database: 'app',
      engine: 'mariadb',
      producer: 'reference',
    });
    expect(byKey.get('db_short_20251126_120000.dump')).toMatchObject({
      state: 'corrupt',
      detail: `size mismatch: expected ${DATA.length} bytes, found 100`,
      producer: 'reference',
      database: 'short',
    });
    // Without its sidecar a .dump cannot be told from an unfinished one of ours.
    expect(byKey.get('db_bare_20251126_120000.dump')).toMatchObject({ state: 'incomplete', producer: null });
    expect(byKey.get('cluster_20251127_030000.tar.gz')).toMatchObject({
      state: 'unverified',
      database: '(cluster: 2 databases)',
      engine: 'postgres',
      kind: 'cluster',
      producer: 'reference',
      group: null,
      sizeBytes: archive.length,
      created: new Date('2025-11-27T03:00:00Z'),
    });
    // dbbackup never writes a .tar.gz: without its sidecar it is still the reference's, dated by its name.
    expect(byKey.get('cluster_20251128_030000.tar.gz')).toMatchObject({
      state: 'incomplete',
      producer: 'reference',
      kind: 'cluster',
      database: '(cluster)',
      engine: 'postgres',
      created: new Date(2025, 10, 28, 3),
      detail: expect.stringContaining('no metadata (.meta.json)') as unknown,
    });
  });

  it('single: full SHA-256 against the reference metadata; a flipped byte is found in full mode only', async () => {
    const key = 'db_shop_20251126_120000.dump';
    await writeReferenceSingle(key, DATA, { sha256: sha256(DATA).toUpperCase() });
    const ok = await verifyBackup(storage, key, false);
    expect(ok).toMatchObject({ state: 'valid', producer: 'reference', sizeBytes: DATA.length });
    expect(ok.detail).toBe(`sha256 ${sha256(DATA).slice(0, 16)}… matches the reference tool's metadata`);
    expect(ok.reference).toMatchObject({ kind: 'single', database: 'shop', engine: 'postgres' });

    await flipByte(key, 1000);
    expect((await verifyBackup(storage, key, true)).state).toBe('valid');
    const bad = await verifyBackup(storage, key, false);
    expect(bad.state).toBe('corrupt');
    expect(bad.detail).toMatch(/^checksum mismatch: expected sha256 [0-9a-f]{64}, computed [0-9a-f]{64}$/);
  });

  it('single: a stale .sha256 is corrupt; without its sidecar incomplete; encrypted by the reference: not valid', async () => {
    const key = 'db_shop_20251126_120000.dump';
    await writeReferenceSingle(key, DATA);
    await putBuffer(storage, `${key}.sha256`, `${'0'.repeat(64)}  /abs/${key}\n`);
    expect(await verifyBackup(storage, key, false)).toMatchObject({
      state: 'corrupt',
      detail: expect.stringMatching(
        /^the \.sha256 file disagrees with the metadata: it says 0{64}, the metadata sha256 [0-9a-f]{64}$/,
      ) as unknown,
    });
    await rm(storage.localPath(`${key}.meta.json`));
    expect((await verifyBackup(storage, key, false)).state).toBe('incomplete');

    await writeReferenceSingle('db_enc_20251126_120000.dump', DATA, { encrypted: true });
    const enc = await verifyBackup(storage, 'db_enc_20251126_120000.dump', true);
    expect(enc.state).toBe('corrupt');
    expect(enc.detail).toMatch(/encrypted by the reference tool/);
  });

  it('cluster archive: SHA-256 and size from its metadata; --deep reads the archive and names what it did not check', async () => {
    const key = 'cluster_20251127_030000.tar.gz';
    const archive = await referenceArchive({ 'a.dump': DATA, 'b.sql.gz': PLAIN_SQL });
    await writeReferenceCluster(key, archive);
    const full = await verifyBackup(storage, key, false);
    expect(full).toMatchObject({ state: 'valid', producer: 'reference', sizeBytes: archive.length });
    expect(full.detail).toBe(`sha256 ${sha256(archive).slice(0, 16)}… matches the reference tool's metadata`);
    expect((await verifyBackup(storage, key, true)).detail).toBe('size matches (quick check)');

    const unlock = { unlock: () => Promise.resolve([]) };
    const deep = await verifyBackup(storage, key, { deep: unlock });
    expect(deep.state).toBe('valid');
    expect(deep.detail).toContain('gzip and tar intact, globals.sql and 2 dumps (1 custom, 1 plain SQL)');
    expect(deep.detail).toContain('not read to the end');

    await flipByte(key, Math.floor(archive.length / 2));
    expect((await verifyBackup(storage, key, false)).detail).toMatch(/^checksum mismatch/);
    expect((await verifyBackup(storage, key, { deep: unlock })).detail).toMatch(/^checksum mismatch/);
    await truncate(storage.localPath(key), archive.length - 10);
    expect((await verifyBackup(storage, key, true)).detail).toBe(
      `size mismatch: expected ${archive.length} bytes, found ${archive.length - 10}`,
    );
  });

  it('cluster archive: a dump that is not one fails --deep even when the checksum matches; failed databases are named', async () => {
    const key = 'cluster_20251127_030000.tar.gz';
    const archive = await referenceArchive({ 'a.dump': Buffer.from('not a dump at all') });
    await writeReferenceCluster(key, archive, { failure_count: '1' });
    const full = await verifyBackup(storage, key, false);
    expect(full.state).toBe('valid');
    expect(full.detail).toContain('(partial: the reference tool recorded 1 database that failed to dump)');
    const deep = await verifyBackup(storage, key, { deep: { unlock: () => Promise.resolve([]) } });
    expect(deep.state).toBe('corrupt');
    expect(deep.detail).toBe('1 dump unreadable, first dumps/a.dump: not a PostgreSQL dump');
  });

  it('cluster archive without an archive_sha256 in its metadata is not valid', async () => {
    const key = 'cluster_20251127_030000.tar.gz';
    await writeReferenceCluster(key, await referenceArchive({ 'a.dump': DATA }), { archive_sha256: '' });
    const r = await verifyBackup(storage, key, true);
    expect(r.state).toBe('incomplete');
    expect(r.detail).toMatch(/no archive_sha256/);
  });

  it('cleanup plans only dbbackup’s backups: the reference’s are neither kept nor deleted by its rules', async () => {
    await writeBackup('shop_20260101_000000.dump', DATA, { startedAt: '2026-01-01T00:00:00.000Z' });
    await writeBackup('shop_20260102_000000.dump', DATA, { startedAt: '2026-01-02T00:00:00.000Z' });
    await writeReferenceSingle('db_shop_20251126_120000.dump', DATA);
    await writeReferenceSingle('db_shop_20251125_120000.dump', DATA, { timestamp: '2025-11-25T12:00:00Z' });
    await writeReferenceCluster('cluster_20251127_030000.tar.gz', await referenceArchive({ 'a.dump': DATA }));
    const result = await runCleanup(storage, {
      policy: { keepLast: 1 },
      timeZone: 'UTC',
      dryRun: false,
      pruneIncomplete: true,
      graceHours: 0,
      now: new Date('2026-02-01T00:00:00Z'),
    });
    expect(result.deleted).toEqual(['shop_20260101_000000.dump']);
    expect(result.decisions.map((d) => d.key).sort()).toEqual([
      'shop_20260101_000000.dump',
      'shop_20260102_000000.dump',
    ]);
    expect(result.incomplete).toEqual([]);
    expect(result.leftAlone.sort()).toEqual([
      'cluster_20251127_030000.tar.gz',
      'db_shop_20251125_120000.dump',
      'db_shop_20251126_120000.dump',
    ]);
    const left = (await listBackups(storage)).map((e) => e.key).sort();
    expect(left).toEqual([
      'cluster_20251127_030000.tar.gz',
      'db_shop_20251125_120000.dump',
      'db_shop_20251126_120000.dump',
      'shop_20260102_000000.dump',
    ]);
  });

  it('cleanup --prune-incomplete never removes a reference archive, even one without its metadata', async () => {
    await storage.put(
      'cluster_20251127_030000.tar.gz',
      Readable.from([await referenceArchive({ 'a.dump': DATA })]),
    );
    const result = await runCleanup(storage, {
      policy: { keepLast: 1 },
      timeZone: 'UTC',
      dryRun: false,
      pruneIncomplete: true,
      graceHours: 0,
      now: new Date('2026-02-01T00:00:00Z'),
    });
    expect(result.leftAlone).toEqual(['cluster_20251127_030000.tar.gz']);
    expect(result.incomplete).toEqual([]);
    expect((await listBackups(storage)).map((e) => [e.key, e.state])).toEqual([
      ['cluster_20251127_030000.tar.gz', 'incomplete'],
    ]);
  });
});

describe('reference metadata, pure parts', () => {
  it('dates a backup from its metadata timestamp (nanoseconds, offsets), else its name (local time)', () => {
    expect(referenceCreated('2025-11-26T12:00:00.123456789+01:00', 'x.dump')?.toISOString()).toBe(
      '2025-11-26T11:00:00.123Z',
    );
    expect(referenceCreated(undefined, 'dir/db_shop_20251126_120000.dump')).toEqual(
      new Date(2025, 10, 26, 12, 0, 0),
    );
    expect(referenceCreated('garbage', 'cluster_20251127_030000.tar.gz')).toEqual(new Date(2025, 10, 27, 3));
    expect(referenceCreated(42, 'notes.dump')).toBeNull();
  });

  it('maps database_type to an engine', () => {
    expect(referenceEngine('postgres')).toBe('postgres');
    expect(referenceEngine('mariadb')).toBe('mariadb');
    expect(referenceEngine('mysql')).toBe('mysql');
    expect(referenceEngine('oracle')).toBeNull();
    expect(referenceEngine(undefined)).toBeNull();
  });

  it('takes a cluster archive’s checksum, size and failures from its metadata', () => {
    const sha = 'AB'.repeat(32);
    expect(
      referenceClusterExpectation({
        version: '2.0',
        total_size_bytes: 123,
        extra_info: { archive_sha256: sha, failure_count: '2' },
      }),
    ).toEqual({ sha256: sha.toLowerCase(), sizeBytes: 123, failed: 2 });
    expect(
      referenceClusterExpectation({
        version: '2.0',
        total_size_bytes: 0,
        extra_info: { archive_sha256: sha },
      }),
    ).toEqual({ sha256: sha.toLowerCase(), sizeBytes: null, failed: 0 });
    expect(referenceClusterExpectation({ version: '2.0', databases: [] })).toHaveProperty('problem');
  });

  it('lists a reference cluster archive as one entry without a retention group', () => {
    const reference = summarizeReferenceCluster(
      { version: '2.0', extra_info: { database_count: '3' } },
      'cluster_20251127_030000.tar.gz',
    );
    expect(describeResult({ reference })).toEqual({
      group: null,
      database: '(cluster: 3 databases)',
      engine: 'postgres',
      kind: 'cluster',
    });
    expect(isReferenceClusterName('cluster_20251127_030000.tar.gz')).toBe(true);
    expect(isReferenceClusterName('sub/cluster_20251127_030000.tar.gz')).toBe(false);
    expect(isReferenceClusterName('other.tar.gz')).toBe(false);
  });
});
