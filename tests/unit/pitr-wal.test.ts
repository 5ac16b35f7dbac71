import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  divergences,
  requiredSegments,
  segmentRuns,
  timelineForSegment,
  walkWindow,
} from '../../src/pitr/chain.js';
import { archiveCommandFor, commandOption, commandWords, shellWord } from '../../src/pitr/commands.js';
import { parseBackupManifest } from '../../src/pitr/backup-manifest.js';
import { confValue, parseTargetTime, recoveryLines, targetFromFlags } from '../../src/pitr/recovery.js';
import { latestTimeline, parseHistory, pathContains, timelinePath } from '../../src/pitr/timeline.js';
import { segmentProblems } from '../../src/pitr/wal-header.js';
import {
  formatLsn,
  parseLsn,
  parseWalFileName,
  parseWalObjectKey,
  segmentBeforeLsn,
  segmentName,
  segmentNumber,
  segmentOfLsn,
  walObjectKey,
  type StoredWal,
} from '../../src/pitr/wal-names.js';

const MiB = 1024 * 1024;

describe('WAL names and positions', () => {
  it('tells segments, partials, history and backup history files apart', () => {
    expect(parseWalFileName('000000010000000000000005')?.kind).toBe('segment');
    expect(parseWalFileName('000000020000000000000005.partial')).toMatchObject({
      kind: 'partial',
      timeline: 2,
    });
    expect(parseWalFileName('00000003.history')).toMatchObject({ kind: 'history', timeline: 3 });
    expect(parseWalFileName('000000010000000000000002.00000028.backup')?.kind).toBe('backup');
    expect(parseWalFileName('RECOVERYXLOG')).toBeUndefined();
    expect(parseWalFileName('00000001000000000000000g')).toBeUndefined();
  });

  it('numbers segments by the segment size, never assuming 16 MiB', () => {
    // 1 MiB segments: 4096 per 4 GiB log id.
    expect(segmentName(1, 4096n, MiB)).toBe('000000010000000100000000');
    expect(segmentNumber('000000010000000100000000', MiB)).toBe(4096n);
    expect(segmentName(1, 256n, 16 * MiB)).toBe('000000010000000100000000');
    expect(segmentNumber('0000000100000001000000FF', 16 * MiB)).toBe(511n);
    expect(segmentOfLsn(1, parseLsn('0/B00028') ?? 0n, MiB)).toBe('00000001000000000000000B');
    // A stop LSN on a segment boundary needs only the segment before it.
    expect(segmentBeforeLsn(1, parseLsn('0/C00000') ?? 0n, MiB)).toBe('00000001000000000000000B');
    expect(segmentBeforeLsn(1, parseLsn('0/C00001') ?? 0n, MiB)).toBe('00000001000000000000000C');
  });

  it('parses and formats LSNs', () => {
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(formatLsn(parseLsn('0/15d6b40') ?? 0n)).toBe('0/15D6B40');
    expect(parseLsn('1/2/3')).toBeUndefined();
    expect(parseLsn('zz/1')).toBeUndefined();
  });

  it('keys carry the raw SHA-256 and encoding, and parse back', () => {
    const file = parseWalFileName('000000010000000000000005');
    if (!file) throw new Error('unparsed');
    const sha = 'a'.repeat(64);
    const key = walObjectKey(file, sha, { compression: 'zstd', encrypted: true });
    expect(key).toBe(`wal/0000000100000000/000000010000000000000005-${sha}.zst.enc`);
    expect(parseWalObjectKey(key)).toMatchObject({
      sha256: sha,
      encoding: { compression: 'zstd', encrypted: true },
    });
    const history = parseWalFileName('00000002.history');
    if (!history) throw new Error('unparsed');
    expect(walObjectKey(history, sha, { compression: 'none', encrypted: false })).toBe(
      `wal/history/00000002.history-${sha}`,
    );
    expect(parseWalObjectKey(`wal/history/00000002.history-${sha}`)?.file.kind).toBe('history');
    // A segment filed under the wrong directory, a temp file, a probe: not WAL.
    expect(parseWalObjectKey(`wal/0000000100000001/000000010000000000000005-${sha}.zst`)).toBeUndefined();
    expect(
      parseWalObjectKey('wal/0000000100000000/.dbbackup-tmp-x-000000010000000000000005'),
    ).toBeUndefined();
  });
});

function header(o: {
  sysid?: bigint;
  tli?: number;
  addr?: bigint;
  segSize?: number;
  info?: number;
  magic?: number;
}): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt16LE(o.magic ?? 0xd110, 0);
  h.writeUInt16LE(o.info ?? 0x0002, 2);
  h.writeUInt32LE(o.tli ?? 1, 4);
  h.writeBigUInt64LE(o.addr ?? 5n * BigInt(MiB), 8);
  h.writeBigUInt64LE(o.sysid ?? 7716430107912625339n, 24);
  h.writeUInt32LE(o.segSize ?? MiB, 32);
  h.writeUInt32LE(8192, 36);
  return h;
}

