/**
 * The fault matrix's invariants, shared by every file under tests/faults/. Each case there injects one
 * fault into one operation and asserts what a user must be able to rely on afterwards:
 * - no false success: a non-zero exit whenever the operation did not do what it says;
 * - nothing that looks valid unless it is (list backups / verify-backup agree with the bytes);
 * - nothing deleted that is not ours or that no rule chose;
 * - the target database fully restored, or gone, or reported as left (truthfully);
 * - no temporary files or uploads left behind after the command ends.
 * Name each case "<operation>: <fault> → <invariant>"; scripts/fault-matrix.mjs prints them in CI.
 */
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Every file below `dir`, relative to it, sorted: for before/after comparisons of a backup directory. */
export async function treeOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(path.join(dir, rel), { withFileTypes: true }).catch(() => [])) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        out.push(`${child}/`);
        await walk(child);
      } else out.push(child);
    }
  };
  await walk('');
  return out.sort();
}

/** Temporary files dbbackup may create (its own prefixes) in `dir` (default: the system temp dir). */
export async function dbbackupTempFiles(dir = os.tmpdir()): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith('dbbackup-restore-') || n.startsWith('.dbbackup-tmp'));
}

/**
 * Bit rot: one byte in the middle of a stored object changed, its size unchanged, on any backend
 * (a directory, a bucket, a container). Only a full read can tell.
 */
export async function flipByte(
  store: { read(key: string): Promise<Buffer>; write(key: string, data: Buffer): Promise<void> },
  key: string,
): Promise<void> {
  const bytes = await store.read(key);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] ?? 0) ^ 0x01;
  await store.write(key, bytes);
}

/** The entries of `snap` (key → content hash) whose keys are in `keys`, for "left alone byte for byte". */
export function pick(snap: Record<string, string>, keys: readonly string[]): Record<string, string> {
  return Object.fromEntries(Object.entries(snap).filter(([k]) => keys.includes(k)));
}
