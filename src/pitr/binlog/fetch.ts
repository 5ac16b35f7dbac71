import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ToolCommand } from '../../types.js';
import type { MysqlEngine } from '../../engines/mysql.js';
import { ToolProcess } from '../../pipeline/process.js';
import { binlogNumber, isBinlogFileName } from './names.js';

/**
 * The local side of binlog copying: `mariadb-binlog --read-from-remote-server --raw` writes the
 * server's files, byte for byte, into a private spool directory, from which they are stored. The
 * password travels in the engine's 0600 defaults file.
 */

export const BINLOG_HINT =
  'Install the MariaDB client programs (Debian: apt-get install mariadb-client), which include mariadb-binlog.';

/** A spool directory: the one given (created 0700 if missing), or a private temporary one. */
export interface Spool {
  dir: string;
  /** Removes what this process put there (and the directory when it made it). */
  dispose(): Promise<void>;
}

export async function openSpool(given: string | undefined): Promise<Spool> {
  if (given) {
    const dir = path.resolve(given);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return { dir, dispose: async () => clearSpool(dir) };
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dbbackup-binlog-'));
  return { dir, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/** The binlog files in the spool, in binlog order, with their sizes. */
export async function spoolFiles(dir: string): Promise<Array<{ name: string; path: string; size: number }>> {
  const names = (await readdir(dir)).filter(isBinlogFileName);
  names.sort((a, b) => binlogNumber(a).n - binlogNumber(b).n);
  const out: Array<{ name: string; path: string; size: number }> = [];
  for (const name of names) {
    const s = await stat(path.join(dir, name)).catch(() => undefined);
    if (s) out.push({ name, path: path.join(dir, name), size: s.size });
  }
  return out;
}

export async function clearSpool(dir: string): Promise<void> {
  for (const f of await spoolFiles(dir).catch(() => [])) await rm(f.path, { force: true });
}

/** mariadb-binlog narrates little; its ERROR lines are errors. */
export function classifyBinlogTool(line: string): 'error' | 'warning' | 'info' {
  if (/^ERROR\b|\berror\b.*:|Got error|Could not/i.test(line)) return 'error';
  if (/^WARNING\b|warning/i.test(line)) return 'warning';
  return 'info';
}

/** `mariadb-binlog` reading from the server into `spool`, raw. */
export async function binlogFetchCommand(
  engine: MysqlEngine,
  spool: string,
  o: { files: string[]; follow?: { replicaId?: number } },
): Promise<ToolCommand> {
  const args = ['--read-from-remote-server', '--raw', `--result-file=${spool}${path.sep}`];
  // A replica id of its own: two readers with the same id disconnect each other.
  if (o.follow) args.push('--stop-never');
  if (o.follow?.replicaId !== undefined) args.push(`--stop-never-slave-server-id=${o.follow.replicaId}`);
  return engine.clientProgram(['mariadb-binlog', 'mysqlbinlog'], [...args, ...o.files], BINLOG_HINT);
}

/** Copies closed `files` into the spool and waits for the copy to end. */
export async function fetchClosed(engine: MysqlEngine, spool: string, files: string[]): Promise<void> {
  const command = await binlogFetchCommand(engine, spool, { files });
  const proc = new ToolProcess(command, ['ignore', 'ignore', 'pipe'], classifyBinlogTool);
  await proc.done;
}
