import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { parseGtidList, stateOf } from '../../src/pitr/binlog/events.js';
import type { StoredBinlog } from '../../src/pitr/binlog/inventory.js';
import { SnapshotAfterTarget } from '../../src/pitr/binlog/verify-binlogs.js';
import { BinlogBuilder, pieces } from './binlog-fixture.js';

const T0 = 1_800_000_000;

/** Transactions 0-1-5 … 0-1-9 stamped T0+10 … T0+14. */
function sample(): Buffer {
  const b = new BinlogBuilder(1, T0, [{ domain: 0, server: 1, seq: 4 }]);
  for (let seq = 5; seq <= 9; seq++) b.tx({ seq, time: T0 + 5 + seq, rows: [60] });
  b.rotate('test.000002', T0 + 20);
  return b.bytes();
}

async function scan(states: Record<string, string>, targetSecond: number): Promise<SnapshotAfterTarget> {
  const check = new SnapshotAfterTarget(
    new Date(targetSecond * 1000),
    Object.entries(states).map(([what, g]) => ({ what, from: stateOf(parseGtidList(g) ?? []) })),
  );
  const file = { file: 'test.000001' } as StoredBinlog;
  await pipeline(Readable.from(pieces(sample(), 97)), check.sink(file));
  return check;
}

describe('restore pitr: a backup whose snapshot lies after a time target is refused', () => {
  it('a dump that already holds a transaction stamped at or after the target is named, with that transaction', async () => {
    // Target T0+12: 0-1-7 is the first transaction stamped at it. Database b's dump holds 0-1-8.
    const check = await scan({ 'database a': '0-1-6', 'database b': '0-1-8' }, T0 + 12);
    expect([...check.found.keys()]).toEqual(['database b']);
    expect(() => check.check()).toThrow(
      `Restore refused: database b's snapshot lies after the target: it already holds 0-1-7, stamped ${new Date((T0 + 12) * 1000).toISOString()}`,
    );
  });

  it('dumps whose snapshots lie before the target pass', async () => {
    const check = await scan({ 'database a': '0-1-6', 'database b': '0-1-4' }, T0 + 12);
    expect(check.found.size).toBe(0);
    expect(() => check.check()).not.toThrow();
  });
});
