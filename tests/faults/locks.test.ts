import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTarget, destinationKey, restoreTarget } from '../../src/locks/targets.js';
import { lockFileName, type RunLockTarget } from '../../src/locks/run-lock.js';
import { processStart } from '../../src/ops/lock.js';
import { repoRoot } from '../harness/cli.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { waitFor } from '../harness/proc.js';
import { pgServer } from '../harness/servers.js';
import { cli, expectExit, listDir, onlyBackup, pgArgs, removeDir, tempDir, uniqueName } from '../e2e/util.js';
import { holdPgExtension, pgDumpWaiting } from './invariants.js';

/**
 * Run locks (issue 17): two runs of the same job never overlap. The second is refused with exit 75
 * (or waits, with --wait-lock), runs on other targets are not held up, and a lock left by a process
 * killed with -9 is taken over with a warning.
 */

const LOCKED = 75;
const db = uniqueName('lock_a');
const other = uniqueName('lock_b');
let work: string;
let locks: string;

beforeAll(async () => {
  for (const d of [db, other]) {
    await createPgDatabase(d);
    await pgExec(d, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100);');
  }
  work = await tempDir('dbb-locks-');
  locks = path.join(work, 'locks');
});

afterAll(async () => {
  await dropPgDatabase(db);
  await dropPgDatabase(other);
  await removeDir(work);
});

const env = (): Record<string, string> => ({ DBBACKUP_LOCK_DIR: locks });

interface Background {
  child: ChildProcess;
  exited: Promise<number>;
  output: () => string;
}

/** `dbbackup …args` in the background, with this file's lock directory. */
function background(args: string[]): Background {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/dbbackup.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PGHOST: undefined, PGPORT: undefined, DBBACKUP_BACKUP_DIR: undefined, ...env() },
  });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exited = new Promise<number>((resolve) =>
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : -1))),
  );
  return { child, exited, output: () => out };
}

let n = 0;
async function freshDir(): Promise<string> {
  const dir = path.join(work, `b${n++}`);
  await mkdir(dir);
  return dir;
}

/** A backup of `db` into `dir` that stays running (pg_dump waits for a lock the test holds) until released. */
async function stalledBackup(dir: string): Promise<{ run: Background; release: () => Promise<void> }> {
  const hold = await holdPgExtension(db);
  const run = background([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db, '--no-progress']);
  await pgDumpWaiting(db);
  return { run, release: hold.release };
}

/** A lock file for `target` held by a live process of this host (a `sleep` the test ends). */
async function heldBySleeper(target: RunLockTarget): Promise<() => void> {
  const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
  await waitFor('sleep to start', 10_000, async () => processStart(sleeper.pid ?? 0) !== undefined);
  await mkdir(locks, { recursive: true });
  const pid = sleeper.pid ?? 0;
  await writeFile(
    path.join(locks, lockFileName(target)),
    `${pid}\n${os.hostname()}\n${new Date().toISOString()}\nstart=${processStart(pid)}\ncommand=test sleeper\ntarget=${target.description}\n`,
  );
  return () => sleeper.kill('SIGKILL');
}

