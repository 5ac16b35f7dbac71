import pg from 'pg';
import {
  FACTS_VERSION,
  qualified,
  rowSample,
  type BackupFacts,
  type FactReadOptions,
  type FactSnapshot,
  type SequenceFacts,
  type TableFacts,
} from '../catalog/facts.js';

/**
 * PostgreSQL facts for restore drills (src/catalog/facts.ts). Backup: a session exports its
 * snapshot, the dump imports it (`pg_dump --snapshot`) and the facts are read in it while the dump
 * runs, so they describe exactly the dumped rows. Drill: the same queries on the restored copy.
 */

const USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;

/** Objects an extension owns come back with CREATE EXTENSION, not one by one: left out. */
const NOT_EXTENSION_MEMBER = (classid: string, oid: string): string =>
  `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = '${classid}'::regclass
     AND d.objid = ${oid} AND d.deptype = 'e')`;

/**
 * Settings that make row texts the same on every server and session (row hashes compare the text
 * of rows); search_path empty, so that every name in a function signature is schema-qualified.
 */
const SESSION = `SET LOCAL search_path = pg_catalog; SET LOCAL extra_float_digits = 3;
  SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'; SET LOCAL TimeZone = 'UTC';
  SET LOCAL bytea_output = 'hex'`;

/**
 * The facts session of a backup runs beside pg_dump and must not take the cores the dump needs: no
 * parallel workers, no JIT. Measured on bench_pg (pgbench scale 50): the count of pgbench_accounts
 * planned a parallel index-only scan with 2 workers and JIT, ~1.5 s of server CPU; alone and without
 * JIT it takes 0.42 s, and the whole default backup's server CPU went from 5.1 s to about 3.9 s (the
 * dump's own ~3.5 s). Set only where the server has the setting (jit: PostgreSQL 11+).
 */
const GENTLE = `SELECT pg_catalog.set_config(s.name, s.value, true)
  FROM (VALUES ('jit', 'off'), ('max_parallel_workers_per_gather', '0')) AS s(name, value)
  WHERE s.name IN (SELECT name FROM pg_catalog.pg_settings)`;

/**
 * `cancel(pid)` cancels the facts session's running statement from another session. After a
 * failed or interrupted dump, close() must not wait for the facts: a query of theirs may wait for
 * a lock the dump waited for too (measured: a SIGTERM'd backup hung until that lock was released).
 */
