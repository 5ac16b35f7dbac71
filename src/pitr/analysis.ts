import { baseBackupNames, readBaseMetadata, type BaseBackupMetadata } from '../catalog/base-backup.js';
import type { KeyUnlocker } from '../crypto/index.js';
import { errorMessage } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { ArchiveIdentity } from './archive.js';
import { divergences, requiredSegments, walkWindow, type Divergence, type WalWindow } from './chain.js';
import {
  chooseTimeline,
  loadHistories,
  readInventory,
  type Inventory,
  type TimelineChoice,
} from './inventory.js';
import { pathContains, type HistoryEntry, type TimelineStep } from './timeline.js';
import { parseLsn, segmentNumber } from './wal-names.js';

/** One base backup and the WAL that makes it restorable, along one timeline path. */
export interface BaseWindow {
  name: string;
  meta?: BaseBackupMetadata;
  /** valid: restorable; incomplete: no metadata; corrupt: bad metadata; `wal-missing`: WAL start..stop not all there. */
  state: 'valid' | 'incomplete' | 'corrupt' | 'wal-missing';
  detail: string;
  targetTimeline?: number;
  path?: TimelineStep[];
  window?: WalWindow;
  /** Missing segments of the backup's own start..stop range. */
  missing?: string[];
  divergences: Divergence[];
}

export interface ArchiveAnalysis {
  identity: ArchiveIdentity;
  inventory: Inventory;
  histories: Map<number, HistoryEntry[]>;
  bases: BaseWindow[];
}

/** Reads the archive's listing, its histories and base backups, and computes each backup's window. */
export async function analyzeArchive(
  storage: Storage,
  identity: ArchiveIdentity,
  timeline: TimelineChoice,
  unlockers: () => Promise<readonly KeyUnlocker[]>,
): Promise<ArchiveAnalysis> {
  const inventory = await readInventory(storage);
  const histories = await loadHistories(storage, inventory, unlockers);
  const bases: BaseWindow[] = [];
  for (const name of await baseBackupNames(storage)) {
    let meta: BaseBackupMetadata | undefined;
    try {
      meta = await readBaseMetadata(storage, name);
    } catch (err) {
      bases.push({ name, state: 'corrupt', detail: errorMessage(err), divergences: [] });
      continue;
    }
    if (!meta) {
      bases.push({
        name,
        state: 'incomplete',
        detail: 'no meta.json: the base backup never finished',
        divergences: [],
      });
      continue;
    }
    bases.push(baseWindow(meta, inventory, histories, identity.walSegmentSize, timeline));
  }
  return { identity, inventory, histories, bases };
}

/** The window of one base backup along the timeline `choice` gives. */
export function baseWindow(
  meta: BaseBackupMetadata,
  inventory: Inventory,
  histories: ReadonlyMap<number, HistoryEntry[]>,
  segSize: number,
  choice: TimelineChoice,
): BaseWindow {
  const base = { name: meta.name, meta, divergences: [] as Divergence[] };
  const { target, path } = chooseTimeline(meta.timeline, choice, histories);
  if (target !== 1 && target !== meta.timeline && !histories.has(target))
    return {
      ...base,
      state: 'corrupt',
      detail: `the history file of timeline ${target} is not in the archive`,
    };
  const start = parseLsn(meta.startLsn) ?? 0n;
  if (!pathContains(path, meta.timeline, start))
    return {
      ...base,
      state: 'valid',
      detail: `timeline ${target} did not branch from this backup's timeline ${meta.timeline} after its start`,
      targetTimeline: target,
      path,
    };
  const startSeg = segmentNumber(meta.startSegment, segSize);
  const stopSeg = segmentNumber(meta.stopSegment, segSize);
  const missing = requiredSegments(path, startSeg, stopSeg, segSize).filter(
    (n) => !inventory.segments.has(n),
  );
  const window = walkWindow(inventory.segments, path, startSeg, segSize);
  const divs = divergences(
    inventory.segments,
    path.filter((s) => (s.end ?? start + 1n) > start),
    segSize,
  );
  if (missing.length)
    return {
      ...base,
      state: 'wal-missing',
      detail: `not restorable: ${missing.length} of the segments from its start to its stop are missing (${missing[0]}…)`,
      targetTimeline: target,
      path,
      window,
      missing,
      divergences: divs,
    };
  return {
    ...base,
    state: 'valid',
    detail: 'restorable',
    targetTimeline: target,
    path,
    window,
    divergences: divs,
  };
}
