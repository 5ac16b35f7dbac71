import { putBuffer, readAll, type Storage } from '../storage/storage.js';

/**
 * A backup's drill history (issue 17): every restore drill of it appends its result here, in a
 * sidecar beside the backup — `<backup>.drills.json`, or `drills.json` inside a cluster backup —
 * since the backup's own metadata never changes. `list backups` reads it for "last proven
 * restorable"; cleanup removes it with its backup (src/catalog/ownership.ts).
 */

export const DRILLS_SUFFIX = '.drills.json';
export const CLUSTER_DRILLS_NAME = 'drills.json';
export const DRILLS_SCHEMA = 'dbbackup.drills';
/** Older results are dropped beyond this many. */
export const MAX_DRILLS = 100;

export interface DrillRecord {
  /** When the drill finished (ISO 8601). */
  time: string;
  outcome: 'passed' | 'failed' | 'interrupted';
  /** The database drilled: a single backup's, a cluster member's, or `*` for a whole cluster. */
  database: string;
  /** Restore wall time in seconds (checksum check included, as a real restore does it): the RTO. */
  restoreSeconds: number | null;
  /** The whole drill: restore, comparison and drop. */
  totalSeconds: number;
  /** The server restored into. */
  server: string;
  host: string;
  version: string;
  operationId?: string;
  /** What differed (a failed drill), at most a few lines. */
  differences: string[];
  warnings: string[];
  /** What was compared: numbers of tables counted, rows sampled… */
  checked: Record<string, number>;
  error?: string;
}

export interface DrillHistory {
  schema: typeof DRILLS_SCHEMA;
  schemaVersion: 1;
  drills: DrillRecord[];
}

/** The sidecar of a backup entry: `x.dump.zst` → `x.dump.zst.drills.json`, `cluster_x/` → `cluster_x/drills.json`. */
export function drillHistoryKey(entry: string): string {
  return entry.endsWith('/') ? `${entry}${CLUSTER_DRILLS_NAME}` : `${entry}${DRILLS_SUFFIX}`;
}

/** Whether `text` is a drill history dbbackup wrote (cleanup removes nothing else beside a backup). */
export function parseDrillHistory(text: string): DrillHistory | undefined {
  try {
    const json = JSON.parse(text) as Partial<DrillHistory>;
    if (json.schema !== DRILLS_SCHEMA || json.schemaVersion !== 1 || !Array.isArray(json.drills))
      return undefined;
    return json as DrillHistory;
  } catch {
    return undefined;
  }
}

export async function readDrillHistory(storage: Storage, entry: string): Promise<DrillHistory | undefined> {
  const key = drillHistoryKey(entry);
  if (!(await storage.stat(key))) return undefined;
  return parseDrillHistory((await readAll(storage, key, 4 * 1024 * 1024)).toString('utf8'));
}

/** Appends one result (the runs of one host never do this at once: the drill holds the backup's run lock). */
export async function appendDrill(storage: Storage, entry: string, record: DrillRecord): Promise<void> {
  const history = (await readDrillHistory(storage, entry)) ?? {
    schema: DRILLS_SCHEMA,
    schemaVersion: 1,
    drills: [],
  };
  history.drills = [...history.drills, record].slice(-MAX_DRILLS);
  await putBuffer(storage, drillHistoryKey(entry), `${JSON.stringify(history, null, 2)}\n`);
}

/** The newest passed drill, and the newest drill of any outcome. */
export function lastDrills(history: DrillHistory | undefined): { proven?: DrillRecord; last?: DrillRecord } {
  const drills = history?.drills ?? [];
  return {
    proven: [...drills].reverse().find((d) => d.outcome === 'passed'),
    last: drills[drills.length - 1],
  };
}

/** What `list backups` shows per backup: its last passed drill and its last drill. */
export interface DrillSummary {
  lastProven: { time: string; restoreSeconds: number | null } | null;
  lastDrill: { time: string; outcome: DrillRecord['outcome'] } | null;
}

/**
 * The drill summaries of the entries of a listing, by entry key: one listing of the store to find
 * the drill histories, then one read per history found.
 */
export async function drillSummaries(
  storage: Storage,
  entries: readonly string[],
): Promise<Map<string, DrillSummary>> {
  const present = new Set<string>();
  for await (const o of storage.list('')) {
    if (o.key.endsWith(DRILLS_SUFFIX) || o.key.endsWith(`/${CLUSTER_DRILLS_NAME}`)) present.add(o.key);
  }
  const out = new Map<string, DrillSummary>();
  for (const entry of entries) {
    if (!present.has(drillHistoryKey(entry))) continue;
    const history = await readDrillHistory(storage, entry).catch(() => undefined);
    const { proven, last } = lastDrills(history);
    out.set(entry, {
      lastProven: proven ? { time: proven.time, restoreSeconds: proven.restoreSeconds } : null,
      lastDrill: last ? { time: last.time, outcome: last.outcome } : null,
    });
  }
  return out;
}
