import { physicalDir, physicalMetaKey, physicalRetentionGroup } from '../../catalog/physical-backup.js';
import { planRetention, type RetentionDecision, type RetentionPolicy } from '../../catalog/retention.js';
import { errorMessage } from '../../errors.js';
import type { Storage } from '../../storage/storage.js';
import { hashStored } from '../../verify/checksum.js';
import { archivedFiles, readBinlogInventory, type StoredBinlog } from './inventory.js';
import { binlogNumber } from './names.js';
import { readPhysicalBackups, type PhysicalEntry } from './physical-catalog.js';

/**
 * Retention on a binlog archive. The policies choose among physical chains (a full backup and the
 * incrementals on it), dated by their newest member: a chain is kept or deleted whole, never an
 * incremental without its parent. Then binlogs older than the oldest kept backup's binlog file go.
 * Nothing is deleted when the newest chain is not proven good, byte for byte.
 */
export interface BinlogCleanupPlan {
  decisions: Array<RetentionDecision & { members: string[]; sizeBytes: number }>;
  /** Physical backups without metadata (never finished): reported only. */
  incomplete: string[];
  /** The oldest binlog a kept backup needs; null: no binlog is deleted. */
  cutoff: string | null;
  binlogs: { delete: StoredBinlog[]; keep: number };
  refusals: string[];
}

interface Chain {
  root: string;
  members: PhysicalEntry[];
}

/** Chains by their full backup; members in order (full first). */
function chains(entries: readonly PhysicalEntry[]): Chain[] {
  const byName = new Map(entries.map((e) => [e.name, e]));
  const rootOf = (e: PhysicalEntry): string => {
    let cur = e;
    const seen = new Set<string>();
    while (cur.meta?.parent && !seen.has(cur.name)) {
      seen.add(cur.name);
      const parent = byName.get(cur.meta.parent);
      if (!parent) return cur.meta.parent;
      cur = parent;
    }
    return cur.name;
  };
  const out = new Map<string, Chain>();
  for (const e of entries.filter((x) => x.meta)) {
    const root = rootOf(e);
    const c = out.get(root) ?? { root, members: [] };
    c.members.push(e);
    out.set(root, c);
  }
  return [...out.values()];
}

function newestTime(c: Chain): string {
  return c.members.reduce((t, m) => ((m.meta?.finishedAt ?? '') > t ? (m.meta?.finishedAt ?? '') : t), '');
}

export async function planBinlogCleanup(
  storage: Storage,
  policy: RetentionPolicy,
  o: { timeZone: string; now?: Date },
): Promise<BinlogCleanupPlan> {
  const entries = await readPhysicalBackups(storage);
  const all = chains(entries);
  const refusals: string[] = [];
  const newest = [...all].sort((a, b) => newestTime(b).localeCompare(newestTime(a)))[0];
  const proven = new Set<string>();
  if (newest) {
    const problem = await chainProblem(storage, newest);
    if (problem)
      refusals.push(
        `the newest physical backup chain (${newest.root}) is not good (${problem}): nothing is deleted`,
      );
    else proven.add(newest.root);
  }
  const decisions = planRetention(
    all.map((c) => ({
      key: c.root,
      group: c.members[0]?.meta ? physicalRetentionGroup(c.members[0].meta) : 'physical',
      time: new Date(newestTime(c)),
      valid:
        c.members.every((m) => m.state === 'valid') &&
        Boolean(byNameOf(entries, c.root)?.meta) &&
        (c.root !== newest?.root || proven.has(c.root)),
    })),
    policy,
    o.now ?? new Date(),
    o.timeZone,
  ).map((d) => {
    const c = all.find((x) => x.root === d.key);
    const members = (c?.members ?? []).map((m) => m.name);
    return { ...d, members, sizeBytes: (c?.members ?? []).reduce((n, m) => n + (m.meta?.sizeBytes ?? 0), 0) };
  });
  // The oldest binlog file any kept backup starts its replay from.
  let cutoff: string | null = null;
  for (const d of decisions.filter((x) => x.keep)) {
    for (const name of d.members) {
      const file = byNameOf(entries, name)?.meta?.binlog?.file;
      if (file && (cutoff === null || binlogNumber(file).n < binlogNumber(cutoff).n)) cutoff = file;
    }
  }
  const inv = await readBinlogInventory(storage);
  const candidates = archivedFiles(inv).flatMap((f) => [
    ...(inv.closed.has(f) ? [inv.closed.get(f) as StoredBinlog] : []),
    ...(inv.partials.get(f) ?? []),
  ]);
  const doomed =
    cutoff === null || refusals.length
      ? []
      : candidates.filter((b) => binlogNumber(b.file).n < binlogNumber(cutoff ?? '').n);
  return {
    decisions,
    incomplete: entries.filter((e) => !e.meta).map((e) => e.name),
    cutoff,
    binlogs: { delete: doomed, keep: candidates.length - doomed.length },
    refusals,
  };
}

function byNameOf(entries: readonly PhysicalEntry[], name: string): PhysicalEntry | undefined {
  return entries.find((e) => e.name === name);
}

async function chainProblem(storage: Storage, c: Chain): Promise<string | undefined> {
  for (const m of c.members) {
    if (m.state !== 'valid' || !m.meta) return `${m.name} is ${m.state}: ${m.detail}`;
    for (const f of m.meta.files) {
      try {
        const actual = await hashStored(storage, f.key);
        if (actual.sha256 !== f.sha256 || actual.bytes !== f.sizeBytes)
          return `${f.key}: checksum mismatch: expected sha256 ${f.sha256}, computed ${actual.sha256}`;
      } catch (err) {
        return `${f.key}: ${errorMessage(err)}`;
      }
    }
  }
  return undefined;
}

export interface BinlogCleanupResult {
  deletedBackups: string[];
  deletedBinlogs: number;
  freedBytes: number;
  errors: string[];
}

/**
 * Applies a plan: chains first, newest member first and each member's metadata before its data (no
 * incremental ever outlives its parent looking valid), then binlogs, oldest first, facts first.
 */
export async function applyBinlogCleanup(
  storage: Storage,
  plan: BinlogCleanupPlan,
): Promise<BinlogCleanupResult> {
  const result: BinlogCleanupResult = { deletedBackups: [], deletedBinlogs: 0, freedBytes: 0, errors: [] };
  if (plan.refusals.length) return result;
  for (const d of plan.decisions.filter((x) => !x.keep)) {
    for (const name of [...d.members].reverse()) {
      try {
        await storage.delete(physicalMetaKey(name));
        const keys: string[] = [];
        for await (const o of storage.list(physicalDir(name))) keys.push(o.key);
        for (const k of keys) await storage.delete(k);
        const local = storage.localPath?.(physicalDir(name).replace(/\/$/, ''));
        if (local) await (await import('node:fs/promises')).rmdir(local).catch(() => undefined);
        result.deletedBackups.push(name);
      } catch (err) {
        result.errors.push(`${name}: ${errorMessage(err)}`);
        // A backup that could not be deleted still needs its binlogs.
        return result;
      }
    }
    result.freedBytes += d.sizeBytes;
  }
  for (const b of [...plan.binlogs.delete].sort((x, y) => binlogNumber(x.file).n - binlogNumber(y.file).n)) {
    try {
      await storage.delete(b.factsKey);
      await storage.delete(b.dataKey);
      result.deletedBinlogs++;
      result.freedBytes += b.storedBytes;
    } catch (err) {
      result.errors.push(`${b.dataKey}: ${errorMessage(err)}`);
    }
  }
  return result;
}
