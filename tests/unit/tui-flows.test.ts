import { afterEach, describe, expect, it } from 'vitest';
import { FakeServices, KEY, SafetyError, entry, start } from './tui-fake.js';

/** Flow tests of every screen: keys in, frames out, against the services double (tui-fake.ts). */

let cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups) c();
  cleanups = [];
});
function app(services = new FakeServices(), color = false) {
  const t = start(services, color);
  cleanups.push(() => t.ui.unmount());
  return { ...t, services };
}

describe('main menu', () => {
  it('lists every flow with a key legend, fits 80 columns, and opens and leaves screens', async () => {
    const { until, press, frame } = app();
    const menu = await until('Quit');
    for (const item of [
      'Backup a database',
      'Backup the cluster',
      'Backup a sample',
      'Restore a database',
      'Restore a cluster backup',
      'Point-in-time restore',
      'Archive manager',
      'Status',
      'Settings',
      'History',
      'Switch engine',
    ])
      expect(menu).toContain(item);
    expect(menu).toContain('↑/↓ move · enter choose · q quit');
    expect(Math.max(...menu.split('\n').map((l) => l.length))).toBeLessThanOrEqual(80);
    expect(menu.split('\n').length).toBeLessThanOrEqual(24);
    await press(...Array<string>(7).fill(KEY.down), KEY.enter);
    await until('pg_restore');
    expect(frame()).toContain('MISSING');
    await press(KEY.esc);
    await until('Backup a database');
  });

  it('switches the engine', async () => {
    const { until, press, services } = app();
    await until('Quit');
    await press(...Array<string>(10).fill(KEY.down), KEY.enter);
    await until('MariaDB');
    await press(KEY.down, KEY.down, KEY.enter);
    await until('mariadb @ 127.0.0.1:5432');
    expect(services.calls).toContain('switchEngine mariadb');
  });

  it('q quits at once when nothing runs', async () => {
    const { until, press, exits } = app();
    await until('Quit');
    await press(KEY.down, KEY.down, KEY.down, KEY.down, KEY.enter);
    await until('restore cluster: choose a cluster backup');
    await press(KEY.esc);
    await until('Backup a database');
    await press('q');
    expect(exits).toEqual([false]);
  });
});

describe('backup flow', () => {
  it('filters the databases as typed, shows what will run, real progress, then the result', async () => {
    const { until, press, type, frame, services } = app();
    await until('Quit');
    await press(KEY.enter);
    await until('shop_archive');
    expect(frame()).toContain('5.0 MiB');
    await type('arch');
    const filtered = await until(/filter: arch/);
    expect(filtered).toContain('shop_archive');
    expect(filtered).not.toMatch(/› shop\s/);
    expect(filtered).not.toContain('analytics');
    await press(KEY.enter);
    await until('Compression');
    // gzip, level 9, into another directory
    await press(KEY.right, KEY.down, KEY.backspace);
    await type('9');
    await press(KEY.down);
    await type('/tmp/elsewhere');
    await press(KEY.enter);
    const confirm = await until('This will run:');
    expect(confirm.replace(/\s*\n\s*/g, ' ')).toContain(
      'dbbackup --db-type postgres --compression-algo gzip --compression 9 backup single shop_archive --backup-dir /tmp/elsewhere',
    );
    expect(services.calls).not.toContain('backupSingle shop_archive');
    await press(KEY.enter);
    services.counters.produced = 5 * 1024 * 1024;
    services.counters.stored = 1024 * 1024;
    const running = await until('5.0 MiB dumped, 1.0 MiB stored');
    expect(running).toContain('50%');
    expect(services.lastBackup).toMatchObject({ database: 'shop_archive', compression: 'gzip', level: 9 });
    services.backupGate.resolve();
    const done = await until('Backup complete');
    expect(done).toContain('/srv/backups/shop_archive_20261207_120000.dump.zst');
    expect(done).toContain('ab'.repeat(32));
    expect(done).toContain('1.2 MiB');
  });

  it('an invalid level is refused on the confirmation screen, nothing runs', async () => {
    const { until, press, type, services } = app();
    await until('Quit');
    await press(KEY.enter);
    await until('analytics');
    await press(KEY.enter);
    await until('Compression');
    await press(KEY.down, KEY.backspace);
    await type('42');
    await press(KEY.enter);
    await until(/error: .*42/);
    await press(KEY.enter);
    expect(services.calls.some((c) => c.startsWith('backupSingle'))).toBe(false);
  });

  it('quit while the backup runs asks first, then stops it and waits before exiting', async () => {
    const { until, press, exits, services } = app();
    await until('Quit');
    await press(KEY.enter);
    await until('analytics');
    await press(KEY.enter);
    await until('Compression');
    await press(KEY.enter);
    await until('This will run:');
    await press(KEY.enter);
    await until('dumped');
    await press('q');
    await until('Stop it and quit? (y/n)');
    await press('n');
    expect(services.backupSignal?.aborted).toBe(false);
    await press(KEY.ctrlC);
    await until('Stop it and quit? (y/n)');
    await press('y');
    await until('Stopping the operation');
    await new Promise((r) => setTimeout(r, 50));
    expect(services.backupSignal?.aborted).toBe(true);
    expect(exits).toEqual([true]);
  });
});

