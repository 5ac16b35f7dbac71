import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import {
  BinlogScanner,
  formatGtid,
  GroupTracker,
  stateOf,
  type Group,
} from '../../src/pitr/binlog/events.js';
import { BinlogCutter, type ReplayProgress, type ReplayTarget } from '../../src/pitr/binlog/replay.js';
import { BinlogBuilder, pieces } from './binlog-fixture.js';

const T0 = 1_800_000_000;

/** A file with transactions 0-1-5 … 0-1-9, one second apart from T0+10, a DDL as 0-1-7. */
function sample(): Buffer {
  const b = new BinlogBuilder(1, T0, [{ domain: 0, server: 1, seq: 4 }]);
  for (let seq = 5; seq <= 9; seq++) b.tx({ seq, time: T0 + 5 + seq, ddl: seq === 7, rows: [60, 9000] });
  b.rotate('test.000002', T0 + 20);
  return b.bytes();
}

async function cut(
  file: Buffer,
  from: string,
  target: ReplayTarget,
  chunk = 333,
): Promise<{ out: Buffer; progress: ReplayProgress; groups: string[] }> {
  const progress: ReplayProgress = { applied: 0, skipped: 0, last: null, stoppedAt: null, reached: false };
  const cutter = new BinlogCutter('test.000001', stateOf(from ? [parse(from)] : []), target, progress);
  const chunks: Buffer[] = [];
  const collected = pipeline(cutter, new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }));
  await pipeline(Readable.from(pieces(file, chunk)), cutter).catch(() => undefined);
  await collected;
  const out = Buffer.concat(chunks);
  return { out, progress, groups: groupsOf(out) };
}

function parse(g: string): { domain: number; server: number; seq: bigint } {
  const [d, s, q] = g.split('-');
  return { domain: Number(d), server: Number(s), seq: BigInt(q ?? '0') };
}

/** What mariadb-binlog would read: a well-formed file, its transactions. */
function groupsOf(buf: Buffer): string[] {
  // Skipped transactions leave the kept events at their original positions: mariadb-binlog reads on.
  const s = new BinlogScanner('out', false);
  const t = new GroupTracker();
  const groups: Group[] = [];
  t.onGroup = (g) => groups.push(g);
  for (const ev of s.push(buf)) t.update(ev);
  expect(s.buffered).toBe(0);
  expect(t.inGroup).toBe(false);
  return groups.map((g) => formatGtid(g.gtid));
}

describe('BinlogCutter', () => {
  const file = sample();

  it('passes a whole file through unchanged when there is nothing to skip or stop at', async () => {
    for (const chunk of [1, 19, 333, file.length]) {
      const r = await cut(file, '', { kind: 'end' }, chunk);
      expect(r.out.equals(file)).toBe(true);
      expect(r.progress.applied).toBe(5);
    }
  });

  it("skips what the backup already holds, keeping the file's header events", async () => {
    const r = await cut(file, '0-1-6', { kind: 'end' });
    expect(r.groups).toEqual(['0-1-7', '0-1-8', '0-1-9']);
    expect(r.progress).toMatchObject({ applied: 3, skipped: 2 });
  });

  it('a time target stops before the first transaction stamped at or after it', async () => {
    // 0-1-8 is stamped T0+13: a target of T0+13 keeps 0-1-5 … 0-1-7.
    const time = new Date((T0 + 13) * 1000);
    const r = await cut(file, '0-1-4', { kind: 'time', time, text: time.toISOString() });
    expect(r.groups).toEqual(['0-1-5', '0-1-6', '0-1-7']);
    expect(r.progress.reached).toBe(true);
    expect(r.progress.stoppedAt).toMatch(/^before 0-1-8 \(stamped /);
  });

  it('a GTID target includes that transaction and nothing after it', async () => {
    const r = await cut(file, '0-1-5', { kind: 'gtid', gtid: parse('0-1-7') });
    expect(r.groups).toEqual(['0-1-6', '0-1-7']);
    expect(r.progress.reached).toBe(true);
  });

  it('a GTID that is not in the file is an error, not a silent stop', async () => {
    const progress: ReplayProgress = { applied: 0, skipped: 0, last: null, stoppedAt: null, reached: false };
    const cutter = new BinlogCutter(
      'test.000001',
      stateOf([]),
      { kind: 'gtid', gtid: parse('0-9-6') },
      progress,
    );
    cutter.resume();
    await expect(pipeline(Readable.from([file]), cutter)).rejects.toThrow(/GTID 0-9-6 is not in the binlogs/);
  });

  it('a position target keeps the events before it', async () => {
    const whole = await cut(file, '', { kind: 'end' });
    expect(whole.groups).toHaveLength(5);
    const s = new BinlogScanner('x');
    const gtidOffsets = s
      .push(file)
      .filter((e) => e.gtid)
      .map((e) => e.offset);
    const r = await cut(file, '', { kind: 'position', file: 'test.000001', position: gtidOffsets[3] ?? 0 });
    expect(r.groups).toEqual(['0-1-5', '0-1-6', '0-1-7']);
  });
});