describe('segment header checks', () => {
  const expect_ = { systemIdentifier: '7716430107912625339', segmentSize: MiB, pageMagic: 0xd110 };
  const seg = parseWalFileName('000000010000000000000005');
  if (!seg) throw new Error('unparsed');

  it('accepts a segment that matches its name and the archive', () => {
    expect(segmentProblems(seg, MiB, header({}), expect_)).toEqual([]);
  });

  it('names every mismatch: cluster, address, size, timeline, magic, long header', () => {
    expect(segmentProblems(seg, MiB, header({ sysid: 1n }), expect_).join()).toMatch(
      /system identifier 1, the archive to 7716430107912625339/,
    );
    expect(segmentProblems(seg, MiB, header({ addr: 6n * BigInt(MiB) }), expect_).join()).toMatch(
      /its name says 0x500000/,
    );
    expect(segmentProblems(seg, 16 * MiB, header({ segSize: 16 * MiB }), expect_)).toHaveLength(2);
    expect(segmentProblems(seg, MiB, header({ magic: 0xd113 }), expect_).join()).toMatch(/page magic/);
    expect(segmentProblems(seg, MiB, header({ info: 0 }), expect_).join()).toMatch(/no long header/);
    expect(segmentProblems(seg, 10, Buffer.alloc(10), expect_).join()).toMatch(/too short/);
  });

  it("lets the first segment of a new timeline start with its parent's page, never a newer one", () => {
    const tl2 = parseWalFileName('000000020000000000000005');
    if (!tl2) throw new Error('unparsed');
    expect(segmentProblems(tl2, MiB, header({ tli: 1 }), expect_)).toEqual([]);
    expect(segmentProblems(seg, MiB, header({ tli: 2 }), expect_).join()).toMatch(
      /timeline 2, its name says 1/,
    );
  });
});

function stored(name: string, minutes = 0): StoredWal {
  const file = parseWalFileName(name);
  if (!file) throw new Error(name);
  return {
    key: `wal/x/${name}`,
    file,
    sha256: '0'.repeat(64),
    encoding: { compression: 'zstd', encrypted: false },
    size: 100,
    modified: new Date(Date.UTC(2026, 0, 1, 0, minutes)),
  };
}

function index(names: string[]): Map<string, StoredWal> {
  return new Map(names.map((n, i) => [n, stored(n, i)]));
}

describe('timelines and the WAL chain', () => {
  const history2 = parseHistory('1\t0/5800000\tbefore 2026-12-07 05:33:41+00\n', '00000002.history');
  const path2 = timelinePath(2, history2);

  it('parses history files and builds the path to a timeline', () => {
    expect(path2).toEqual([
      { timeline: 1, begin: 0n, end: 0x5800000n },
      { timeline: 2, begin: 0x5800000n },
    ]);
    expect(pathContains(path2, 1, 0x100000n)).toBe(true);
    expect(pathContains(path2, 1, 0x5800000n)).toBe(false);
    expect(latestTimeline(1, new Set([2, 3, 5]))).toBe(3);
    expect(() => parseHistory('2\t0/1\tx\n1\t0/2\ty\n', 'h')).toThrow(/out of order/);
    expect(() => parseHistory('garbage', 'h')).toThrow(/not a timeline history/);
  });

  it('reads each segment from the newest timeline that began at or before it', () => {
    // The switch inside segment 0x58: timeline 2's copy of that segment is the one to read.
    expect(timelineForSegment(path2, 0x57n, MiB)).toBe(1);
    expect(timelineForSegment(path2, 0x58n, MiB)).toBe(2);
    expect(requiredSegments(path2, 0x56n, 0x59n, MiB)).toEqual([
      '000000010000000000000056',
      '000000010000000000000057',
      '000000020000000000000058',
      '000000020000000000000059',
    ]);
  });

  it('walks the chain to its end, and names a gap by both ends', () => {
    const path1 = timelinePath(1, []);
    const full = walkWindow(
      index(['000000010000000000000003', '000000010000000000000004', '000000010000000000000005']),
      path1,
      3n,
      MiB,
    );
    expect(full.last).toBe('000000010000000000000005');
    expect(full.gap).toBeUndefined();
    const gap = walkWindow(
      index(['000000010000000000000003', '000000010000000000000005', '000000010000000000000006']),
      path1,
      3n,
      MiB,
    );
    expect(gap.last).toBe('000000010000000000000003');
    expect(gap.gap).toEqual({ missing: '000000010000000000000004', resumesAt: '000000010000000000000005' });
  });

  it('sees a fork: the parent timeline kept archiving after the child branched', () => {
    const names = [
      '000000010000000000000057',
      '000000010000000000000058',
      '000000020000000000000058',
      '000000020000000000000059',
    ];
    expect(divergences(index(names), path2, MiB)).toEqual([]);
    const forked = divergences(index([...names, '000000010000000000000059']), path2, MiB);
    expect(forked).toEqual([
      { timeline: 1, switchLsn: 0x5800000n, child: 2, parentNewest: '000000010000000000000059' },
    ]);
    const runs = segmentRuns(index([...names, '000000010000000000000059', '00000001000000000000005B']), MiB);
    expect(runs.map((r) => [r.timeline, r.first.slice(-2), r.last.slice(-2), r.count])).toEqual([
      [1, '57', '59', 3],
      [1, '5B', '5B', 1],
      [2, '58', '59', 2],
    ]);
  });
});

