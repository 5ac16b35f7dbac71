import { chmod, lstat, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BaseBackupMetadata } from '../catalog/base-backup.js';
import { errnoCode, SafetyError, UsageError } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import { giveTo, type OsUser } from '../os/user.js';

/**
 * Tablespaces outside the data directory in a PITR restore: where each one goes (its original
 * directory, or another by `--tablespace-map`), whether that place is free, and after extraction
 * the `pg_tblspc/<oid>` symlinks and the `tablespace_map` PostgreSQL reads when it starts.
 */

export interface TablespacePlan {
  oid: string;
  /** The directory on the source server. */
  from: string;
  /** Where it is restored. */
  to: string;
  key: string;
  exists: boolean;
  entries: number;
}

/**
 * `OID=DIR` or `OLDDIR=NEWDIR` (pg_basebackup's --tablespace-mapping spelling), each new
 * directory absolute.
 */
export function parseTablespaceMap(specs: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const from = eq > 0 ? spec.slice(0, eq) : '';
    const to = eq > 0 ? spec.slice(eq + 1) : '';
    if (!from || !to || !(/^[0-9]+$/.test(from) || path.isAbsolute(from)) || !path.isAbsolute(to))
      throw new UsageError(
        `Invalid --tablespace-map "${spec}"`,
        'Give OID=DIR or OLDDIR=NEWDIR with absolute directories, e.g. --tablespace-map 16385=/srv/restore/ts1.',
      );
    if (/[\n\r]/.test(to)) throw new UsageError(`--tablespace-map ${spec}: a directory with a line break`);
    map.set(/^[0-9]+$/.test(from) ? from : path.resolve(from), path.resolve(to));
  }
  return map;
}

/** Each tablespace's destination and its state; refusals for a place that is taken, or a mapping of nothing. */
export async function planTablespaces(
  meta: BaseBackupMetadata,
  mapping: ReadonlyMap<string, string>,
  dataDir: string,
  refusals: string[],
): Promise<TablespacePlan[]> {
  const spaces = meta.tablespaces ?? [];
  const used = new Set<string>();
  const plans: TablespacePlan[] = [];
  for (const t of spaces) {
    const to = mapping.get(t.oid) ?? mapping.get(path.resolve(t.location)) ?? t.location;
    if (mapping.has(t.oid)) used.add(t.oid);
    if (mapping.has(path.resolve(t.location))) used.add(path.resolve(t.location));
    const state = await dirState(to);
    plans.push({ oid: t.oid, from: t.location, to, key: t.key, ...state });
    // Never replaced, not even with --force: it may be the source server's own tablespace.
    if (state.entries > 0)
      refusals.push(
        `tablespace ${t.oid} would be restored into ${to}, which is not empty: give an empty or new directory with --tablespace-map ${t.oid}=DIR`,
      );
    const inside = path.relative(path.resolve(dataDir), to);
    if (!inside.startsWith('..') && !path.isAbsolute(inside))
      refusals.push(`tablespace ${t.oid} would be restored inside the data directory (${to})`);
  }
  const dests = plans.map((p) => p.to);
  const twice = dests.find((d, i) => dests.indexOf(d) !== i);
  if (twice) refusals.push(`two tablespaces would be restored into ${twice}`);
  for (const key of mapping.keys())
    if (!used.has(key))
      refusals.push(
        `--tablespace-map ${key}: the base backup has no such tablespace (${spaces.map((t) => `${t.oid} ${t.location}`).join(', ') || 'it has none'})`,
      );
  return plans;
}

/** Every stored part of a base backup must be there, with its size, before anything is written. */
export async function missingParts(storage: Storage, meta: BaseBackupMetadata): Promise<string[]> {
  const problems: string[] = [];
  for (const f of meta.files) {
    const info = await storage.stat(f.key);
    if (!info) problems.push(`${f.key} is missing`);
    else if (info.size !== f.sizeBytes)
      problems.push(`${f.key} has ${info.size} bytes, not the ${f.sizeBytes} its metadata records`);
  }
  return problems;
}

async function dirState(dir: string): Promise<{ exists: boolean; entries: number }> {
  try {
    return { exists: true, entries: (await readdir(dir)).length };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { exists: false, entries: 0 };
    if (errnoCode(err) === 'ENOTDIR') return { exists: true, entries: 1 };
    throw err;
  }
}

/** The tablespace's directory, empty, 0700, owned by the server's user (created when missing). */
export async function prepareTablespaceDir(t: TablespacePlan, user: OsUser): Promise<void> {
  await mkdir(t.to, { recursive: true, mode: 0o700 });
  await chmod(t.to, 0o700);
  await giveTo(t.to, user);
  const s = await lstat(t.to);
  if (s.uid !== user.uid)
    throw new SafetyError(`${t.to} belongs to uid ${s.uid}, not to ${user.name}`, {
      hint: `Run the restore as root or as ${user.name}, or map the tablespace to a directory ${user.name} owns.`,
    });
}

/** Removes what a failed restore put into the tablespace directories (the directory too when it was new). */
export async function removeTablespaces(plans: readonly TablespacePlan[]): Promise<void> {
  for (const t of plans) {
    if (!t.exists) await rm(t.to, { recursive: true, force: true }).catch(() => undefined);
    else
      for (const name of await readdir(t.to).catch(() => [] as string[]))
        await rm(path.join(t.to, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * pg_tblspc/<oid> → the restored directory, and a tablespace_map naming the same places
 * (PostgreSQL recreates the links from it at start, so both must agree).
 */
export async function linkTablespaces(
  dataDir: string,
  plans: readonly TablespacePlan[],
  user: OsUser,
): Promise<void> {
  if (!plans.length) return;
  const dir = path.join(dataDir, 'pg_tblspc');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const t of plans) {
    const link = path.join(dir, t.oid);
    await rm(link, { force: true, recursive: false }).catch(() => undefined);
    await symlink(t.to, link);
    await giveTo(link, user, { link: true });
  }
  // read_tablespace_map: one "oid path" a line, a backslash escapes the next character.
  const map = plans.map((t) => `${t.oid} ${t.to.replace(/\\/g, '\\\\')}\n`).join('');
  const file = path.join(dataDir, 'tablespace_map');
  await writeFile(file, map, { mode: 0o600 });
  await giveTo(file, user);
}
