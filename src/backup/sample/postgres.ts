import type pg from 'pg';
import type { SampleTable } from '../../catalog/metadata.js';
import type { DatabaseEngine, ServerInfo, ToolCommand } from '../../engines/engine.js';
import { majorVersion } from '../../engines/tools.js';
import { MissingToolError, ToolError, errorMessage } from '../../errors.js';
import type { ToolProcess } from '../../pipeline/process.js';
import { redactArgs } from '../single.js';
import { CopyOut } from './pg-copy.js';
import type { EngineSampler, SampleOpenOptions, SampleSource } from './source.js';
import { sqlComment, toolOutput } from './source.js';
import { describeSpec, PERCENT_SEED, type SampleSpec } from './spec.js';

// PostgreSQL: temp tables of sampled ctids inside one REPEATABLE READ transaction whose snapshot
// the pg_dump runs import; rows leave the server through COPY … TO STDOUT on the same session.

interface PgTable {
  oid: string;
  schema: string;
  name: string;
  /** `"schema"."name"` */
  q: string;
  /** Columns COPY writes (generated columns are computed again on restore). */
  columns: string[];
  /** ORDER BY of the sample: the primary key, else the physical order. */
  orderBy: (alias: string) => string;
  /** Temp table of the sampled rows' ctids. */
  sel: string;
  sampled: number;
  referenced: number;
  dropped: number;
  kept: number;
}

interface PgEdge {
  name: string;
  child: PgTable;
  parent: PgTable;
  childCols: string[];
  parentCols: string[];
  validated: boolean;
}

type Query = <R extends pg.QueryResultRow>(text: string) => Promise<pg.QueryResult<R>>;
type Ident = (name: string) => string;

const PG_USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;
const PG_NOT_EXTENSION_MEMBER = `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`;
const PG_TRAILER = /-- PostgreSQL database dump complete/;

export const postgresSampler: EngineSampler = {
  dumpFamily: 'postgres',
  checkDumpTool(dumpVersion: string, server: ServerInfo): void {
    if (dumpVersion !== 'unknown' && majorVersion(dumpVersion) < majorVersion(server.version)) {
      throw new MissingToolError(
        `pg_dump ${dumpVersion} cannot dump a PostgreSQL ${server.version} server (pg_dump must be at least as new as the server)`,
        {
          hint: `Install the PostgreSQL ${majorVersion(server.version)} client programs, or set DBBACKUP_PG_BINDIR.`,
        },
      );
    }
  },
  open: openPgSample,
};

/** The driver connection of a PostgreSQL engine (this module is only chosen for one). */
async function connectPg(engine: DatabaseEngine, database: string): Promise<pg.Client> {
  const { PostgresEngine } = await import('../../engines/postgres.js');
  if (!(engine instanceof PostgresEngine))
    throw new Error('the PostgreSQL sampler needs a PostgreSQL engine');
  return engine.connect(database);
}