describe('sample backup flow', () => {
  it('sets the sample, shows the command, reports what it does, then the result', async () => {
    const { until, press, type, services } = app();
    await until('Quit');
    await press(KEY.down, KEY.down, KEY.enter);
    await until('sample: choose a database');
    await until('filter:');
    await type('shop_');
    await press(KEY.enter);
    await until('Keep referenced rows');
    await press(KEY.right, KEY.down, KEY.backspace, KEY.backspace);
    await type('5');
    await press(KEY.down, KEY.right, KEY.enter);
    const confirm = await until('This will run:');
    expect(confirm.replace(/\s*\n\s*/g, ' ')).toContain(
      'backup sample shop_archive --sample-strategy percent --sample-value 5 --no-keep-references',
    );
    await press(KEY.enter);
    await until('sampling 3 tables');
    expect(services.lastBackup?.sample).toEqual({ strategy: 'percent', value: 5, keepReferences: false });
    services.backupGate.resolve();
    const done = await until('Backup complete');
    expect(done).toContain('shop_archive_20261207_120000.sample.sql.zst');
  });

  it('refuses a percentage above 100 before anything runs', async () => {
    const { until, press, type, services } = app();
    await until('Quit');
    await press(KEY.down, KEY.down, KEY.enter);
    await until('filter:');
    await press(KEY.enter);
    await until('Keep referenced rows');
    await press(KEY.right, KEY.down, KEY.backspace, KEY.backspace);
    await type('150');
    await press(KEY.enter);
    await until('a percentage cannot exceed 100');
    await press(KEY.enter);
    expect(services.calls.some((c) => c.startsWith('backupSample'))).toBe(false);
  });
});

describe('cluster backup flow', () => {
  it('shows the command, a bar per database, and the manifest at the end', async () => {
    const { until, press, type, services } = app();
    await until('Quit');
    await press(KEY.down, KEY.enter);
    await until('Only databases');
    await press(KEY.down, KEY.down, KEY.down);
    await type('tmp_*');
    await press(KEY.enter);
    const confirm = await until('This will run:');
    expect(confirm.replace(/\s*\n\s*/g, ' ')).toContain(
      'backup cluster --cluster-parallelism 2 --exclude-database tmp_*',
    );
    expect(services.calls).not.toContain('backupCluster');
    await press(KEY.enter);
    const running = await until('1 of 2 databases');
    expect(running).toMatch(/shop\s+█{20} done/);
    expect(running).toMatch(/analytics\s+█{10}░{10} dumping\s+4\.0 KiB/);
    expect(services.lastCluster).toMatchObject({ exclude: ['tmp_*'], include: [] });
    services.clusterGate.resolve();
    const done = await until('Cluster backup complete');
    expect(done).toContain('cluster_20261207_120000');
    expect(done).toContain('2 of 2');
    expect(done).toContain('1m15s');
  });
});

describe('archive manager', () => {
  it('verifies one and all, showing corrupt; shows info', async () => {
    const services = new FakeServices();
    services.archive = [
      entry('shop_20261201_050000.dump.zst', 'unverified'),
      entry('shop_20261202_050000.dump.zst', 'unverified'),
    ];
    services.verdicts.set('shop_20261202_050000.dump.zst', 'corrupt');
    const { until, press } = app(services);
    await until('Quit');
    await press(...Array<string>(6).fill(KEY.down), KEY.enter);
    await until('shop_20261202_050000.dump.zst');
    await press(KEY.down, 'v');
    const one = await until(/corrupt/);
    expect(one).toContain('checksum mismatch');
    expect(one).toContain('1 verified: 0 valid, 1 not valid');
    await press('a');
    await until('2 verified: 1 valid, 1 not valid');
    await press('d');
    await until('1 verified (deep)');
    expect(services.calls).toContain('verify shop_20261202_050000.dump.zst deep');
    await press('i');
    await until('cd'.repeat(32));
    await press(KEY.esc);
    await until('v/d/a verify');
  });

  it('deletes only after the name is typed, a cluster as one unit', async () => {
    const { until, press, type, services, frame } = app();
    await until('Quit');
    await press(...Array<string>(6).fill(KEY.down), KEY.enter);
    await until('cluster_20261201_050000');
    await press(KEY.down, 'x');
    await until('the whole cluster backup');
    await type('cluster_2026');
    await press(KEY.enter);
    await until('does not match');
    expect(services.calls.some((c) => c.startsWith('delete'))).toBe(false);
    await type('1201_050000');
    await press(KEY.enter);
    await until('Deleted cluster_20261201_050000: 3 files removed');
    expect(services.calls).toContain('delete cluster_20261201_050000/');
    expect(frame()).not.toContain('› cluster_');
  });
});

