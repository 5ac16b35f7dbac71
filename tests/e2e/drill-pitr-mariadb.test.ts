/**
 * Drills of MariaDB physical backups (issue 17): `drill … --archive` on a binlog archive restores
 * the newest physical backup with its incremental chain into a scratch data directory, replays the
 * archived binlogs to the archive's end, starts a scratch mariadbd, checks and counts every table
 * and records the RTO; an archive that lost a binlog the replay needs fails the drill, naming it.
 * Nothing is left behind.
 */
import { cp, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBinlogServer, type BinlogServer } from '../harness/binlog-server.js';
import { cliOk, seedShop, writeBatch } from './mariadb-pitr-util.js';
import { leftovers, scratchParent } from './drill-pitr-util.js';
import { cli, expectExit, removeDir, tempDir, uniqueName } from './util.js';

let server: BinlogServer;
let archive: string;
let work: string;
let tmp: string;
let incremental = '';
const db = uniqueName('drillshop');
const atEnd: Record<string, number> = {};
/** Binlogs closed after the incremental backup, oldest first. */
const after: string[] = [];

const drill = (args: string[]) =>
  cli(['--metrics-file', path.join(work, 'drill.prom'), 'drill', ...args], {
    env: { TMPDIR: tmp, DBBACKUP_LOCK_DIR: path.join(work, 'locks') },
    timeoutMs: 300_000,
  });

beforeAll(async () => {
  server = await startBinlogServer(11);
  archive = await tempDir('dbb-drill-binlog-');
  work = await tempDir('dbb-drill-mdb-');
  tmp = await scratchParent();
  await seedShop(server, db);
  await cliOk([...server.args(), 'binlog', 'archive', '--archive', archive, '--flush']);
  await cliOk([...server.args(), 'backup', 'physical', '--archive', archive]);
  await writeBatch(server, db, 'w1');
  const inc = await cliOk([
    ...server.args(),
    'backup',
    'physical',
    '--incremental',
    '--archive',
    archive,
    '--json',
  ]);
  incremental = (JSON.parse(inc.stdout) as { metadata: { name: string } }).metadata.name;
  for (const tag of ['w2', 'w3', 'w4']) {
    await writeBatch(server, db, tag);
    const [cur] = await server.query<{ File: string }>('SHOW MASTER STATUS');
    after.push(cur?.File ?? '');
    await cliOk([...server.args(), 'binlog', 'archive', '--archive', archive, '--flush']);
  }
  for (const t of ['customers', 'orders']) {
    const [row] = await server.query<{ n: number }>(`SELECT COUNT(*) AS n FROM \`${db}\`.${t}`);
    atEnd[t] = Number(row?.n);
  }
}, 300_000);

afterAll(async () => {
  await server?.stop();
  await removeDir(archive);
  await removeDir(work);
  await removeDir(tmp);
});

describe('drill of a MariaDB physical backup', () => {
  it('latest --archive: the incremental chain restored, binlogs replayed to the end, every table checked with the rows of the end; RTO recorded; nothing left', async () => {
    const r = await drill(['latest', '--archive', archive, '--json']);
    expectExit(r, 0);
    const out = JSON.parse(r.stdout) as {
      backup: string;
      outcome: string;
      restoreSeconds: number;
      tables: Record<string, Record<string, number>>;
      checks: string[];
      scratch: string;
    };
    expect(out.backup).toMatch(new RegExp(`physical/${incremental}/$`));
    expect(out.outcome).toBe('passed');
    expect(out.restoreSeconds).toBeGreaterThan(0);
    expect(out.tables[db]).toEqual(atEnd);
    expect(out.checks.join('\n')).toMatch(
      new RegExp(`${db}: 2 tables checked \\(CHECK TABLE\\) and counted`),
    );
    expect(out.scratch).toMatch(/^scratch server stopped, .*dbbackup-drill-\S+ removed$/);
    expect(await leftovers(tmp)).toEqual({ entries: [], processes: [] });

    const listed = await cli(['--backup-dir', archive, 'list', 'backups']);
    expectExit(listed, 0);
    expect(listed.stdout).toMatch(
      new RegExp(`physical/${incremental}/ .*\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d \\(RTO \\d+\\.\\d s\\)`),
    );
  });

  it('an archive that lost a binlog after the backup: the drill fails naming it, nothing left', async () => {
    const damaged = path.join(work, 'damaged-archive');
    await cp(archive, damaged, { recursive: true });
    const lost = after[1] ?? '';
    const dir = path.join(damaged, 'binlog');
    const gone = (await readdir(dir)).filter((n) => n.startsWith(`${lost}-`) || n.startsWith(`${lost}.`));
    expect(gone.length).toBeGreaterThan(0);
    for (const n of gone) await rm(path.join(dir, n));
    const r = await drill(['latest', '--archive', damaged]);
    expectExit(r, 1);
    expect(r.stderr).toMatch(new RegExp(`Drill failed: .*${lost.replaceAll('.', '\\.')}`));
    expect(await leftovers(tmp)).toEqual({ entries: [], processes: [] });
    const history = JSON.parse(
      await readFile(path.join(damaged, 'physical', incremental, 'drills.json'), 'utf8'),
    ) as { drills: Array<{ outcome: string }> };
    expect(history.drills.map((d) => d.outcome)).toEqual(['passed', 'failed']);
  });
});
