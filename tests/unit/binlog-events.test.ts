import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../../src/errors.js';
import {
  applied,
  BinlogScanner,
  describeState,
  EVENT,
  formatGtid,
  GroupTracker,
  parseGtidList,
  stateOf,
  type BinlogEvent,
  type Group,
} from '../../src/pitr/binlog/events.js';
import { scanBinlogFile } from '../../src/pitr/binlog/facts.js';
import { binlogAfter, parseBinlogKey, binlogDataKey, binlogFactsKey } from '../../src/pitr/binlog/names.js';
import { purgedBefore } from '../../src/pitr/binlog/copy.js';
import { BinlogBuilder, pieces } from './binlog-fixture.js';

function scan(buf: Buffer, chunk: number): { events: BinlogEvent[]; groups: Group[]; safeEnd: number } {
  const s = new BinlogScanner('test.000001');
  const t = new GroupTracker();
  const groups: Group[] = [];
  t.onGroup = (g) => groups.push(g);
  const events: BinlogEvent[] = [];
  for (const p of pieces(buf, chunk))
    for (const ev of s.push(p)) {
      events.push(ev);
      t.update(ev);
    }
  return { events, groups, safeEnd: t.safeEnd };
}

describe('binlog events', () => {
  const b = new BinlogBuilder(1, 1_800_000_000, [{ domain: 0, server: 1, seq: 4 }]);
  b.tx({ seq: 5, time: 1_800_000_010, rows: [100, 5000] });
  b.tx({ seq: 6, time: 1_800_000_011, ddl: true });
  b.tx({ seq: 7, time: 1_800_000_012 });
  b.rotate('test.000002', 1_800_000_013);
  const file = b.bytes();

  it('reads every event and transaction whatever the chunking', () => {
    for (const chunk of [1, 7, 19, 23, 100, 4096, file.length]) {
      const r = scan(file, chunk);
      expect(r.events.map((e) => e.type)).toEqual([
        EVENT.FORMAT_DESCRIPTION,
        EVENT.GTID_LIST,
        EVENT.GTID,
        30,
        30,
        EVENT.XID,
        EVENT.GTID,
        EVENT.QUERY,
        EVENT.GTID,
        30,
        EVENT.XID,
        EVENT.ROTATE,
      ]);
      expect(r.groups.map((g) => formatGtid(g.gtid))).toEqual(['0-1-5', '0-1-6', '0-1-7']);
      expect(r.safeEnd).toBe(file.length);
      expect(r.events.at(-1)?.rotate?.file).toBe('test.000002');
      expect(r.events[1]?.gtidList?.map(formatGtid)).toEqual(['0-1-4']);
    }
  });

  it('a prefix ends safely only between transactions', () => {
    const whole = scan(file, 64);
    const second = whole.groups[1];
    if (!second) throw new Error('no second group');
    // Cut in the middle of the first transaction's rows: safe end is before it.
    const cut = scan(file.subarray(0, (whole.groups[0]?.start ?? 0) + 50), 64);
    expect(cut.safeEnd).toBe(whole.groups[0]?.start);
    // Cut right after the DDL: it is complete.
    expect(scan(file.subarray(0, second.end), 64).safeEnd).toBe(second.end);
  });

  it('a file that is not a binlog, or whose positions disagree, is refused', () => {
    expect(() => new BinlogScanner('x').push(Buffer.from('hello world, not a binlog'))).toThrow(
      IntegrityError,
    );
    const broken = Buffer.from(file);
    broken.writeUInt32LE(12345, 4 + 13); // the first event's next position
    expect(() => new BinlogScanner('x').push(broken)).toThrow(/damaged at byte 4/);
  });

  it('scanBinlogFile hashes exactly the safe prefix', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'dbb-binlog-'));
    try {
      const whole = scan(file, 64);
      const first = whole.groups[0];
      if (!first) throw new Error('no group');
      const cutAt = first.end + 30;
      await writeFile(path.join(dir, 'a'), file.subarray(0, cutAt));
      const r = await scanBinlogFile(path.join(dir, 'a'), 'test.000001');
      expect(r.bytes).toBe(cutAt);
      expect(r.safeEnd).toBe(first.end);
      const { createHash } = await import('node:crypto');
      expect(r.sha256).toBe(createHash('sha256').update(file.subarray(0, first.end)).digest('hex'));
      expect(describeState(r.end)).toBe('0-1-5');
      expect(r.closedBy).toBeNull();
      await writeFile(path.join(dir, 'b'), file);
      const full = await scanBinlogFile(path.join(dir, 'b'), 'test.000001');
      expect(full.closedBy).toBe('rotate');
      expect(full.nextFile).toBe('test.000002');
      expect(describeState(full.end)).toBe('0-1-7');
      expect(full.transactions).toBe(3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('GTIDs and names', () => {
  it('parses GTID lists strictly', () => {
    expect(parseGtidList('0-1-1345,1-2-7')?.map(formatGtid)).toEqual(['0-1-1345', '1-2-7']);
    expect(parseGtidList('')).toEqual([]);
    expect(parseGtidList('0-1')).toBeUndefined();
    expect(parseGtidList('0-1-x')).toBeUndefined();
    expect(parseGtidList('0-1-99999999999999999999999')).toBeUndefined();
    const state = stateOf(parseGtidList('0-1-10,0-2-12,1-1-3') ?? []);
    expect(describeState(state)).toBe('0-2-12,1-1-3');
    expect(applied(state, { domain: 0, server: 9, seq: 12n })).toBe(true);
    expect(applied(state, { domain: 0, server: 9, seq: 13n })).toBe(false);
    expect(applied(state, { domain: 2, server: 1, seq: 1n })).toBe(false);
  });

  it('names binlog objects and reads them back', () => {
    const sha = 'a'.repeat(64);
    const key = binlogDataKey('mysql-bin.000042', false, sha, { compression: 'zstd', encrypted: true });
    expect(key).toBe(`binlog/mysql-bin.000042-${sha}.zst.enc`);
    expect(parseBinlogKey(key)).toMatchObject({ file: 'mysql-bin.000042', partial: false, kind: 'data' });
    expect(parseBinlogKey(binlogFactsKey('mysql-bin.000042', true, sha))).toMatchObject({
      partial: true,
      kind: 'facts',
    });
    expect(parseBinlogKey('binlog/notes.txt')).toBeUndefined();
    expect(binlogAfter('mysql-bin.000999')).toBe('mysql-bin.001000');
    expect(binlogAfter('mysql-bin.999999')).toBe('mysql-bin.1000000');
  });

  it('finds files the server purged before they were archived', () => {
    expect(purgedBefore(['b.000003'], ['b.000004', 'b.000005'])).toBeNull();
    expect(purgedBefore(['b.000003'], ['b.000006', 'b.000007'])).toEqual({
      from: 'b.000004',
      to: 'b.000005',
    });
    expect(purgedBefore([], ['b.000006'])).toBeNull();
  });
});
