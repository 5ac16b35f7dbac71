/** Shared by the incremental base backup tests (PostgreSQL 15 and 17). */
import { expect } from 'vitest';
import type { CliOptions } from '../harness/cli.js';
import type { PitrServer } from '../harness/pitr-server.js';
import { cliOk, markTime, restoreAndStart, switchAndArchive, type Restored } from './pitr-util.js';

export type Snapshot = Record<string, string>;
export interface Meta {
  name: string;
  backupType: string;
  parent?: string;
  sizeBytes: number;
  startSegment: string;
  delta?: { blocksStored: number; blocksScanned: number; pagesVerified: number };
}
export type Point = 'full' | 'incr' | 'diff';
export interface Scenario {
  points: Record<Point, { meta: Meta; snap: Snapshot }>;
  lastTime: string;
  lastSnap: Snapshot;
}

type Query = <T extends Record<string, unknown>>(sql: string) => Promise<T[]>;

/** Every user table: row count and md5 of its rows in a fixed order. */
export async function snapshot(q: Query): Promise<Snapshot> {
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

export async function backup(server: PitrServer, kind: string[], opts: CliOptions = {}): Promise<Meta> {
  const r = await cliOk([...server.args(), 'backup', 'base', ...kind, '--json'], 0, opts);
  return (JSON.parse(r.stdout) as { metadata: Meta }).metadata;
}

/**
 * Full, writes (1 % of a table updated, a table dropped, one created), incremental, writes (a
 * table truncated, rows deleted, an index built), differential, more writes; the state of every
 * table at each point, and a moment after the last writes.
 */
export async function runScenario(
  server: PitrServer,
  fullArgs: string[],
  opts: CliOptions = {},
): Promise<Scenario> {
  const q: Query = (sql) => server.query(sql);
  await q('CREATE EXTENSION amcheck');
  await q('CREATE TABLE kept (id int PRIMARY KEY, v text NOT NULL)');
  await q('INSERT INTO kept SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 20000) g');
  await q('CREATE TABLE dropped (id int PRIMARY KEY, v text)');
  await q('INSERT INTO dropped SELECT g, md5(g::text) FROM generate_series(1, 3000) g');
  await q('CREATE TABLE truncated (id int PRIMARY KEY, v text)');
  await q('INSERT INTO truncated SELECT g, md5(g::text) FROM generate_series(1, 5000) g');
  const full = { meta: await backup(server, fullArgs, opts), snap: await snapshot(q) };

  await q("UPDATE kept SET v = 'incr-' || id WHERE id % 100 = 1");
  await q('DROP TABLE dropped');
  await q('CREATE TABLE created (id int PRIMARY KEY, v text)');
  await q('INSERT INTO created SELECT g, md5(g::text) FROM generate_series(1, 4000) g');
  const incr = { meta: await backup(server, ['--incremental'], opts), snap: await snapshot(q) };

  await q('TRUNCATE truncated');
  await q("INSERT INTO truncated SELECT g, 'after' FROM generate_series(1, 10) g");
  await q('DELETE FROM kept WHERE id > 19000');
  await q('CREATE INDEX kept_v ON kept (v)');
  const diff = { meta: await backup(server, ['--differential'], opts), snap: await snapshot(q) };

  await q("UPDATE kept SET v = 'late-' || id WHERE id % 50 = 7");
  await q("INSERT INTO created SELECT g, 'late' FROM generate_series(4001, 4500) g");
  const lastSnap = await snapshot(q);
  const lastTime = await markTime(server);
  await q('CREATE TABLE after_target (id int)');
  await switchAndArchive(server);
  return { points: { full, incr, diff }, lastTime, lastSnap };
}

/** restore pitr … --start, then amcheck on every btree index (an error fails the query). */
export async function restoreChecked(
  archive: string,
  base: string,
  target: string[],
  restored: Restored[],
  opts: CliOptions = {},
): Promise<Restored> {
  const r = await restoreAndStart([base, '--archive', archive, ...target], opts);
  restored.push(r);
  if (r.result.code !== 0)
    throw new Error(`restore failed (${r.result.code}):\n${r.result.stdout}\n${r.result.stderr}`);
  const checked = await r.query<{ i: string }>(
    "SELECT c.relname AS i, bt_index_check(c.oid, true)::text FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.amname = 'btree' AND n.nspname IN ('public', 'pg_catalog')",
  );
  expect(checked.length).toBeGreaterThan(50);
  expect(checked.map((c) => c.i)).toContain('kept_pkey');
  return r;
}
