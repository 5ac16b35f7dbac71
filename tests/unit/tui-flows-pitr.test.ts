import { afterEach, describe, expect, it } from 'vitest';
import { FakeServices, KEY, start } from './tui-fake.js';

/**
 * Flow tests of the point-in-time restore screen beyond PostgreSQL's basic flow (which
 * tui-flows-restore.test.ts drives): MariaDB from a physical backup and from a logical cluster
 * backup, --start with its port, byte progress, and a long plan whose refusals stay in sight.
 */

let cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups) c();
  cleanups = [];
});
function app(services = new FakeServices()) {
  const t = start(services);
  cleanups.push(() => t.ui.unmount());
  return { ...t, services };
}

const PITR = [...Array<string>(5).fill(KEY.down), KEY.enter];

function mariadb(): FakeServices {
  const s = new FakeServices();
  s.engine = 'mariadb';
  s.pitrArchive = '/srv/binlog-archive';
  return s;
}

describe('point-in-time restore, MariaDB', () => {
  it('a physical backup to a GTID, started on a port: plan, bytes with rate and ETA, the server started', async () => {
    const { until, press, type, services } = app(mariadb());
    await until('Quit');
    await press(...PITR);
    const form = await until('Binlog archive');
    expect(form).toContain('/srv/binlog-archive');
    await press(KEY.enter);
    const list = await until('phys_20261206_050000');
    expect(list).toContain('latest (the newest physical backup before the target)');
    expect(list).toMatch(/phys_20261206_050000 .*physical full .*valid/);
    expect(list).toMatch(/cluster_20261206_060000\/ .*logical cluster/);
    await press(KEY.down, KEY.enter);
    const options = await until('Recover to');
    expect(options).toContain('Physical backup: phys_20261206_050000');
    expect(options).not.toContain('Timeline');
    await press(KEY.right); // time → gtid
    await press(KEY.down);
    await type('0-1-1345');
    await press(KEY.down);
    await type('/srv/mdb-restore');
    await press(KEY.down, KEY.down, KEY.right); // past "Replace a non-empty dir"; start: yes
    await press(KEY.down);
    await type('3310');
    await press(KEY.enter);
    const plan = await until('now?');
    expect(plan).toContain('Restore into /srv/mdb-restore now? Then start it on port 3310.');
    expect(services.lastPitr).toMatchObject({
      archive: '/srv/binlog-archive',
      base: 'phys_20261206_050000',
      targetKind: 'gtid',
      targetValue: '0-1-1345',
      dataDir: '/srv/mdb-restore',
      force: false,
      start: true,
      port: '3310',
      clean: false,
    });
    expect(services.calls.some((c) => c.startsWith('runPitr'))).toBe(false);
    await press(KEY.enter);
    const running = await until('extracting phys_20261206_050000');
    expect(running).toContain('✓ Checked 2 binlog(s): every checksum matches');
    expect(running).toContain('0 B of 8.0 MiB');
    services.pitrBytes = 4 * 1024 * 1024;
    const half = await until('50%');
    expect(half).toMatch(/4\.0 MiB of 8\.0 MiB · [\d.]+ [KMG]?i?B\/s · ETA /);
    services.pitrGate.resolve();
    const done = await until('point-in-time restore: complete');
    expect(done).toContain('Restored phys_20261206_050000 into /srv/mdb-restore');
    expect(done).toContain('Server started on port 3310');
  });

  it('a logical cluster backup (--from-cluster): into the server, with --clean, no data directory asked', async () => {
    const { until, press, type, services } = app(mariadb());
    await until('Quit');
    await press(...PITR);
    await until('Binlog archive');
    await press(KEY.enter);
    await until('cluster_20261206_060000/');
    await press(KEY.down, KEY.down, KEY.enter);
    const options = await until('Recover to');
    expect(options).toMatch(/Backup: +\/srv\/backups\/cluster_20261206_060000/);
    expect(options).toContain('Drop and recreate');
    expect(options).not.toContain('Data directory');
    expect(options).not.toContain('Start the server');
    await press(KEY.down);
    await type('2026-12-06 07:00:00+00');
    await press(KEY.down, KEY.right, KEY.enter);
    const plan = await until('now?');
    expect(plan).toContain('Restore into the server 127.0.0.1:5432 now?');
    expect(services.lastPitr).toMatchObject({
      base: '/srv/backups/cluster_20261206_060000',
      targetKind: 'time',
      targetValue: '2026-12-06 07:00:00+00',
      clean: true,
      start: false,
      dataDir: '',
    });
  });
});

describe('point-in-time restore, PostgreSQL', () => {
  it('start the restored server: a toggle and its port, passed to the restore', async () => {
    const { until, press, type, services } = app();
    await until('Quit');
    await press(...PITR);
    await until('WAL archive');
    await press(KEY.enter);
    await until('base_20261206_050000');
    await press(KEY.down, KEY.enter);
    const options = await until('Recover to');
    expect(options).toContain('Start the server');
    expect(options).toContain('Port');
    await press(KEY.left); // time → end
    await press(KEY.down, KEY.down);
    await type('/srv/pg-restore');
    await press(...Array<string>(5).fill(KEY.down), KEY.right, KEY.down);
    await type('5499');
    await press(KEY.enter);
    const plan = await until('now?');
    expect(plan).toContain('Restore into /srv/pg-restore now? Then start it on port 5499.');
    expect(services.lastPitr).toMatchObject({ targetKind: 'end', start: true, port: '5499' });
    await press(KEY.enter);
    services.pitrGate.resolve();
    const done = await until('point-in-time restore: complete');
    expect(done).toContain('Server started on port 5499');
  });

  it('a plan longer than the screen scrolls; what refuses it stays in sight', async () => {
    const services = new FakeServices();
    services.pitrRefusals = ['/srv/pg-restore is not empty (3 entries)'];
    const long = services.previewPitr.bind(services);
    services.previewPitr = async (r) => {
      const p = await long(r);
      const config = Array.from({ length: 30 }, (_, n) => `             setting_${n} = ${n}`);
      return { ...p, lines: [...p.lines.slice(0, -1), ...config, ...p.lines.slice(-1)] };
    };
    const { until, press, type } = app(services);
    await until('Quit');
    await press(...PITR);
    await until('WAL archive');
    await press(KEY.enter);
    await until('latest (the newest');
    await press(KEY.enter);
    await until('Recover to');
    await press(KEY.down, KEY.down);
    await type('/srv/pg-restore');
    await press(KEY.enter);
    const first = await until('Refused: 1 reason');
    expect(first).toContain('REFUSED:   /srv/pg-restore is not empty');
    expect(first).toMatch(/… \d+ more line\(s\) of the plan/);
    expect(first).not.toContain('setting_29');
    expect(first.split('\n').length).toBeLessThanOrEqual(24);
    await press(...Array<string>(30).fill(KEY.down));
    const end = await until('setting_29');
    expect(end).toContain('REFUSED:   /srv/pg-restore is not empty');
    expect(end).not.toContain('Archive:');
  });
});
