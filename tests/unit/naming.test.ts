import { afterEach, describe, expect, it } from 'vitest';
import {
  backupFileName,
  extensionFor,
  isSidecar,
  looksLikeBackup,
  safeName,
  sidecarOwner,
  timestampTag,
  unsafeName,
  type DumpFormat,
  type Engine,
} from '../../src/catalog/naming.js';
import type { CompressionAlgorithm } from '../../src/pipeline/compression.js';

const SPECIAL = [
  'shop',
  'Shop',
  'SHOP',
  'my db',
  'a/b',
  '../etc/passwd',
  '/abs',
  '%',
  '%25',
  '%2E',
  '%2e',
  '100%',
  '.',
  '..',
  '.hidden',
  '..double',
  '-',
  '--all',
  '-rf',
  '_',
  ' ',
  '  ',
  '\t',
  'line\nbreak',
  'x',
  'ü',
  'Ü',
  'u\u0308', // u + combining diaeresis: looks like ü but is a different name
  'straße',
  '日本語',
  'данные',
  '🐘',
  'emoji 🐬 db',
  "o'brien",
  'say "hi"',
  'back\\slash',
  'semi;colon',
  'a=b',
  'a:b',
  'a*b?',
  'name.with.dots',
  'trailing.',
  'trailing ',
  'x'.repeat(63),
];

/** SPECIAL plus pairwise concatenations: many names that differ only slightly. */
function generatedNames(): string[] {
  const names = new Set<string>(SPECIAL);
  for (const a of SPECIAL.slice(0, 30)) for (const b of SPECIAL.slice(0, 30)) names.add(a + b);
  return [...names];
}

describe('safeName / unsafeName', () => {
  const names = generatedNames();

  it('round-trips every name', () => {
    expect(names.length).toBeGreaterThan(500);
    for (const name of names) expect(unsafeName(safeName(name)), JSON.stringify(name)).toBe(name);
  });

  it('never produces a path separator, a hidden file or an unsafe character', () => {
    for (const name of names) {
      const safe = safeName(name);
      expect(safe, JSON.stringify(name)).not.toContain('/');
      expect(safe.startsWith('.'), JSON.stringify(name)).toBe(false);
      expect(safe).toMatch(/^[A-Za-z0-9_.%-]*$/);
      expect(safe).not.toBe('..');
    }
  });

  it('maps distinct names to distinct file names', () => {
    const seen = new Map<string, string>();
    for (const name of names) {
      const safe = safeName(name);
      const other = seen.get(safe);
      expect(other, `${JSON.stringify(name)} collides with ${JSON.stringify(other)}`).toBeUndefined();
      seen.set(safe, name);
    }
  });

  it('leaves ordinary names readable', () => {
    expect(safeName('shop_2024-v1.0')).toBe('shop_2024-v1.0');
    expect(safeName('my db')).toBe('my%20db');
    expect(safeName('100%')).toBe('100%25');
    expect(safeName('.hidden')).toBe('%2Ehidden');
    expect(safeName('ü')).toBe('%C3%BC');
  });
});

describe('timestampTag', () => {
  const originalTz = process.env.TZ;
  afterEach(() => {
    if (originalTz === undefined) delete process.env.TZ;
    else process.env.TZ = originalTz;
  });

  it('is UTC YYYYMMDD_HHMMSS even when the local zone is changing to summer time', () => {
    process.env.TZ = 'Europe/Berlin';
    const date = new Date('2026-03-29T01:30:00Z');
    // Make sure the zone really applies: in Berlin this instant is 03:30 CEST.
    expect(date.getHours()).toBe(3);
    expect(timestampTag(date)).toBe('20260329_013000');
  });

  it('drops milliseconds and zero-pads every field', () => {
    expect(timestampTag(new Date('2026-01-02T03:04:05.999Z'))).toBe('20260102_030405');
    expect(timestampTag(new Date('1999-12-31T23:59:59Z'))).toBe('19991231_235959');
  });

  it('sorts like time and stays unique across both DST changes', () => {
    process.env.TZ = 'Europe/Berlin';
    const instants = [
      '2026-03-29T00:59:59Z', // 01:59:59 CET
      '2026-03-29T01:00:00Z', // 03:00:00 CEST
      '2026-10-25T00:30:00Z', // 02:30 CEST
      '2026-10-25T01:30:00Z', // 02:30 CET: same wall-clock time, one hour later
    ].map((s) => new Date(s));
    const tags = instants.map(timestampTag);
    expect(new Set(tags).size).toBe(tags.length);
    expect([...tags].sort()).toEqual(tags);
    for (const tag of tags) expect(tag).toMatch(/^\d{8}_\d{6}$/);
  });
});

