import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCli, type CliOptions, type CliResult } from '../harness/cli.js';
import { myServer, pgServer } from '../harness/servers.js';

/** A unique, lower-case database name for one test. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

export async function tempDir(prefix = 'dbb-e2e-'): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Global options that point the CLI at the throwaway PostgreSQL server. */
export function pgArgs(): string[] {
  const s = pgServer();
  return ['--host', s.host, '--port', String(s.port), '--user', s.user];
}

/** Global options that point the CLI at the throwaway MariaDB server. */
export function myArgs(): string[] {
  const s = myServer();
  return ['--db-type', 'mariadb', '--host', s.host, '--port', String(s.port), '--user', s.user];
}

/** Environment without the caller's own connection settings, so only the flags count. */
const CLEAN_ENV: Record<string, undefined> = {
  PGHOST: undefined,
  PGPORT: undefined,
  PGUSER: undefined,
  PGPASSWORD: undefined,
  PGDATABASE: undefined,
  MYSQL_PWD: undefined,
  MYSQL_HOST: undefined,
  DBBACKUP_BACKUP_DIR: undefined,
  DBBACKUP_DB_TYPE: undefined,
};

export function cli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return runCli(args, { ...opts, env: { ...CLEAN_ENV, ...opts.env } });
}

/** Files in a directory, sorted (empty when it does not exist). */
export async function listDir(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

export async function sha256File(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

/** A copy of a backup and everything beside it (sidecars) in a fresh directory, to damage. */
export async function copyBackup(file: string): Promise<{ dir: string; file: string }> {
  const from = path.dirname(file);
  const dir = await tempDir();
  for (const name of await listDir(from)) await copyFile(path.join(from, name), path.join(dir, name));
  return { dir, file: path.join(dir, path.basename(file)) };
}

/** The one data file a successful single backup leaves in `dir` (not a sidecar). */
export async function onlyBackup(dir: string): Promise<string> {
  const data = (await listDir(dir)).filter((f) => !f.endsWith('.meta.json') && !f.endsWith('.sha256'));
  if (data.length !== 1)
    throw new Error(`expected exactly one backup in ${dir}, found: ${data.join(', ') || 'none'}`);
  return path.join(dir, data[0] ?? '');
}

/** Fails with the CLI's own output when the exit code is not the expected one. */
export function expectExit(result: CliResult, code: number): void {
  if (result.code !== code) {
    throw new Error(
      `expected exit ${code}, got ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`,
    );
  }
}

/** `cleanup --json` output: the plan, what was deleted, and the incomplete backups. */
export interface PlanJson {
  location: string;
  dryRun: boolean;
  decisions: Array<{
    key: string;
    group: string;
    time: string;
    valid: boolean;
    keep: boolean;
    reasons: string[];
    sizeBytes: number | null;
    state: string;
    holdsSlot: boolean;
    outcome: string;
    files: string[];
    error?: string;
  }>;
  incomplete: Array<{
    key: string;
    state: string;
    detail: string;
    removed: boolean;
    action: string;
    files: string[];
    error?: string;
  }>;
  deleted: string[];
  freedBytes: number;
  errors: string[];
  leftAlone: string[];
  notOurs: Array<{ key: string; reason: string }>;
  checked: Array<{ key: string; state: string; detail: string }>;
  hints: string[];
}

/** One entry of `list backups --json`. */
export interface ListedBackup {
  key: string;
  state: string;
  detail: string;
  database: string | null;
  created: string | null;
}

/** `cleanup <location> …args --json`, expected to succeed; the plan it printed. */
export async function cleanupJson(
  location: string,
  args: string[],
  env?: Record<string, string | undefined>,
): Promise<PlanJson> {
  const r = await cli(['cleanup', location, ...args, '--json'], { env, timeoutMs: 300_000 });
  expectExit(r, 0);
  return JSON.parse(r.stdout) as PlanJson;
}

/** `list backups --json` for `where` (`['--backup-dir', dir]` or `['--cloud', uri]`, before or after). */
export async function listJson(
  where: string[],
  env?: Record<string, string | undefined>,
): Promise<ListedBackup[]> {
  const cloud = where[0] === '--cloud';
  const args = cloud ? ['list', 'backups', ...where, '--json'] : [...where, 'list', 'backups', '--json'];
  const r = await cli(args, { env, timeoutMs: 300_000 });
  expectExit(r, 0);
  return (JSON.parse(r.stdout) as { backups: ListedBackup[] }).backups;
}
