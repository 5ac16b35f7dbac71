import type { KeyUnlocker } from '../crypto/index.js';
import { errorMessage, IntegrityError } from '../errors.js';
import { memorySink } from '../pipeline/filter-group.js';
import type { Storage } from '../storage/storage.js';
import { readWal } from './wal-fetch.js';
import {
  latestTimeline,
  parseHistory,
  timelinePath,
  type HistoryEntry,
  type TimelineStep,
} from './timeline.js';
import { parseWalObjectKey, WAL_PREFIX, type StoredWal } from './wal-names.js';

/** Everything an archive holds under wal/, from one listing. */
export interface Inventory {
  /** Segments by name (the first object when a name is stored twice: see `conflicts`). */
  segments: Map<string, StoredWal>;
  partials: StoredWal[];
  histories: Map<number, StoredWal>;
  backupFiles: StoredWal[];
  /** Names stored with two different contents: never written by dbbackup itself. */
  conflicts: string[];
  /** Objects under wal/ that are not WAL (leftovers, strangers). */
  others: string[];
}

export async function readInventory(storage: Storage): Promise<Inventory> {
  const inv: Inventory = {
    segments: new Map(),
    partials: [],
    histories: new Map(),
    backupFiles: [],
    conflicts: [],
    others: [],
  };
  for await (const o of storage.list(WAL_PREFIX)) {
    const w = parseWalObjectKey(o.key, o);
    if (!w) {
      inv.others.push(o.key);
      continue;
    }
    if (w.file.kind === 'segment') {
      const had = inv.segments.get(w.file.name);
      if (had && had.sha256 !== w.sha256) inv.conflicts.push(w.file.name);
      else if (!had) inv.segments.set(w.file.name, w);
    } else if (w.file.kind === 'history') inv.histories.set(w.file.timeline, w);
    else if (w.file.kind === 'partial') inv.partials.push(w);
    else inv.backupFiles.push(w);
  }
  return inv;
}

/** Every history file's entries, decoded and checked against its name's checksum. */
export async function loadHistories(
  storage: Storage,
  inv: Inventory,
  unlockers: () => Promise<readonly KeyUnlocker[]>,
): Promise<Map<number, HistoryEntry[]>> {
  const out = new Map<number, HistoryEntry[]>();
  for (const [tli, obj] of inv.histories) {
    const sink = memorySink(16 * 1024 * 1024);
    try {
      await readWal(storage, obj, { kind: 'stream', stream: sink.stream }, unlockers);
    } catch (err) {
      if (err instanceof IntegrityError)
        throw new IntegrityError(`History file ${obj.key}: ${errorMessage(err)}`, { hint: err.hint });
      throw err;
    }
    out.set(tli, parseHistory(sink.bytes().toString('utf8'), obj.key));
  }
  return out;
}

/** How to pick the timeline to recover along: PostgreSQL's `recovery_target_timeline`. */
export type TimelineChoice = 'current' | 'latest' | number;

/** The target timeline for a base backup on `from`, and the path to it. */
export function chooseTimeline(
  from: number,
  choice: TimelineChoice,
  histories: ReadonlyMap<number, HistoryEntry[]>,
): { target: number; path: TimelineStep[] } {
  const target =
    choice === 'current'
      ? from
      : choice === 'latest'
        ? latestTimeline(from, new Set(histories.keys()))
        : choice;
  return { target, path: timelinePath(target, target === 1 ? [] : (histories.get(target) ?? [])) };
}
