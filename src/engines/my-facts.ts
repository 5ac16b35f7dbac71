import type mysql from 'mysql2/promise';
import {
  FACTS_VERSION,
  rowSample,
  type BackupFacts,
  type FactReadOptions,
  type FactSnapshot,
  type TableFacts,
} from '../catalog/facts.js';

/**
 * MySQL/MariaDB facts for restore drills (src/catalog/facts.ts). Neither server can hand one
 * transaction's snapshot to another session, so the facts are read in dbbackup's own consistent
 * snapshot, aligned with the dump's: the database's tables are read-locked (LOCK TABLES … READ,
 * which also waits for open transactions that wrote to them), the facts' snapshot is taken, the
 * dump starts and takes its own, and only when the dump's session is seen in the database are the
 * tables unlocked. Both snapshots then saw the same committed rows (`aligned`). Writers to this
 * database wait for that moment (typically a fraction of a second). When the tables cannot be
 * locked within LOCK_WAIT_SECONDS (a long open transaction, no LOCK TABLES privilege), or the dump's
 * session is not seen within DUMP_WAIT_MS, the facts are `own-snapshot`: taken just before the
 * dump's, so rows committed in between show as differences (a drill reports them as warnings).
 */

const LOCK_WAIT_SECONDS = 2;
const DUMP_WAIT_MS = 15_000;
const POLL_MS = 20;

type Connect = () => Promise<mysql.Connection>;

