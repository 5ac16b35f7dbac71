import { Writable } from 'node:stream';
import { EncryptionKeyError, type KeyUnlocker } from '../crypto/index.js';
import { errorMessage } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import { analyzeArchive, type ArchiveAnalysis, type BaseWindow } from './analysis.js';
import type { ArchiveIdentity } from './archive.js';
import { segmentRuns, type Divergence, type SegmentRun } from './chain.js';
import type { TimelineChoice } from './inventory.js';
import { readWal } from './wal-fetch.js';
import { LONG_HEADER_BYTES, segmentProblems } from './wal-header.js';
import { formatLsn, type StoredWal } from './wal-names.js';
import { describePath } from './timeline.js';

export interface WalListing {
  runs: SegmentRun[];
  timelines: Array<{
    timeline: number;
    parent: number | null;
    switchLsn: string | null;
    reason: string | null;
  }>;
  partials: string[];
  backupFiles: number;
  conflicts: string[];
  others: string[];
}

/** `wal list`: contiguous ranges per timeline, the timelines' ancestry, and anything odd. */
export function listWal(a: ArchiveAnalysis): WalListing {
  const timelines = [...a.histories].map(([tli, entries]) => {
    const parent = entries.at(-1);
    return {
      timeline: tli,
      parent: parent?.timeline ?? null,
      switchLsn: parent ? formatLsn(parent.switchLsn) : null,
      reason: parent?.reason ?? null,
    };
  });
  return {
    runs: segmentRuns(a.inventory.segments, a.identity.walSegmentSize),
    timelines: timelines.sort((x, y) => x.timeline - y.timeline),
    partials: a.inventory.partials.map((p) => p.file.name).sort(),
    backupFiles: a.inventory.backupFiles.length,
    conflicts: a.inventory.conflicts,
    others: a.inventory.others,
  };
}

export interface WalVerifyReport {
  bases: Array<{
    name: string;
    state: BaseWindow['state'];
    detail: string;
    timelinePath?: string;
    first?: string;
    last?: string | null;
    segments?: number;
    until?: string | null;
    gap?: { missing: string; resumesAt: string; lastBefore: string | null };
    divergences: Array<Divergence & { switchAt: string }>;
  }>;
  deep?: { checked: number; damaged: Array<{ segment: string; problem: string }> };
  conflicts: string[];
  /** One line per failure; empty: the archive is restorable as reported. */
  failures: string[];
}

/**
 * `wal verify`: from each base backup, the continuous chain along the timeline path. A gap is a
 * failure naming both ends; a timeline fork after a backup is reported; with `deep`, every segment
 * of every window is read, decrypted, decompressed and checked against the SHA-256 in its name and
 * its own header.
 */
export async function verifyWal(
  storage: Storage,
  identity: ArchiveIdentity,
  o: {
    timeline: TimelineChoice;
    deep: boolean;
    unlockers: () => Promise<readonly KeyUnlocker[]>;
    base?: string;
  },
): Promise<{ analysis: ArchiveAnalysis; report: WalVerifyReport }> {
  const analysis = await analyzeArchive(storage, identity, o.timeline, o.unlockers);
  const bases = o.base ? analysis.bases.filter((b) => b.name === o.base) : analysis.bases;
  const report: WalVerifyReport = { bases: [], conflicts: analysis.inventory.conflicts, failures: [] };
  for (const c of analysis.inventory.conflicts)
    report.failures.push(`${c} is stored twice with different content`);
  for (const b of bases) {
    const w = b.window;
    report.bases.push({
      name: b.name,
      state: b.state,
      detail: b.detail,
      timelinePath: b.path ? describePath(b.path) : undefined,
      first: w?.first,
      last: w?.last,
      segments: w?.segments.length,
      until: w?.segments.at(-1)?.modified.toISOString() ?? null,
      gap: w?.gap ? { ...w.gap, lastBefore: w.last } : undefined,
      divergences: b.divergences.map((d) => ({ ...d, switchAt: formatLsn(d.switchLsn) })),
    });
    if (b.state === 'wal-missing') report.failures.push(`${b.name}: ${b.detail}`);
    if (b.state === 'corrupt') report.failures.push(`${b.name}: ${b.detail}`);
    if (w?.gap)
      report.failures.push(
        `${b.name}: WAL gap after ${w.last ?? '(nothing)'}: ${w.gap.missing} is missing, the archive resumes at ${w.gap.resumesAt}`,
      );
  }
  if (!bases.length && o.base) report.failures.push(`no base backup named ${o.base}`);
  if (o.deep) {
    const seen = new Map<string, StoredWal>();
    for (const b of bases) for (const s of b.window?.segments ?? []) seen.set(s.key, s);
    for (const h of analysis.inventory.histories.values()) seen.set(h.key, h);
    const damaged: Array<{ segment: string; problem: string }> = [];
    for (const s of seen.values()) {
      const problem = await deepCheck(storage, identity, s, o.unlockers);
      if (problem) damaged.push({ segment: s.file.name, problem });
    }
    report.deep = { checked: seen.size, damaged };
    for (const d of damaged) report.failures.push(`${d.segment} is damaged: ${d.problem}`);
  }
  return { analysis, report };
}

/** Reads one object to its end; undefined when it is exactly what its name says, else the problem. */
async function deepCheck(
  storage: Storage,
  identity: ArchiveIdentity,
  s: StoredWal,
  unlockers: () => Promise<readonly KeyUnlocker[]>,
): Promise<string | undefined> {
  let head = Buffer.alloc(0);
  let size = 0;
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      if (head.length < LONG_HEADER_BYTES)
        head = Buffer.concat([head, chunk.subarray(0, LONG_HEADER_BYTES - head.length)]);
      size += chunk.length;
      cb();
    },
  });
  try {
    await readWal(storage, s, { kind: 'stream', stream: sink }, unlockers);
  } catch (err) {
    if (err instanceof EncryptionKeyError) throw err;
    return errorMessage(err);
  }
  const problems = segmentProblems(s.file, size, head, {
    systemIdentifier: identity.systemIdentifier,
    segmentSize: identity.walSegmentSize,
    pageMagic: identity.walPageMagic,
  });
  return problems.length ? problems.join('; ') : undefined;
}
