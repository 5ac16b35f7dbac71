import { readFile, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listBackups } from '../../src/catalog/listing.js';
import { metadataKey, sha256Line, writeMetadata, type BackupMetadata } from '../../src/catalog/metadata.js';
import { LocalStorage, TEMP_MARKER } from '../../src/storage/local.js';
import { putBuffer } from '../../src/storage/storage.js';
import { verifyBackup } from '../../src/verify/verify.js';
import { metadataFor, random, repetitive, tempDir } from './helpers.js';

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
    expect(state('old_20250101_000000.dump')).toBe('valid');
    expect(state('new_20260101_000000.sql.gz')).toBe('valid');
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