describe('run locks', () => {
  it('backup single: a second backup of the same database into the same place while the first runs → refused, exit 75, naming the running one; the first completes', async () => {
    const dir = await freshDir();
    const first = await stalledBackup(dir);
    try {
      const second = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db], { env: env() });
      expectExit(second, LOCKED);
      expect(second.stderr).toContain(`Another dbbackup run holds the lock for the backup of "${db}"`);
      expect(second.stderr).toMatch(new RegExp(`"backup single", process ${first.run.child.pid} on `));
      expect(second.stderr).toContain('--wait-lock');
    } finally {
      await first.release();
    }
    expect(await first.run.exited).toBe(0);
    await onlyBackup(dir);
    // Nothing is left locked once both have ended.
    expect(await readdir(locks)).toEqual([]);
  });

  it('backup single: backups of two databases at the same time → both run', async () => {
    const dir = await freshDir();
    const first = await stalledBackup(dir);
    try {
      const second = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', other], { env: env() });
      expectExit(second, 0);
    } finally {
      await first.release();
    }
    expect(await first.run.exited).toBe(0);
    const files = (await listDir(dir)).filter((f) => f.endsWith('.meta.json'));
    expect(files).toHaveLength(2);
  });

  it('backup single --wait-lock: the second run waits for the first to end, then runs', async () => {
    const dir = await freshDir();
    const first = await stalledBackup(dir);
    const second = background([
      ...pgArgs(),
      '--backup-dir',
      dir,
      '--wait-lock',
      '120',
      'backup',
      'single',
      db,
    ]);
    // Still waiting while the first holds the lock.
    await new Promise((r) => setTimeout(r, 1500));
    expect(second.child.exitCode).toBeNull();
    await first.release();
    expect(await first.run.exited).toBe(0);
    expect(await second.exited).toBe(0);
    expect((await listDir(dir)).filter((f) => f.endsWith('.meta.json'))).toHaveLength(2);
  });

  it('backup single --wait-lock 1: the lock stays held → refused after waiting, exit 75', async () => {
    const dir = await freshDir();
    const first = await stalledBackup(dir);
    try {
      const started = Date.now();
      const second = await cli(
        [...pgArgs(), '--backup-dir', dir, '--wait-lock', '1', 'backup', 'single', db],
        {
          env: env(),
        },
      );
      expectExit(second, LOCKED);
      expect(second.stderr).toContain('waited 1 s');
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    } finally {
      await first.release();
    }
    expect(await first.run.exited).toBe(0);
  });

  it('backup single: kill -9 while holding the lock → the next run takes the stale lock over with a warning and succeeds', async () => {
    const dir = await freshDir();
    const first = await stalledBackup(dir);
    first.run.child.kill('SIGKILL');
    await first.run.exited;
    // Its lock file is still there, naming a process that is gone.
    expect((await readdir(locks)).filter((f) => f.startsWith('backup-'))).toHaveLength(1);
    await first.release();
    const next = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db], { env: env() });
    expectExit(next, 0);
    expect(next.stderr).toMatch(
      new RegExp(
        `warning: took over the lock for the backup of "${db}" .*left by process ${first.run.child.pid} \\("backup single"\\).*which is gone`,
      ),
    );
    expect(await readdir(locks)).toEqual([]);
  });

  it('restore single --confirm: the target database is locked by another run → refused, exit 75, nothing created', async () => {
    const dir = await freshDir();
    expectExit(await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db], { env: env() }), 0);
    const file = await onlyBackup(dir);
    const target = uniqueName('lock_restore');
    const s = pgServer();
    const stop = await heldBySleeper(restoreTarget(`${s.host}:${s.port}`, target));
    try {
      const r = await cli(
        [...pgArgs(), 'restore', 'single', file, '--target', target, '--create', '--confirm'],
        {
          env: env(),
        },
      );
      expectExit(r, LOCKED);
      expect(r.stderr).toContain(`holds the lock for the restore into "${target}"`);
      // The dry run takes no lock.
      expectExit(
        await cli([...pgArgs(), 'restore', 'single', file, '--target', target, '--create'], { env: env() }),
        0,
      );
    } finally {
      stop();
    }
    const exists = await cli([...pgArgs(), 'list', '--json']);
    expect(exists.stdout).not.toContain(target);
  });

  it('cleanup: the location is locked by another run → refused, exit 75, nothing deleted', async () => {
    const dir = await freshDir();
    expectExit(await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db], { env: env() }), 0);
    const before = await listDir(dir);
    const stop = await heldBySleeper(cleanupTarget(destinationKey(dir)));
    try {
      const r = await cli(['cleanup', dir, '--keep-last', '0'], { env: env() });
      expectExit(r, LOCKED);
      expect(r.stderr).toContain(`holds the lock for the cleanup of ${dir}`);
      expect(r.stderr).toContain('"test sleeper"');
    } finally {
      stop();
    }
    expect(await listDir(dir)).toEqual(before);
  });
});
