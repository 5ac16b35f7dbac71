import { afterEach, describe, expect, it } from 'vitest';
import { FakeServices, KEY, SafetyError, entry, start } from './tui-fake.js';

/**
 * Flow tests of the cluster restore, point-in-time restore, key entry and resize: keys in, frames
 * out, against the services double (tui-fake.ts). The real calls are in tui-live.test.ts and the
 * terminal e2e.
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

const MENU = { restoreCluster: 4, pitr: 5, archive: 6 };
const open = (n: number): string[] => [...Array<string>(n).fill(KEY.down), KEY.enter];

describe('cluster restore flow', () => {
  it('lists cluster backups only, previews the plan, changes nothing before enter, then bars and the result', async () => {
    const { until, press, type, frame, services } = app();
    await until('Quit');
    await press(...open(MENU.restoreCluster));
    const pick = await until('cluster_20261201_050000');
    expect(pick).not.toContain('shop_20261201_050000.dump.zst');
    await press(KEY.enter);
    await until('Drop and replace existing');
    await press(KEY.down, KEY.right, KEY.down, KEY.backspace);
    await type('4');
    await press(KEY.down);
    await type('/keys/cluster.key');
    await press(KEY.enter);
    const preview = await until('now?');
    expect(preview).toContain('Nothing is changed until you press enter on this screen.');
    expect(preview).toContain('restore roles');
    expect(preview).toContain('Restore 2 databases (replacing shop) now?');
    expect(preview.replace(/\s*\n\s*/g, ' ')).toContain(
      'dbbackup restore cluster cluster_20261201_050000 --jobs 4 --clean-cluster --encryption-key-file /keys/cluster.key --confirm',
    );
    expect(services.lastClusterRestore).toMatchObject({
      key: 'cluster_20261201_050000/',
      cleanCluster: true,
      jobs: 4,
      keys: { file: '/keys/cluster.key', passphrase: '' },
    });
    expect(services.calls.some((c) => c.startsWith('runClusterRestore'))).toBe(false);
    await press(KEY.enter);
    const running = await until('1 of 2 databases');
    expect(running).toContain('checksums verified');
    expect(running).toMatch(/shop\s+█+\s+done/);
    expect(running).toContain('1 of 2 databases');
    services.clusterRestoreGate.resolve();
    const done = await until('Cluster restore complete');
    expect(done).toContain('2 databases on 127.0.0.1:5432');
    expect(frame()).toContain('12s');
    await press(KEY.enter);
    await until('Backup a database');
  });

  it('shows a check that refuses (databases in the way) in place with its hint; enter does nothing', async () => {
    const services = new FakeServices();
    services.clusterPreviewError = new SafetyError('These databases already exist on 127.0.0.1:5432: shop', {
      hint: 'Nothing was changed. Add --clean-cluster to drop and replace them.',
    });
    const { until, press } = app(services);
    await until('Quit');
    await press(...open(MENU.restoreCluster));
    await until('cluster_20261201_050000');
    await press(KEY.enter);
    await until('Drop and replace existing');
    await press(KEY.enter);
    const s = await until('already exist');
    expect(s).toContain('hint: Nothing was changed');
    expect(s).not.toMatch(/at .*\.js:\d+/);
    await press(KEY.enter, 'y');
    expect(services.calls.some((c) => c.startsWith('runClusterRestore'))).toBe(false);
    await press(KEY.esc);
    await until('Drop and replace existing');
  });

  it('r on a cluster backup in the archive manager opens the cluster restore', async () => {
    const { until, press } = app();
    await until('Quit');
    await press(...open(MENU.archive));
    await until('cluster_20261201_050000');
    await press(KEY.down, 'r');
    const options = await until('restore cluster: options');
    expect(options).toMatch(/Backup:\s+cluster_20261201_050000/);
  });
});

