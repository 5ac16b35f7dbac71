/**
 * Point-in-time recovery end to end on a directory archive, with a real PostgreSQL 15 archiving
 * through `dbbackup wal push` and recovering through `dbbackup wal fetch`: enable, base backup,
 * writes with known commit times, a restore to each kind of target into a new data directory
 * (started, rows compared with what was committed at the target), a second PITR along the new
 * timeline, and retention.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  archiveDir,
  postgresDir,
  removePostgresDirs,
  startPitrServer,
  type PitrServer,
} from '../harness/pitr-server.js';
import {
  cliOk,
  createTable,
  markTime,
  restoreAndStart,
  rowCount,
  rowsCommittedBy,
  switchAndArchive,
  writeBatch,
  type Restored,
} from './pitr-util.js';
import { cli } from './util.js';
import { parseTextfile, valueOf } from '../harness/prom.js';

let server: PitrServer;
let archive: string;
/** The source's log directory: its logging collector writes there (as production's would). */
let sourceLogs: string;
const marks: {
  base?: string;
  atBase?: number;
  time?: string;
  rowsAtTime?: number;
  lsn?: string;
  rowsAtLsn?: number;
  xid?: string;
  rowsAtXid?: number;
  rowsAtName?: number;
  rowsAtEnd?: number;
} = {};
const restored: Restored[] = [];

beforeAll(async () => {
  // Production-like: a logging collector into an absolute log directory; the socket in the
  // source's own directory (startPitrServer). A restored copy carries both in its postgresql.conf.
  sourceLogs = await postgresDir('dbb-srclogs-');
  server = await startPitrServer(['logging_collector = on', `log_directory = '${sourceLogs}'`]);
  archive = await archiveDir();
  const enable = await cliOk([...server.args(), 'pitr', 'enable', '--archive', archive]);
  expect(enable.stdout).toMatch(/Restart needed: archive_mode/);
  await server.restart();
  await createTable(server);
  await writeBatch(server, 'before-base');
  marks.atBase = await rowCount(server);
  const base = await cliOk([...server.args(), 'backup', 'base', '--json']);
  marks.base = (JSON.parse(base.stdout) as { metadata: { name: string } }).metadata.name;

  await writeBatch(server, 'a');
  marks.time = await markTime(server);
  await writeBatch(server, 'b');
  const [lsn] = await server.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l');
  marks.lsn = lsn?.l;
  marks.rowsAtLsn = await rowCount(server);
  await writeBatch(server, 'c');
  // A transaction whose id is the xid target.
  const [x] = await server.query<{ x: string }>(
    "WITH i AS (INSERT INTO t (batch, v) SELECT 'x', md5(g::text) FROM generate_series(1, 250) g) SELECT txid_current()::text AS x",
  );
  marks.xid = x?.x;
  marks.rowsAtXid = await rowCount(server);
  await writeBatch(server, 'd');
  await server.query("SELECT pg_create_restore_point('before_e')");
  marks.rowsAtName = await rowCount(server);
  await writeBatch(server, 'e');
  marks.rowsAtEnd = await rowCount(server);
  marks.rowsAtTime = await rowsCommittedBy(server, marks.time ?? '');
  await switchAndArchive(server);
}, 240_000);

afterAll(async () => {
  for (const r of restored) await r.stop().catch(() => undefined);
  await server?.stop();
  await removePostgresDirs();
});

async function restoreTo(target: string[], extra: string[] = []): Promise<Restored> {
  const r = await restoreAndStart(['latest', '--archive', archive, ...target, ...extra]);
  restored.push(r);
  if (r.result.code !== 0)
    throw new Error(`restore failed (${r.result.code}):\n${r.result.stdout}\n${r.result.stderr}`);
  return r;
}

