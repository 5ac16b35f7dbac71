import type mysql from 'mysql2/promise';
import type { SampleTable } from '../../catalog/metadata.js';
import type { DatabaseEngine, ToolCommand } from '../../engines/engine.js';
import { IntegrityError, ToolError, errorMessage } from '../../errors.js';
import type { ToolProcess } from '../../pipeline/process.js';
import { redactArgs } from '../single.js';
import {
  convert,
  dropOrphans,
  exactKey,
  foldFor,
  literal,
  matchAny,
  MY_BINARY,
  MY_NUMERIC,
  myIdent,
  rowOrder,
  selectRow,
  tableOrder,
  valuesAt,
  type MyColumn,
  type MyEdge,
  type MyTable,
  type MyValue,
} from './my-rows.js';
import type { EngineSampler, SampleOpenOptions, SampleSource } from './source.js';
import { sqlComment, toolOutput } from './source.js';
import { describeSpec, PERCENT_SEED, type SampleSpec } from './spec.js';

// MySQL / MariaDB: sampled keys kept in memory, read inside one consistent-snapshot transaction
// (plain SELECTs only: INSERT … SELECT would lock the source rows); INSERTs written parent-first
// so the data loads with FOREIGN_KEY_CHECKS=1.

/** Keys per lookup query. */
const MY_BATCH = 500;
/** Target size of one INSERT statement (mysqldump's default net_buffer_length). */
const MY_STATEMENT_BYTES = 1024 * 1024;
const MY_TRAILER = /-- (Dump completed|MariaDB dump completed)/;

export const mysqlSampler: EngineSampler = {
  dumpFamily: 'mysql',
  checkDumpTool: () => undefined,
  open: openMySample,
};

type RawRows = (sql: string) => Promise<Array<Array<Buffer | null>>>;
type Objects = <T>(sql: string, params?: unknown[]) => Promise<T[]>;
type Escape = (s: string) => string;

/** The driver connection of a MySQL/MariaDB engine (this module is only chosen for one). */
async function connectMy(engine: DatabaseEngine, database: string): Promise<mysql.Connection> {
  const { MysqlEngine } = await import('../../engines/mysql.js');
  if (!(engine instanceof MysqlEngine)) throw new Error('the MySQL sampler needs a MySQL/MariaDB engine');
  return engine.connect(database, { charset: 'utf8mb4', dateStrings: true });
}