async function openPgSample(o: SampleOpenOptions): Promise<SampleSource> {
  // The driver is loaded here, not at start-up: every other command would pay for it.
  const { default: pgDriver } = await import('pg');
  // The engine's own connection: the same server, credentials and TLS as the dump tool.
  const client = await connectPg(o.engine, o.database);
  const running = new Set<ToolProcess>();
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await client.query('ROLLBACK').catch(() => undefined);
    await client.end().catch(() => undefined);
  };
  // An interrupt while sampling drops the connection: the running query fails and nothing is kept.
  const interrupt = (): void => {
    closed = true;
    void client.end().catch(() => undefined);
  };
  o.signal?.addEventListener('abort', interrupt);
  const q: Query = async <R extends pg.QueryResultRow>(text: string): Promise<pg.QueryResult<R>> => {
    try {
      return await client.query<R>(text);
    } catch (err) {
      throw new ToolError(`Sampling failed: ${errorMessage(err)}`, {
        hint: 'The sample needs a primary server (temporary tables) and read access to every table.',
        details: [text.replace(/\s+/g, ' ').slice(0, 300)],
        cause: err,
      });
    }
  };
  try {
    const snapshot = await beginSnapshot(q);
    const { tables, edges } = await readGraph(q, pgDriver.escapeIdentifier);
    await sampleRows(q, tables, o.spec);
    if (o.spec.keepReferences) await addReferenced(q, tables, edges, pgDriver.escapeIdentifier);
    else await dropUnreferenced(q, edges, pgDriver.escapeIdentifier);
    for (const t of tables) {
      t.kept = Number((await q<{ n: string }>(`SELECT count(*) AS n FROM ${t.sel}`)).rows[0]?.n ?? 0);
    }
    const dropped = tables.filter((t) => t.dropped > 0);
    if (dropped.length) {
      o.onWarning(
        `--no-keep-references: ${dropped.map((t) => `${t.schema}.${t.name} ${t.dropped}`).join(', ')} sampled rows were left out because rows they reference are not in the sample`,
      );
    }
    const setvals = await sequenceValues(q, pgDriver.escapeLiteral);
    const { preArgs, postArgs } = sectionArgs(o.dump, snapshot);
    const summary: SampleTable[] = tables.map((t) => ({
      schema: t.schema,
      name: t.name,
      rows: 0, // filled in from the table statistics
      keptRows: t.kept,
      sampledRows: t.sampled,
      referencedRows: t.referenced,
      droppedRows: t.dropped,
    }));
    const ctx: ScriptContext = { ...o, client, running, tables, setvals, preArgs, postArgs };
    return {
      tables: summary,
      dumpTool: { name: o.dump.name, version: o.dumpVersion, args: redactArgs(preArgs) },
      script: () => pgScript(ctx, pgDriver.escapeIdentifier),
      abort: () => {
        for (const p of running) p.kill();
        // end() with a query running (a COPY) drops the socket; the server rolls back.
        closed = true;
        void client.end().catch(() => undefined);
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  } finally {
    o.signal?.removeEventListener('abort', interrupt);
  }
}

/** Opens the REPEATABLE READ transaction and exports its snapshot for the pg_dump runs. */
async function beginSnapshot(q: Query): Promise<string> {
  // Nothing may end this session while the pg_dump runs share its snapshot.
  await q(`SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0;
             SET row_security = off; SET client_encoding = 'UTF8'`);
  await q('BEGIN ISOLATION LEVEL REPEATABLE READ');
  const snapshot = (await q<{ s: string }>('SELECT pg_catalog.pg_export_snapshot() AS s')).rows[0]?.s;
  if (!snapshot) throw new ToolError('Could not export a snapshot for pg_dump');
  return snapshot;
}

/** The user tables with their columns and primary keys, and the foreign keys between them. */
async function readGraph(q: Query, ident: Ident): Promise<{ tables: PgTable[]; edges: PgEdge[] }> {
  const versionNum = Number(
    (await q<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]?.v,
  );
  const generated = versionNum >= 120000 ? `AND a.attgenerated = ''` : '';
  const tableRows = await q<{
    oid: string;
    schema: string;
    name: string;
    columns: string[] | null;
    pk: string[] | null;
  }>(
    `SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name,
              (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ${generated}) AS columns,
              (SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
                 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a
                   ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
                WHERE i.indrelid = c.oid AND i.indisprimary) AS pk
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND ${PG_USER_SCHEMAS} AND ${PG_NOT_EXTENSION_MEMBER}
        ORDER BY n.nspname, c.relname`,
  );
  const tables = new Map<string, PgTable>();
  tableRows.rows.forEach((r, i) => {
    const pk = r.pk ?? [];
    tables.set(r.oid, {
      oid: r.oid,
      schema: r.schema,
      name: r.name,
      q: `${ident(r.schema)}.${ident(r.name)}`,
      columns: r.columns ?? [],
      orderBy: (alias) => (pk.length ? pk.map((c) => `${alias}.${ident(c)}`).join(', ') : `${alias}.ctid`),
      sel: `dbb_sample_${i}`,
      sampled: 0,
      referenced: 0,
      dropped: 0,
      kept: 0,
    });
  });
  const edgeRows = await q<{
    name: string;
    child: string;
    parent: string;
    validated: boolean;
    child_cols: string[];
    parent_cols: string[];
  }>(
    `SELECT con.conname AS name, con.conrelid::text AS child, con.confrelid::text AS parent,
              con.convalidated AS validated,
              (SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS child_cols,
              (SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum) AS parent_cols
         FROM pg_catalog.pg_constraint con
        WHERE con.contype = 'f'
        ORDER BY con.conrelid, con.conname`,
  );
  const edges: PgEdge[] = [];
  for (const e of edgeRows.rows) {
    const child = tables.get(e.child);
    const parent = tables.get(e.parent);
    if (!child || !parent) continue; // partitioned parents, extension tables: their leaves are edges too
    edges.push({
      name: e.name,
      child,
      parent,
      childCols: e.child_cols,
      parentCols: e.parent_cols,
      validated: e.validated,
    });
  }
  return { tables: [...tables.values()], edges };
}

/** 1. The sample itself: each table's sampled ctids in a temp table. */
async function sampleRows(q: Query, tables: PgTable[], spec: SampleSpec): Promise<void> {
  for (const t of tables) {
    await q(`CREATE TEMPORARY TABLE ${t.sel} (rid tid PRIMARY KEY) ON COMMIT DROP`);
    let sql: string;
    if (spec.strategy === 'ratio') {
      sql = `INSERT INTO ${t.sel} (rid) SELECT s.rid FROM (SELECT t.ctid AS rid, row_number() OVER (ORDER BY ${t.orderBy('t')}) AS rn
                 FROM ONLY ${t.q} t) s WHERE (s.rn - 1) % ${spec.value} = 0`;
    } else if (spec.strategy === 'percent') {
      sql = `INSERT INTO ${t.sel} (rid) SELECT t.ctid FROM ONLY ${t.q} t
                 TABLESAMPLE BERNOULLI (${spec.value}) REPEATABLE (${PERCENT_SEED})`;
    } else {
      sql = `INSERT INTO ${t.sel} (rid) SELECT t.ctid FROM ONLY ${t.q} t ORDER BY ${t.orderBy('t')} LIMIT ${spec.value}`;
    }
    t.sampled = (await q(sql)).rowCount ?? 0;
    await q(`ANALYZE ${t.sel}`);
  }
}

function joinOn(ident: Ident, e: PgEdge, c: string, p: string): string {
  return e.childCols
    .map((col, i) => `${p}.${ident(e.parentCols[i] ?? '')} = ${c}.${ident(col)}`)
    .join(' AND ');
}

/** 2. Referenced rows, transitively: only edges whose child gained rows need another look. */
async function addReferenced(q: Query, tables: PgTable[], edges: PgEdge[], ident: Ident): Promise<void> {
  let dirty = new Set(tables);
  while (dirty.size) {
    const next = new Set<PgTable>();
    for (const e of edges) {
      if (!dirty.has(e.child)) continue;
      const added =
        (
          await q(
            `INSERT INTO ${e.parent.sel} (rid)
                 SELECT DISTINCT p.ctid FROM ${e.child.sel} s
                   JOIN ONLY ${e.child.q} c ON c.ctid = s.rid
                   JOIN ONLY ${e.parent.q} p ON ${joinOn(ident, e, 'c', 'p')}
                  WHERE NOT EXISTS (SELECT 1 FROM ${e.parent.sel} x WHERE x.rid = p.ctid)`,
          )
        ).rowCount ?? 0;
      if (added > 0) {
        e.parent.referenced += added;
        next.add(e.parent);
      }
    }
    dirty = next;
  }
}

/** 2'. Leave out rows whose referenced row is not in the sample, until nothing changes. */
async function dropUnreferenced(q: Query, edges: PgEdge[], ident: Ident): Promise<void> {
  const checked = edges.filter((e) => e.validated);
  let changed = true;
  while (changed) {
    changed = false;
    for (const e of checked) {
      const notNull = e.childCols.map((col) => `c.${ident(col)} IS NOT NULL`).join(' AND ');
      const removed =
        (
          await q(
            `DELETE FROM ${e.child.sel} s USING ONLY ${e.child.q} c
                  WHERE c.ctid = s.rid AND ${notNull}
                    AND NOT EXISTS (SELECT 1 FROM ${e.parent.sel} ps JOIN ONLY ${e.parent.q} p ON p.ctid = ps.rid
                                     WHERE ${joinOn(ident, e, 'c', 'p')})`,
          )
        ).rowCount ?? 0;
      if (removed > 0) {
        e.child.dropped += removed;
        changed = true;
      }
    }
  }
}

/** setval() statements that give the restored sequences the source's values. */
async function sequenceValues(q: Query, literal: (s: string) => string): Promise<string[]> {
  const sequences = await q<{ q: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS q
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'S' AND ${PG_USER_SCHEMAS} AND ${PG_NOT_EXTENSION_MEMBER}
        ORDER BY 1`,
  );
  const setvals: string[] = [];
  for (const s of sequences.rows) {
    const cur = (
      await q<{ v: string; called: boolean }>(`SELECT last_value::text AS v, is_called AS called FROM ${s.q}`)
    ).rows[0];
    if (cur) setvals.push(`SELECT pg_catalog.setval(${literal(s.q)}, ${cur.v}, ${cur.called});`);
  }
  return setvals;
}

/** pg_dump arguments of the schema before the data and of what follows it, in the snapshot. */
function sectionArgs(dump: ToolCommand, snapshot: string): { preArgs: string[]; postArgs: string[] } {
  const base = dump.args.filter((a) => !a.startsWith('--format='));
  return {
    preArgs: [...base, '--format=plain', '--schema-only', '--section=pre-data', `--snapshot=${snapshot}`],
    postArgs: [...base, '--format=plain', '--section=post-data', '--no-blobs', `--snapshot=${snapshot}`],
  };
}

interface ScriptContext extends SampleOpenOptions {
  client: pg.Client;
  running: Set<ToolProcess>;
  tables: PgTable[];
  setvals: string[];
  preArgs: string[];
  postArgs: string[];
}

async function* pgScript(c: ScriptContext, ident: Ident): AsyncGenerator<Buffer> {
  yield* toolOutput({ ...c.dump, args: c.preArgs }, c.engine, c.running, PG_TRAILER, c.onWarning);
  yield Buffer.from(
    [
      '',
      '--',
      `-- dbbackup sample data: ${sqlComment(describeSpec(c.spec))}`,
      '-- Constraints, indexes and triggers follow the data (post-data section).',
      '--',
      '',
      "SET client_encoding = 'UTF8';",
      '',
    ].join('\n'),
  );
  for (const t of c.tables) {
    if (t.kept === 0) continue;
    const cols = t.columns.map(ident);
    yield Buffer.from(
      `--\n-- Data for Name: ${sqlComment(t.name)}; Type: TABLE DATA; Schema: ${sqlComment(t.schema)} (sample: ${t.kept} of ${c.rowsOf(t.schema, t.name) ?? '?'} rows)\n--\n\n` +
        `COPY ${t.q}${cols.length ? ` (${cols.join(', ')})` : ''} FROM stdin;\n`,
    );
    const select = cols.map((col) => `t.${col}`).join(', ');
    const copy = c.client.query(
      new CopyOut(
        `COPY (SELECT ${select} FROM ONLY ${t.q} t JOIN ${t.sel} s ON t.ctid = s.rid ORDER BY ${t.orderBy('t')}) TO STDOUT`,
      ),
    );
    try {
      for await (const chunk of copy as AsyncIterable<Buffer>) yield chunk;
    } catch (err) {
      throw new ToolError(`Could not read the sampled rows of ${t.schema}.${t.name}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    yield Buffer.from('\\.\n\n');
  }
  if (c.setvals.length)
    yield Buffer.from(`--\n-- Sequence values of the source\n--\n\n${c.setvals.join('\n')}\n\n`);
  yield* toolOutput({ ...c.dump, args: c.postArgs }, c.engine, c.running, PG_TRAILER, c.onWarning);
}