describe('recovery targets and settings', () => {
  it('takes a time only with its offset, keeping microseconds', () => {
    expect(parseTargetTime('2026-12-07 05:33:41.866388+00').text).toBe('2026-12-07 05:33:41.866388+00:00');
    expect(parseTargetTime('2026-12-07T05:33:41Z').time.toISOString()).toBe('2026-12-07T05:33:41.000Z');
    expect(parseTargetTime('2026-12-07 07:33:41+0200').time.toISOString()).toBe('2026-12-07T05:33:41.000Z');
    expect(() => parseTargetTime('2026-12-07 05:33:41')).toThrow(/Invalid --target-time/);
    expect(() => parseTargetTime('yesterday')).toThrow();
  });

  it('accepts at most one target', () => {
    expect(targetFromFlags({})).toEqual({ kind: 'end' });
    expect(targetFromFlags({ targetXid: '4642' })).toEqual({ kind: 'xid', xid: '4642' });
    expect(() => targetFromFlags({ targetXid: '1', targetImmediate: true })).toThrow(/at most one/);
    expect(() => targetFromFlags({ targetLsn: 'x' })).toThrow(/Invalid --target-lsn/);
    expect(() => targetFromFlags({ targetXid: '-1' })).toThrow(/Invalid --target-xid/);
  });

  it('writes the settings a drill needs: promote, archiving off, the restore command quoted', () => {
    const lines = recoveryLines(
      {
        restoreCommand: "'node' 'cli' wal fetch %f %p",
        target: targetFromFlags({ targetName: "it's" }),
        timeline: 'latest',
        action: 'promote',
        inclusive: false,
        keepArchiving: false,
        port: 5433,
      },
      'header',
    );
    expect(lines).toContain(`restore_command = '''node'' ''cli'' wal fetch %f %p'`);
    expect(lines).toContain(`recovery_target_name = 'it''s'`);
    expect(lines).toContain(`recovery_target_inclusive = 'off'`);
    expect(lines).toContain(`recovery_target_action = 'promote'`);
    expect(lines).toContain(`archive_mode = 'off'`);
    expect(lines).toContain('port = 5433');
    const keep = recoveryLines(
      {
        restoreCommand: 'x',
        target: { kind: 'end' },
        timeline: 3,
        action: 'promote',
        inclusive: true,
        keepArchiving: true,
      },
      'h',
    );
    expect(keep.join('\n')).not.toMatch(/archive_mode|recovery_target_action/);
    expect(keep).toContain(`recovery_target_timeline = '3'`);
    expect(confValue("a'b")).toBe("'a''b'");
  });
});

describe('archive and restore commands', () => {
  it('quotes every word for the shell and doubles % for PostgreSQL; reads options back', () => {
    expect(shellWord("it's 100%")).toBe(`'it'\\''s 100%%'`);
    const cmd = archiveCommandFor({
      node: '/opt/node/bin/node',
      cli: '/opt/dbbackup/bin/dbbackup.js',
      archive: 's3://b/p/?endpoint=http%3A%2F%2Fh',
      keyArgs: ['--encryption-key-file', '/etc/k'],
      envFile: '/etc/e',
    });
    expect(cmd).toBe(
      `'/opt/node/bin/node' '/opt/dbbackup/bin/dbbackup.js' wal push %p '--archive' 's3://b/p/?endpoint=http%%3A%%2F%%2Fh' '--encryption-key-file' '/etc/k' '--env-file' '/etc/e'`,
    );
    expect(commandOption(cmd, '--archive')).toBe('s3://b/p/?endpoint=http%3A%2F%2Fh');
    expect(commandWords(cmd).slice(2, 5)).toEqual(['wal', 'push', '%p']);
  });
});

describe('backup_manifest', () => {
  function manifest(body: string): Buffer {
    const covered = `{ "PostgreSQL-Backup-Manifest-Version": 1,\n${body}`;
    const sum = createHash('sha256').update(covered).digest('hex');
    return Buffer.from(`${covered}"Manifest-Checksum": "${sum}"}\n`);
  }
  const body =
    '"Files": [\n{ "Path": "base/1/112", "Size": 8192, "Last-Modified": "x", "Checksum-Algorithm": "CRC32C", "Checksum": "aa" }\n],\n' +
    '"WAL-Ranges": [\n{ "Timeline": 1, "Start-LSN": "0/B00028", "End-LSN": "0/B00100" }\n],\n';

  it("reads files and WAL range, and checks the manifest's own checksum", () => {
    const m = parseBackupManifest(manifest(body));
    expect(m.files).toHaveLength(1);
    expect(m.walRanges[0]).toEqual({ timeline: 1, startLsn: 0xb00028n, endLsn: 0xb00100n });
    const tampered = Buffer.from(manifest(body).toString().replace('8192', '8193'));
    expect(() => parseBackupManifest(tampered)).toThrow(/does not match its own checksum/);
  });
});