function quote(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

async function rows<T>(conn: mysql.Connection, sql: string, params: unknown[] = []): Promise<T[]> {
  const [r] = await conn.query(sql, params);
  return r as T[];
}

async function baseTables(conn: mysql.Connection, database: string): Promise<string[]> {
  const r = await rows<{ name: string }>(
    conn,
    `SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = ? AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY 1`,
    [database],
  );
  return r.map((t) => t.name);
}

/** Read-locks every table of `database`; false when that is not possible within the time limit. */
async function lockTables(conn: mysql.Connection, database: string): Promise<boolean> {
  try {
    const tables = await baseTables(conn, database);
    await conn.query(`SET SESSION lock_wait_timeout = ${LOCK_WAIT_SECONDS}`);
    if (tables.length)
      await conn.query(`LOCK TABLES ${tables.map((t) => `${quote(database)}.${quote(t)} READ`).join(', ')}`);
    return true;
  } catch {
    return false;
  }
}

async function startSnapshot(conn: mysql.Connection): Promise<void> {
  await conn.query("SET SESSION time_zone = '+00:00'");
  await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
}

/**
 * Until a session opened after `after` by the same user is in `database` (the dump, which selects
 * its database only after starting its transaction), or the dump has ended (a small dump can come
 * and go between two looks: having ended while the tables were locked, it took its snapshot then).
 * False after DUMP_WAIT_MS, or when the facts are abandoned.
 */
async function dumpSeen(
  conn: mysql.Connection,
  database: string,
  after: number,
  state: { ended: boolean; closed: boolean },
): Promise<boolean> {
  const deadline = Date.now() + DUMP_WAIT_MS;
  while (Date.now() < deadline && !state.closed) {
    if (state.ended) return true;
    const seen = await rows<{ id: string }>(
      conn,
      `SELECT ID AS id FROM information_schema.PROCESSLIST
        WHERE ID > ? AND DB = ? AND USER = SUBSTRING_INDEX(USER(), '@', 1) LIMIT 1`,
      [after, database],
    ).catch(() => []);
    if (seen.length) return true;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return false;
}

export async function mySnapshotFacts(
  connect: Connect,
  database: string,
  options: FactReadOptions,
): Promise<FactSnapshot> {
  const lock = await connect();
  let facts: mysql.Connection;
  let locked: boolean;
  let after: number;
  try {
    const lockId = await rows<{ id: string }>(lock, 'SELECT CONNECTION_ID() AS id');
    locked = await lockTables(lock, database);
    facts = await connect();
    await startSnapshot(facts);
    const ids = await rows<{ id: string }>(facts, 'SELECT CONNECTION_ID() AS id');
    // Connection ids only grow: the dump's session is opened after both of these.
    after = Math.max(Number(ids[0]?.id ?? 0), Number(lockId[0]?.id ?? 0));
  } catch (err) {
    await lock.end().catch(() => undefined);
    throw err;
  }
  const state = { ended: false, closed: false };
  // Unlocks as soon as the dump has its snapshot; the facts are read meanwhile, in their own.
  const aligned = (async (): Promise<boolean> => {
    if (!locked) return false;
    try {
      return await dumpSeen(lock, database, after, state);
    } finally {
      await lock.query('UNLOCK TABLES').catch(() => undefined);
      await lock.end().catch(() => undefined);
    }
  })();
  const read = (async (): Promise<BackupFacts> => {
    const f = await readMyFacts(facts, database, options, 'own-snapshot');
    return { ...f, consistency: (await aligned) ? 'aligned' : 'own-snapshot' };
  })();
  read.catch(() => undefined);
  return {
    dumpArgs: [],
    facts: read,
    dumpEnded: () => {
      state.ended = true;
    },
    close: async () => {
      state.closed = true;
      await aligned.catch(() => undefined);
      await read.catch(() => undefined);
      await facts.query('ROLLBACK').catch(() => undefined);
      await facts.end().catch(() => undefined);
    },
  };
}

/** The facts of a database nobody writes to (a drill's restored copy), in one snapshot. */
export async function myReadFacts(
  conn: mysql.Connection,
  database: string,
  options: FactReadOptions,
): Promise<BackupFacts> {
  try {
    await startSnapshot(conn);
    return await readMyFacts(conn, database, options, 'aligned');
  } finally {
    await conn.query('ROLLBACK').catch(() => undefined);
  }
}

async function names(conn: mysql.Connection, sql: string, database: string): Promise<string[]> {
  return (await rows<{ v: string }>(conn, sql, [database])).map((r) => r.v);
}

async function readMyFacts(
  conn: mysql.Connection,
  database: string,
  options: FactReadOptions,
  consistency: BackupFacts['consistency'],
): Promise<BackupFacts> {
  const takenAt = new Date().toISOString();
  const views = await names(
    conn,
    `SELECT table_name AS v FROM information_schema.tables WHERE table_schema = ? AND table_type = 'VIEW' ORDER BY 1`,
    database,
  );
  const functions = await names(
    conn,
    `SELECT CONCAT(routine_type, ' ', routine_name) AS v FROM information_schema.routines
      WHERE routine_schema = ? ORDER BY 1`,
    database,
  );
  const triggers = await names(
    conn,
    'SELECT trigger_name AS v FROM information_schema.triggers WHERE trigger_schema = ? ORDER BY 1',
    database,
  );
  const events = await names(
    conn,
    'SELECT event_name AS v FROM information_schema.events WHERE event_schema = ? ORDER BY 1',
    database,
  );
  const tables: TableFacts[] = [];
  const list = await rows<{ name: string; bytes: string | null }>(
    conn,
    `SELECT table_name AS name, data_length AS bytes FROM information_schema.tables
      WHERE table_schema = ? AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY 1`,
    [database],
  );
  for (const row of list) {
    const bytes = Number(row.bytes ?? 0);
    // No schema: the restored copy lives in a database of another name.
    const t: TableFacts = { schema: '', name: row.name, rows: null, bytes };
    const name = `${quote(database)}.${quote(row.name)}`;
    if (options.count && !options.count(row.name)) t.uncounted = 'not counted at backup time';
    else if (options.countLimitBytes !== null && bytes > options.countLimitBytes)
      t.uncounted = `larger than the count limit (${Math.round(options.countLimitBytes / 1048576)} MiB)`;
    else {
      const c = await rows<{ n: string }>(conn, `SELECT COUNT(*) AS n FROM ${name}`);
      t.rows = Number(c[0]?.n ?? 0);
    }
    if (options.sampleRows > 0) await sampleTable(conn, database, row.name, options.sampleRows, t);
    tables.push(t);
  }
  return {
    v: FACTS_VERSION,
    consistency,
    takenAt,
    countLimitBytes: options.countLimitBytes,
    sampleRows: options.sampleRows,
    schemas: [],
    tables,
    views,
    functions,
    extensions: [],
    sequences: [],
    triggers,
    events,
  };
}

async function sampleTable(
  conn: mysql.Connection,
  database: string,
  table: string,
  limit: number,
  t: TableFacts,
): Promise<void> {
  const key = await rows<{ col: string }>(
    conn,
    `SELECT column_name AS col FROM information_schema.statistics
      WHERE table_schema = ? AND table_name = ? AND index_name = 'PRIMARY' ORDER BY seq_in_index`,
    [database, table],
  );
  if (!key.length) {
    t.unsampled = 'no primary key';
    return;
  }
  const columns = await rows<{ col: string }>(
    conn,
    `SELECT column_name AS col FROM information_schema.columns
      WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position`,
    [database, table],
  );
  // QUOTE() tells NULL from 'NULL' and escapes every byte, so the text names the row exactly.
  const text = columns.map((c) => `QUOTE(${quote(c.col)})`).join(', ');
  const hashes = await rows<{ h: string }>(
    conn,
    `SELECT MD5(CONCAT_WS(',', ${text})) AS h FROM ${quote(database)}.${quote(table)}
      ORDER BY ${key.map((k) => quote(k.col)).join(', ')} LIMIT ${limit}`,
  );
  t.sample = rowSample(hashes.map((h) => h.h));
}
