/**
 * MariaDB point-in-time recovery end to end on a directory archive: a server writing binary logs
 * streamed by `binlog stream`, full and incremental physical backups and a logical backup between
 * writes, then restores to a time, a GTID and the end, each compared table by table (rows and
 * CHECKSUM TABLE) with the source at that moment.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBinlogServer, tableStates, type BinlogServer } from '../harness/binlog-server.js';
import { myQuery } from '../harness/mysql.js';
import {
  archivedBinlogs,
  cliOk,
  flushAndWaitArchived,
  markSecond,
  restoreAndStart,
  seedShop,
  startStreamer,
  writeBatch,
  type Restored,
  type Streamer,
} from './mariadb-pitr-util.js';
import { cli, myArgs, removeDir, tempDir, uniqueName } from './util.js';

type States = Awaited<ReturnType<typeof tableStates>>;

let server: BinlogServer;
let archive: string;
let backups: string;
let streamer: Streamer;
const db = uniqueName('shop');
const m: {
  full?: string;
  incremental?: string;
  logical?: string;
  t1?: string;
  s1?: States;
  gtid?: string;
  position?: string;
  sGtid?: States;
  t2?: string;
  s2?: States;
  sEnd?: States;
} = {};
const restored: Restored[] = [];

beforeAll(async () => {
  server = await startBinlogServer();
  archive = await tempDir('dbb-binlog-archive-');
  backups = await tempDir('dbb-mdb-logical-');
  await seedShop(server, db);
  streamer = startStreamer(server, archive);
  const full = await cliOk([...server.args(), 'backup', 'physical', '--archive', archive, '--json']);
  m.full = (JSON.parse(full.stdout) as { metadata: { name: string } }).metadata.name;
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
  m.incremental = (JSON.parse(inc.stdout) as { metadata: { name: string } }).metadata.name;
  const logical = await cliOk([...server.args(), 'backup', 'single', db, '--backup-dir', backups, '--json']);
  m.logical = (JSON.parse(logical.stdout) as { paths: string[] }).paths[0];
  await writeBatch(server, db, 'w2');
  m.t1 = await markSecond(server);
  m.s1 = await tableStates(server.query, db);
  await writeBatch(server, db, 'w3');
  await server.query(
    // As applications do, with the database as the default one (a logical replay is limited to it by that).
    `USE \`${db}\`; CREATE TABLE extra (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO extra VALUES (1, 'one'), (2, 'two')`,
  );
  const [g] = await server.query<{ g: string }>('SELECT @@gtid_binlog_pos AS g');
  m.gtid = g?.g;
  const [pos] = await server.query<{ File: string; Position: string }>('SHOW MASTER STATUS');
  m.position = `${pos?.File ?? ''}:${pos?.Position ?? ''}`;
  m.sGtid = await tableStates(server.query, db);
  await writeBatch(server, db, 'w4');
  m.t2 = await markSecond(server);
  m.s2 = await tableStates(server.query, db);
  await writeBatch(server, db, 'w5');
  m.sEnd = await tableStates(server.query, db);
  await flushAndWaitArchived(server, archive);
  expect(await streamer.stop()).toBe(0);
}, 300_000);

afterAll(async () => {
  await streamer?.kill().catch(() => undefined);
  for (const r of restored) await r.stop().catch(() => undefined);
  await server?.stop();
  await removeDir(archive);
  await removeDir(backups);
});

async function restore(args: string[]): Promise<Restored> {
  const r = await restoreAndStart(args);
  restored.push(r);
  if (r.result.code !== 0)
    throw new Error(`restore failed (${r.result.code}):\n${r.result.stdout}\n${r.result.stderr}`);
  return r;
}

describe('MariaDB PITR into a directory archive', () => {
  it("the streamed binlogs are byte for byte the server's, each stored once closed", async () => {
    const { closed } = await archivedBinlogs(archive);
    const logs = await server.query<{ Log_name: string }>('SHOW BINARY LOGS');
    // Every file the server has closed is in the archive.
    expect(closed).toEqual(expect.arrayContaining(logs.slice(0, -1).map((l) => l.Log_name)));
    for (const name of closed) {
      const stored = (await import('node:fs/promises')).readdir(path.join(archive, 'binlog'));
      const key = (await stored).find((n) => n.startsWith(`${name}-`) && n.endsWith('.zst'));
      expect(key, name).toBeDefined();
      const raw = zstdDecompressSync(await readFile(path.join(archive, 'binlog', key ?? '')));
      expect(raw.equals(await readFile(path.join(server.dataDir, name))), name).toBe(true);
    }
    const status = await cliOk([...server.args(), 'binlog', 'status', '--archive', archive]);
    expect(status.stdout).toMatch(
      /Newest: +mysql-bin\.\d+ \((closed|open: a prefix)\) to byte \d+, GTID 0-1-\d+/,
    );
    expect(status.stdout).toMatch(/OK: +no gaps/);
  });

  it('restore pitr latest --target-time: the full + incremental chain, then binlogs, equals the source at that second', async () => {
    const r = await restore(['latest', '--archive', archive, '--target-time', m.t1 ?? '', '--progress']);
    expect(r.result.stdout).toMatch(new RegExp(`chain: +${m.full} \\(full`));
    // --progress: each long step, its bytes read from the archive, to the end (lines: stderr is a pipe here).
    expect(r.result.stderr).toMatch(/restore pitr: checking \d+ binlog\(s\): done in /);
    expect(r.result.stderr).toMatch(new RegExp(`restore pitr: extracting ${m.incremental}: done in `));
    expect(r.result.stderr).toMatch(/restore pitr: replaying \d+ binlog\(s\): done in /);
    expect(r.result.stdout).toMatch(new RegExp(`chain: +${m.incremental} \\(incremental`));
    expect(r.result.stdout).toMatch(/Prepared the full backup and 1 incremental/);
    expect(r.result.stdout).toMatch(/stopped before 0-1-\d+ \(stamped /);
    expect(await tableStates(r.query, db)).toEqual(m.s1);
    // Nothing but the data directory was made (no work directory left, nothing beside it).
    expect(await readdir(r.parent)).toEqual(['data']);
    await r.stop();
  });

  it('restore pitr <full> --target-gtid: up to and including that transaction (a DDL among them)', async () => {
    const gtid = (m.gtid ?? '').split(',')[0] ?? '';
    const r = await restore([m.full ?? '', '--archive', archive, '--target-gtid', gtid]);
    expect(r.result.stdout).toMatch(/Prepared the full backup\b/);
    expect(await tableStates(r.query, db)).toEqual(m.sGtid);
    await r.stop();
  });

  it('restore pitr <incremental> --target-position: the events before that binlog position', async () => {
    const r = await restore([
      m.incremental ?? '',
      '--archive',
      archive,
      '--target-position',
      m.position ?? '',
    ]);
    expect(r.result.stdout).toMatch(/Prepared the full backup and 1 incremental/);
    expect(await tableStates(r.query, db)).toEqual(m.sGtid);
    await r.stop();
  });

  it('restore pitr latest without a target: to the end of the archive', async () => {
    const r = await restore(['latest', '--archive', archive]);
    expect(await tableStates(r.query, db)).toEqual(m.sEnd);
    await r.stop();
  });

  it('restore pitr <logical backup> --target-time: the dump into the server given, then its binlogs', async () => {
    const args = [
      ...myArgs(),
      'restore',
      'pitr',
      m.logical ?? '',
      '--archive',
      archive,
      '--target-time',
      m.t2 ?? '',
    ];
    const dry = await cli(args);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/Dry run: nothing was changed/);
    const r = await cliOk([...args, '--confirm']);
    expect(r.stdout).toMatch(/Restored the dump into/);
    const query = <T>(sql: string, params?: unknown[]): Promise<T[]> =>
      myQuery(undefined, sql, params) as Promise<T[]>;
    try {
      expect(await tableStates(query, db)).toEqual(m.s2);
    } finally {
      await query(`DROP DATABASE IF EXISTS \`${db}\``);
    }
  });
  it('list backups shows the chain; verify-backup --deep reads it; cleanup keeps chains whole and the binlogs the kept ones need', async () => {
    const list = await cliOk(['list', 'backups', '--backup-dir', archive]);
    expect(list.stdout).toMatch(new RegExp(`physical/${m.full}/ +\\(physical full\\)`));
    expect(list.stdout).toMatch(
      new RegExp(`physical/${m.incremental}/ +\\(physical incremental on ${m.full}\\)`),
    );
    const verify = await cliOk([
      'verify-backup',
      '--deep',
      path.join(archive, 'physical', m.incremental ?? ''),
    ]);
    expect(verify.stdout).toMatch(/chain of 2 .* every xbstream read to its end/);
    // A second chain, later: the first becomes deletable.
    await writeBatch(server, db, 'w6');
    const newer = await cliOk([...server.args(), 'backup', 'physical', '--archive', archive, '--json']);
    const meta = (JSON.parse(newer.stdout) as { metadata: { name: string; binlog: { file: string } } })
      .metadata;
    await cliOk([...server.args(), 'binlog', 'archive', '--archive', archive, '--flush']);
    const before = await archivedBinlogs(archive);
    const dry = await cliOk(['cleanup', '--archive', archive, '--keep-last', '1', '--dry-run']);
    expect(dry.stdout).toMatch(new RegExp(`DELETE .* chain ${m.full} \\+ ${m.incremental}`));
    expect(await archivedBinlogs(archive)).toEqual(before);
    const applied = await cliOk(['cleanup', '--archive', archive, '--keep-last', '1']);
    expect(applied.stdout).toMatch(/2 physical backup\(s\) and \d+ binlog\(s\) deleted/);
    const after = await archivedBinlogs(archive);
    const n = (f: string) => Number(/\.(\d+)$/.exec(f)?.[1]);
    expect(after.closed.every((f) => n(f) >= n(meta.binlog.file))).toBe(true);
    expect(after.closed).toContain(meta.binlog.file);
    expect(before.closed.filter((f) => n(f) >= n(meta.binlog.file))).toEqual(after.closed);
    const left = await cliOk(['list', 'backups', '--backup-dir', archive]);
    expect(left.stdout).not.toContain(m.full ?? 'none');
    expect(left.stdout).toContain(meta.name);
  });
});
