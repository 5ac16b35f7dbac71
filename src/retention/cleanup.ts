import picomatch from 'picomatch';
import { catalogEntry, listBackups, type CatalogEntry, type CatalogState } from '../verify/listing.js';
import { ownedFiles, type Owned } from '../catalog/ownership.js';
import { planRetention, type RetentionDecision, type RetentionPolicy } from '../catalog/retention.js';
import { removeFiles, type RemovalReport } from '../catalog/transfer.js';
import { errorMessage, IntegrityError } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import { verifyAny } from '../verify/verify.js';

export interface CleanupOptions {
  policy: RetentionPolicy;
  timeZone: string;
  dryRun: boolean;
  /** Only this group (engine + server + database), e.g. after a backup. */
  group?: string;
  database?: string;
  pattern?: string;
  pruneIncomplete: boolean;
  graceHours: number;
  now?: Date;
}

/** What became of a backup in the plan: kept, or what its deletion really did. */
export type DeletionOutcome = 'kept' | 'would delete' | 'deleted' | 'partly deleted' | 'not deleted';

export interface PlannedBackup extends RetentionDecision {
  sizeBytes: number | null;
  /** `valid` when cleanup read it and its checksum matched; `unverified` when only its size was checked. */
  state: CatalogState;
  outcome: DeletionOutcome;
  /** Files removed (a real run) or that would be removed (a dry run). */
  files: string[];
  /** Why a deletion failed, or why the backup could not be checked. */
  error?: string;
}

/** What --prune-incomplete did (or would do) with one incomplete or corrupt backup of dbbackup's. */
export type PruneAction =
  'reported' | 'within grace' | 'would remove' | 'removed' | 'partly removed' | 'not removed';

export interface PruneItem {
  key: string;
  state: CatalogState;
  detail: string;
  action: PruneAction;
  /** True only when every file of it was removed. */
  removed: boolean;
  files: string[];
  error?: string;
}

export interface CleanupResult {
  location: string;
  decisions: PlannedBackup[];
  incomplete: PruneItem[];
  deleted: string[];
  freedBytes: number;
  errors: string[];
  /** The reference tool's backups: never kept or deleted by rules, never pruned (see README, Migrating). */
  leftAlone: string[];
  /** What looks like a backup (or lies beside or inside one) but was not provably written by dbbackup. */
  notOurs: Array<{ key: string; reason: string }>;
  /** Backups read in full because a deletion relies on them, and what that found. */
  checked: Array<{ key: string; state: CatalogState; detail: string }>;
  /** What to do about the failures (from the storage: a read-only directory, missing permissions…), once each. */
  hints: string[];
}

type Timed = CatalogEntry & { group: string; created: Date };

/**
 * Plan (and unless dry-run, apply) a retention policy to the backups in one store. Nothing is
 * deleted on the word of a size: every backup that holds a rule's slot in a group that loses
 * backups is first read in full and checked against its SHA-256; one that fails is corrupt, counts
 * for nothing, and the plan is made again without it (so an older backup takes its slot).
 */
export async function runCleanup(storage: Storage, o: CleanupOptions): Promise<CleanupResult> {
  const now = o.now ?? new Date();
  const isMatch = o.pattern ? picomatch(o.pattern) : () => true;
  const entries = new Map(
    (await listBackups(storage))
      .filter(
        (e) =>
          isMatch(e.key) && (!o.database || e.database === o.database) && (!o.group || e.group === o.group),
      )
      .map((e) => [e.key, e]),
  );
  const unreadable = new Map<string, string>();
  const result: CleanupResult = {
    location: storage.location,
    decisions: [],
    incomplete: [],
    deleted: [],
    freedBytes: 0,
    errors: [],
    leftAlone: [...entries.values()].filter((e) => e.producer === 'reference').map((e) => e.key),
    notOurs: [],
    checked: [],
    hints: [],
  };
  let decisions = plan(entries, unreadable, o, now);
  for (let unproven = slotsToProve(decisions, entries); unproven.length;) {
    for (const key of unproven) result.checked.push(await prove(storage, key, entries, unreadable));
    decisions = plan(entries, unreadable, o, now);
    unproven = slotsToProve(decisions, entries);
  }
  for (const [key, error] of unreadable) result.errors.push(`${key}: ${error}`);

  for (const d of decisions) {
    const e = entries.get(d.key);
    const planned: PlannedBackup = {
      ...d,
      sizeBytes: e?.sizeBytes ?? null,
      state: e?.state ?? 'unverified',
      outcome: d.keep ? 'kept' : o.dryRun ? 'would delete' : 'not deleted',
      files: [],
      ...(unreadable.has(d.key) ? { error: unreadable.get(d.key) } : {}),
    };
    if (!d.keep) await deleteChosen(storage, planned, o.dryRun, result);
    result.decisions.push(planned);
  }
  await prune(storage, [...entries.values()], o, now, result);
  return result;
}