export async function pgSnapshotFacts(
  client: pg.Client,
  options: FactReadOptions,
  cancel: (pid: number) => Promise<void>,
): Promise<FactSnapshot> {
  let snapshot: string;
  let pid: number;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    await client.query(SESSION);
    await client.query(GENTLE);
    const r = await client.query<{ id: string; pid: number }>(
      'SELECT pg_catalog.pg_export_snapshot() AS id, pg_catalog.pg_backend_pid() AS pid',
    );
    snapshot = r.rows[0]?.id ?? '';
    pid = r.rows[0]?.pid ?? 0;
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  let settled = false;
  const facts = readPgFacts(client, options, 'dump-snapshot').finally(() => {
    settled = true;
  });
  facts.catch(() => undefined);
  return {
    dumpArgs: [`--snapshot=${snapshot}`],
    facts,
    // The snapshot must live until the dump has imported it: the session ends only now.
    close: async () => {
      if (!settled && pid > 0) await cancel(pid).catch(() => undefined);
      await facts.catch(() => undefined);
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}

/** The facts of a database nobody writes to (a drill's restored copy), in one snapshot. */
export async function pgReadFacts(client: pg.Client, options: FactReadOptions): Promise<BackupFacts> {
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    await client.query(SESSION);
    return await readPgFacts(client, options, 'dump-snapshot');
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

async function column(client: pg.Client, sql: string): Promise<string[]> {
  const r = await client.query<{ v: string }>(sql);
  return r.rows.map((row) => row.v);
}

async function readPgFacts(
  client: pg.Client,
  options: FactReadOptions,
  consistency: BackupFacts['consistency'],
): Promise<BackupFacts> {
  const takenAt = new Date().toISOString();
  const schemas = await column(
    client,
    `SELECT n.nspname AS v FROM pg_catalog.pg_namespace n
      WHERE ${USER_SCHEMAS} AND ${NOT_EXTENSION_MEMBER('pg_catalog.pg_namespace', 'n.oid')} ORDER BY 1`,
  );
  const views = await column(
    client,
    `SELECT format('%s.%s', n.nspname, c.relname) || CASE c.relkind WHEN 'm' THEN ' (materialized)' ELSE '' END AS v
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('v', 'm') AND ${USER_SCHEMAS}
        AND ${NOT_EXTENSION_MEMBER('pg_catalog.pg_class', 'c.oid')} ORDER BY 1`,
  );
  const functions = await column(
    client,
    `SELECT p.oid::pg_catalog.regprocedure::text AS v
       FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE ${USER_SCHEMAS} AND ${NOT_EXTENSION_MEMBER('pg_catalog.pg_proc', 'p.oid')} ORDER BY 1`,
  );
  const extensions = await column(client, 'SELECT extname AS v FROM pg_catalog.pg_extension ORDER BY 1');
  const sequences = await readSequences(client);
  const tables = await readTables(client, options);
  return {
    v: FACTS_VERSION,
    consistency,
    takenAt,
    countLimitBytes: options.countLimitBytes,
    sampleRows: options.sampleRows,
    schemas,
    tables,
    views,
    functions,
    extensions,
    sequences,
  };
}

/** One statement inside a savepoint: a failure (a table this user may not read) leaves the snapshot usable. */
async function guarded<T>(client: pg.Client, run: () => Promise<T>): Promise<T> {
  await client.query('SAVEPOINT dbbackup_fact');
  try {
    const result = await run();
    await client.query('RELEASE SAVEPOINT dbbackup_fact');
    return result;
  } catch (err) {
    await client.query('ROLLBACK TO SAVEPOINT dbbackup_fact').catch(() => undefined);
    throw err;
  }
}

async function readSequences(client: pg.Client): Promise<SequenceFacts[]> {
  const r = await client.query<{ schema: string; name: string; increment: string }>(
    `SELECT n.nspname AS schema, c.relname AS name, s.seqincrement::text AS increment
       FROM pg_catalog.pg_sequence s JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE ${USER_SCHEMAS} AND ${NOT_EXTENSION_MEMBER('pg_catalog.pg_class', 'c.oid')} ORDER BY 1, 2`,
  );
  const out: SequenceFacts[] = [];
  for (const row of r.rows) {
    // Sequences are not transactional: this is the value now, as pg_dump reads it when it dumps them.
    const v = await guarded(client, () =>
      client.query<{ last: string; called: boolean }>(
        `SELECT last_value::text AS last, is_called AS called FROM ${pg.escapeIdentifier(row.schema)}.${pg.escapeIdentifier(row.name)}`,
      ),
    );
    const value = v.rows[0];
    if (value)
      out.push({ name: qualified(row), last: value.last, called: value.called, increment: row.increment });
  }
  return out;
}

async function readTables(client: pg.Client, options: FactReadOptions): Promise<TableFacts[]> {
  const r = await client.query<{ schema: string; name: string; kind: string; bytes: string; oid: number }>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
            pg_catalog.pg_table_size(c.oid)::text AS bytes, c.oid::int AS oid
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND ${USER_SCHEMAS}
        AND ${NOT_EXTENSION_MEMBER('pg_catalog.pg_class', 'c.oid')} ORDER BY 1, 2`,
  );
  const tables: TableFacts[] = [];
  // Without samples the counts are independent of each other: counted in batches (see countRows).
  const batched = options.sampleRows === 0;
  const toCount: Array<{ t: TableFacts; name: string }> = [];
  for (const row of r.rows) {
    const bytes = Number(row.bytes);
    const name = `${pg.escapeIdentifier(row.schema)}.${pg.escapeIdentifier(row.name)}`;
    const t: TableFacts = { schema: row.schema, name: row.name, rows: null, bytes };
    if (row.kind === 'p') t.uncounted = 'partitioned: its partitions are counted';
    else if (options.count && !options.count(qualified(row))) t.uncounted = 'not counted at backup time';
    else if (options.countLimitBytes !== null && bytes > options.countLimitBytes)
      t.uncounted = `larger than the count limit (${Math.round(options.countLimitBytes / 1048576)} MiB)`;
    else if (batched) toCount.push({ t, name });
    else t.rows = (await countRows(client, [name]))[0] ?? 0;
    if (options.sampleRows > 0 && row.kind === 'r') await sampleTable(client, row.oid, name, options, t);
    tables.push(t);
  }
  const counts = await countRows(
    client,
    toCount.map((c) => c.name),
  );
  toCount.forEach((c, i) => (c.t.rows = counts[i] ?? 0));
  return tables;
}

/**
 * Tables counted in one statement: a savepoint, a count and a release were three round trips per
 * table, 6,000 for a database of 2,000 small tables (~1 s of this process's CPU in a backup of
 * it, measured with and without --no-record-facts; docs/performance.md).
 */
const COUNT_BATCH = 100;

/**
 * The rows of each table (`names`: quoted and qualified), in the snapshot. A batch that fails (a
 * table this user may not read) is counted again one table at a time, so the failure is the same
 * statement's, with the same message, as when every table was counted alone.
 */
async function countRows(client: pg.Client, names: string[]): Promise<number[]> {
  // ONLY: an inheritance parent's own rows, as the dump holds them (children are tables of their own).
  const one = async (name: string): Promise<number> => {
    const c = await guarded(client, () =>
      client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ONLY ${name}`),
    );
    return Number(c.rows[0]?.n ?? 0);
  };
  const counts: number[] = [];
  for (let i = 0; i < names.length; i += COUNT_BATCH) {
    const batch = names.slice(i, i + COUNT_BATCH);
    if (batch.length === 1) {
      counts.push(await one(batch[0] ?? ''));
      continue;
    }
    const sql = `SELECT ${batch.map((n, j) => `(SELECT count(*) FROM ONLY ${n})::text AS c${j}`).join(', ')}`;
    const row = (
      await guarded(client, () => client.query<Record<string, string>>(sql)).catch(() => undefined)
    )?.rows[0];
    if (row) counts.push(...batch.map((_, j) => Number(row[`c${j}`] ?? 0)));
    else for (const name of batch) counts.push(await one(name));
  }
  return counts;
}

async function sampleTable(
  client: pg.Client,
  oid: number,
  name: string,
  options: FactReadOptions,
  t: TableFacts,
): Promise<void> {
  const key = await client.query<{ col: string }>(
    `SELECT a.attname AS col FROM pg_catalog.pg_index i
       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
      WHERE i.indrelid = $1 AND i.indisprimary
      ORDER BY pg_catalog.array_position(i.indkey::int2[], a.attnum)`,
    [oid],
  );
  if (!key.rows.length) {
    t.unsampled = 'no primary key';
    return;
  }
  const order = key.rows.map((k) => `r.${pg.escapeIdentifier(k.col)}`).join(', ');
  const rows = await guarded(client, () =>
    client.query<{ h: string }>(
      `SELECT pg_catalog.md5(ROW(r.*)::text) AS h FROM ONLY ${name} AS r ORDER BY ${order} LIMIT ${options.sampleRows}`,
    ),
  );
  t.sample = rowSample(rows.rows.map((x) => x.h));
}
