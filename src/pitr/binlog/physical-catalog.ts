import {
  physicalBackupNames,
  readPhysicalMetadata,
  type PhysicalMetadata,
} from '../../catalog/physical-backup.js';
import { errorMessage } from '../../errors.js';
import type { Storage } from '../../storage/storage.js';

/** A physical backup as found in an archive: finished (meta.json) with its files there, or not. */
export interface PhysicalEntry {
  name: string;
  meta?: PhysicalMetadata;
  state: 'valid' | 'incomplete' | 'corrupt';
  detail: string;
}

/**
 * Every physical backup in the archive with its state from a listing: metadata readable, every
 * file present with its size. (Checksums are verify-backup's job.)
 */
export async function readPhysicalBackups(storage: Storage): Promise<PhysicalEntry[]> {
  const out: PhysicalEntry[] = [];
  for (const name of await physicalBackupNames(storage)) {
    let meta: PhysicalMetadata | undefined;
    try {
      meta = await readPhysicalMetadata(storage, name);
    } catch (err) {
      out.push({ name, state: 'corrupt', detail: errorMessage(err) });
      continue;
    }
    if (!meta) {
      out.push({ name, state: 'incomplete', detail: 'no meta.json: the backup never finished' });
      continue;
    }
    out.push({ name, meta, ...(await filesState(storage, meta)) });
  }
  return out.sort((a, b) => (a.meta?.finishedAt ?? '').localeCompare(b.meta?.finishedAt ?? ''));
}

async function filesState(
  storage: Storage,
  meta: PhysicalMetadata,
): Promise<{ state: PhysicalEntry['state']; detail: string }> {
  for (const f of meta.files) {
    const info = await storage.stat(f.key);
    if (!info) return { state: 'incomplete', detail: `${f.key} is missing` };
    if (info.size !== f.sizeBytes)
      return {
        state: 'corrupt',
        detail: `${f.key}: size mismatch: expected ${f.sizeBytes} bytes, found ${info.size}`,
      };
  }
  return {
    state: 'valid',
    detail: `${meta.backupType}, ${meta.files.length} file(s) present with the right sizes`,
  };
}

/**
 * The chain a restore of `name` needs, full backup first; `problem` names the first member that is
 * missing or not valid (a chain is only as good as every link).
 */
export function chainOf(
  entries: readonly PhysicalEntry[],
  name: string,
): { members: PhysicalEntry[]; problem?: string } {
  const byName = new Map(entries.map((e) => [e.name, e]));
  const members: PhysicalEntry[] = [];
  let cur: string | null = name;
  const seen = new Set<string>();
  while (cur !== null) {
    if (seen.has(cur)) return { members, problem: `the chain of ${name} loops at ${cur}` };
    seen.add(cur);
    const e = byName.get(cur);
    if (!e)
      return {
        members,
        problem: `${cur}, which ${members[0]?.name ?? name} builds on, is not in the archive`,
      };
    members.unshift(e);
    if (e.state !== 'valid' || !e.meta) return { members, problem: `${e.name} is ${e.state}: ${e.detail}` };
    cur = e.meta.parent;
  }
  return { members };
}

/** The newest physical backup of this server whose whole chain is valid: an incremental's parent. */
export function newestValidOf(
  entries: readonly PhysicalEntry[],
  serverId: number,
): PhysicalEntry | undefined {
  return [...entries]
    .filter((e) => e.meta?.server.serverId === serverId && e.state === 'valid')
    .reverse()
    .find((e) => !chainOf(entries, e.name).problem);
}