async function openMySample(o: SampleOpenOptions): Promise<SampleSource> {
  // The engine's own connection: the same server, credentials and TLS as the dump tool.
  const conn = await connectMy(o.engine, o.database);
  conn.on('error', () => undefined);
  const running = new Set<ToolProcess>();
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await conn.query('ROLLBACK').catch(() => undefined);
    await conn.end().catch(() => undefined);
  };
  // An interrupt while sampling drops the connection: the running query fails and nothing is kept.
  const interrupt = (): void => {
    closed = true;
    conn.destroy();
  };
  o.signal?.addEventListener('abort', interrupt);
  const fail = (err: unknown, sql: string): never => {
    throw new ToolError(`Sampling failed: ${errorMessage(err)}`, {
      hint: 'The sample needs MySQL 8.0+ or MariaDB 10.2+ (window functions) and read access to every table.',
      details: [sql.replace(/\s+/g, ' ').slice(0, 300)],
      cause: err,
    });
  };
  /** Rows as arrays of raw bytes, exactly as the server sent them. */
  const rawRows: RawRows = async (sql) => {
    try {
      const [rows] = await conn.query({ sql, typeCast: false, rowsAsArray: true });
      return rows as unknown as Array<Array<Buffer | null>>;
    } catch (err) {
      return fail(err, sql);
    }
  };
  const objects: Objects = async <T>(sql: string, params: unknown[] = []): Promise<T[]> => {
    try {
      const [rows] = await conn.query(sql, params);
      return rows as T[];
    } catch (err) {
      return fail(err, sql);
    }
  };
  const escape: Escape = (s) => conn.escape(s);
  try {
    await objects(
      `SET SESSION time_zone = '+00:00', SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')`,
    );
    await objects('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    await objects('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    const { tables, edges } = await readGraph(objects, o.database, o.onWarning);
    await sampleRows(rawRows, tables, o.spec);
    if (o.spec.keepReferences) await addReferenced(rawRows, escape, edges);
    dropOrphans(edges);
    const dropped = tables.filter((t) => t.dropped > 0);
    if (dropped.length) {
      const list = dropped.map((t) => `${t.name} ${t.dropped}`).join(', ');
      o.onWarning(
        o.spec.keepReferences
          ? `rows left out because the rows they reference do not exist in the source: ${list}`
          : `--no-keep-references: ${list} sampled rows were left out because rows they reference are not in the sample`,
      );
    }
    // 4. Load order: referenced tables first; within a self-referencing table, referenced rows first.
    const { order, cyclic } = tableOrder(tables);
    if (cyclic.size) {
      o.onWarning(
        `tables that reference each other in a cycle are loaded with FOREIGN_KEY_CHECKS=0: ${[...cyclic].map((t) => t.name).join(', ')}`,
      );
    }
    const summary: SampleTable[] = tables.map((t) => ({
      schema: o.database,
      name: t.name,
      rows: 0, // filled in from the table statistics
      keptRows: t.rows.size,
      sampledRows: t.sampled,
      referencedRows: t.referenced,
      droppedRows: t.dropped,
    }));
    const { schemaArgs, triggerArgs } = sectionArgs(o.dump);
    const ctx: ScriptContext = {
      ...o,
      running,
      order,
      cyclic,
      schemaArgs,
      triggerArgs,
      rawRows,
      escape,
      close,
    };
    return {
      tables: summary,
      dumpTool: { name: o.dump.name, version: o.dumpVersion, args: redactArgs(schemaArgs) },
      script: () => myScript(ctx),
      abort: () => {
        for (const p of running) p.kill();
        conn.destroy();
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

/** The base tables with their columns and keys, and the foreign keys between them. */
async function readGraph(
  objects: Objects,
  database: string,
  onWarning: (line: string) => void,
): Promise<{ tables: MyTable[]; edges: MyEdge[] }> {
  const tableNames = await objects<{ name: string }>(
    `SELECT TABLE_NAME AS name FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME`,
    [database],
  );
  const columns = await objects<ColumnRow>(
    `SELECT TABLE_NAME AS tbl, COLUMN_NAME AS col, DATA_TYPE AS type, EXTRA AS extra, COLLATION_NAME AS coll,
              GENERATION_EXPRESSION AS expr
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    [database],
  );
  const keys = await objects<KeyRow>(
    `SELECT t.TABLE_NAME AS tbl, t.CONSTRAINT_NAME AS name, t.CONSTRAINT_TYPE AS type, k.COLUMN_NAME AS col,
              c.IS_NULLABLE AS nullable
         FROM information_schema.TABLE_CONSTRAINTS t
         JOIN information_schema.KEY_COLUMN_USAGE k
           ON k.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA AND k.TABLE_NAME = t.TABLE_NAME AND k.CONSTRAINT_NAME = t.CONSTRAINT_NAME
         JOIN information_schema.COLUMNS c
           ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME
        WHERE t.TABLE_SCHEMA = ? AND t.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'UNIQUE')
        ORDER BY t.TABLE_NAME, t.CONSTRAINT_TYPE = 'PRIMARY KEY' DESC, t.CONSTRAINT_NAME, k.ORDINAL_POSITION`,
    [database],
  );
  const fks = await objects<FkRow>(
    `SELECT TABLE_NAME AS tbl, CONSTRAINT_NAME AS name, COLUMN_NAME AS col, REFERENCED_TABLE_SCHEMA AS ref_schema,
              REFERENCED_TABLE_NAME AS ref_tbl, REFERENCED_COLUMN_NAME AS ref_col
         FROM information_schema.KEY_COLUMN_USAGE
        WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL
        ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION`,
    [database],
  );
  const columnsOf = groupBy(columns);
  const keysOf = groupBy(keys);
  const tables = new Map<string, MyTable>();
  for (const { name } of tableNames)
    tables.set(name, describeTable(name, columnsOf.get(name) ?? [], keysOf.get(name) ?? []));
  const edges = linkTables(tables, fks, database, onWarning);
  for (const t of tables.values()) {
    const need = t.key
      ? [...t.key, ...t.out.flatMap((e) => e.childCols), ...t.in.flatMap((e) => e.parentCols)]
      : t.insertable.map((c) => c.name);
    t.need = [...new Set(need)];
  }
  return { tables: [...tables.values()], edges };
}

interface ColumnRow {
  tbl: string;
  col: string;
  type: string;
  extra: string;
  coll: string | null;
  expr: string | null;
}
interface KeyRow {
  tbl: string;
  name: string;
  type: string;
  col: string;
  nullable: string;
}
interface FkRow {
  tbl: string;
  name: string;
  col: string;
  ref_schema: string;
  ref_tbl: string;
  ref_col: string;
}

function groupBy<T extends { tbl: string }>(rows: T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const r of rows) {
    const list = m.get(r.tbl);
    if (list) list.push(r);
    else m.set(r.tbl, [r]);
  }
  return m;
}

function describeTable(name: string, columns: ColumnRow[], keys: KeyRow[]): MyTable {
  const cols = new Map<string, MyColumn>();
  for (const c of columns) {
    const type = c.type.toLowerCase();
    cols.set(c.col, {
      name: c.col,
      binary: MY_BINARY.has(type),
      numeric: MY_NUMERIC.has(type),
      generated: Boolean(c.expr) || /\b(VIRTUAL|STORED|PERSISTENT) GENERATED\b/i.test(c.extra ?? ''),
      fold: foldFor(type, c.coll),
    });
  }
  // The first key whose columns are all NOT NULL (the primary key sorts first).
  const candidates = new Map<string, { cols: string[]; nullable: boolean }>();
  for (const k of keys) {
    const entry = candidates.get(k.name) ?? { cols: [], nullable: false };
    entry.cols.push(k.col);
    entry.nullable ||= k.nullable === 'YES';
    candidates.set(k.name, entry);
  }
  const key = [...candidates.values()].find((c) => !c.nullable)?.cols ?? null;
  return {
    name,
    q: myIdent(name),
    columns: cols,
    insertable: [...cols.values()].filter((c) => !c.generated),
    key,
    need: [],
    out: [],
    in: [],
    rows: new Map(),
    sampled: 0,
    referenced: 0,
    dropped: 0,
  };
}

function linkTables(
  tables: Map<string, MyTable>,
  fks: FkRow[],
  database: string,
  onWarning: (line: string) => void,
): MyEdge[] {
  const edges: MyEdge[] = [];
  for (const f of fks) {
    const child = tables.get(f.tbl);
    const parent = f.ref_schema === database ? tables.get(f.ref_tbl) : undefined;
    if (!child) continue;
    if (!parent) {
      onWarning(
        `${f.tbl}: foreign key ${f.name} references another database (${f.ref_schema}.${f.ref_tbl}); its rows are not sampled`,
      );
      continue;
    }
    let edge = edges.find((e) => e.child === child && e.name === f.name);
    if (!edge) {
      edge = {
        name: f.name,
        child,
        parent,
        childCols: [],
        parentCols: [],
        resolved: new Set(),
        pending: new Map(),
      };
      edges.push(edge);
      child.out.push(edge);
      parent.in.push(edge);
    }
    edge.childCols.push(f.col);
    edge.parentCols.push(f.ref_col);
  }
  return edges;
}

/** 1. The sample itself. */
async function sampleRows(rawRows: RawRows, tables: MyTable[], spec: SampleSpec): Promise<void> {
  for (const t of tables) {
    const needSel = t.need.map(myIdent).join(', ');
    const order = t.key ? t.key.map(myIdent).join(', ') : '';
    let sql: string;
    if (spec.strategy === 'ratio') {
      sql = `SELECT ${needSel} FROM (SELECT ${needSel}, ROW_NUMBER() OVER (${order ? `ORDER BY ${order}` : ''}) AS dbb_rn
                 FROM ${t.q}) dbb_s WHERE MOD(dbb_s.dbb_rn - 1, ${spec.value}) = 0`;
    } else if (spec.strategy === 'percent') {
      sql = `SELECT ${needSel} FROM ${t.q} WHERE RAND(${PERCENT_SEED}) < ${spec.value / 100}`;
    } else {
      sql = `SELECT ${needSel} FROM ${t.q}${order ? ` ORDER BY ${order}` : ''} LIMIT ${spec.value}`;
    }
    const duplicates = new Map<string, number>();
    for (const raw of await rawRows(sql)) {
      if (selectRow(t, convert(t, t.need, raw), spec.keepReferences, duplicates)) t.sampled++;
    }
  }
}

/** 2. Referenced rows, transitively, until no foreign key points outside the selection. */
async function addReferenced(rawRows: RawRows, escape: Escape, edges: MyEdge[]): Promise<void> {
  for (;;) {
    const edge = edges.find((e) => e.pending.size > 0);
    if (!edge) break;
    const batch = [...edge.pending.entries()].slice(0, MY_BATCH);
    for (const [k] of batch) {
      edge.pending.delete(k);
      edge.resolved.add(k);
    }
    const p = edge.parent;
    const found = await rawRows(
      `SELECT ${p.need.map(myIdent).join(', ')} FROM ${p.q} WHERE ${matchAny(
        escape,
        p,
        edge.parentCols,
        batch.map(([, v]) => v),
      )}`,
    );
    for (const raw of found) if (selectRow(p, convert(p, p.need, raw), true)) p.referenced++;
  }
}

/** mysqldump arguments of the schema (before the data) and of the triggers (after it). */
function sectionArgs(dump: ToolCommand): { schemaArgs: string[]; triggerArgs: string[] } {
  const i = dump.args.indexOf('--');
  const before = i < 0 ? dump.args : dump.args.slice(0, i);
  const after = i < 0 ? [] : dump.args.slice(i);
  return {
    schemaArgs: [...before.filter((a) => a !== '--triggers'), '--skip-triggers', '--no-data', ...after],
    triggerArgs: [
      ...before.filter((a) => a !== '--routines' && a !== '--events'),
      '--skip-routines',
      '--no-create-info',
      '--no-data',
      ...after,
    ],
  };
}

interface ScriptContext extends SampleOpenOptions {
  running: Set<ToolProcess>;
  order: MyTable[];
  cyclic: Set<MyTable>;
  schemaArgs: string[];
  triggerArgs: string[];
  rawRows: RawRows;
  escape: Escape;
  close: () => Promise<void>;
}

/** Builds INSERT statements of about MY_STATEMENT_BYTES from value tuples. */
class StatementBuilder {
  private tuples: string[] = [];
  private size = 0;

  constructor(
    private readonly head: string,
    private readonly cols: MyColumn[],
    private readonly escape: Escape,
  ) {}

  /** Adds a row; returns a full statement when the row did not fit in the current one. */
  add(values: MyValue[]): Buffer | undefined {
    const tuple = `(${values.map((v, i) => literal(this.escape, this.cols[i], v)).join(',')})`;
    let out: Buffer | undefined;
    if (this.size + tuple.length > MY_STATEMENT_BYTES) out = this.flush();
    this.tuples.push(tuple);
    this.size += tuple.length;
    return out;
  }

  flush(): Buffer | undefined {
    if (!this.tuples.length) return undefined;
    const b = Buffer.from(`${this.head}${this.tuples.join(',\n')};\n`);
    this.tuples = [];
    this.size = 0;
    return b;
  }
}

/** INSERT statements for some rows of a table, in the order given. */
async function* inserts(c: ScriptContext, t: MyTable, ids: string[]): AsyncGenerator<Buffer> {
  const cols = t.insertable;
  const builder = new StatementBuilder(
    `INSERT INTO ${t.q} (${cols.map((col) => myIdent(col.name)).join(', ')}) VALUES\n`,
    cols,
    c.escape,
  );
  if (!t.key) {
    // Keyless tables: the selected rows are the full rows already.
    for (const id of ids) {
      const row = t.rows.get(id);
      if (!row) continue;
      const b = builder.add(cols.map((col) => row[t.need.indexOf(col.name)] ?? null));
      if (b) yield b;
    }
    const last = builder.flush();
    if (last) yield last;
    return;
  }
  const key = t.key;
  const selectCols = [...key, ...cols.map((col) => col.name)];
  for (let i = 0; i < ids.length; i += MY_BATCH) {
    const batchIds = ids.slice(i, i + MY_BATCH);
    const tuples = batchIds.map((id) => valuesAt(t, t.rows.get(id) ?? [], key));
    const fetched = new Map<string, MyValue[]>();
    for (const raw of await c.rawRows(
      `SELECT ${selectCols.map(myIdent).join(', ')} FROM ${t.q} WHERE ${matchAny(c.escape, t, key, tuples)}`,
    )) {
      const values = convert(t, selectCols, raw);
      fetched.set(exactKey(values.slice(0, key.length)), values.slice(key.length));
    }
    for (const id of batchIds) {
      const row = t.rows.get(id);
      const values = row ? fetched.get(exactKey(valuesAt(t, row, key))) : undefined;
      if (!values) throw new IntegrityError(`A sampled row of ${t.name} could not be read again`);
      const b = builder.add(values);
      if (b) yield b;
    }
    const b = builder.flush();
    if (b) yield b;
  }
}

async function* myScript(c: ScriptContext): AsyncGenerator<Buffer> {
  yield* toolOutput({ ...c.dump, args: c.schemaArgs }, c.engine, c.running, MY_TRAILER, c.onWarning);
  yield Buffer.from(
    [
      '',
      '--',
      `-- dbbackup sample data: ${sqlComment(describeSpec(c.spec))}`,
      '-- Loaded with FOREIGN_KEY_CHECKS=1, referenced rows first; triggers are created after the data.',
      '--',
      '',
      "SET @DBB_OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO';",
      "SET @DBB_OLD_TIME_ZONE=@@TIME_ZONE, TIME_ZONE='+00:00';",
      'SET @DBB_OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=1;',
      'SET NAMES utf8mb4;',
      '',
    ].join('\n'),
  );
  for (const t of c.order) {
    const { ids, looped } = rowOrder(t);
    const all = [...ids, ...looped];
    if (!all.length) continue;
    yield Buffer.from(
      `--\n-- Data for table ${sqlComment(myIdent(t.name))} (sample: ${all.length} of ${c.rowsOf(c.database, t.name) ?? '?'} rows)\n--\n\n`,
    );
    const checksOff = c.cyclic.has(t);
    if (checksOff) yield Buffer.from('SET FOREIGN_KEY_CHECKS=0;\n');
    yield* inserts(c, t, ids);
    if (looped.length) {
      c.onWarning(
        `${t.name}: ${looped.length} rows reference each other in a cycle; they are loaded with FOREIGN_KEY_CHECKS=0`,
      );
      if (!checksOff) yield Buffer.from('SET FOREIGN_KEY_CHECKS=0;\n');
      yield* inserts(c, t, looped);
      if (!checksOff) yield Buffer.from('SET FOREIGN_KEY_CHECKS=1;\n');
    }
    if (checksOff) yield Buffer.from('SET FOREIGN_KEY_CHECKS=1;\n');
    yield Buffer.from('\n');
  }
  yield Buffer.from(
    [
      'SET FOREIGN_KEY_CHECKS=@DBB_OLD_FOREIGN_KEY_CHECKS;',
      'SET TIME_ZONE=@DBB_OLD_TIME_ZONE;',
      'SET SQL_MODE=@DBB_OLD_SQL_MODE;',
      '',
      '',
    ].join('\n'),
  );
  // All rows were read: the snapshot is no longer needed while the triggers are dumped.
  await c.close();
  yield* toolOutput({ ...c.dump, args: c.triggerArgs }, c.engine, c.running, MY_TRAILER, c.onWarning);
}
