import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createConnection, type Connection as CoreConnection, type TypeCastField } from 'mysql2';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { myIdent, myOptions } from './mysql.js';

export interface MyTableSnapshot {
  engine: string;
  collation: string;
  autoIncrement: string | null;
  comment: string;
  /** `name COLUMN_TYPE [CHARSET/COLLATION] NULL|NOT NULL DEFAULT x EXTRA ...` in column order. */
  columns: string[];
  rows: number;
  /** sha256 over the sorted per-row hashes of the raw wire values: independent of row order. */
  checksum: string;
}

/** Everything a DBA would compare after a restore; plain JSON, keyed by object names. */
export interface MySnapshot {
  database: { charset: string; collation: string };
  tables: Record<string, MyTableSnapshot>;
  indexes: Record<string, string>;
  foreignKeys: Record<string, string>;
  checks: Record<string, string>;
  views: Record<string, string>;
  routines: Record<string, string>;
  triggers: Record<string, string>;
  events: Record<string, string>;
}

type Row = RowDataPacket & Record<string, string | null>;

async function rows(c: Connection, sql: string, params: unknown[] = []): Promise<Row[]> {
  const [result] = await c.query<Row[]>(sql, params);
  return result;
}

/** SHOW CREATE text without DEFINER: a restore by another account must still compare equal. */
const dropDefiner = (sql: string) =>
  sql.replace(/\s*DEFINER\s*=\s*(`(?:[^`]|``)*`|\S+)@(`(?:[^`]|``)*`|\S+)/gi, '');

/**
 * Hashes every row of a table from the text protocol's raw bytes (field.buffer()), so no
 * driver conversion (dates, decimals, JSON, charsets) can hide or invent a difference.
 */
async function tableData(core: CoreConnection, table: string): Promise<{ rows: number; checksum: string }> {
  const hashes: string[] = [];
  // Streamed so a big table does not have to fit in memory at once.
  const stream: Readable = core
    .query({
      sql: `SELECT * FROM ${myIdent(table)}`,
      rowsAsArray: true,
      typeCast: (field: TypeCastField) => field.buffer(),
    })
    .stream();
  for await (const row of stream as AsyncIterable<(Buffer | null)[]>) {
    const h = createHash('sha256');
    for (const value of row) {
      // Tag + length before each value keeps NULL, '' and shifted column boundaries distinct.
      const tag = Buffer.alloc(5);
      if (value !== null) {
        tag.writeUInt8(1, 0);
        tag.writeUInt32BE(value.length, 1);
      }
      h.update(tag);
      if (value) h.update(value);
    }
    hashes.push(h.digest('hex'));
  }
  hashes.sort();
  return { rows: hashes.length, checksum: createHash('sha256').update(hashes.join('')).digest('hex') };
}

