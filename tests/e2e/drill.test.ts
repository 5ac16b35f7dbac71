import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTextfile } from '../harness/prom.js';
import { cli, expectExit, onlyBackup, removeDir, tempDir, uniqueName } from './util.js';
import { ENGINES, replaceMember, replaceSingle } from './drill-util.js';

/**
 * Restore drills (issue 17): a good backup passes with its RTO recorded, in the drill history
 * (list backups), the audit log (history) and the metrics file; a backup whose content was changed
 * while its checksums still match fails on the exact table; nothing is left behind.
 */

describe.each(ENGINES)('drill ($name)', (e) => {
  const db = uniqueName(`drill_${e.name === 'postgres' ? 'pg' : 'my'}`);
  let work: string;
  const run = (args: string[]) =>
    cli(
      [
        ...e.args(),
        '--audit-log',
        path.join(work, 'audit.jsonl'),
        '--metrics-file',
        path.join(work, 'drill.prom'),
        ...args,
      ],
      {
        env: { DBBACKUP_LOCK_DIR: path.join(work, 'locks') },
        timeoutMs: 300_000,
      },
    );

  /**
   * The scratch databases these drills named that still exist. Only this run's names: drills in
   * other test files share the server and may hold scratch databases of their own at this moment.
   */
  const leftBehind = async (...outputs: string[]) => {
    const named = outputs.flatMap((o) => [...o.matchAll(/into (dbbackup_drill_\S+) on/g)].map((m) => m[1]));
    expect(named.length, outputs.join('\n')).toBeGreaterThan(0);
    const present = await e.scratch();
    return named.filter((n) => present.includes(n ?? ''));
  };

  beforeAll(async () => {
    await e.create(db, 1000);
    work = await tempDir('dbb-drill-');
  });
  afterAll(async () => {
    await e.drop(db);
    await removeDir(work);
  });

  it('single: a good backup passes with its RTO; the result shows in list backups, history and the metrics; no scratch database left', async () => {
    const dir = path.join(work, 'single');
    expectExit(await run(['--backup-dir', dir, 'backup', 'single', db, '--record-rows', '50']), 0);
    const r = await run(['--backup-dir', dir, 'drill', 'latest', '--database', db, '--sample-rows', '50']);
    expectExit(r, 0);
    expect(r.stdout).toMatch(
      /Drill passed: .* restores as recorded\. RTO \(restore\) \d+\.\d s, whole drill \d+\.\d s\./,
    );
    expect(r.stdout).toMatch(/2 of 2 tables counted, .*, 52 rows in 2 tables compared/);
    expect(await leftBehind(r.stdout + r.stderr)).toEqual([]);

    const listed = await run(['--backup-dir', dir, 'list', 'backups', '--json']);
    expectExit(listed, 0);
    const backups = (
      JSON.parse(listed.stdout) as {
        backups: Array<{
          drills?: { lastProven: { restoreSeconds: number } | null; lastDrill: { outcome: string } };
        }>;
      }
    ).backups;
    expect(backups[0]?.drills?.lastDrill.outcome).toBe('passed');
    expect(backups[0]?.drills?.lastProven?.restoreSeconds).toBeGreaterThan(0);
    const text = await run(['--backup-dir', dir, 'list', 'backups']);
    expect(text.stdout).toMatch(
      /LAST PROVEN RESTORABLE \(UTC\)[\s\S]*\d{4}-\d\d-\d\d \d\d:\d\d \(RTO \d+\.\d s\)/,
    );

    const history = await run(['history', '--json', '--limit', '1']);
    const [last] = JSON.parse(history.stdout) as Array<{
      command: string;
      outcome: string;
      database: string;
      details: Record<string, unknown>;
    }>;
    expect(last?.command).toBe('drill');
    expect(last?.outcome).toBe('success');
    expect(last?.database).toBe(db);
    expect(last?.details.drill).toBe('passed');

    const series = parseTextfile(await readFile(path.join(work, 'drill.prom'), 'utf8'));
    const drill = (name: string) => series.find((s) => s.name === name && s.labels.database === db);
    expect(drill('dbbackup_drill_last_status')?.value).toBe(1);
    expect(drill('dbbackup_drill_restore_seconds')?.value).toBeGreaterThan(0);
    expect(drill('dbbackup_drill_last_success_timestamp_seconds')?.value).toBeGreaterThan(
      Date.now() / 1000 - 600,
    );
  });

  it('single: content changed, checksums rewritten to match → the drill fails naming the table; the history records the failure', async () => {
    const dir = path.join(work, 'tamper');
    const other = path.join(work, 'tamper-other');
    expectExit(await run(['--backup-dir', dir, 'backup', 'single', db]), 0);
    await e.exec(db, 'DELETE FROM t WHERE id = 7');
    try {
      expectExit(await run(['--backup-dir', other, 'backup', 'single', db]), 0);
    } finally {
      await e.exec(db, `INSERT INTO t (id, v) VALUES (7, 'back')`);
    }
    const file = await onlyBackup(dir);
    await replaceSingle(file, await onlyBackup(other));
    // The checksums agree: verify-backup cannot see it.
    expectExit(await run(['verify-backup', file]), 0);
    const r = await run(['drill', file]);
    expectExit(r, 1);
    expect(r.stderr).toContain(
      `Drill failed: the restored copy differs from the backup: table ${e.table}: 1000 rows at backup time, 999 restored`,
    );
    expect(r.stderr).toMatch(/dbbackup_drill_\S+ dropped/);
    expect(await leftBehind(r.stdout + r.stderr)).toEqual([]);
    const history = JSON.parse(await readFile(`${file}.drills.json`, 'utf8')) as {
      drills: Array<{ outcome: string; differences: string[] }>;
    };
    expect(history.drills.at(-1)?.outcome).toBe('failed');
    expect(history.drills.at(-1)?.differences[0]).toContain(`table ${e.table}`);
  });

  it('cluster: the whole cluster and one member pass; a member whose dump was swapped fails naming the table', async () => {
    const dir = path.join(work, 'cluster');
    const backup = ['--backup-dir', dir, 'backup', 'cluster', '--include-database', db];
    expectExit(await run(backup), 0);
    const [first] = (await readdir(dir)).filter((n) => n.startsWith('cluster_'));
    const whole = await run(['--backup-dir', dir, 'drill', first ?? '']);
    expectExit(whole, 0);
    expect(whole.stderr).toContain('roles and grants:');
    expect(whole.stdout).toContain('Drill passed:');
    const one = await run(['--backup-dir', dir, 'drill', 'latest', '--database', db]);
    expectExit(one, 0);

    // A second cluster backup of fewer rows, its member swapped into the first.
    await e.exec(db, 'DELETE FROM t WHERE id = 9');
    try {
      expectExit(await run(backup), 0);
    } finally {
      await e.exec(db, `INSERT INTO t (id, v) VALUES (9, 'back')`);
    }
    const [a, b] = (await readdir(dir)).filter((n) => n.startsWith('cluster_')).sort();
    await replaceMember(path.join(dir, a ?? ''), path.join(dir, b ?? ''), db);
    const r = await run(['--backup-dir', dir, 'drill', a ?? '', '--database', db]);
    expectExit(r, 1);
    expect(r.stderr).toContain(`table ${e.table}: 1000 rows at backup time, 999 restored`);
    expect(
      await leftBehind(whole.stdout + whole.stderr, one.stdout + one.stderr, r.stdout + r.stderr),
    ).toEqual([]);
    // The drill history lives inside the cluster backup.
    const history = JSON.parse(await readFile(path.join(dir, a ?? '', 'drills.json'), 'utf8')) as {
      drills: Array<{ outcome: string }>;
    };
    expect(history.drills.map((d) => d.outcome)).toEqual(['passed', 'passed', 'failed']);
  });
});