describe('point-in-time restore flow', () => {
  it('takes the archive from the configuration, lists its base backups, shows the dry-run plan, restores on enter', async () => {
    const { until, press, type, services } = app();
    await until('Quit');
    await press(...open(MENU.pitr));
    const form = await until('WAL archive');
    expect(form).toContain('/srv/wal-archive');
    expect(form).toContain('from the configuration: pitr.archive');
    await press(KEY.enter);
    const list = await until('base_20261206_050000');
    expect(list).toContain('latest (the newest base backup');
    expect(list).toMatch(/base_20261207_050000.*incomplete/);
    expect(services.calls).toContain('listBaseBackups /srv/wal-archive');
    await press(KEY.down, KEY.enter);
    await until('Recover to');
    await press(KEY.down);
    await type('2026-12-06 07:00:00+00');
    await press(KEY.down);
    await type('/srv/pg-restore');
    await press(KEY.enter);
    const plan = await until('now?');
    expect(plan).toContain('Coverage:  covered');
    expect(plan).toContain('Restore into /srv/pg-restore now?');
    expect(services.lastPitr).toMatchObject({
      archive: '/srv/wal-archive',
      base: 'base_20261206_050000',
      targetKind: 'time',
      targetValue: '2026-12-06 07:00:00+00',
      dataDir: '/srv/pg-restore',
      timeline: 'latest',
      action: 'promote',
      inclusive: true,
      force: false,
      start: false,
      port: '',
    });
    expect(services.calls.some((c) => c.startsWith('runPitr'))).toBe(false);
    await press(KEY.enter);
    await until('reading base_20261206_050000');
    services.pitrBytes = 2 * 1024 * 1024;
    const bar = await until('25%');
    expect(bar).toContain('2.0 MiB of 8.0 MiB');
    expect(bar).toMatch(/\/s · ETA /);
    services.pitrGate.resolve();
    const done = await until('point-in-time restore: complete');
    expect(done).toContain('Restored base_20261206_050000 into /srv/pg-restore');
    expect(done).toContain('pg_ctl start -D /srv/pg-restore');
  });

  it('a plan the archive does not cover is refused on the preview; enter restores nothing', async () => {
    const services = new FakeServices();
    services.pitrRefusals = ['the archive ends before 2026-12-09 00:00:00+00:00'];
    const { until, press, type } = app(services);
    await until('Quit');
    await press(...open(MENU.pitr));
    await until('WAL archive');
    await press(KEY.enter);
    await until('latest (the newest');
    await press(KEY.enter);
    await until('Recover to');
    await press(KEY.down);
    await type('2026-12-09 00:00:00+00');
    await press(KEY.down);
    await type('/srv/pg-restore');
    await press(KEY.enter);
    const s = await until('Refused: 1 reason');
    expect(s).toContain('REFUSED:   the archive ends before');
    expect(s).toContain('Nothing was changed');
    expect(s).not.toContain('enter/y restore');
    await press(KEY.enter, 'y');
    expect(services.calls.some((c) => c.startsWith('runPitr'))).toBe(false);
    await press(KEY.esc);
    await until('Recover to');
  });
});

describe('keys for encrypted backups', () => {
  it('a passphrase is typed masked, never shown, and reaches the backup', async () => {
    const { until, press, type, frame, services } = app();
    await until('Quit');
    await press(KEY.enter);
    await until('shop_archive');
    await press(KEY.enter);
    await until('Compression');
    await press(KEY.down, KEY.down, KEY.down, KEY.down);
    await type('s3cret-horse');
    const masked = await until('••••••••••••');
    expect(masked).not.toContain('s3cret');
    await press(KEY.enter);
    const confirm = await until('This will run:');
    expect(confirm).toContain('a passphrase (typed, not shown)');
    expect(confirm).not.toContain('s3cret');
    await press(KEY.enter);
    await until('dumped');
    expect(services.lastBackup?.keys).toEqual({ file: '', passphrase: 's3cret-horse' });
    expect(frame()).not.toContain('s3cret');
    services.backupGate.resolve();
    await until('Backup complete');
  });

  it('k in the archive manager gives the key a deep verify uses', async () => {
    const services = new FakeServices();
    services.archive = [entry('shop_20261201_050000.dump.zst', 'unverified')];
    const { until, press, type } = app(services);
    await until('Quit');
    await press(...open(MENU.archive));
    await until('shop_20261201_050000');
    await press('k');
    await until('key for encrypted backups');
    await type('/keys/shop.key');
    await press(KEY.enter);
    await until('key given for encrypted backups');
    await press('d');
    await until('1 verified (deep)');
    expect(services.verifyKeys).toEqual({ file: '/keys/shop.key', passphrase: '' });
  });
});

describe('resize', () => {
  it('lays the screen out again for a narrower terminal, and back', async () => {
    const { until, ui, frame } = app();
    await until('Quit');
    const width = (): number =>
      Math.max(
        ...frame()
          .split('\n')
          .map((l) => l.length),
      );
    expect(width()).toBeGreaterThan(70);
    const stdout = ui.stdout as unknown as NodeJS.EventEmitter & { columns: number };
    Object.defineProperty(stdout, 'columns', { value: 50, configurable: true });
    stdout.emit('resize');
    await until(() => width() <= 50);
    expect(frame()).toContain('Backup a database');
    Object.defineProperty(stdout, 'columns', { value: 120, configurable: true });
    stdout.emit('resize');
    await until(() => width() > 70);
    expect(width()).toBeLessThanOrEqual(80);
  });
});