describe('extensionFor', () => {
  const engines: Engine[] = ['postgres', 'mysql', 'mariadb'];
  const formats: DumpFormat[] = ['custom', 'plain'];
  const compressions: CompressionAlgorithm[] = ['none', 'gzip', 'zstd'];
  const suffix: Record<CompressionAlgorithm, string> = { none: '', gzip: '.gz', zstd: '.zst' };

  for (const engine of engines)
    for (const format of formats)
      for (const compression of compressions) {
        const base = engine === 'postgres' && format === 'custom' ? '.dump' : '.sql';
        const expected = base + suffix[compression];
        it(`${engine} ${format} ${compression} → ${expected}`, () => {
          const ext = extensionFor(engine, format, compression);
          expect(ext).toBe(expected);
          // Whatever we name a backup must be recognised as one when its metadata is missing.
          expect(looksLikeBackup(`db_20260101_000000${ext}`)).toBe(true);
          expect(isSidecar(`db_20260101_000000${ext}`)).toBe(false);
        });
      }
});

describe('backupFileName', () => {
  const date = new Date('2026-03-29T01:30:00Z');

  it('joins the safe name, the UTC tag and the extension', () => {
    expect(backupFileName('shop', date, '.dump.zst')).toBe('shop_20260329_013000.dump.zst');
    expect(backupFileName('my db/x', date, '.sql')).toBe('my%20db%2Fx_20260329_013000.sql');
  });

  it('adds an attempt suffix only from the second attempt on, and every attempt differs', () => {
    expect(backupFileName('shop', date, '.sql.gz', 0)).toBe('shop_20260329_013000.sql.gz');
    expect(backupFileName('shop', date, '.sql.gz', 1)).toBe('shop_20260329_013000-1.sql.gz');
    expect(backupFileName('shop', date, '.sql.gz', 12)).toBe('shop_20260329_013000-12.sql.gz');
    const names = Array.from({ length: 100 }, (_, i) => backupFileName('shop', date, '.sql.gz', i));
    expect(new Set(names).size).toBe(100);
    for (const n of names) expect(looksLikeBackup(n)).toBe(true);
  });
});

describe('sidecars', () => {
  it('finds the owner of .meta.json and .sha256 files', () => {
    expect(sidecarOwner('shop_20260329_013000.dump.meta.json')).toBe('shop_20260329_013000.dump');
    expect(sidecarOwner('dir/x.sql.gz.sha256')).toBe('dir/x.sql.gz');
    expect(sidecarOwner('x.dump')).toBeUndefined();
    expect(sidecarOwner('x.json')).toBeUndefined();
  });

  it('tells sidecars from backups', () => {
    expect(isSidecar('x.dump.meta.json')).toBe(true);
    expect(isSidecar('x.dump.sha256')).toBe(true);
    expect(isSidecar('x.dump')).toBe(false);
    expect(looksLikeBackup('x.dump.meta.json')).toBe(false);
    expect(looksLikeBackup('x.sql.zst.sha256')).toBe(false);
    expect(looksLikeBackup('notes.txt')).toBe(false);
    expect(looksLikeBackup('x.sql.bz2')).toBe(false);
    expect(looksLikeBackup('x.dump.zst')).toBe(true);
  });
});
