import type pg from 'pg';
import { errorMessage } from '../errors.js';
import { whenAborted } from './pitr-common.js';

/**
 * One database of a restored PostgreSQL cluster read end to end: every table and materialized view
 * counted by a sequential scan (index scans off, so every heap page is read and, with data
 * checksums on, its checksum verified), and, where the amcheck extension is installed on the host,
 * every table's pages and TOAST checked by verify_heapam and every valid B-tree index by
 * bt_index_check. A table or index that cannot be read is a problem named by its name.
 */
export interface DatabaseCheck {
  tables: number;
  rows: number;
  indexes: number;
  heapChecked: number;
  problems: string[];
  notes: string[];
  summary: string;
  /** Rows per user table (schema.table): what the scan counted, for --json. */
  counts: Record<string, number>;
}

interface Relation {
  oid: string;
  name: string;
  kind: string;
  persistence: string;
  populated: boolean;
  system: boolean;
}

export async function checkPgDatabase(c: pg.Client, db: string, signal: AbortSignal): Promise<DatabaseCheck> {
  const run = <T extends pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
  ): Promise<pg.QueryResult<T>> => Promise.race([c.query<T>(sql, params), whenAborted(signal)]);
  const out: DatabaseCheck = {
    tables: 0,
    rows: 0,
    indexes: 0,
    heapChecked: 0,
    problems: [],
    notes: [],
    summary: '',
    counts: {},
  };
  // Sequential scans only: a count through an index-only scan would not read the heap.
  await run(
    'SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off; SET max_parallel_workers_per_gather = 0; SET statement_timeout = 0',
  );
  const rels = await run<Relation>(
    `SELECT c.oid::text AS oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name,
            c.relkind::text AS kind, c.relpersistence::text AS persistence, c.relispopulated AS populated,
            n.nspname IN ('pg_catalog', 'information_schema') AS system
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'
      ORDER BY n.nspname, c.relname`,
  );
  let unlogged = 0;
  for (const r of rels.rows) {
    if (r.kind === 'm' && !r.populated) continue;
    try {
      const n = await run<{ n: string }>(`SELECT count(*)::text AS n FROM ONLY ${r.name}`);
      const rows = Number(n.rows[0]?.n ?? 0);
      out.tables++;
      out.rows += rows;
      if (!r.system) out.counts[r.name] = rows;
      if (r.persistence === 'u') unlogged++;
    } catch (err) {
      if (signal.aborted) throw err;
      out.problems.push(`table ${r.name} cannot be read: ${errorMessage(err)}`);
    }
  }
  if (unlogged)
    out.notes.push(
      `${unlogged} unlogged table(s) are empty after recovery, as PostgreSQL resets them (their rows are never in the WAL)`,
    );
  await amcheck(run, db, rels.rows, out, signal);
  out.summary = `${out.tables} tables read end to end (${out.rows} rows)${out.heapChecked || out.indexes ? `; amcheck: ${out.heapChecked} tables' pages and TOAST, ${out.indexes} B-tree indexes` : ''}${out.problems.length ? `; ${out.problems.length} problem(s)` : ''}`;
  return out;
}

type Run = <T extends pg.QueryResultRow>(sql: string, params?: unknown[]) => Promise<pg.QueryResult<T>>;

/** amcheck, where the host has it: installed into the scratch copy if it was not there (and dropped again). */
async function amcheck(
  run: Run,
  db: string,
  rels: Relation[],
  out: DatabaseCheck,
  signal: AbortSignal,
): Promise<void> {
  const avail = await run<{ installed: string | null }>(
    "SELECT installed_version AS installed FROM pg_available_extensions WHERE name = 'amcheck'",
  );
  const row = avail.rows[0];
  if (!row) return;
  let created = false;
  if (!row.installed) {
    try {
      await run('CREATE EXTENSION amcheck');
      created = true;
    } catch (err) {
      out.notes.push(`amcheck could not be installed in ${db}: ${errorMessage(err)}`);
      return;
    }
  }
  try {
    const heap = await run<{ v: boolean }>(
      "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'verify_heapam') AS v",
    );
    if (heap.rows[0]?.v)
      for (const r of rels.filter((x) => x.kind === 'r' || (x.kind === 'm' && x.populated))) {
        try {
          const bad = await run<{ blkno: string; msg: string }>(
            'SELECT blkno::text, msg FROM verify_heapam($1::regclass, check_toast => true) LIMIT 1',
            [r.oid],
          );
          out.heapChecked++;
          const first = bad.rows[0];
          if (first)
            out.problems.push(`table ${r.name} is damaged (amcheck): block ${first.blkno}: ${first.msg}`);
        } catch (err) {
          if (signal.aborted) throw err;
          out.problems.push(`table ${r.name}: amcheck verify_heapam failed: ${errorMessage(err)}`);
        }
      }
    const idx = await run<{ oid: string; name: string }>(
      `SELECT i.indexrelid::text AS oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_am a ON a.oid = c.relam
        WHERE a.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't'
        ORDER BY 2`,
    );
    for (const i of idx.rows) {
      try {
        await run('SELECT bt_index_check($1::regclass)', [i.oid]);
        out.indexes++;
      } catch (err) {
        if (signal.aborted) throw err;
        out.problems.push(`index ${i.name} is damaged (amcheck bt_index_check): ${errorMessage(err)}`);
      }
    }
  } finally {
    if (created) await run('DROP EXTENSION amcheck').catch(() => undefined);
  }
}