/** The retention plan over the backups with a group and a time; unproven or failed ones do not count. */
function plan(
  entries: Map<string, CatalogEntry>,
  unreadable: Map<string, string>,
  o: CleanupOptions,
  now: Date,
): RetentionDecision[] {
  const timed = [...entries.values()].filter((e): e is Timed => e.group !== null && e.created !== null);
  const decisions = planRetention(
    timed.map((e) => ({
      key: e.key,
      group: e.group,
      time: e.created,
      valid: (e.state === 'valid' || e.state === 'unverified') && !unreadable.has(e.key),
    })),
    o.policy,
    now,
    o.timeZone,
  );
  return decisions.map((d) =>
    unreadable.has(d.key) ? { ...d, reasons: ['could not be read to check it: kept, not counted'] } : d,
  );
}

/**
 * The kept backups a deletion relies on and nobody has read yet: those holding a rule's slot in a
 * group that loses a backup. Were one of them bad, an older one would take its slot instead of
 * being deleted. Age keeps each backup for itself, so a backup kept only by age relies on no other.
 */
function slotsToProve(decisions: RetentionDecision[], entries: Map<string, CatalogEntry>): string[] {
  const losing = new Set(decisions.filter((d) => !d.keep).map((d) => d.group));
  return decisions
    .filter((d) => d.keep && d.holdsSlot && losing.has(d.group) && entries.get(d.key)?.state === 'unverified')
    .map((d) => d.key);
}

/** Reads one backup in full; its entry becomes valid or corrupt (or, unreadable, counts for nothing). */
async function prove(
  storage: Storage,
  key: string,
  entries: Map<string, CatalogEntry>,
  unreadable: Map<string, string>,
): Promise<CleanupResult['checked'][number]> {
  const before = entries.get(key);
  try {
    const checked = catalogEntry(await verifyAny(storage, key, false), before?.created ?? null, true);
    entries.set(key, checked);
    return { key, state: checked.state, detail: checked.detail };
  } catch (err) {
    const detail = errorMessage(err);
    if (err instanceof IntegrityError && before) {
      entries.set(key, { ...before, state: 'corrupt', detail });
      return { key, state: 'corrupt', detail };
    }
    unreadable.set(key, `could not be read to check its checksum: ${detail}`);
    return { key, state: 'unverified', detail: `could not be read: ${detail}` };
  }
}

/** Deletes (or, in a dry run, names the files of) one backup a rule chose; records what really happened. */
async function deleteChosen(
  storage: Storage,
  d: PlannedBackup,
  dryRun: boolean,
  result: CleanupResult,
): Promise<void> {
  let owned: Owned;
  try {
    owned = await ownedFiles(storage, d.key);
  } catch (err) {
    d.error = errorMessage(err);
    result.errors.push(`${d.key}: ${d.error}`);
    return;
  }
  if (!owned.ours) {
    d.error = `not deleted: ${owned.reason}`;
    result.notOurs.push({ key: d.key, reason: owned.reason });
    return;
  }
  for (const key of owned.foreign)
    result.notOurs.push({ key, reason: `beside ${d.key}, but not written by dbbackup` });
  if (dryRun) {
    d.files = owned.files;
    return;
  }
  const report = await removeFiles(storage, owned.files);
  d.files = report.removed;
  d.outcome = outcomeOf(report, 'deleted', 'partly deleted', 'not deleted');
  if (report.failed) {
    d.error = failure(report);
    recordFailure(result, `${d.key}: ${d.error}`, report);
    return;
  }
  result.deleted.push(d.key);
  result.freedBytes += d.sizeBytes ?? 0;
}

