/**
 * The point-in-time restore screen on MariaDB in a real terminal (tmux, 80×24): a server writing
 * binlogs streamed into an archive by `binlog stream`, a physical backup, writes before and after
 * a marked second. Driven by keys only: the archive, the backup, a time target, a new data
 * directory, "start the server" with a free port; then the restored server is queried and its
 * tables compared, row counts and CHECKSUM TABLE, with the source at that second.
 */
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  restoredServer,
  startBinlogServer,
  tableStates,
  type BinlogServer,
} from '../harness/binlog-server.js';
import { exists } from '../harness/pitr-server.js';
import { myQuery } from '../harness/mysql.js';
import { freePort } from '../harness/proc.js';
import {
  cliOk,
  flushAndWaitArchived,
  markSecond,
  mysqlOwnedDir,
  seedShop,
  startStreamer,
  writeBatch,
} from './mariadb-pitr-util.js';
import { Terminal } from './tui-util.js';
import { myArgs, removeDir, tempDir, uniqueName } from './util.js';

/** The harness's shared MariaDB: where a logical backup is restored (the source keeps running). */
const hostQuery = <T>(sql: string, params?: unknown[]): Promise<T[]> =>
  myQuery(undefined, sql, params) as Promise<T[]>;

let server: BinlogServer;
let archive: string;
let backups: string;
let full = '';
let mark = '';
let atMark: Awaited<ReturnType<typeof tableStates>>;
let terminal: Terminal | undefined;
const db = uniqueName('shop');
const dirs: string[] = [];
const stops: Array<() => Promise<void>> = [];

beforeAll(async () => {
  server = await startBinlogServer();
  archive = await tempDir('dbb-tui-binlog-archive-');
  backups = await tempDir('dbb-tui-mdb-logical-');
  await seedShop(server, db);
  const streamer = startStreamer(server, archive);
  try {
    const b = await cliOk([...server.args(), 'backup', 'physical', '--archive', archive, '--json']);
    full = (JSON.parse(b.stdout) as { metadata: { name: string } }).metadata.name;
    await cliOk([...server.args(), 'backup', 'cluster', '--backup-dir', backups, '--include-database', db]);
    await writeBatch(server, db, 'w1');
    mark = await markSecond(server);
    atMark = await tableStates(server.query, db);
    await writeBatch(server, db, 'w2');
    await flushAndWaitArchived(server, archive);
  } finally {
    expect(await streamer.stop()).toBe(0);
  }
}, 300_000);

afterEach(async () => {
  await terminal?.close();
  terminal = undefined;
});

afterAll(async () => {
  for (const s of stops) await s().catch(() => undefined);
  await hostQuery(`DROP DATABASE IF EXISTS \`${db}\``).catch(() => undefined);
  await server?.stop();
  // Undefined when the server could not be had: its failure is the one to see, not a cleanup's.
  for (const d of [archive, backups]) if (d) await removeDir(d);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('MariaDB point-in-time restore screen in a terminal', () => {
  it('restores a physical backup and its binlogs to a second, starts it, and it holds the data of that second', async () => {
    const home = await tempDir('dbb-tui-mdb-pitr-');
    dirs.push(home);
    const parent = await mysqlOwnedDir();
    dirs.push(parent);
    const dataDir = path.join(parent, 'data');
    const port = await freePort();
    terminal = await Terminal.open([...server.args(), 'tui', '--archive', archive], {
      XDG_CONFIG_HOME: path.join(home, 'config'),
      XDG_STATE_HOME: path.join(home, 'state'),
    });
    const t = terminal;
    await t.until('Point-in-time restore');
    await t.keys(...Array<string>(5).fill('Down'), 'Enter');
    const form = await t.until('Binlog archive');
    expect(form).toContain(archive);
    await t.keys('Enter');
    const list = await t.until(full);
    expect(list).toMatch(new RegExp(`${full} .*physical full .*valid`));
    await t.keys('Down', 'Enter');
    await t.until('Recover to');
    await t.keys('Down');
    await t.type(mark);
    await t.keys('Down');
    await t.type(dataDir);
    await t.keys('Down', 'Down', 'Right', 'Down');
    await t.type(String(port));
    await t.keys('Enter');
    const plan = await t.until(/now\?|Refused/);
    const flat = plan.replace(/\s+/g, ' ');
    expect(flat).toContain(`Base: ${full} (physical`);
    expect(flat).toMatch(/Coverage: covered/);
    expect(flat).toContain(`Restore into ${dataDir} now? Then start it on port ${port}.`);
    expect(await exists(dataDir)).toBe(false);
    await t.keys('Enter');
    stops.push(() => restoredServer(dataDir).stop());
    const done = await t.until(/point-in-time restore: (complete|failed)/, 240_000);
    expect(done, done).toContain('point-in-time restore: complete');
    expect(done.replace(/\s+/g, ' ')).toContain(`Server started on port ${port}`);
    // As a user would check: the restored server, on its own socket, holds the data of that second.
    expect(await tableStates(restoredServer(dataDir).query, db)).toEqual(atMark);
    await t.keys('Enter');
    await t.until('Quit');
    await t.keys('q');
    expect(await t.exitCode()).toBe(0);
  }, 400_000);

  it('restores a logical cluster backup into the server and replays its binlogs to that second', async () => {
    const home = await tempDir('dbb-tui-mdb-pitr-');
    dirs.push(home);
    terminal = await Terminal.open([...myArgs(), '--backup-dir', backups, 'tui', '--archive', archive], {
      XDG_CONFIG_HOME: path.join(home, 'config'),
      XDG_STATE_HOME: path.join(home, 'state'),
    });
    const t = terminal;
    await t.until('Point-in-time restore');
    await t.keys(...Array<string>(5).fill('Down'), 'Enter');
    await t.until('Binlog archive');
    await t.keys('Enter');
    const list = await t.until('logical cluster');
    expect(list).toMatch(/cluster_\d{8}_\d{6}\/ .*logical cluster/);
    await t.keys('Down', 'Down', 'Enter');
    const options = await t.until('Recover to');
    expect(options).toContain('Drop and recreate');
    await t.keys('Down');
    await t.type(mark);
    await t.keys('Enter');
    const plan = (await t.until(/now\?|Refused/)).replace(/\s+/g, ' ');
    expect(plan).toMatch(/Restore into the server \S+ now\?/);
    const before = await hostQuery<{ n: string }>(
      'SELECT schema_name AS n FROM information_schema.schemata WHERE schema_name = ?',
      [db],
    );
    expect(before).toEqual([]);
    await t.keys('Enter');
    const done = await t.until(/point-in-time restore: (complete|failed)/, 240_000);
    expect(done, done).toContain('point-in-time restore: complete');
    expect(done.replace(/\s+/g, ' ')).toContain(`into ${db} and replayed`);
    expect(await tableStates(hostQuery, db)).toEqual(atMark);
    await t.keys('Enter');
    await t.until('Quit');
    await t.keys('q');
    expect(await t.exitCode()).toBe(0);
  }, 400_000);
});
