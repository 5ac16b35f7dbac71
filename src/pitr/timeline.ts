import { IntegrityError } from '../errors.js';
import { formatLsn, parseLsn } from './wal-names.js';

/**
 * Timeline histories: each `N.history` file lists the ancestors of timeline N and the WAL address
 * where each one was left. Pure: parsing and path arithmetic only.
 */

export interface HistoryEntry {
  /** An ancestor timeline… */
  timeline: number;
  /** …and the address where the next timeline of the path branched off it. */
  switchLsn: bigint;
  reason: string;
}

/** The lines of a history file (`parentTLI <tab> switchpoint <tab> reason`); comments and blanks skipped. */
export function parseHistory(text: string, source: string): HistoryEntry[] {
  const entries: HistoryEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)\s*(.*)$/.exec(line);
    const lsn = m?.[2] ? parseLsn(m[2]) : undefined;
    if (!m?.[1] || lsn === undefined)
      throw new IntegrityError(`${source} is not a timeline history: "${line}"`);
    const timeline = Number(m[1]);
    const previous = entries.at(-1);
    if (previous && (timeline <= previous.timeline || lsn < previous.switchLsn))
      throw new IntegrityError(`${source} is not a timeline history: its entries are out of order`);
    entries.push({ timeline, switchLsn: lsn, reason: m[3] ?? '' });
  }
  return entries;
}

/** One timeline of a recovery path: WAL from `begin` (inclusive) up to `end` (exclusive) comes from it. */
export interface TimelineStep {
  timeline: number;
  begin: bigint;
  /** Where the next timeline of the path takes over; undefined for the target timeline. */
  end?: bigint;
}

/** The path from the oldest ancestor to `target`, from target's history (empty history: timeline 1 alone). */
export function timelinePath(target: number, history: readonly HistoryEntry[]): TimelineStep[] {
  const steps: TimelineStep[] = [];
  let begin = 0n;
  for (const e of history) {
    steps.push({ timeline: e.timeline, begin, end: e.switchLsn });
    begin = e.switchLsn;
  }
  steps.push({ timeline: target, begin });
  return steps;
}

/** Whether a base backup on `timeline` starting at `lsn` can recover along `path`. */
export function pathContains(path: readonly TimelineStep[], timeline: number, lsn: bigint): boolean {
  const step = path.find((s) => s.timeline === timeline);
  return Boolean(step && lsn >= step.begin && (step.end === undefined || lsn < step.end));
}

/**
 * What PostgreSQL's `recovery_target_timeline = 'latest'` picks: starting at `from`, the highest
 * timeline reached by probing N+1, N+2… while a history file exists for it.
 */
export function latestTimeline(from: number, histories: ReadonlySet<number>): number {
  let tli = from;
  while (histories.has(tli + 1)) tli++;
  return tli;
}

export function describePath(path: readonly TimelineStep[]): string {
  return path
    .map((s) => (s.end === undefined ? `${s.timeline}` : `${s.timeline} (until ${formatLsn(s.end)})`))
    .join(' → ');
}