function outcomeOf<T>(report: RemovalReport, done: T, partly: T, none: T): T {
  return !report.failed ? done : report.removed.length ? partly : none;
}

function recordFailure(result: CleanupResult, error: string, report: RemovalReport): void {
  result.errors.push(error);
  const hint = report.failed?.hint;
  if (hint && !result.hints.includes(hint)) result.hints.push(hint);
}

/** "could not delete x.meta.json: …", once, with what was removed before the failure. */
function failure(report: RemovalReport): string {
  const { file = '', error = '' } = report.failed ?? {};
  const removed = report.removed.length ? ` (removed before that: ${report.removed.join(', ')})` : '';
  return `${error.includes(file) ? error : `could not delete ${file}: ${error}`}${removed}`;
}

/**
 * Something --prune-incomplete may remove: an incomplete or corrupt backup, or a leftover temporary
 * file. Each proves itself dbbackup's before anything is removed.
 */
interface PruneCandidate {
  key: string;
  state: CatalogState;
  detail: string;
  /** When it was made (from metadata, else the newest file): the grace period counts from here. */
  created: Date | null;
  sizeBytes: number | null;
  owned(): Promise<Owned>;
  remove(files: readonly string[]): Promise<RemovalReport>;
}

/**
 * Everything --prune-incomplete considers. The one place to add other leftovers of interrupted
 * writes — incomplete multipart uploads, uncommitted blocks — as candidates with their own proof
 * of ownership and their own removal.
 */
function pruneCandidates(storage: Storage, entries: CatalogEntry[], o: CleanupOptions): PruneCandidate[] {
  // The reference tool's backups are another tool's files: a cluster_<ts>.tar.gz without its
  // .meta.json may still restore, so even a damaged one is only listed (as left alone).
  return entries
    .filter(
      (e) =>
        (e.state === 'incomplete' || e.state === 'corrupt') &&
        e.producer !== 'reference' &&
        (e.group === null || !o.group),
    )
    .map((e) => ({
      key: e.key,
      state: e.state,
      detail: e.detail,
      created: e.created,
      sizeBytes: e.sizeBytes,
      owned: () => ownedFiles(storage, e.key),
      remove: (files) => removeFiles(storage, files),
    }));
}

/**
 * Incomplete and corrupt backups are reported; removed only on request, only once old enough that
 * no backup still running could own them, and only what dbbackup provably wrote.
 */
async function prune(
  storage: Storage,
  entries: CatalogEntry[],
  o: CleanupOptions,
  now: Date,
  result: CleanupResult,
): Promise<void> {
  const graceMs = o.graceHours * 3_600_000;
  for (const c of pruneCandidates(storage, entries, o)) {
    const owned = await c.owned();
    if (!owned.ours) {
      result.notOurs.push({ key: c.key, reason: owned.reason });
      continue;
    }
    for (const key of owned.foreign)
      result.notOurs.push({ key, reason: `inside or beside ${c.key}, but not written by dbbackup` });
    const item: PruneItem = {
      key: c.key,
      state: c.state,
      detail: c.detail,
      action: 'reported',
      removed: false,
      files: [],
    };
    result.incomplete.push(item);
    if (!o.pruneIncomplete) continue;
    if (c.created === null || now.getTime() - c.created.getTime() <= graceMs) {
      item.action = 'within grace';
      continue;
    }
    if (o.dryRun) {
      item.action = 'would remove';
      item.files = owned.files;
      continue;
    }
    const report = await c.remove(owned.files);
    item.files = report.removed;
    item.action = outcomeOf(report, 'removed', 'partly removed', 'not removed');
    if (report.failed) {
      item.error = failure(report);
      recordFailure(result, `${c.key}: ${item.error}`, report);
      continue;
    }
    item.removed = true;
    result.freedBytes += c.sizeBytes ?? 0;
  }
}
