import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, expectExit, listDir, removeDir, tempDir } from './util.js';

/**
 * `dbbackup schedule` installs into, lists from and removes from the system's scheduler for real —
 * here a unit directory, a systemctl stand-in that records its calls, and a crontab file in a
 * temporary directory (this machine runs no systemd and may lack crontab).
 */

let work: string;
let env: Record<string, string>;

beforeAll(async () => {
  work = await tempDir('dbb-schedule-');
  const systemctl = path.join(work, 'systemctl');
  await writeFile(systemctl, `#!/bin/sh\necho "$@" >> ${path.join(work, 'systemctl.log')}\n`, {
    mode: 0o755,
  });
  env = {
    DBBACKUP_SYSTEMD_UNIT_DIR: path.join(work, 'units'),
    DBBACKUP_SYSTEMCTL: systemctl,
    DBBACKUP_CRONTAB_FILE: path.join(work, 'crontab'),
    DBBACKUP_LOCK_DIR: path.join(work, 'locks'),
  };
});
afterAll(() => removeDir(work));

describe('schedule', () => {
  it('schedule add nightly-drill --cron "0 5 * * *" -- drill latest (systemd): units written and enabled; list shows the next run; remove uninstalls', async () => {
    const dry = await cli(
      [
        'schedule',
        'add',
        'nightly-drill',
        '--cron',
        '0 5 * * *',
        '--method',
        'systemd',
        '--dry-run',
        '--',
        'drill',
        'latest',
      ],
      { env },
    );
    expectExit(dry, 0);
    expect(dry.stdout).toContain('OnCalendar=*-*-* 05:00:00');
    expect(dry.stdout).toContain('Persistent=true');
    expect(await listDir(path.join(work, 'units'))).toEqual([]);

    const add = await cli(
      [
        'schedule',
        'add',
        'nightly-drill',
        '--cron',
        '0 5 * * *',
        '--method',
        'systemd',
        '--',
        'drill',
        'latest',
      ],
      { env },
    );
    expectExit(add, 0);
    expect(await listDir(path.join(work, 'units'))).toEqual([
      'dbbackup-nightly-drill.service',
      'dbbackup-nightly-drill.timer',
    ]);
    const service = await readFile(path.join(work, 'units', 'dbbackup-nightly-drill.service'), 'utf8');
    expect(service).toMatch(/^ExecStart="[^"]+node" "[^"]+bin\/dbbackup\.js" "drill" "latest"$/m);
    expect(service).toContain('Environment="DBBACKUP_SCHEDULE=nightly-drill"');
    expect(await readFile(path.join(work, 'systemctl.log'), 'utf8')).toBe(
      'daemon-reload\nenable --now dbbackup-nightly-drill.timer\n',
    );

    const again = await cli(
      [
        'schedule',
        'add',
        'nightly-drill',
        '--cron',
        '0 6 * * *',
        '--method',
        'systemd',
        '--',
        'drill',
        'latest',
      ],
      { env },
    );
    expectExit(again, 2);

    const list = await cli(['schedule', 'list', '--json'], { env });
    expectExit(list, 0);
    const [job] = JSON.parse(list.stdout) as Array<{
      name: string;
      method: string;
      next: string;
      last: unknown;
    }>;
    expect(job?.name).toBe('nightly-drill');
    expect(job?.method).toBe('systemd');
    const next = new Date(job?.next ?? '');
    expect(next.getTime()).toBeGreaterThan(Date.now());
    expect(next.getTime() - Date.now()).toBeLessThanOrEqual(24 * 3600 * 1000);
    expect([next.getHours(), next.getMinutes()]).toEqual([5, 0]);

    const removed = await cli(['schedule', 'remove', 'nightly-drill'], { env });
    expectExit(removed, 0);
    expect(await listDir(path.join(work, 'units'))).toEqual([]);
    expect(await readFile(path.join(work, 'systemctl.log'), 'utf8')).toContain(
      'disable --now dbbackup-nightly-drill.timer\ndaemon-reload\n',
    );
  });

  it('cron: add writes the entry beside the others, a run under the schedule shows as its last result, remove leaves the others byte for byte', async () => {
    const others = '# mine\n0 1 * * * /usr/local/bin/something\n';
    await writeFile(env.DBBACKUP_CRONTAB_FILE ?? '', others);
    const audit = path.join(work, 'audit.jsonl');
    const args = ['--audit-log', audit, 'verify-backup', path.join(work, 'nothing-here.dump')];
    const add = await cli(
      ['schedule', 'add', 'check', '--cron', '@hourly', '--method', 'cron', '--', ...args],
      { env },
    );
    expectExit(add, 0);
    const crontab = await readFile(env.DBBACKUP_CRONTAB_FILE ?? '', 'utf8');
    expect(crontab.startsWith(others)).toBe(true);
    expect(crontab).toMatch(/^0 \* \* \* \* DBBACKUP_SCHEDULE='check' /m);

    // The job as cron would run it: its environment names the schedule.
    await cli(args, { env: { ...env, DBBACKUP_SCHEDULE: 'check' } });
    const list = await cli(['schedule', 'list'], { env });
    expectExit(list, 0);
    expect(list.stdout).toMatch(/check\s+cron\s+@hourly\s+.+\s+failure \d{4}-\d\d-\d\d \d\d:\d\d: /);

    expectExit(await cli(['schedule', 'remove', 'check'], { env }), 0);
    expect(await readFile(env.DBBACKUP_CRONTAB_FILE ?? '', 'utf8')).toBe(others);
  });

  it('secrets in the job’s arguments are refused (they would be written in clear), exit 2', async () => {
    const r = await cli(
      [
        'schedule',
        'add',
        'x',
        '--cron',
        '@daily',
        '--method',
        'cron',
        '--',
        '--password',
        'hunter2',
        'backup',
        'cluster',
      ],
      { env },
    );
    expectExit(r, 2);
    expect(r.stderr).toContain('--password would be written in clear');
  });
});
