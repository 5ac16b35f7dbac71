import { describe, expect, it } from 'vitest';
import type { RetentionDecision } from '../../src/catalog/retention.js';
import { keepChainsWhole } from '../../src/pitr/incremental/retention.js';

function decision(key: string, day: number, keep: boolean): RetentionDecision {
  return {
    key,
    group: 'g',
    time: new Date(Date.UTC(2026, 0, day)),
    valid: true,
    keep,
    reasons: keep ? ['last 1/1'] : ['beyond the rules'],
    holdsSlot: keep,
  };
}

describe('keepChainsWhole', () => {
  const parents: Record<string, string> = { i1: 'f1', i2: 'i1', d1: 'f1', i3: 'f2' };
  const parentOf = (n: string): string | undefined => parents[n];

  it('a kept incremental keeps every backup under it, down to its full', () => {
    const out = keepChainsWhole(
      [decision('f1', 1, false), decision('i1', 2, false), decision('i2', 3, true), decision('f2', 4, false)],
      parentOf,
    );
    expect(out.filter((d) => d.keep).map((d) => d.key)).toEqual(['f1', 'i1', 'i2']);
    expect(out.find((d) => d.key === 'i1')?.reasons).toEqual(['parent of i2']);
    expect(out.find((d) => d.key === 'f1')?.reasons).toEqual(['parent of i1']);
  });

  it('an expired full takes its deltas with it when nothing above them is kept', () => {
    const out = keepChainsWhole(
      [decision('f1', 1, false), decision('d1', 2, false), decision('f2', 3, false), decision('i3', 4, true)],
      parentOf,
    );
    expect(out.filter((d) => !d.keep).map((d) => d.key)).toEqual(['f1', 'd1']);
  });
});
