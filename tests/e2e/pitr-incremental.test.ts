/**
 * Incremental and differential base backups end to end on a real PostgreSQL 15 (data checksums
 * on, archiving through dbbackup): full, writes, incremental, writes, differential, writes; each
 * point restored into a new data directory, started, and every table compared (rows and an md5 of
 * their text) with the source at that moment, indexes checked with amcheck. Between the backups a
 * table is dropped, one created and one truncated. Then the failures: a damaged page refused
 * while reading, a corrupt parent found by verify-backup and by restore before anything is
 * written.
 */
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  archiveDir,
  exists,
  removePostgresDirs,
  startPitrServer,
  type PitrServer,
} from '../harness/pitr-server.js';
import { cliOk, markTime, restoreAndStart, switchAndArchive, type Restored } from './pitr-util.js';
import { cli } from './util.js';

type Snapshot = Record<string, string>;
interface Meta {
  name: string;
  backupType: string;
  parent?: string;
  sizeBytes: number;
  delta?: { blocksStored: number; blocksScanned: number; pagesVerified: number };
}

let server: PitrServer;
let archive: string;
const points: Record<'full' | 'incr' | 'diff', { meta: Meta; snap: Snapshot }> = {} as never;
let lastTime = '';
let lastSnap: Snapshot = {};
const restored: Restored[] = [];

type Query = <T extends Record<string, unknown>>(sql: string) => Promise<T[]>;

/** Every user table: row count and md5 of its rows in a fixed order. */
async function snapshot(q: Query): Promise<Snapshot> {
  const tables = await q<{ t: string }>(
    "SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1",
  );
  const out: Snapshot = {};
  for (const { t } of tables) {
    const [r] = await q<{ n: string; h: string | null }>(
      `SELECT count(*) AS n, md5(string_agg(x::text, '|' ORDER BY x::text)) AS h FROM ${t} x`,
    );
    out[t] = `${r?.n}:${r?.h ?? ''}`;
  }
  return out;
}

async function backup(kind: string[]): Promise<Meta> {
  const r = await cliOk([...server.args(), 'backup', 'base', ...kind, '--json']);
  return (JSON.parse(r.stdout) as { metadata: Meta }).metadata;
}

beforeAll(async () => {
  server = await startPitrServer([], ['--data-checksums']);
  archive = await archiveDir();
  await cliOk([...server.args(), 'pitr', 'enable', '--archive', archive]);
  await server.restart();
  const q: Query = (sql) => server.query(sql);
  await q('CREATE EXTENSION amcheck');
  await q('CREATE TABLE kept (id int PRIMARY KEY, v text NOT NULL)');
  await q('INSERT INTO kept SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 20000) g');
  await q('CREATE TABLE dropped (id int PRIMARY KEY, v text)');
  await q('INSERT INTO dropped SELECT g, md5(g::text) FROM generate_series(1, 3000) g');
  await q('CREATE TABLE truncated (id int PRIMARY KEY, v text)');
  await q('INSERT INTO truncated SELECT g, md5(g::text) FROM generate_series(1, 5000) g');
  const full = await backup([]);
  points.full = { meta: full, snap: await snapshot(q) };

  // ~1 % of kept changed, a table dropped, one created.
  await q("UPDATE kept SET v = 'incr-' || id WHERE id % 100 = 1");
  await q('DROP TABLE dropped');
  await q('CREATE TABLE created (id int PRIMARY KEY, v text)');
  await q('INSERT INTO created SELECT g, md5(g::text) FROM generate_series(1, 4000) g');
  const incr = await backup(['--incremental']);
  points.incr = { meta: incr, snap: await snapshot(q) };

  await q('TRUNCATE truncated');
  await q("INSERT INTO truncated SELECT g, 'after' FROM generate_series(1, 10) g");
  await q('DELETE FROM kept WHERE id > 19000');
  await q('CREATE INDEX kept_v ON kept (v)');
  const diff = await backup(['--differential']);
  points.diff = { meta: diff, snap: await snapshot(q) };

  await q("UPDATE kept SET v = 'late-' || id WHERE id % 50 = 7");
  await q("INSERT INTO created SELECT g, 'late' FROM generate_series(4001, 4500) g");
  lastSnap = await snapshot(q);
  lastTime = await markTime(server);
  await q('CREATE TABLE after_target (id int)');
  await switchAndArchive(server);
}, 300_000);

afterAll(async () => {
  for (const r of restored) await r.stop().catch(() => undefined);
  await server?.stop();
  await removePostgresDirs();
});

async function restoreChecked(base: string, target: string[]): Promise<Restored> {
  const r = await restoreAndStart([base, '--archive', archive, ...target]);
  restored.push(r);
  if (r.result.code !== 0)
    throw new Error(`restore failed (${r.result.code}):\n${r.result.stdout}\n${r.result.stderr}`);
  // bt_index_check raises an error on a damaged index: the query then fails.
  const checked = await r.query<{ i: string }>(
    "SELECT c.relname AS i, bt_index_check(c.oid, true)::text FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.amname = 'btree' AND n.nspname IN ('public', 'pg_catalog')",
  );
  expect(checked.length).toBeGreaterThan(50);
  expect(checked.map((c) => c.i)).toContain('kept_pkey');
  return r;
}

