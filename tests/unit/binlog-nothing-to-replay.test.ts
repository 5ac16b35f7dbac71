import { describe, expect, it } from 'vitest';
import { parseGtidList, stateOf } from '../../src/pitr/binlog/events.js';
import type { BinlogFacts } from '../../src/pitr/binlog/facts.js';
import { nothingToReplay, type ReplayTarget } from '../../src/pitr/binlog/replay.js';

const state = (text: string): ReturnType<typeof stateOf> => stateOf(parseGtidList(text) ?? []);
const files = (...ends: string[]): Array<{ facts: BinlogFacts }> =>
  ends.map((endGtids) => ({ facts: { endGtids } as BinlogFacts }));
const END: ReplayTarget = { kind: 'end' };

describe('nothingToReplay (restore pitr starts no private server for an empty replay)', () => {
  it('true when every binlog ends at or before the backup’s GTID state', () => {
    expect(nothingToReplay(files('0-25-400', '0-25-401'), state('0-25-401'), END)).toBe(true);
    expect(nothingToReplay(files(''), state('0-25-401'), END)).toBe(true);
  });

  it('false when a binlog holds a transaction after it, in any domain', () => {
    expect(nothingToReplay(files('0-25-401', '0-25-402'), state('0-25-401'), END)).toBe(false);
    expect(nothingToReplay(files('0-25-401,1-25-3'), state('0-25-401'), END)).toBe(false);
    expect(nothingToReplay(files('0-25-1'), state(''), END)).toBe(false);
  });

  it('false for unreadable facts and for any target but the end (those need the replay to prove they are reached)', () => {
    expect(nothingToReplay(files('garbage'), state('0-25-401'), END)).toBe(false);
    expect(
      nothingToReplay(files('0-25-401'), state('0-25-401'), {
        kind: 'time',
        time: new Date(0),
        text: '1970-01-01 00:00:00+00',
      }),
    ).toBe(false);
  });
});
