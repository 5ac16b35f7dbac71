import { describe, expect, it } from 'vitest';
import type { BaseBackupMetadata } from '../../src/catalog/base-backup.js';
import type { BaseWindow } from '../../src/pitr/analysis.js';
import type { RecoveryTarget } from '../../src/pitr/recovery.js';
import { coverageOf } from '../../src/pitr/restore.js';
import type { StoredWal } from '../../src/pitr/wal-names.js';

/**
 * Whether the archive covers a target time, from the push times a listing gives. S3's and Azure's
 * listings give whole seconds: a segment pushed in the target's own second may be listed as older
 * than the target, and the refusal must say so instead of "the archive ends before".
 */

const SEG = 16 * 1024 * 1024;
const seg = (n: number, modified: string): StoredWal =>
  ({
    key: `wal/${n}`,
    file: { name: `0000000100000000000000${n.toString(16).padStart(2, '0').toUpperCase()}` },
    modified: new Date(modified),
  }) as unknown as StoredWal;

function base(segments: StoredWal[]): BaseWindow {
  return {
    name: 'base_1',
    meta: {
      startSegment: '000000010000000000000002',
      stopSegment: '000000010000000000000002',
    } as unknown as BaseBackupMetadata,
    state: 'valid',
    detail: '',
    window: {
      first: '000000010000000000000002',
      last: segments.at(-1)?.file.name ?? null,
      segments,
    },
    divergences: [],
  };
}

const at = (iso: string): RecoveryTarget => ({ kind: 'time', text: iso, time: new Date(iso) });

describe('coverageOf a target time', () => {
  it('a segment pushed after the target covers it', () => {
    const b = base([seg(2, '2026-12-08T02:55:01.000Z'), seg(3, '2026-12-08T02:55:04.000Z')]);
    expect(coverageOf(at('2026-12-08T02:55:03.143Z'), b, SEG)).toMatchObject({ covered: true });
  });

  it('the newest segment listed in the same whole second as the target: refused, saying why and what to do', () => {
    const b = base([seg(2, '2026-12-08T02:55:01.000Z'), seg(3, '2026-12-08T02:55:03.000Z')]);
    const c = coverageOf(at('2026-12-08T02:55:03.143Z'), b, SEG);
    expect(c.covered).toBe(false);
    expect(c.detail).toMatch(
      /in the same second as .*whole seconds .*cannot be told; archive one more segment/,
    );
  });

  it('the newest segment a second or more before the target, or with a time finer than seconds: the archive ends before it', () => {
    for (const newest of ['2026-12-08T02:55:02.000Z', '2026-12-08T02:55:03.100Z']) {
      const b = base([seg(2, '2026-12-08T02:55:01.000Z'), seg(3, newest)]);
      const c = coverageOf(at('2026-12-08T02:55:03.143Z'), b, SEG);
      expect(c).toMatchObject({ covered: false });
      expect(c.detail).toMatch(/^the archive ends before/);
    }
  });
});