describe('incremental and differential base backups (PostgreSQL 15, data checksums)', () => {
  it('the deltas name their parents and hold only the changed pages', () => {
    expect(points.full.meta.backupType).toBe('full');
    expect(points.incr.meta).toMatchObject({ backupType: 'incremental', parent: points.full.meta.name });
    expect(points.diff.meta).toMatchObject({ backupType: 'differential', parent: points.full.meta.name });
    const d = points.incr.meta.delta;
    expect(d?.pagesVerified).toBeGreaterThan(100);
    expect(d?.blocksStored).toBeLessThan((d?.blocksScanned ?? 0) / 2);
    expect(points.incr.meta.sizeBytes).toBeLessThan(points.full.meta.sizeBytes);
  });

  for (const point of ['full', 'incr', 'diff'] as const)
    it(`restore --target-immediate of the ${point} backup gives every table as it was then`, async () => {
      const r = await restoreChecked(points[point].meta.name, ['--target-immediate']);
      expect(await snapshot(r.query)).toEqual(points[point].snap);
      await r.stop();
    });

  it('restore of the incremental and of the differential to a time after the last writes', async () => {
    for (const point of ['incr', 'diff'] as const) {
      const r = await restoreChecked(points[point].meta.name, ['--target-time', lastTime]);
      expect(await snapshot(r.query)).toEqual(lastSnap);
      await r.stop();
    }
  });

  it('list backups shows the chain', async () => {
    const r = await cliOk(['--backup-dir', archive, 'list', 'backups']);
    expect(r.stdout).toContain(`${points.incr.meta.name}`);
    expect(r.stdout).toMatch(new RegExp(`physical incremental on ${points.full.meta.name}`));
  });

  it("retention keeps chains whole: the kept differential keeps its full, and the WAL from the full's start", async () => {
    const r = await cliOk(['cleanup', '--archive', archive, '--keep-last', '1', '--dry-run', '--json']);
    const plan = JSON.parse(r.stdout) as {
      decisions: Array<{ key: string; keep: boolean; reasons: string[] }>;
      cutoff: string;
      refusals: string[];
    };
    expect(plan.refusals).toEqual([]);
    const by = (name: string) => plan.decisions.find((d) => d.key === name);
    expect(by(points.diff.meta.name)?.keep).toBe(true);
    expect(by(points.full.meta.name)).toMatchObject({
      keep: true,
      reasons: [`parent of ${points.diff.meta.name}`],
    });
    expect(by(points.incr.meta.name)?.keep).toBe(false);
    expect(plan.cutoff).toBe((points.full.meta as Meta & { startSegment: string }).startSegment);
  });

  it('a damaged page is refused while reading, naming the file and block', async () => {
    await server.query('CREATE TABLE damaged (id int, v text)');
    await server.query('INSERT INTO damaged SELECT g, md5(g::text) FROM generate_series(1, 2000) g');
    const [f] = await server.query<{ p: string }>("SELECT pg_relation_filepath('damaged') AS p");
    await server.query('CHECKPOINT');
    await server.restart(); // the page leaves shared buffers: the next backup reads it from disk
    const file = path.join(server.dataDir, f?.p ?? '');
    const fh = await open(file, 'r+');
    await fh.write(Buffer.from('XXXX'), 0, 4, 8192 * 3 + 4000);
    await fh.close();
    const r = await cli([...server.args(), 'backup', 'base', '--incremental']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`Data checksum failure in ${f?.p}, block 3`);
    await server.query('DROP TABLE damaged');
  });

  it('a corrupt parent: verify-backup names it, restore refuses before writing anything', async () => {
    const fullDir = path.join(archive, 'base', points.full.meta.name);
    const data = (await readdir(fullDir)).find((n) => n.startsWith('base.tar'));
    const fh = await open(path.join(fullDir, data ?? ''), 'r+');
    const size = (await stat(path.join(fullDir, data ?? ''))).size;
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, Math.floor(size / 2));
    b[0] = (b[0] ?? 0) ^ 0xff;
    await fh.write(b, 0, 1, Math.floor(size / 2));
    await fh.close();
    const v = await cli(['verify-backup', `${archive}/base/${points.diff.meta.name}/`]);
    expect(v.code).not.toBe(0);
    expect(`${v.stdout}${v.stderr}`).toContain(`parent ${points.full.meta.name} is corrupt`);
    const r = await restoreAndStart([points.incr.meta.name, '--archive', archive, '--target-immediate']);
    restored.push(r);
    expect(r.result.code).not.toBe(0);
    expect(r.result.stderr).toContain(`parent ${points.full.meta.name} is corrupt`);
    expect(await exists(r.dataDir)).toBe(false);
  });
});
