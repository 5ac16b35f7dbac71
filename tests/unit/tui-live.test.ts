import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  configureRunLocks,
  heldRunLocks,
  lockFileName,
  type RunLockTarget,
} from '../../src/locks/run-lock.js';
import * as uiLocks from '../../src/locks/targets.js';
import { processStart } from '../../src/ops/lock.js';
import type { TuiConfig } from '../../src/tui/config.js';
import { LiveServices } from '../../src/tui/live.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { waitFor } from '../harness/proc.js';
import { pgServer } from '../harness/servers.js';
import { listDir, removeDir, tempDir, uniqueName } from '../e2e/util.js';
import { KEY, start } from './tui-fake.js';

/**
 * The UI on its real services (src/tui/live.ts) against the throwaway PostgreSQL: the run locks it
 * takes are the CLI's, a refused one shows in place, and the cluster restore's plan is the real one.
 */

const db = uniqueName('tui_live');
let work: string;
let locks: string;
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  await createPgDatabase(db);
  await pgExec(db, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 50);');
  work = await tempDir('dbb-tui-live-');
  locks = path.join(work, 'locks');
  configureRunLocks({ dir: locks, waitMs: 0, command: 'tui' });
});

afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

afterAll(async () => {
  await dropPgDatabase(db);
  await removeDir(work);
});

function config(backupDir: string): TuiConfig {
  const s = pgServer();
  return {
    engine: 'postgres',
    connection: (engine) => ({ engine, host: s.host, port: s.port, user: s.user }),
    backupDir,
    cloudSettings: {},
    compression: { algorithm: 'zstd', level: 3 },
    configFile: path.join(work, 'config.toml'),
    outputs: {
      auditFile: path.join(work, 'audit.jsonl'),
      notify: { urls: [], format: 'auto', on: 'failure', timeoutMs: 1000 },
      hooks: {},
    },
    noColor: true,
  };
}

function live(backupDir: string): LiveServices {
  const c = config(backupDir);
  return new LiveServices({ config: c, reload: async () => c });
}

function app(services: LiveServices) {
  const t = start(services);
  cleanups.push(() => t.ui.unmount());
  return t;
}

/** A lock file for `target` held by a live process of this host, as another dbbackup run would. */
async function heldBySleeper(target: RunLockTarget): Promise<void> {
  const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
  cleanups.push(() => sleeper.kill('SIGKILL'));
  await waitFor('sleep to start', 10_000, async () => processStart(sleeper.pid ?? 0) !== undefined);
  const pid = sleeper.pid ?? 0;
  await mkdir(locks, { recursive: true });
  await writeFile(
    path.join(locks, lockFileName(target)),
    `${pid}\n${os.hostname()}\n${new Date().toISOString()}\nstart=${processStart(pid)}\ncommand=backup single\ntarget=${target.description}\n`,
  );
}

describe('the UI on its real services', () => {
  it('a backup whose lock another run holds is refused in place, naming it; nothing is written', async () => {
    const backups = await tempDir('dbb-tui-live-b-');
    cleanups.push(() => void removeDir(backups));
    const s = pgServer();
    // What `backup single` of this database into this directory locks (src/cli/run-locks.ts).
    await heldBySleeper(uiLocks.backupTarget(db, `${s.host}:${s.port}`, path.resolve(backups)));
    const { until, press, type } = app(live(backups));
    await until('Quit');
    await press(KEY.enter);
    await until('filter:');
    await type(db);
    await until(`› ${db}`);
    await press(KEY.enter);
    await until('Compression');
    await press(KEY.enter);
    await until('This will run:');
    await press(KEY.enter);
    const refused = await until('holds the lock');
    expect(refused).toContain('"backup single"');
    expect(refused).toContain('hint:');
    expect(await listDir(backups)).toEqual([]);
    expect(heldRunLocks()).toEqual([]);
    const audit = await readFile(path.join(work, 'audit.jsonl'), 'utf8');
    expect(audit).toContain('"backup single"');
  });

  it("a cluster restore onto the server it came from shows the plan's refusal (the databases exist) in place", async () => {
    const backups = await tempDir('dbb-tui-live-c-');
    cleanups.push(() => void removeDir(backups));
    const services = live(backups);
    await services.backupCluster(
      { compression: 'zstd', level: 1, include: [db], exclude: [], parallelism: 1 },
      { begin() {}, estimate() {}, start() {}, done() {}, failed() {}, skipped() {}, note() {}, end() {} },
      new AbortController().signal,
    );
    const [cluster] = await listDir(backups);
    const { until, press } = app(services);
    await until('Quit');
    await press(...Array<string>(4).fill(KEY.down), KEY.enter);
    await until(cluster ?? 'cluster_');
    await press(KEY.enter);
    await until('Drop and replace existing');
    await press(KEY.enter);
    const s = await until('already exist');
    expect(s).toContain(db);
    expect(s).toContain('hint: Nothing was changed');
    // With "drop and replace" the plan says what it will drop, and still changes nothing.
    await press(KEY.esc);
    await until('Drop and replace existing');
    await press(KEY.down, KEY.right, KEY.enter);
    const plan = await until('now?');
    expect(plan.replace(/\s*\n\s*/g, ' ')).toContain(`drop ${db}`);
    expect(plan).toContain(`Restore 1 database (replacing ${db}) now?`);
    expect(heldRunLocks()).toEqual([]);
  });
});
