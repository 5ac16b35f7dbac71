import { baseDir, baseMetaKey, baseRetentionGroup } from '../catalog/base-backup.js';
import { planRetention, type RetentionDecision, type RetentionPolicy } from '../catalog/retention.js';
import type { KeyUnlocker } from '../crypto/index.js';
import { errorMessage } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import { hashStored } from '../verify/checksum.js';
import { analyzeArchive, type BaseWindow } from './analysis.js';
import { keepChainsWhole } from './incremental/retention.js';
import type { ArchiveIdentity } from './archive.js';
import { segmentNumber, type StoredWal } from './wal-names.js';

/**
 * Retention on a WAL archive: the existing policies choose which base backups stay; then WAL older
 * than the oldest retained base backup's start goes (segments, partial segments and backup
 * history files; compared by position, ignoring the timeline, as pg_archivecleanup does). Never a
 * history file, never a segment a retained backup needs, and nothing at all when the newest base
 * backup is not proven good.
 */
export interface PitrCleanupPlan {
  decisions: Array<RetentionDecision & { state: string; sizeBytes: number | null }>;
  /** Base backups without metadata (never finished): reported only. */
  incomplete: string[];
  /** The oldest start segment a retained backup needs; null when nothing is retained. */
  cutoff: string | null;
  wal: { delete: StoredWal[]; keep: number };
  /** Why nothing may be deleted; empty when the plan can be applied. */
  refusals: string[];
}

export async function planPitrCleanup(
  storage: Storage,
  identity: ArchiveIdentity,
  policy: RetentionPolicy,
  o: { timeZone: string; now?: Date; unlockers: () => Promise<readonly KeyUnlocker[]> },
): Promise<PitrCleanupPlan> {
  const analysis = await analyzeArchive(storage, identity, 'latest', o.unlockers);
  const segSize = identity.walSegmentSize;
  const finished = analysis.bases.filter((b): b is BaseWindow & { meta: NonNullable<BaseWindow['meta']> } =>
    Boolean(b.meta),
  );
  const refusals: string[] = [];
  // The backups whose presence makes deleting others safe must be what they claim, byte for byte.
  const newest = [...finished].sort((x, y) => y.meta.finishedAt.localeCompare(x.meta.finishedAt))[0];
  const proven = new Set<string>();
  if (newest) {
    const problem = newest.state === 'valid' ? await checksumProblem(storage, newest) : newest.detail;
    if (problem)
      refusals.push(`the newest base backup ${newest.name} is not good (${problem}): nothing is deleted`);
    else proven.add(newest.name);
  }
  const planned = planRetention(
    finished.map((b) => ({
      key: b.name,
      group: baseRetentionGroup(b.meta),
      time: new Date(b.meta.finishedAt),
      valid: b.state === 'valid' && (b.name !== newest?.name || proven.has(b.name)),
    })),
    policy,
    o.now ?? new Date(),
    o.timeZone,
  ).map((d) => {
    const b = finished.find((x) => x.name === d.key);
    return { ...d, state: b?.state ?? '?', sizeBytes: b?.meta.sizeBytes ?? null };
  });
  const decisions = keepChainsWhole(planned, (n) => finished.find((b) => b.name === n)?.meta.parent);
  const kept = decisions.filter((d) => d.keep && d.valid).map((d) => finished.find((b) => b.name === d.key));
  let cutoff: bigint | undefined;
  let cutoffName: string | null = null;
  for (const b of kept) {
    if (!b) continue;
    const n = segmentNumber(b.meta.startSegment, segSize);
    if (cutoff === undefined || n < cutoff) {
      cutoff = n;
      cutoffName = b.meta.startSegment;
    }
  }
  // Base backups kept for other reasons (not valid, in the future) hold their WAL too.
  for (const d of decisions.filter((x) => x.keep && !x.valid)) {
    const b = finished.find((x) => x.name === d.key);
    if (!b) continue;
    const n = segmentNumber(b.meta.startSegment, segSize);
    if (cutoff === undefined || n < cutoff) {
      cutoff = n;
      cutoffName = b.meta.startSegment;
    }
  }
  const inv = analysis.inventory;
  const candidates = [...inv.segments.values(), ...inv.partials, ...inv.backupFiles];
  const doomed =
    cutoff === undefined || refusals.length
      ? []
      : candidates.filter(
          (w) => w.file.segment !== undefined && segmentNumber(w.file.segment, segSize) < (cutoff ?? 0n),
        );
  return {
    decisions,
    incomplete: analysis.bases.filter((b) => !b.meta).map((b) => b.name),
    cutoff: cutoffName,
    wal: {
      delete: doomed.sort((a, b) => a.key.localeCompare(b.key)),
      keep: candidates.length - doomed.length,
    },
    refusals,
  };
}

async function checksumProblem(storage: Storage, b: BaseWindow): Promise<string | undefined> {
  for (const f of b.meta?.files ?? []) {
    try {
      const actual = await hashStored(storage, f.key);
      if (actual.sha256 !== f.sha256 || actual.bytes !== f.sizeBytes)
        return `${f.key}: checksum mismatch: expected sha256 ${f.sha256}, computed ${actual.sha256}`;
    } catch (err) {
      return `${f.key}: ${errorMessage(err)}`;
    }
  }
  return undefined;
}

export interface PitrCleanupResult {
  deletedBases: string[];
  deletedWal: number;
  freedBytes: number;
  errors: string[];
}

/** Applies a plan: base backups first (metadata first, so none is ever half there and valid), then WAL, oldest first. */
export async function applyPitrCleanup(storage: Storage, plan: PitrCleanupPlan): Promise<PitrCleanupResult> {
  const result: PitrCleanupResult = { deletedBases: [], deletedWal: 0, freedBytes: 0, errors: [] };
  if (plan.refusals.length) return result;
  // Newest first: an incremental goes before the backup it is built on.
  const doomed = plan.decisions.filter((x) => !x.keep).sort((a, b) => b.time.getTime() - a.time.getTime());
  for (const d of doomed) {
    try {
      await storage.delete(baseMetaKey(d.key));
      const keys: string[] = [];
      for await (const o of storage.list(baseDir(d.key))) keys.push(o.key);
      for (const k of keys) await storage.delete(k);
      await removeEmptyDir(storage, baseDir(d.key));
      result.deletedBases.push(d.key);
      result.freedBytes += d.sizeBytes ?? 0;
    } catch (err) {
      result.errors.push(`${d.key}: ${errorMessage(err)}`);
      // A base backup that could not be deleted still needs its WAL.
      return result;
    }
  }
  for (const w of plan.wal.delete) {
    try {
      await storage.delete(w.key);
      result.deletedWal++;
      result.freedBytes += w.size;
    } catch (err) {
      result.errors.push(`${w.key}: ${errorMessage(err)}`);
    }
  }
  return result;
}

async function removeEmptyDir(storage: Storage, prefix: string): Promise<void> {
  const local = storage.localPath?.(prefix.replace(/\/$/, ''));
  if (local) await (await import('node:fs/promises')).rmdir(local).catch(() => undefined);
}
