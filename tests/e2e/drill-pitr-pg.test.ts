/**
 * Drills of PostgreSQL base backups (issue 17): `drill … --archive` restores the base backup into a
 * scratch data directory, replays the WAL archive to its end on a scratch server, reads every
 * table back and records the RTO (drill history, list backups, metrics); an archive that lost a
 * WAL segment the replay needs fails the drill, naming the segment. Nothing is left behind.
 */
import { cp, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTextfile, valueOf } from '../harness/prom.js';
import { archiveDir, removePostgresDirs, startPitrServer, type PitrServer } from '../harness/pitr-server.js';
import { cliOk, createTable, rowCount, switchAndArchive, writeBatch } from './pitr-util.js';
import { leftovers, scratchParent } from './drill-pitr-util.js';
import { cli, expectExit, removeDir, tempDir } from './util.js';

let server: PitrServer;
let archive: string;
let work: string;
let tmp: string;
let base = '';
let rowsAtEnd = 0;
/** The segments archived after the base backup, oldest first. */
const after: string[] = [];

const drill = (args: string[]) =>
  cli(
    [
      '--audit-log',
      path.join(work, 'audit.jsonl'),
      '--metrics-file',
      path.join(work, 'drill.prom'),
      'drill',
      ...args,
    ],
    { env: { TMPDIR: tmp, DBBACKUP_LOCK_DIR: path.join(work, 'locks') }, timeoutMs: 300_000 },
  );

beforeAll(async () => {
  server = await startPitrServer();
  archive = await archiveDir();
  work = await tempDir('dbb-drill-pitr-');
  tmp = await scratchParent();
  await cliOk([...server.args(), 'pitr', 'enable', '--archive', archive]);
  await server.restart();
  await createTable(server);
  await writeBatch(server, 'before-base');
  const b = await cliOk([...server.args(), 'backup', 'base', '--json']);
  base = (JSON.parse(b.stdout) as { metadata: { name: string } }).metadata.name;
  // Several segments after the base backup: one can go missing in the middle.
  for (const batch of ['a', 'b', 'c']) {
    await writeBatch(server, batch);
    after.push(await switchAndArchive(server));
  }
  rowsAtEnd = await rowCount(server);
}, 240_000);

afterAll(async () => {
  await server?.stop();
  await removePostgresDirs();
  await removeDir(work);
  await removeDir(tmp);
});

describe('drill of a PostgreSQL base backup', () => {
  it("latest --archive: passes, every row of the archive's end read back, RTO in the drill history, list backups and the metrics; no scratch directory or server left", async () => {
    const before = Date.now() / 1000;
    const r = await drill(['latest', '--archive', archive]);
    expectExit(r, 0);
    expect(r.stdout).toMatch(
      /Drill passed: .*base\/base_\S+\/ restores to the end of its archive and reads back whole\. RTO \(restore and recovery\) \d+\.\d s, whole drill \d+\.\d s\./,
    );
    // The table's rows at the archive's end, counted on the scratch server by a full scan.
    expect(r.stdout).toMatch(new RegExp(`postgres: \\d+ tables read end to end \\((\\d+) rows\\)`));
    const counted = await rowsOf(['--json', 'latest', '--archive', archive]);
    expect(counted['public.t']).toBe(rowsAtEnd);
    expect(r.stdout).toMatch(/amcheck: \d+ tables' pages and TOAST, \d+ B-tree indexes/);
    expect(r.stdout).toMatch(/scratch: scratch server stopped, .*dbbackup-drill-\S+ removed/);
    expect(await leftovers(tmp)).toEqual({ entries: [], processes: [] });

    const history = JSON.parse(await readFile(path.join(archive, 'base', base, 'drills.json'), 'utf8')) as {
      drills: Array<{ outcome: string; restoreSeconds: number; checked: Record<string, number> }>;
    };
    expect(history.drills.at(-1)?.outcome).toBe('passed');
    expect(history.drills.at(-1)?.restoreSeconds).toBeGreaterThan(0);
    expect(history.drills.at(-1)?.checked.rows).toBeGreaterThanOrEqual(rowsAtEnd);

    const listed = await cli(['--backup-dir', archive, 'list', 'backups']);
    expectExit(listed, 0);
    expect(listed.stdout).toMatch(
      new RegExp(`base/${base}/ .*\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d \\(RTO \\d+\\.\\d s\\)`),
    );

    const series = parseTextfile(await readFile(path.join(work, 'drill.prom'), 'utf8'));
    expect(valueOf(series, 'dbbackup_drill_last_status', { database: '*' })).toBe(1);
    expect(valueOf(series, 'dbbackup_drill_restore_seconds', { database: '*' })).toBeGreaterThan(0);
    expect(
      valueOf(series, 'dbbackup_drill_last_success_timestamp_seconds', { database: '*' }),
    ).toBeGreaterThanOrEqual(Math.floor(before));
  });

  it('an archive that lost a WAL segment after the base backup: the drill fails naming the segment, and records the failure', async () => {
    const damaged = path.join(work, 'damaged-archive');
    await cp(archive, damaged, { recursive: true });
    await rm(path.join(damaged, 'base', base, 'drills.json'), { force: true });
    const lost = after[0] ?? '';
    const dir = path.join(damaged, 'wal', lost.slice(0, 16));
    const key = (await readdir(dir)).find((n) => n.startsWith(`${lost}-`));
    expect(key).toBeDefined();
    await rm(path.join(dir, key ?? ''));
    const r = await drill([base, '--archive', damaged]);
    expectExit(r, 1);
    expect(r.stderr).toMatch(new RegExp(`Drill failed: .*${lost} is missing`));
    expect(await leftovers(tmp)).toEqual({ entries: [], processes: [] });
    const history = JSON.parse(await readFile(path.join(damaged, 'base', base, 'drills.json'), 'utf8')) as {
      drills: Array<{ outcome: string; differences: string[] }>;
    };
    expect(history.drills.at(-1)?.outcome).toBe('failed');
    expect(history.drills.at(-1)?.differences.join('\n')).toContain(lost);
  });
});

/** The rows the drill counted per table of database postgres, from its JSON report. */
async function rowsOf(args: string[]): Promise<Record<string, number>> {
  const r = await drill(args);
  expectExit(r, 0);
  const json = JSON.parse(r.stdout) as { tables?: Record<string, Record<string, number>> };
  return json.tables?.postgres ?? {};
}
