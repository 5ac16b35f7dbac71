import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeMetadata, sha256Line } from '../../src/catalog/metadata.js';
import { backupFileName, safeName } from '../../src/catalog/naming.js';
import {
  isOwnBackupName,
  isOwnChecksumText,
  isOwnClusterName,
  isOwnMemberName,
  isOwnTempName,
  isReferenceName,
  ownedFiles,
} from '../../src/catalog/ownership.js';
import { LocalStorage } from '../../src/storage/local/local.js';
import { putBuffer } from '../../src/storage/storage.js';
import { rekeyedName } from '../../src/crypto/rekey-backup.js';
import { metadataFor, tempDir } from './helpers.js';

describe('names dbbackup gives', () => {
  const when = new Date('2026-11-26T05:00:37Z');
  it('recognises every backup name backupFileName makes, whatever the database name', () => {
    for (const db of ['shop', 'a b', 'x%y', 'ünï', '.hidden', 'with_underscores_20250101'])
      for (const ext of ['.dump', '.dump.zst', '.sql.gz', '.sql.zst.enc', '.dump.gz.enc'])
        for (const attempt of [0, 3])
          expect(isOwnBackupName(backupFileName(db, when, ext, attempt))).toBe(true);
    expect(isOwnBackupName(`${safeName('shop')}_sample-ratio10_20261126_050037.sql.zst`)).toBe(true);
  });

  it('refuses what a user or another tool names like a backup', () => {
    for (const name of [
      'important.sql',
      'shop.dump',
      'data.sql',
      'report.dump.zst',
      'package',
      'shop_2026-11-26.dump',
      'shop_20261126.dump',
      'shop_20261126_050037.tar.gz',
      'shop_20261126_050037.dump.bak',
      'db_shop_20251126_120000.dump', // the reference tool's
      'db_shop_20251126_120000.sql.gz',
      'sample_shop_ratio10_20251126_120000.sql',
    ])
      expect(isOwnBackupName(name), name).toBe(false);
    expect(isReferenceName('db_shop_20251126_120000.dump')).toBe(true);
    expect(isReferenceName('shop_20251126_120000.dump.zst')).toBe(false);
  });

  it('cluster folders, members (rekeyed too), temporary files and checksum lines', () => {
    expect(isOwnClusterName('cluster_20261126_050037')).toBe(true);
    expect(isOwnClusterName('cluster_20261126_050037-2')).toBe(true);
    for (const name of ['cluster_photos', 'myapp', 'cluster_20261126'])
      expect(isOwnClusterName(name)).toBe(false);
    for (const name of ['globals.sql.zst', 'globals.sql', `${safeName('a b')}.dump.zst.enc`, 'shop.sql.gz'])
      expect(isOwnMemberName(`cluster_20261126_050037/${name}`), name).toBe(true);
    expect(isOwnMemberName(rekeyedName('cluster_x/shop.dump.zst.enc', '20261127_080000', new Set()))).toBe(
      true,
    );
    for (const name of ['cat.jpg', 'manifest.json', 'notes.txt']) expect(isOwnMemberName(name)).toBe(false);
    expect(isOwnTempName('.dbbackup-tmp-0123456789ab-shop_20261126_050037.dump.zst')).toBe(true);
    expect(isOwnTempName('.dbbackup-tmp-shop.dump')).toBe(false);
    const sha = 'ab'.repeat(32);
    expect(isOwnChecksumText(sha256Line(sha, 'x.dump'), 'dir/x.dump')).toBe(true);
    expect(isOwnChecksumText(`${sha}  other.dump\n`, 'x.dump')).toBe(false);
    expect(isOwnChecksumText(`${sha} *x.dump\n`, 'x.dump')).toBe(false);
  });
});

describe('ownedFiles', () => {
  let dir: string;
  let done: () => Promise<void>;
  let storage: LocalStorage;
  beforeEach(async () => {
    ({ dir, cleanup: done } = await tempDir());
    storage = new LocalStorage(dir);
  });
  afterEach(() => done());

  it('a backup with dbbackup metadata: metadata first, data, checksum', async () => {
    const key = 'shop_20261126_050037.dump';
    const data = Buffer.from('PGDMP…');
    const meta = metadataFor(key, data);
    await putBuffer(storage, key, data);
    await putBuffer(storage, `${key}.sha256`, sha256Line(meta.sha256, key));
    await writeMetadata(storage, key, meta);
    expect(await ownedFiles(storage, key)).toEqual({
      ours: true,
      files: [`${key}.meta.json`, key, `${key}.sha256`],
      foreign: [],
    });
  });

  it('foreign metadata, a foreign name, a foreign checksum file: not ours', async () => {
    await putBuffer(storage, 'package', 'x');
    await putBuffer(storage, 'package.meta.json', '{"name":"package"}');
    expect(await ownedFiles(storage, 'package')).toEqual({
      ours: false,
      reason: "package.meta.json is not dbbackup's metadata",
    });
    await putBuffer(storage, 'important.sql', 'x');
    expect((await ownedFiles(storage, 'important.sql')).ours).toBe(false);
    // Named like a backup, but its checksum file is someone else's: the data goes, the file stays.
    const key = 'shop_20261126_050037.sql';
    await putBuffer(storage, key, 'x');
    await putBuffer(storage, `${key}.sha256`, 'my notes\n');
    expect(await ownedFiles(storage, key)).toEqual({ ours: true, files: [key], foreign: [`${key}.sha256`] });
  });

  it('cluster folders: by manifest, or by name and contents; never what a manifest of someone else holds', async () => {
    await putBuffer(storage, 'myapp/manifest.json', '{"name":"myapp"}');
    await putBuffer(storage, 'myapp/index.js', 'x');
    expect(await ownedFiles(storage, 'myapp/')).toEqual({
      ours: false,
      reason: 'its manifest.json is not a valid dbbackup cluster manifest',
    });
    const name = 'cluster_20261126_050037';
    await putBuffer(storage, `${name}/globals.sql.zst`, 'g');
    await putBuffer(storage, `${name}/shop.dump.zst`, 's');
    const owned = await ownedFiles(storage, `${name}/`);
    expect(owned.ours && [...owned.files].sort()).toEqual([
      `${name}/globals.sql.zst`,
      `${name}/shop.dump.zst`,
    ]);
    await putBuffer(storage, `${name}/holiday.jpg`, 'j');
    expect(await ownedFiles(storage, `${name}/`)).toEqual({
      ours: false,
      reason: `no dbbackup manifest, and ${name}/holiday.jpg is not a file dbbackup writes`,
    });
    expect((await ownedFiles(storage, 'cluster_photos/')).ours).toBe(false);
  });
});
