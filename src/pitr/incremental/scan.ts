import { lstatSync, readdirSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';

/**
 * What a backup reads from a data directory, with the exclusions pg_basebackup makes: the contents
 * of directories the server rebuilds or only uses while running (the directories themselves are
 * kept), per-run files, and the non-init forks of unlogged relations (the server resets them from
 * their init fork after recovery).
 */

const EMPTIED_DIRS = new Set([
  'pg_wal',
  'pg_dynshmem',
  'pg_notify',
  'pg_replslot',
  'pg_serial',
  'pg_snapshots',
  'pg_stat_tmp',
  'pg_subtrans',
]);
const SKIPPED_FILES = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'backup_label',
  'tablespace_map',
  'backup_manifest',
  'recovery.signal',
  'standby.signal',
  'postgresql.auto.conf.tmp',
  'current_logfiles.tmp',
]);

/** A relation segment file: `<relfilenode>[_fork][.<segno>]` under base/<db>/ or global/. */
const RELATION = /^(\d+)(_(fsm|vm|init))?(\.(\d+))?$/;

export interface DataFile {
  /** Path relative to the data directory, with `/`. */
  path: string;
  size: number;
  /** Set for relation files: the segment number (block numbers in checksums count from segno × segment size). */
  relation?: { segno: number };
}

export interface DataDirContents {
  files: DataFile[];
  dirs: string[];
}

function isRelationDir(rel: string): boolean {
  return rel === 'global' || /^base\/\d+$/.test(rel);
}

function skippedFile(name: string): boolean {
  return SKIPPED_FILES.has(name) || name === 'pg_internal.init' || name.startsWith('pgsql_tmp');
}

function lstatOrSkip(abs: string): Stats | undefined {
  try {
    return lstatSync(abs);
  } catch (err) {
    // Removed while walking: the WAL replays its removal.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The files to back up, pg_control last (the server's own base backup sends it last too).
 * Synchronous: one lstat per file through the thread pool took 0.3-1.2 s for the ~1,300 files of
 * a pgbench scale-50 cluster on the loaded 2-core machine (each call waits for a turn on a core);
 * the same calls made directly take some 20 ms of CPU, and the backup has nothing else to do
 * meanwhile.
 */
export function scanDataDir(root: string): DataDirContents {
  const files: DataFile[] = [];
  const dirs: string[] = [];
  let control: DataFile | undefined;
  const walk = (rel: string): void => {
    const abs = rel ? path.join(root, rel) : root;
    const names = readdirSync(abs).sort();
    const unlogged = new Set(
      isRelationDir(rel) ? names.flatMap((n) => (/^\d+_init$/.test(n) ? [n.slice(0, -5)] : [])) : [],
    );
    for (const name of names) {
      const child = rel ? `${rel}/${name}` : name;
      const info = lstatOrSkip(path.join(abs, name));
      if (!info) continue;
      // pg_wal may be a symbolic link (initdb -X): it counts as a directory.
      const isDir =
        info.isDirectory() || (info.isSymbolicLink() && statSync(path.join(abs, name)).isDirectory());
      if (isDir) {
        dirs.push(child);
        if (name.startsWith('pgsql_tmp')) continue;
        if (EMPTIED_DIRS.has(child)) {
          if (child === 'pg_wal') dirs.push('pg_wal/archive_status');
          continue;
        }
        walk(child);
        continue;
      }
      if (!info.isFile() || skippedFile(name)) continue;
      const m = isRelationDir(rel) ? RELATION.exec(name) : null;
      if (m && unlogged.has(m[1] ?? '') && m[3] !== 'init') continue;
      const file: DataFile = { path: child, size: info.size };
      if (m) file.relation = { segno: Number(m[5] ?? 0) };
      if (child === 'global/pg_control') control = file;
      else files.push(file);
    }
  };
  walk('');
  if (control) files.push(control);
  return { files, dirs };
}
