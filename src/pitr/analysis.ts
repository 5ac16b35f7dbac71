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
  // The base backups' metadata is read while the WAL is listed (and their schema library loads, ~0.1 s
  // of CPU, while the listing waits on the file system or the network): they do not depend on each other.
  const metas = readBaseMetas(storage);
  metas.catch(() => undefined); // awaited after the listing, whose errors come first
  const inventory = await readInventory(storage);
  const histories = await loadHistories(storage, inventory, unlockers);
  const bases: BaseWindow[] = [];
  for (const [name, meta] of await metas) {
    if (meta instanceof Error) {
      bases.push({ name, state: 'corrupt', detail: errorMessage(meta.cause), divergences: [] });
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

/**
 * Each base backup's metadata (undefined: none yet; an Error whose cause is why it does not read), in
 * name order; up to 8 read at a time (an archive in a bucket may hold hundreds).
 */
async function readBaseMetas(
  storage: Storage,
): Promise<Array<[string, BaseBackupMetadata | undefined | Error]>> {
  const names = await baseBackupNames(storage);
  const out: Array<[string, BaseBackupMetadata | undefined | Error]> = names.map((n) => [n, undefined]);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let n = next++; n < names.length; n = next++) {
      const name = names[n] ?? '';
      try {
        out[n] = [name, await readBaseMetadata(storage, name)];
      } catch (err) {
        out[n] = [name, new Error('unreadable', { cause: err })];
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, names.length) }, worker));
  return out;
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