describe('PITR into a directory archive', () => {
  it('pitr status reports archiving working and the base backup restorable; --metrics-file publishes the archive lag', async () => {
    const metrics = path.join(archive, '..', `pitr-${process.pid}.prom`);
    const before = Date.now() / 1000;
    const r = await cliOk([...server.args(), '--metrics-file', metrics, 'pitr', 'status']);
    expect(r.stdout).toMatch(/archive_command is dbbackup's/);
    expect(r.stdout).toMatch(new RegExp(`Window: +${marks.base}: from `));
    expect(r.stdout).toMatch(/OK: +archiving works/);
    const series = parseTextfile(await readFile(metrics, 'utf8'));
    expect(valueOf(series, 'dbbackup_pitr_archive_healthy', {})).toBe(1);
    const archived = valueOf(series, 'dbbackup_pitr_last_archived_timestamp_seconds', {}) ?? 0;
    expect(archived).toBeGreaterThan(before - 3600);
    expect(archived).toBeLessThanOrEqual(Date.now() / 1000);
    const lag = valueOf(series, 'dbbackup_pitr_archive_lag_seconds', {}) ?? -1;
    expect(lag).toBeGreaterThanOrEqual(0);
    expect(lag).toBeLessThan(3600);
    expect(valueOf(series, 'dbbackup_last_status', { kind: 'pitr_status' })).toBe(1);
  });

  it('restore pitr --target-time brings back exactly the rows committed by that moment', async () => {
    expect(marks.rowsAtTime).toBeGreaterThan(marks.atBase ?? 0);
    expect(marks.rowsAtTime).toBeLessThan(marks.rowsAtEnd ?? 0);
    const r = await restoreTo(['--target-time', marks.time ?? '', '--progress']);
    expect(r.result.stdout).toMatch(
      /Server promoted on port \d+ after .*recovery stopping before commit of transaction/,
    );
    // --progress (lines: stderr is a pipe here): the base backup read from the archive, to its end.
    expect(r.result.stderr).toMatch(/restore pitr: reading base_\d{8}_\d{6}: [\d.]+ [KMG]iB\n/);
    expect(r.result.stderr).toMatch(/restore pitr: reading base_\d{8}_\d{6}: done in /);
    expect(await r.rows()).toBe(marks.rowsAtTime);
    // A drill: the restored server does not archive (its new timeline stays out of the archive).
    const [mode] = await r.query<{ m: string }>("SELECT current_setting('archive_mode') AS m");
    expect(mode?.m).toBe('off');
    await r.stop();
  });

  it("restore pitr --start keeps the copy out of the source's socket and log directories, and says where its socket is", async () => {
    const r = await restoreTo(['--target-time', marks.time ?? '']);
    const socketDir = /^Socket: +(\S+) /m.exec(r.result.stdout)?.[1];
    expect(socketDir, r.result.stdout).toBe(r.dataDir);
    expect(r.result.stdout).toMatch(new RegExp(`^TCP: +127\\.0\\.0\\.1:${r.port} only`, 'm'));
    // Connecting as the output says works: the socket is where it is reported.
    const c = new pg.Client({ host: socketDir, port: r.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      const rows = (await c.query<{ n: string }>('SELECT count(*) AS n FROM t')).rows;
      expect(Number(rows[0]?.n)).toBe(marks.rowsAtTime);
    } finally {
      await c.end();
    }
    // Nothing of the copy in the source's socket directory or its log directory…
    expect(await readdir(server.dir)).not.toContain(`.s.PGSQL.${r.port}`);
    for (const f of await readdir(sourceLogs))
      expect(await readFile(path.join(sourceLogs, f), 'utf8'), f).not.toMatch(/point-in-time recovery/);
    // …its recovery is in its own log, beside its data directory.
    expect(await readFile(`${r.dataDir}.log`, 'utf8')).toMatch(/starting point-in-time recovery/);
    // The restored configuration is untouched: the overrides were for this start only.
    expect(await readFile(path.join(r.dataDir, 'postgresql.conf'), 'utf8')).toContain(
      `unix_socket_directories = '${server.dir}'`,
    );
    await r.stop();
  });

  it('restore pitr --target-lsn, --target-xid and --target-name stop where they say', async () => {
    const lsn = await restoreTo(['--target-lsn', marks.lsn ?? '']);
    expect(await lsn.rows()).toBe(marks.rowsAtLsn);
    await lsn.stop();
    const xid = await restoreTo(['--target-xid', marks.xid ?? '']);
    expect(await xid.rows()).toBe(marks.rowsAtXid);
    await xid.stop();
    const name = await restoreTo(['--target-name', 'before_e']);
    expect(await name.rows()).toBe(marks.rowsAtName);
    await name.stop();
  });

  it('restore pitr --target-immediate stops at the base backup; no target replays the whole archive', async () => {
    const imm = await restoreTo(['--target-immediate']);
    expect(await imm.rows()).toBe(marks.atBase);
    await imm.stop();
    const end = await restoreTo([]);
    expect(end.result.stdout).toMatch(/recovery reached the end of the archive|Server promoted/);
    expect(await end.rows()).toBe(marks.rowsAtEnd);
    await end.stop();
  });

  it('the dry run prints the plan and changes nothing', async () => {
    const r = await cliOk([
      'restore',
      'pitr',
      'latest',
      '--archive',
      archive,
      '--data-dir',
      '/nonexistent/dbb-never',
      '--target-time',
      marks.time ?? '',
    ]);
    expect(r.stdout).toMatch(new RegExp(`Base: +${marks.base}`));
    expect(r.stdout).toMatch(/Coverage: +covered/);
    expect(r.stdout).toMatch(/recovery_target_action = 'promote'/);
    expect(r.stdout).toMatch(/archive_mode = 'off'/);
    expect(r.stdout).toMatch(/Dry run: nothing was changed/);
  });

  it('a time without a UTC offset, or two targets, is a usage error', async () => {
    const noZone = await cli([
      'restore',
      'pitr',
      'latest',
      '--archive',
      archive,
      '--data-dir',
      '/tmp/x',
      '--target-time',
      '2026-12-07 05:33:41',
    ]);
    expect(noZone.code).toBe(2);
    expect(noZone.stderr).toMatch(/offset/);
    const two = await cli([
      'restore',
      'pitr',
      'latest',
      '--archive',
      archive,
      '--data-dir',
      '/tmp/x',
      '--target-immediate',
      '--target-xid',
      '5',
    ]);
    expect(two.code).toBe(2);
  });

  it("wal list shows the timeline's range; wal verify proves the chain", async () => {
    const list = await cliOk(['wal', 'list', '--archive', archive, '--json']);
    const listing = JSON.parse(list.stdout) as { runs: Array<{ timeline: number; count: number }> };
    expect(listing.runs).toHaveLength(1);
    expect(listing.runs[0]?.timeline).toBe(1);
    const verify = await cliOk(['wal', 'verify', '--archive', archive, '--deep']);
    expect(verify.stdout).toMatch(/OK: every base backup has its WAL/);
    expect(verify.stdout).toMatch(/Deep check: \d+ objects read, 0 damaged/);
  });

  it('list backups and verify-backup know the base backup', async () => {
    // Sizes only: a base backup, like any other, is "unverified" until its bytes are read.
    const quick = await cliOk(['--backup-dir', archive, 'list', 'backups', '--json']);
    const quickEntries = (JSON.parse(quick.stdout) as { backups: Array<{ key: string; state: string }> })
      .backups;
    expect(quickEntries.find((e) => e.key === `base/${marks.base}/`)?.state).toBe('unverified');
    const list = await cliOk(['--backup-dir', archive, 'list', 'backups', '--verify', '--json']);
    const entries = (
      JSON.parse(list.stdout) as { backups: Array<{ key: string; state: string; kind: string }> }
    ).backups;
    const base = entries.find((e) => e.key === `base/${marks.base}/`);
    expect(base?.state).toBe('valid');
    expect(base?.kind).toBe('base');
    const verify = await cliOk(['verify-backup', `${archive}/base/${marks.base}/`]);
    expect(verify.stdout).toMatch(/^OK /m);
  });

  it('a second PITR follows the new timeline: a real recovery archives timeline 2, restored again to a moment on it', async () => {
    // The recovery of record: restore to T, keep archiving into the same archive, go on writing.
    const first = await restoreTo(['--target-time', marks.time ?? ''], ['--keep-archiving']);
    const [tli] = await first.query<{ t: number }>('SELECT timeline_id AS t FROM pg_control_checkpoint()');
    expect(tli?.t).toBe(2);
    await first.query("INSERT INTO t (batch, v) SELECT 'tl2', md5(g::text) FROM generate_series(1, 300) g");
    const [m] = await first.query<{ t: string }>(
      "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' AS t",
    );
    const t2 = m?.t ?? '';
    await new Promise((r) => setTimeout(r, 20));
    await first.query(
      "INSERT INTO t (batch, v) SELECT 'tl2-late', md5(g::text) FROM generate_series(1, 300) g",
    );
    const expected = (marks.rowsAtTime ?? 0) + 300;
    const [w] = await first.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f');
    const deadline = Date.now() + 60_000;
    for (;;) {
      const [a] = await first.query<{ w: string | null }>(
        'SELECT last_archived_wal AS w FROM pg_stat_archiver',
      );
      if ((a?.w ?? '') >= (w?.f ?? '')) break;
      if (Date.now() > deadline) throw new Error('timeline 2 was not archived');
      await new Promise((r) => setTimeout(r, 200));
    }
    await first.stop();

    // Timeline 1 went on after timeline 2 branched: the fork is shown, and "latest" must be chosen.
    const verify = await cliOk(['wal', 'verify', '--archive', archive]);
    expect(verify.stdout).toMatch(/FORK: timeline 1 went on archiving .* after timeline 2 branched/);
    const refused = await cli([
      'restore',
      'pitr',
      'latest',
      '--archive',
      archive,
      '--data-dir',
      '/tmp/dbb-never',
      '--target-time',
      t2,
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/REFUSED: +the archive forks/);

    const second = await restoreTo(['--target-time', t2, '--target-timeline', 'latest']);
    expect(await second.rows()).toBe(expected);
    const [tl] = await second.query<{ t: number }>('SELECT timeline_id AS t FROM pg_control_checkpoint()');
    expect(tl?.t).toBe(3);
    await second.stop();

    // Along timeline 1 instead: everything the old primary archived.
    const old = await restoreTo(['--target-timeline', '1']);
    expect(await old.rows()).toBe(marks.rowsAtEnd);
    await old.stop();
  });

  it('cleanup on the archive keeps exactly what the retained base backups need', async () => {
    // A second base backup on timeline 1's server, then keep only the newest.
    await writeBatch(server, 'f');
    const second = await cliOk([...server.args(), 'backup', 'base', '--json']);
    const newest = JSON.parse(second.stdout) as { metadata: { name: string; startSegment: string } };
    const dry = await cliOk(['cleanup', '--archive', archive, '--keep-last', '1', '--dry-run', '--json']);
    const plan = JSON.parse(dry.stdout) as {
      cutoff: string;
      wal: { delete: string[] };
      decisions: Array<{ key: string; keep: boolean }>;
    };
    expect(plan.cutoff).toBe(newest.metadata.startSegment);
    expect(plan.decisions.find((d) => d.key === marks.base)?.keep).toBe(false);
    expect(plan.wal.delete.length).toBeGreaterThan(0);
    // Only WAL before the cutoff, never a history file.
    for (const key of plan.wal.delete) {
      expect(key).not.toMatch(/\.history-/);
      const seg = /\/([0-9A-F]{24})/.exec(key)?.[1] ?? '';
      expect(seg.slice(8) < plan.cutoff.slice(8)).toBe(true);
    }
    await cliOk(['cleanup', '--archive', archive, '--keep-last', '1']);
    const verify = await cliOk(['wal', 'verify', '--archive', archive, '--target-timeline', '1']);
    expect(verify.stdout).not.toMatch(marks.base ?? 'never');
    const history = JSON.parse((await cliOk(['wal', 'list', '--archive', archive, '--json'])).stdout) as {
      timelines: unknown[];
    };
    expect(history.timelines.length).toBeGreaterThan(0);
    // What remains still restores: the newest base backup to the end of timeline 1.
    await switchAndArchive(server);
    const r = await restoreTo(['--target-timeline', '1']);
    expect(await r.rows()).toBe(await rowCount(server));
    await r.stop();
    void readFile;
  });

  it('pitr disable puts back exactly what enable changed, and --restart applies it', async () => {
    // Enable again first: the record keeps the settings from before dbbackup.
    await cliOk([...server.args(), 'pitr', 'enable', '--archive', archive]);
    const r = await cliOk([...server.args(), 'pitr', 'disable', '--restart', '--server-log', server.log]);
    expect(r.stdout).toMatch(/Reset archive_command/);
    expect(r.stdout).toMatch(/Reset archive_mode/);
    expect(r.stdout).toMatch(/Server restarted/);
    const auto = await server.query<{ name: string }>(
      "SELECT name FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' AND name IN ('archive_mode', 'archive_command')",
    );
    expect(auto).toEqual([]);
    const [mode] = await server.query<{ m: string }>("SELECT current_setting('archive_mode') AS m");
    expect(mode?.m).toBe('off');
    // The archive is left as it was.
    expect((await cliOk(['wal', 'list', '--archive', archive])).stdout).toMatch(/TIMELINE/);
  });
});