async function tables(core: CoreConnection, db: string, snap: MySnapshot): Promise<void> {
  const c = core.promise();
  const list = await rows(
    c,
    `SELECT TABLE_NAME AS name, TABLE_TYPE AS type, ENGINE AS engine, TABLE_COLLATION AS coll,
            AUTO_INCREMENT AS ai, TABLE_COMMENT AS cmt
       FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW' ORDER BY 1`,
    [db],
  );
  const cols = await rows(
    c,
    `SELECT TABLE_NAME AS t, CONCAT_WS(' ', COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME,
            IF(IS_NULLABLE = 'YES', 'NULL', 'NOT NULL'), CONCAT('DEFAULT ', COLUMN_DEFAULT), NULLIF(EXTRA, ''),
            CONCAT('AS (', GENERATION_EXPRESSION, ')'), IF(COLUMN_COMMENT = '', NULL, CONCAT('COMMENT ', QUOTE(COLUMN_COMMENT)))) AS col
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    [db],
  );
  for (const t of list) {
    const name = String(t.name);
    snap.tables[name] = {
      engine: `${t.engine ?? ''}${t.type === 'SEQUENCE' ? ' SEQUENCE' : ''}`,
      collation: t.coll ?? '',
      autoIncrement: t.ai === null ? null : String(t.ai),
      comment: t.cmt ?? '',
      columns: cols.filter((col) => col.t === name).map((col) => String(col.col)),
      ...(await tableData(core, name)),
    };
  }
}

async function keys(c: Connection, db: string, snap: MySnapshot): Promise<void> {
  const idx = await rows(
    c,
    `SELECT CONCAT(TABLE_NAME, '.', INDEX_NAME) AS k,
            CONCAT(IF(NON_UNIQUE = 0, 'UNIQUE ', ''), INDEX_TYPE, ' (',
                   GROUP_CONCAT(CONCAT(COLUMN_NAME, IFNULL(CONCAT('(', SUB_PART, ')'), ''), IF(COLLATION = 'D', ' DESC', ''))
                                ORDER BY SEQ_IN_INDEX SEPARATOR ', '), ')') AS v
       FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? GROUP BY TABLE_NAME, INDEX_NAME, NON_UNIQUE, INDEX_TYPE`,
    [db],
  );
  snap.indexes = Object.fromEntries(idx.map((r) => [String(r.k), String(r.v)]));
  // A reference into the same database is shown as "=" so a restore under another name compares equal.
  const fks = await rows(
    c,
    `SELECT CONCAT(rc.TABLE_NAME, '.', rc.CONSTRAINT_NAME) AS k,
            CONCAT('(', GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ', '), ') REFERENCES ',
                   IF(k.REFERENCED_TABLE_SCHEMA = rc.CONSTRAINT_SCHEMA, '=', k.REFERENCED_TABLE_SCHEMA), '.',
                   rc.REFERENCED_TABLE_NAME, ' (',
                   GROUP_CONCAT(k.REFERENCED_COLUMN_NAME ORDER BY k.ORDINAL_POSITION SEPARATOR ', '),
                   ') ON UPDATE ', rc.UPDATE_RULE, ' ON DELETE ', rc.DELETE_RULE) AS v
       FROM information_schema.REFERENTIAL_CONSTRAINTS rc
       JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA
        AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME AND k.TABLE_NAME = rc.TABLE_NAME
      WHERE rc.CONSTRAINT_SCHEMA = ?
      GROUP BY rc.TABLE_NAME, rc.CONSTRAINT_NAME, rc.CONSTRAINT_SCHEMA, k.REFERENCED_TABLE_SCHEMA,
               rc.REFERENCED_TABLE_NAME, rc.UPDATE_RULE, rc.DELETE_RULE`,
    [db],
  );
  snap.foreignKeys = Object.fromEntries(fks.map((r) => [String(r.k), String(r.v)]));
  const checks = await rows(
    c,
    `SELECT CONCAT(TABLE_NAME, '.', CONSTRAINT_NAME) AS k, CHECK_CLAUSE AS v
       FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?`,
    [db],
  );
  snap.checks = Object.fromEntries(checks.map((r) => [String(r.k), String(r.v)]));
}

/** Views, routines, triggers and events as SHOW CREATE prints them (minus DEFINER). */
async function code(c: Connection, db: string, snap: MySnapshot): Promise<void> {
  const showCreate = async (what: string, name: string, column: string) => {
    const [row] = await rows(c, `SHOW CREATE ${what} ${myIdent(name)}`);
    return dropDefiner(String(row?.[column] ?? ''));
  };
  for (const v of await rows(
    c,
    'SELECT TABLE_NAME AS n FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?',
    [db],
  )) {
    snap.views[String(v.n)] = await showCreate('VIEW', String(v.n), 'Create View');
  }
  const routines = await rows(
    c,
    'SELECT ROUTINE_NAME AS n, ROUTINE_TYPE AS t FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?',
    [db],
  );
  for (const r of routines) {
    const type = String(r.t); // PROCEDURE or FUNCTION (or PACKAGE in Oracle mode)
    const column = `Create ${type.charAt(0)}${type.slice(1).toLowerCase()}`;
    snap.routines[`${type} ${String(r.n)}`] = await showCreate(type, String(r.n), column);
  }
  const triggers = await rows(
    c,
    `SELECT TRIGGER_NAME AS n, EVENT_OBJECT_TABLE AS t, ACTION_ORDER AS o
       FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?`,
    [db],
  );
  for (const t of triggers) {
    const body = await showCreate('TRIGGER', String(t.n), 'SQL Original Statement');
    snap.triggers[`${String(t.t)}.${String(t.n)}`] = `#${String(t.o)} ${body}`;
  }
  for (const e of await rows(
    c,
    'SELECT EVENT_NAME AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?',
    [db],
  )) {
    snap.events[String(e.n)] = await showCreate('EVENT', String(e.n), 'Create Event');
  }
}

/** Snapshot of database `db`; compare two with `expect(after).toEqual(before)`. */
export async function mySnapshot(db: string): Promise<MySnapshot> {
  // The callback-style connection can stream rows; its promise() wrapper shares the same session.
  const core = createConnection(myOptions(db));
  const c = core.promise();
  try {
    await c.query("SET time_zone = '+00:00'");
    // Consistent view of InnoDB data while reading many tables (MyISAM has no snapshots anyway).
    await c.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    const [schema] = await rows(
      c,
      'SELECT DEFAULT_CHARACTER_SET_NAME AS cs, DEFAULT_COLLATION_NAME AS coll FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
      [db],
    );
    const snap: MySnapshot = {
      database: { charset: schema?.cs ?? '', collation: schema?.coll ?? '' },
      tables: {},
      indexes: {},
      foreignKeys: {},
      checks: {},
      views: {},
      routines: {},
      triggers: {},
      events: {},
    };
    await tables(core, db, snap);
    await keys(c, db, snap);
    await code(c, db, snap);
    await c.query('COMMIT');
    return snap;
  } finally {
    await c.end();
  }
}
