import type { TimelineStep } from './timeline.js';
import { segmentName, segmentNumber, segmentTimeline, type StoredWal } from './wal-names.js';

/**
 * The continuous WAL chain that makes an archive restorable, computed from a listing alone (the
 * SHA-256 of every segment is in its name). Pure.
 */

/** The archive's segments by name (`000000010000000000000005` → its object). */
export type SegmentIndex = ReadonlyMap<string, StoredWal>;

/** Which timeline's copy of segment `segno` recovery along `path` reads: the newest that began at or before it. */
export function timelineForSegment(
  path: readonly TimelineStep[],
  segno: bigint,
  segSize: number,
): number | undefined {
  let chosen: number | undefined;
  for (const step of path) if (step.begin / BigInt(segSize) <= segno) chosen = step.timeline;
  return chosen;
}

/** The segment names recovery along `path` needs from `from` through `to` (inclusive). */
export function requiredSegments(
  path: readonly TimelineStep[],
  from: bigint,
  to: bigint,
  segSize: number,
): string[] {
  const names: string[] = [];
  for (let n = from; n <= to; n++) {
    const tli = timelineForSegment(path, n, segSize);
    if (tli !== undefined) names.push(segmentName(tli, n, segSize));
  }
  return names;
}

export interface WalWindow {
  /** The first and last segment of the unbroken chain; last is null when even the first is missing. */
  first: string;
  last: string | null;
  /** The chain's segments, in order. */
  segments: StoredWal[];
  /** The first missing segment after the chain, when WAL along the path exists beyond it (a gap). */
  gap?: { missing: string; resumesAt: string };
}

/**
 * Walks the chain from segment `start` along `path` until the first missing segment. When the
 * archive holds WAL of the path beyond that point, recovery cannot reach it: that is a gap, named
 * by its first missing segment and the first segment after it.
 */
export function walkWindow(
  index: SegmentIndex,
  path: readonly TimelineStep[],
  start: bigint,
  segSize: number,
): WalWindow {
  const segments: StoredWal[] = [];
  const first = segmentAt(path, start, segSize);
  let n = start;
  for (;;) {
    const name = segmentAt(path, n, segSize);
    const found = index.get(name);
    if (!found) break;
    segments.push(found);
    n++;
  }
  const window: WalWindow = { first, last: segments.at(-1)?.file.name ?? null, segments };
  const beyond = firstOnPathAfter(index, path, n, segSize);
  if (beyond) window.gap = { missing: segmentAt(path, n, segSize), resumesAt: beyond };
  return window;
}

function segmentAt(path: readonly TimelineStep[], segno: bigint, segSize: number): string {
  return segmentName(timelineForSegment(path, segno, segSize) ?? 1, segno, segSize);
}

/** The first segment at or after `segno` that the path would read and the archive holds. */
function firstOnPathAfter(
  index: SegmentIndex,
  path: readonly TimelineStep[],
  segno: bigint,
  segSize: number,
): string | undefined {
  let best: bigint | undefined;
  let bestName: string | undefined;
  for (const [name] of index) {
    const n = segmentNumber(name, segSize);
    if (n < segno) continue;
    if (timelineForSegment(path, n, segSize) !== segmentTimeline(name)) continue;
    if (best === undefined || n < best) {
      best = n;
      bestName = name;
    }
  }
  return bestName;
}

/**
 * A timeline of the path that kept archiving after the path left it: its segments after the
 * switch point exist, so "latest" follows one branch while WAL of the other exists (a restore
 * drill that archived into production, or a failover whose old primary went on writing).
 */
export interface Divergence {
  timeline: number;
  /** Where the path switches to `child`. */
  switchLsn: bigint;
  child: number;
  /** The parent's newest segment after the switch. */
  parentNewest: string;
}

export function divergences(
  index: SegmentIndex,
  path: readonly TimelineStep[],
  segSize: number,
): Divergence[] {
  const out: Divergence[] = [];
  path.forEach((step, i) => {
    const child = path[i + 1];
    if (step.end === undefined || !child) return;
    const switchSeg = step.end / BigInt(segSize);
    let newest: bigint | undefined;
    for (const [name] of index) {
      if (segmentTimeline(name) !== step.timeline) continue;
      const n = segmentNumber(name, segSize);
      if (n > switchSeg && (newest === undefined || n > newest)) newest = n;
    }
    if (newest !== undefined)
      out.push({
        timeline: step.timeline,
        switchLsn: step.end,
        child: child.timeline,
        parentNewest: segmentName(step.timeline, newest, segSize),
      });
  });
  return out;
}

/** Contiguous runs of segments per timeline, for `wal list`. */
export interface SegmentRun {
  timeline: number;
  first: string;
  last: string;
  count: number;
  bytes: number;
  oldest: Date;
  newest: Date;
}

export function segmentRuns(index: SegmentIndex, segSize: number): SegmentRun[] {
  const byTimeline = new Map<number, Array<{ n: bigint; o: StoredWal }>>();
  for (const [name, o] of index) {
    const t = segmentTimeline(name);
    const list = byTimeline.get(t) ?? [];
    list.push({ n: segmentNumber(name, segSize), o });
    byTimeline.set(t, list);
  }
  const runs: SegmentRun[] = [];
  for (const [timeline, list] of [...byTimeline].sort((a, b) => a[0] - b[0])) {
    list.sort((a, b) => (a.n < b.n ? -1 : a.n > b.n ? 1 : 0));
    let run: (SegmentRun & { next: bigint }) | undefined;
    for (const { n, o } of list) {
      if (run && n === run.next) {
        run.last = o.file.name;
        run.count++;
        run.bytes += o.size;
        if (o.modified < run.oldest) run.oldest = o.modified;
        if (o.modified > run.newest) run.newest = o.modified;
        run.next = n + 1n;
        continue;
      }
      if (run) runs.push(strip(run));
      run = {
        timeline,
        first: o.file.name,
        last: o.file.name,
        count: 1,
        bytes: o.size,
        oldest: o.modified,
        newest: o.modified,
        next: n + 1n,
      };
    }
    if (run) runs.push(strip(run));
  }
  return runs;
}

function strip(run: SegmentRun & { next: bigint }): SegmentRun {
  const { next: _next, ...rest } = run;
  return rest;
}
