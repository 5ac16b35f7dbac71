import { execFile } from 'node:child_process';
import { access, constants, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const whichCache = new Map<string, string | null>();

/** Like `which`: the first executable called `name` on PATH, or null. */
export async function which(name: string): Promise<string | null> {
  if (path.isAbsolute(name)) return (await isExecutable(name)) ? name : null;
  const cached = whichCache.get(name);
  if (cached !== undefined) return cached;
  let found: string | null = null;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (await isExecutable(candidate)) {
      found = candidate;
      break;
    }
  }
  whichCache.set(name, found);
  return found;
}

/** The first of several alternative program names that exists (e.g. mariadb-dump, then mysqldump). */
export async function whichFirst(names: readonly string[]): Promise<{ name: string; path: string } | null> {
  for (const name of names) {
    const found = await which(name);
    if (found) return { name, path: found };
  }
  return null;
}

/** `X.Y` or `X.Y.Z` out of a `--version` banner such as `pg_dump (PostgreSQL) 15.19 (Debian…)`. */
export function parseVersion(banner: string): string | null {
  // mariadb-dump prints "mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB": prefer the Distrib version.
  const distrib = /Distrib\s+(\d+\.\d+(?:\.\d+)?)/.exec(banner);
  if (distrib?.[1]) return distrib[1];
  const match = /(\d+\.\d+(?:\.\d+)?)/.exec(banner);
  return match?.[1] ?? null;
}

export function majorVersion(version: string): number {
  return Number.parseInt(version.split('.')[0] ?? '0', 10);
}

const banners = new Map<string, Promise<string | null>>();

/**
 * What `<file> --version` prints (asked once per program), or null when it cannot run. Standard
 * output, or standard error when that is empty: mariadb-backup prints its banner there, and the
 * client-TLS choice (MariaDB or Oracle flags) reads the banner.
 */
export function versionBanner(file: string): Promise<string | null> {
  let banner = banners.get(file);
  if (!banner) {
    banner = execFileAsync(file, ['--version'], { timeout: 10_000 }).then(
      ({ stdout, stderr }) => (stdout.trim() ? stdout : stderr),
      () => null,
    );
    banners.set(file, banner);
  }
  return banner;
}

export async function toolVersion(file: string): Promise<string | null> {
  const banner = await versionBanner(file);
  return banner === null ? null : parseVersion(banner);
}

/**
 * Debian installs each PostgreSQL major's programs in /usr/lib/postgresql/<major>/bin and a
 * wrapper in /usr/bin. Prefer the newest real binary: a newer pg_dump can dump older servers,
 * never the reverse. DBBACKUP_PG_BINDIR overrides the search.
 */
export async function findPgTool(name: string): Promise<string | null> {
  const override = process.env.DBBACKUP_PG_BINDIR;
  if (override) {
    const file = path.join(override, name);
    return (await isExecutable(file)) ? file : null;
  }
  try {
    const majors = (await readdir('/usr/lib/postgresql'))
      .filter((d) => /^\d+$/.test(d))
      .sort((a, b) => Number(b) - Number(a));
    for (const major of majors) {
      const file = path.join('/usr/lib/postgresql', major, 'bin', name);
      if (await isExecutable(file)) return file;
    }
  } catch {
    // Not a Debian-style layout; fall back to PATH.
  }
  return which(name);
}

/**
 * A PostgreSQL program's major version from where Debian installs it (/usr/lib/postgresql/<major>/bin,
 * the place findPgTool prefers), without starting it: null elsewhere (then ask it, toolVersion).
 * Starting `pg_restore --version` costs a process per run (issue 16: ~10 ms CPU of a tiny restore's
 * ~0.5 s); a major version is all the tool-against-archive and tool-against-server checks compare.
 */
export function pgMajorFromPath(file: string): number | null {
  const m = /^\/usr\/lib\/postgresql\/(\d+)\/bin\/[^/]+$/.exec(file);
  return m?.[1] ? Number(m[1]) : null;
}

/** Exact COUNT(*) only where it is cheap: small tables, in databases without thousands of them. */
export function shouldCountExactly(tableBytes: number, tableCount: number): boolean {
  return tableBytes <= 64 * 1024 * 1024 && tableCount <= 1000;
}
