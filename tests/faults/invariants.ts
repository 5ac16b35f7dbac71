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
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { repoRoot } from '../harness/cli.js';
import { pgQuery } from '../harness/pg.js';
import { waitFor } from '../harness/proc.js';
import { pgServer } from '../harness/servers.js';

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

export interface Running {
  child: ChildProcess;
  exited: Promise<number>;
  output: () => { stdout: string; stderr: string };
}

/** `dbbackup …args` in the background (runCli only returns at the end). */
export function start(args: string[]): Running {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/dbbackup.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      PGHOST: undefined,
      PGPORT: undefined,
      PGUSER: undefined,
      DBBACKUP_BACKUP_DIR: undefined,
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number>((resolve) =>
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : -1))),
  );
  return { child, exited, output: () => ({ stdout, stderr }) };
}

/** A session of the test's own in `db` that holds pg_extension until released. */
export async function holdPgExtension(db: string): Promise<{ release: () => Promise<void> }> {
  const s = pgServer();
  const client = new pg.Client({ host: s.host, port: s.port, user: s.user, database: db });
  // A cleanup that drops the database ends this session: not an error of the test.
  client.on('error', () => undefined);
  await client.connect();
  await client.query('BEGIN');
  await client.query('LOCK TABLE pg_catalog.pg_extension IN ACCESS EXCLUSIVE MODE');
  return {
    release: async () => {
      await client.query('COMMIT').catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}

/** Until pg_dump of `db` waits for the lock holdPgExtension took. */
export async function pgDumpWaiting(db: string): Promise<void> {
  await waitFor(`pg_dump of ${db} to wait for the lock`, 60_000, async () => {
    const rows = await pgQuery(
      'postgres',
      // dbbackup's own facts session (extension names, for restore drills) waits for the lock too.
      `SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'
          AND query LIKE '%pg_extension%' AND query NOT LIKE '%extname AS v%'`,
      [db],
    );
    return rows.length > 0;
  });
}
