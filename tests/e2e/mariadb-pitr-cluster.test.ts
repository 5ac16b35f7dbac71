/**
 * MariaDB point-in-time recovery from a logical CLUSTER backup: two databases, written before,
 * during (continuously, with transactions that touch both) and after `backup cluster`; the binlogs
 * archived; `restore pitr <cluster>` into the harness server, compared table by table (rows and
 * CHECKSUM TABLE) with the source at the target second. Each database's dump has its own snapshot
 * (the manifest records each one's GTID state; the test checks they differ), so each is replayed
 * from its own position.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBinlogServer, tableStates, type BinlogServer } from '../harness/binlog-server.js';
import { myQuery } from '../harness/mysql.js';
import { cliOk, markSecond, seedShop, writeBatch } from './mariadb-pitr-util.js';
import { cli, myArgs, removeDir, tempDir, uniqueName } from './util.js';

type States = Awaited<ReturnType<typeof tableStates>>;

let server: BinlogServer;
let archive: string;
let backups: string;
const a = uniqueName('shopa');
const b = uniqueName('shopb');
let cluster = '';
let members: Array<{ database: string; binlog?: { gtid: string } | null }> = [];
/** A second before the backup started (with writes after it that the dumps hold). */
let t0 = '';
let t1 = '';
let s1: { a?: States; b?: States } = {};
let during = 0;

const hostQuery = <T>(sql: string, params?: unknown[]): Promise<T[]> =>
  myQuery(undefined, sql, params) as Promise<T[]>;

/** One transaction that changes both databases (a replay filtered per database must split it). */
async function crossWrite(tag: string): Promise<void> {
  await server.query(
    `USE \`${a}\`; BEGIN;
     UPDATE \`${a}\`.customers SET balance = balance + 1 WHERE id % 7 = ?;
     INSERT INTO \`${b}\`.orders (customer, amount, note) VALUES (1 + ? % 1000, 3, ?);
     COMMIT`,
    [tag.length % 7, tag.length, tag],
  );
}

beforeAll(async () => {
  server = await startBinlogServer();
  archive = await tempDir('dbb-binlog-archive-');
  backups = await tempDir('dbb-mdb-cluster-');
  await seedShop(server, a);
  await seedShop(server, b);
  await writeBatch(server, a, 'before-a');
  await writeBatch(server, b, 'before-b');
  t0 = await markSecond(server);
  await writeBatch(server, a, 'after-t0');
  // The cluster backup, one database at a time, while writes keep coming into both databases.
  const backup = cliOk([
    ...server.args(),
    'backup',
    'cluster',
    '--backup-dir',
    backups,
    '--include-database',
    a,
    b,
    '--cluster-parallelism',
    '1',
    '--json',
  ]);
  let finished = false;
  void backup.then(
    () => (finished = true),
    () => (finished = true),
  );
  while (!finished) {
    during++;
    await writeBatch(server, during % 2 ? a : b, `during-${during}`);
    await crossWrite(`x-${during}`);
  }
  const out = JSON.parse((await backup).stdout) as { name?: string; manifest?: { name: string } };
  cluster = path.join(backups, out.manifest?.name ?? out.name ?? '');
  members = (
    JSON.parse(await readFile(path.join(cluster, 'manifest.json'), 'utf8')) as { databases: typeof members }
  ).databases;
  await writeBatch(server, a, 'after-1');
  await crossWrite('after-x');
  await writeBatch(server, b, 'after-1');
  t1 = await markSecond(server);
  s1 = { a: await tableStates(server.query, a), b: await tableStates(server.query, b) };
  await writeBatch(server, a, 'after-t1');
  await crossWrite('after-t1-x');
  await writeBatch(server, b, 'after-t1');
  await cliOk([...server.args(), 'binlog', 'archive', '--archive', archive, '--flush']);
}, 300_000);

afterAll(async () => {
  for (const d of [a, b]) await hostQuery(`DROP DATABASE IF EXISTS \`${d}\``).catch(() => undefined);
  await server?.stop();
  await removeDir(archive);
  await removeDir(backups);
});

async function hostDatabases(): Promise<string[]> {
  const rows = await hostQuery<{ n: string }>(
    'SELECT schema_name AS n FROM information_schema.schemata WHERE schema_name IN (?, ?)',
    [a, b],
  );
  return rows.map((r) => r.n);
}

describe('MariaDB PITR from a logical cluster backup', () => {
  it('each database of the cluster backup records its own snapshot position, and they differ', () => {
    expect(during).toBeGreaterThan(0);
    const gtids = members.map((m) => m.binlog?.gtid ?? '');
    expect(members.map((m) => m.database).sort()).toEqual([a, b].sort());
    for (const g of gtids) expect(g).toMatch(/^\d+-\d+-\d+/);
    // Writes ran between the two dumps: the second snapshot is later than the first.
    expect(new Set(gtids).size).toBe(2);
  });

  it('restore pitr <cluster> --target-time: every table of both databases equals the source at that second', async () => {
    const args = [...myArgs(), 'restore', 'pitr', cluster, '--archive', archive, '--target-time', t1];
    const dry = await cli(args);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/Dry run: nothing was changed/);
    expect(dry.stdout).toContain(`Replay of: ${a}`);
    expect(dry.stdout).toContain(`Replay of: ${b}`);
    expect(await hostDatabases()).toEqual([]);
    const r = await cliOk([...args, '--confirm']);
    expect(r.stdout).toMatch(new RegExp(`into ${a} and replayed`));
    expect(r.stdout).toMatch(new RegExp(`into ${b} and replayed`));
    try {
      expect(await tableStates(hostQuery, a)).toEqual(s1.a);
      expect(await tableStates(hostQuery, b)).toEqual(s1.b);
    } finally {
      for (const d of [a, b]) await hostQuery(`DROP DATABASE IF EXISTS \`${d}\``);
    }
  });

  it('a target before the backup is refused before anything is restored, naming the transaction the dump already holds', async () => {
    const r = await cli([
      ...myArgs(),
      'restore',
      'pitr',
      cluster,
      '--archive',
      archive,
      '--target-time',
      t0,
      '--confirm',
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/snapshot lies after the target: it already holds \d+-\d+-\d+, stamped/);
    expect(r.stderr).toMatch(/Nothing was changed/);
    expect(await hostDatabases()).toEqual([]);
  });
});