describe('restore flow', () => {
  it('previews the plan with nothing changed until enter on the preview', async () => {
    const { until, press, type, services } = app();
    await until('Quit');
    await press(KEY.down, KEY.down, KEY.down, KEY.enter);
    await until('choose a backup');
    await type('shop');
    await press(KEY.enter);
    await until('Target database');
    await type('shop_copy');
    await press(KEY.enter);
    const preview = await until('Restore into "shop_copy" now?');
    expect(preview).toContain('Checksum:  to verify');
    expect(services.calls.some((c) => c.startsWith('runRestore'))).toBe(false);
    await press(KEY.enter);
    await until('50% · 1.0 KiB of 2.0 KiB');
    services.restoreGate.resolve();
    const done = await until('Restore complete');
    expect(done).toContain('shop_copy');
  });

  it('shows a safety check that fails in place, with its hint, and changes nothing', async () => {
    const services = new FakeServices();
    services.previewError = new SafetyError(
      'Target database "shop" already exists and is not empty (3 objects)',
      {
        hint: 'Add --clean to drop and recreate it, or choose another --target.',
      },
    );
    const { until, press } = app(services);
    await until('Quit');
    await press(...Array<string>(6).fill(KEY.down), KEY.enter);
    await until('shop_20261201');
    await press('r');
    await until('Target database');
    await press(KEY.enter);
    const f = await until('already exists and is not empty');
    expect(f).toContain('hint: Add --clean');
    expect(f).not.toContain('at ');
    await press(KEY.enter);
    expect(services.calls.some((c) => c.startsWith('runRestore'))).toBe(false);
    await press(KEY.esc);
    await until('Target database');
  });
});

describe('status, history and settings', () => {
  it('history lists the audit records, newest first, with the failure detail', async () => {
    const services = new FakeServices();
    const base = {
      v: 1,
      started: '',
      kind: '',
      exitCode: 0,
      dryRun: false,
      user: 'u',
      host: 'h',
      pid: 1,
      version: '0',
    };
    services.records = [
      {
        ...base,
        id: '2',
        time: '2026-12-07T10:00:00Z',
        durationSeconds: 2,
        command: 'restore single',
        outcome: 'failure',
        database: 'shop',
        error: 'target exists',
      },
      {
        ...base,
        id: '1',
        time: '2026-12-06T10:00:00Z',
        durationSeconds: 65,
        command: 'backup single',
        outcome: 'success',
        database: 'shop',
        bytes: 4096,
      },
    ] as typeof services.records;
    const { until, press, frame } = app(services);
    await until('Quit');
    await press(...Array<string>(9).fill(KEY.down), KEY.enter);
    await until('audit.jsonl');
    const f = frame();
    expect(f.indexOf('restore single')).toBeLessThan(f.indexOf('backup single'));
    expect(f).toContain('1m05s');
    expect(f).toContain('target exists');
  });

  it('settings show the file, never a secret, and save an edit', async () => {
    const { until, press, type, services, frame } = app();
    await until('Quit');
    await press(...Array<string>(8).fill(KEY.down), KEY.enter);
    await until('config.toml');
    expect(frame()).toContain('(set, hidden)');
    await press(KEY.enter);
    await until('connection.host:');
    await type('2');
    await press(KEY.enter);
    await until('connection.host saved to /home/u/.config/dbbackup/config.toml');
    expect(services.saved).toEqual([['connection.host', 'db12']]);
    await press(KEY.down, KEY.enter);
    await until('not shown while typed');
    await type('hunter2');
    expect(frame()).not.toContain('hunter2');
    expect(frame()).toContain('7 characters');
    await press(KEY.enter);
    await until('connection.password saved');
    expect(services.saved[1]).toEqual(['connection.password', 'hunter2']);
  });
});

describe('a screen that fails', () => {
  it('shows the error in place, without a stack trace, and esc goes back', async () => {
    const services = new FakeServices();
    services.status = () => {
      throw new TypeError('status exploded');
    };
    const { until, press, frame } = app(services);
    await until('Quit');
    await press(...Array<string>(7).fill(KEY.down), KEY.enter);
    const f = await until('status exploded');
    expect(f).toContain('hint: this looks like a bug');
    expect(f).not.toMatch(/\bat .*\.(ts|js):\d+/);
    await press(KEY.esc);
    await until('Backup a database');
    expect(frame()).not.toContain('status exploded');
  });
});
