import { errorMessage } from '../../errors.js';
import { readAll, type Storage } from '../../storage/storage.js';
import { parseFacts, type BinlogFacts } from './facts.js';
import { BINLOG_PREFIX, binlogAfter, binlogFactsKey, binlogNumber, parseBinlogKey } from './names.js';

/** One stored binary log (closed, or the open one's prefix) with its facts. */
export interface StoredBinlog {
  file: string;
  partial: boolean;
  sha256: string;
  dataKey: string;
  factsKey: string;
  storedBytes: number;
  modified: Date;
  facts: BinlogFacts;
}

export interface BinlogInventory {
  /** Closed files by name. */
  closed: Map<string, StoredBinlog>;
  /** Prefixes of open files by name, newest first. */
  partials: Map<string, StoredBinlog[]>;
  /** Stored bytes without their facts (a store that did not finish), or facts that cannot be read. */
  incomplete: string[];
  /** Files stored closed twice with different contents: never written by dbbackup itself. */
  conflicts: string[];
  /** Objects under binlog/ that are not binlogs. */
  others: string[];
  /** Files whose facts are stored but whose bytes are gone (deleted by hand): they existed. */
  lost: Set<string>;
}

/** Everything under binlog/, from one listing plus each facts file. */
export async function readBinlogInventory(storage: Storage): Promise<BinlogInventory> {
  const data = new Map<string, { key: string; size: number; modified: Date }>();
  const facts = new Set<string>();
  const inv: BinlogInventory = {
    closed: new Map(),
    partials: new Map(),
    incomplete: [],
    conflicts: [],
    others: [],
    lost: new Set(),
  };
  for await (const o of storage.list(BINLOG_PREFIX)) {
    const k = parseBinlogKey(o.key);
    if (!k) {
      inv.others.push(o.key);
      continue;
    }
    const factsKey = binlogFactsKey(k.file, k.partial, k.sha256);
    if (k.kind === 'facts') facts.add(o.key);
    else data.set(factsKey, { key: o.key, size: o.size, modified: o.modified });
  }
  for (const [factsKey, d] of data) {
    const k = parseBinlogKey(d.key);
    if (!k) continue;
    if (!facts.has(factsKey)) {
      inv.incomplete.push(d.key);
      continue;
    }
    let f: BinlogFacts;
    try {
      const text = (await readAll(storage, factsKey, 1024 * 1024)).toString('utf8');
      f = parseFacts(text, `${storage.location.replace(/\/$/, '')}/${factsKey}`);
    } catch (err) {
      inv.incomplete.push(`${factsKey}: ${errorMessage(err)}`);
      continue;
    }
    const stored: StoredBinlog = {
      file: k.file,
      partial: k.partial,
      sha256: k.sha256,
      dataKey: d.key,
      factsKey,
      storedBytes: d.size,
      modified: d.modified,
      facts: f,
    };
    if (k.partial) {
      const list = inv.partials.get(k.file) ?? [];
      list.push(stored);
      list.sort(
        (a, b) => b.facts.rawBytes - a.facts.rawBytes || b.facts.storedAt.localeCompare(a.facts.storedAt),
      );
      inv.partials.set(k.file, list);
    } else {
      const had = inv.closed.get(k.file);
      if (had && had.sha256 !== k.sha256) inv.conflicts.push(k.file);
      else inv.closed.set(k.file, stored);
    }
  }
  // A facts file whose bytes are gone: reported; it proves nothing but that the file existed.
  for (const f of facts)
    if (!data.has(f)) {
      inv.incomplete.push(`${f}: its binlog is gone`);
      const k = parseBinlogKey(f);
      if (k) inv.lost.add(k.file);
    }
  return inv;
}

/** Every file name the archive holds, closed or partial, in binlog order. */
export function archivedFiles(inv: BinlogInventory): string[] {
  const names = new Set([...inv.closed.keys(), ...inv.partials.keys()]);
  return [...names].sort((a, b) => binlogNumber(a).n - binlogNumber(b).n);
}

/** The newest stored state of a file: its closed copy, else its longest prefix. */
export function newestOf(inv: BinlogInventory, file: string): StoredBinlog | undefined {
  return inv.closed.get(file) ?? inv.partials.get(file)?.[0];
}

/** The binlogs a replay from `start` reads, in order, up to the first one missing. */
export interface BinlogChain {
  files: StoredBinlog[];
  /** The first file missing after the chain when the archive holds later ones: a gap. */
  gap?: { missing: string; resumesAt: string };
  /** The chain ends with an open file's prefix. */
  endsOpen: boolean;
}

export function chainFrom(inv: BinlogInventory, start: string): BinlogChain {
  const files: StoredBinlog[] = [];
  let name = start;
  let endsOpen = false;
  for (;;) {
    const closed = inv.closed.get(name);
    if (closed) {
      files.push(closed);
      name = binlogAfter(name);
      continue;
    }
    const partial = inv.partials.get(name)?.[0];
    if (partial) {
      files.push(partial);
      endsOpen = true;
      name = binlogAfter(name);
    }
    break;
  }
  const chain: BinlogChain = { files, endsOpen };
  const n = binlogNumber(name).n;
  const later = [...archivedFiles(inv), ...inv.lost]
    .sort((a, b) => binlogNumber(a).n - binlogNumber(b).n)
    .find((f) => binlogNumber(f).n > n);
  // A partial ends the chain: a later file after it means the open one was never stored closed.
  const missing = endsOpen ? files.at(-1)?.file : name;
  if (missing && later) chain.gap = { missing, resumesAt: later };
  else if (missing && inv.lost.has(missing))
    chain.gap = { missing, resumesAt: 'nothing (its record remains)' };
  return chain;
}

/** Gaps anywhere between the archive's oldest and newest file. */
export function archiveGaps(inv: BinlogInventory): Array<{ missing: string; resumesAt: string }> {
  const files = archivedFiles(inv);
  const gaps: Array<{ missing: string; resumesAt: string }> = [];
  for (let i = 1; i < files.length; i++) {
    const prev = files[i - 1] ?? '';
    const cur = files[i] ?? '';
    if (binlogNumber(cur).n !== binlogNumber(prev).n + 1)
      gaps.push({ missing: binlogAfter(prev), resumesAt: cur });
    else if (!inv.closed.has(prev))
      gaps.push({ missing: `${prev} (only a prefix is stored)`, resumesAt: cur });
  }
  return gaps;
}
