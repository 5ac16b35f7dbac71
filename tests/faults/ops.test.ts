import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { startWebhookServer, type WebhookServer } from '../harness/webhook-server.js';
import { cli, expectExit, onlyBackup, pgArgs, removeDir, tempDir, uniqueName } from '../e2e/util.js';
import { holdPgExtension, pgDumpWaiting, start, treeOf } from './invariants.js';

/**
 * What happens around a backup (notifications, hooks, metrics, the audit log) can fail; the backup
 * must not: same exit code, same stored backup, a warning that says what did not work, in bounded time.
 */

const db = uniqueName('ops_fault');
let work: string;
let hooks: WebhookServer;

beforeAll(async () => {
  await createPgDatabase(db);
  await pgExec(db, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);');
  work = await tempDir('dbb-opsfault-');
  hooks = await startWebhookServer();
});

afterAll(async () => {
  await hooks.close();
  await dropPgDatabase(db);
  await removeDir(work);
});

let n = 0;
/** A backup of `db` into a fresh directory, with `extra` options before the command. */
async function backup(extra: string[]) {
  const dir = path.join(work, `b${n++}`);
  await mkdir(dir);
  const started = Date.now();
  const r = await cli([...pgArgs(), '--backup-dir', dir, ...extra, 'backup', 'single', db], {
    timeoutMs: 120_000,
  });
  return { r, dir, seconds: (Date.now() - started) / 1000 };
}

/** The backup is there and whole: exactly one data file and its sidecars, and verify-backup agrees. */
async function expectStored(dir: string): Promise<void> {
  const file = await onlyBackup(dir);
  expectExit(await cli(['verify-backup', file]), 0);
}

describe('notifications and hooks never change a backup’s outcome', () => {
  it('backup single: webhook never answers → backup succeeds, warning printed, within the time limit', async () => {
    const { r, dir, seconds } = await backup([
      '--notify',
      hooks.url('/hang/x'),
      '--notify-on',
      'always',
      '--notify-timeout',
      '3',
    ]);
    expectExit(r, 0);
    expect(r.stdout).toContain('Backup complete:');
    expect(r.stderr).toMatch(
      /warning: notification to http:\/\/127\.0\.0\.1:\d+\/… \(generic\) failed after \d attempts? \(3\.\d s\): no answer within 3 s; the backup single result is unchanged/,
    );
    expect(seconds).toBeLessThan(15);
    await expectStored(dir);
  });

  it('backup single: webhook answers 500 → retried 3 times, warning printed, exit 0', async () => {
    const { r, dir } = await backup([
      '--notify',
      hooks.url('/status/500/y'),
      '--notify-on',
      'always',
      '--notify-timeout',
      '20',
    ]);
    expectExit(r, 0);
    expect(r.stderr).toMatch(/failed after 3 attempts .*HTTP 500/);
    expect(await hooks.waitFor('/status/500/y', 3)).toHaveLength(3);
    await expectStored(dir);
  });

  it('backup single (failing): webhook down → the backup’s own exit code and error, plus the warning', async () => {
    const r = await cli([
      ...pgArgs(),
      '--notify',
      'http://127.0.0.1:9/down',
      '--notify-timeout',
      '2',
      'backup',
      'single',
      `${db}_missing`,
    ]);
    expectExit(r, 2);
    expect(r.stderr).toContain('does not exist');
    expect(r.stderr).toContain('warning: notification to http://127.0.0.1:9/… (generic) failed');
  });

  it('backup single: --on-failure program missing → warning, exit code unchanged', async () => {
    const r = await cli([
      ...pgArgs(),
      '--on-failure',
      '/nonexistent/page-me now',
      'backup',
      'single',
      `${db}_missing`,
    ]);
    expectExit(r, 2);
    expect(r.stderr).toContain('warning: --on-failure command /nonexistent/page-me could not run');
  });

  it('backup single: --on-success program exits 3 → warning, backup still a success', async () => {
    const { r, dir } = await backup(['--on-success', `${process.execPath} -e process.exit(3)`]);
    expectExit(r, 0);
    expect(r.stderr).toContain(`--on-success command ${process.execPath} exited with 3`);
    await expectStored(dir);
  });

  it('backup single: metrics file in an unwritable place → backup succeeds, warning printed', async () => {
    const blocker = path.join(work, 'a-file');
    await writeFile(blocker, 'x');
    const { r, dir } = await backup(['--metrics-file', path.join(blocker, 'dbbackup.prom')]);
    expectExit(r, 0);
    expect(r.stderr).toContain(
      `warning: could not write the metrics file ${path.join(blocker, 'dbbackup.prom')}`,
    );
    await expectStored(dir);
  });

  it('backup single: audit log not writable → backup succeeds, warning printed, metrics still written', async () => {
    // A file where its directory should be: fails for root too (file modes do not stop root).
    await writeFile(path.join(work, 'not-a-dir'), 'x');
    const audit = path.join(work, 'not-a-dir', 'audit.jsonl');
    const metrics = path.join(work, 'm', 'dbbackup.prom');
    const { r, dir } = await backup(['--audit-log', audit, '--metrics-file', metrics]);
    expectExit(r, 0);
    expect(r.stderr).toContain(`warning: could not append to the audit log ${audit}`);
    expect(await readFile(metrics, 'utf8')).toContain(`database="${db}"`);
    await expectStored(dir);
  });
});

describe('an interrupted backup is recorded and told as interrupted', () => {
  it('backup single: SIGTERM mid-dump → exit 130, audit record "interrupted", message sent, nothing kept', async () => {
    const dir = path.join(work, 'interrupted');
    await mkdir(dir);
    const audit = path.join(work, 'interrupted-audit.jsonl');
    const lock = await holdPgExtension(db);
    try {
      const run = start([
        ...pgArgs(),
        '--backup-dir',
        dir,
        '--audit-log',
        audit,
        '--notify',
        hooks.url('/interrupted'),
        'backup',
        'single',
        db,
      ]);
      await pgDumpWaiting(db);
      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(130);
      const [record] = (await readFile(audit, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(record).toMatchObject({
        command: 'backup single',
        outcome: 'interrupted',
        exitCode: 130,
        database: db,
      });
      const [message] = await hooks.waitFor('/interrupted', 1);
      expect((message?.body as { text: string }).text).toContain('backup single was INTERRUPTED');
      expect(await treeOf(dir)).toEqual([]);
    } finally {
      await lock.release();
    }
  });
});
