import { chmod, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from './util.js';

/**
 * Point-in-time drills make their scratch directory under TMPDIR: each test gives its own, so
 * what a drill leaves behind (a directory, a server still running on it) is found and is its own.
 */
export async function scratchParent(prefix = 'dbb-drill-tmp-'): Promise<string> {
  const dir = await tempDir(prefix);
  // As /tmp: the server's OS user passes through, and its tools (mariadb-backup) write temporary files here.
  await chmod(dir, 0o1777);
  return dir;
}

/** The drill directories in the scratch parent, and the processes (pid: command line) whose command line names it. */
export async function leftovers(parent: string): Promise<{ entries: string[]; processes: string[] }> {
  // Node keeps its compile cache under TMPDIR too: only the drill's own directories count.
  const entries = (await readdir(parent).catch(() => [] as string[])).filter((n) =>
    n.startsWith('dbbackup-drill-'),
  );
  const processes: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(path.join('/proc', pid, 'cmdline'), 'utf8').catch(() => '');
    if (cmdline.includes(parent)) processes.push(`${pid}: ${cmdline.replaceAll('\0', ' ').trim()}`);
  }
  return { entries, processes };
}
