import { Readable, pipeline, type Transform } from 'node:stream';
import { finished, pipeline as pipelineAsync } from 'node:stream/promises';
import type pg from 'pg';
import {
  METADATA_SCHEMA,
  METADATA_VERSION,
  sha256Line,
  writeMetadata,
  type BackupMetadata,
  type SampleTable,
  type TableStats,
} from '../catalog/metadata.js';
import { SHA256_SUFFIX, extensionFor, safeName, timestampTag } from '../catalog/naming.js';
import type { DatabaseEngine, ToolCommand } from '../engines/engine.js';
import { majorVersion, toolVersion } from '../engines/tools.js';
import {
  DbBackupError,
  IntegrityError,
  MissingToolError,
  ToolError,
  UsageError,
  errorMessage,
} from '../errors.js';
import { planCompression, type CompressionAlgorithm, type CompressionPlan } from '../pipeline/compression.js';
import type { DumpStream } from '../pipeline/dump-stream.js';
import { CommitGate, HashCounter, Sampler } from '../pipeline/hash.js';
import { ToolProcess, waitAll } from '../pipeline/process.js';
import { putBuffer, type Storage } from '../storage/storage.js';
import { TOOL_VERSION } from '../version.js';
import { putEverywhere, redactArgs, verifyStored } from './single.js';
import { claimFreeName, discardOwned, proveStored, TOKEN_METADATA } from './claim.js';

// ---------------------------------------------------------------------------------------------
// What a sample is
// ---------------------------------------------------------------------------------------------

export type SampleStrategy = 'ratio' | 'percent' | 'count';
export const SAMPLE_STRATEGIES: SampleStrategy[] = ['ratio', 'percent', 'count'];

export interface SampleSpec {
  strategy: SampleStrategy;
  /** ratio: every Nth row (N ≥ 2); percent: about N % of rows (0 < N ≤ 100); count: at most N rows. */
  value: number;
  /**
   * Add the rows that sampled rows reference through foreign keys (transitively), so every
   * constraint holds. Without it, rows whose referenced rows are not in the sample are left out.
   */
  keepReferences: boolean;
}

/** Seed of the percent strategy: the same data gives the same sample. */
const PERCENT_SEED = 42;

/** Throws a UsageError (exit 2) unless the strategy and value make a sample. */
export function validateSampleSpec(
  strategy: string,
  value: number,
  flag = '--sample-value',
): SampleSpec['strategy'] {
  if (!SAMPLE_STRATEGIES.includes(strategy as SampleStrategy)) {
    throw new UsageError(`Unknown sample strategy "${strategy}"`, 'Use ratio, percent or count.');
  }
  const s = strategy as SampleStrategy;
  if (!Number.isFinite(value) || value <= 0) {
    throw new UsageError(`Invalid ${flag} ${value}: it must be greater than 0`, sampleHint(s));
  }
  if (s === 'percent' && value > 100) {
    throw new UsageError(`Invalid ${flag} ${value}: a percentage cannot exceed 100`, sampleHint(s));
  }
  if (s !== 'percent' && !Number.isInteger(value)) {
    throw new UsageError(`Invalid ${flag} ${value}: ${s} needs a whole number`, sampleHint(s));
  }
  if (s === 'ratio' && value < 2) {
    throw new UsageError(
      `Invalid ${flag} ${value}: a ratio must be at least 2 (ratio 1 would keep every row)`,
      sampleHint(s),
    );
  }
  return s;
}

function sampleHint(s: SampleStrategy): string {
  switch (s) {
    case 'ratio':
      return 'Use --sample-ratio N with N ≥ 2 to keep every Nth row (e.g. --sample-ratio 10); use "backup single" for a full copy.';
    case 'percent':
      return 'Use --sample-percent N with 0 < N ≤ 100 (e.g. --sample-percent 5).';
    case 'count':
      return 'Use --sample-count N with N ≥ 1 to keep at most N rows per table (e.g. --sample-count 1000).';
  }
}

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}

/** `ratio 10 (every 10th row), referenced rows added` */
export function describeSpec(spec: SampleSpec): string {
  const what =
    spec.strategy === 'ratio'
      ? `every ${ordinal(spec.value)} row`
      : spec.strategy === 'percent'
        ? `about ${spec.value}% of the rows`
        : `at most ${spec.value} rows per table`;
  return `${spec.strategy} ${spec.value} (${what}), ${spec.keepReferences ? 'referenced rows added' : 'rows with missing references left out'}`;
}

/** `shop_sample-ratio10_20260101_120000.sql.zst`: sorts next to the database's full backups. */
export function sampleFileName(
  database: string,
  spec: SampleSpec,
  date: Date,
  extension: string,
  attempt = 0,
): string {
  const unique = attempt > 0 ? `-${attempt}` : '';
  return `${safeName(database)}_sample-${spec.strategy}${safeName(String(spec.value))}_${timestampTag(date)}${unique}${extension}`;
}

// ---------------------------------------------------------------------------------------------
// The backup: same compression → hash → storage path and sidecar order as a single backup
// ---------------------------------------------------------------------------------------------

export interface SampleBackupOptions {
  engine: DatabaseEngine;
  database: string;
  storages: Storage[];
  spec: SampleSpec;
  compression: CompressionAlgorithm;
  level: number;
  onWarning: (line: string) => void;
  /** Short notes about what is happening (sampling, dumping the schema…). */
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

export interface SampleBackupResult {
  key: string;
  locations: string[];
  metadata: BackupMetadata;
}

/** One script: schema from the dump tool, the sampled rows, then indexes, constraints and triggers. */
interface SampleSource {
  tables: SampleTable[];
  dumpTool: { name: string; version: string; args: string[] };
  /** The SQL, produced while it is read. */
  script(): AsyncGenerator<Buffer>;
  /** Stop running child processes (interrupt, storage failure). */
  abort(): void;
  /** End the snapshot transaction and close the connection. */
  close(): Promise<void>;
}

export async function backupSample(o: SampleBackupOptions): Promise<SampleBackupResult> {
  const { engine, database, storages, spec } = o;
  if (!storages.length) throw new UsageError('No backup destination given');
  engine.checkDatabaseName(database);
  const started = new Date();
  // Everything the sample needs is checked first, in parallel.
  const dump = await engine.dumpCommand(database, 'plain');
  const [server, exists, version, plan] = await Promise.all([
    engine.serverInfo(),
    engine.databaseExists(database),
    toolVersion(dump.file),
    planCompression(o.compression, o.level),
  ]);
  if (!exists) {
    throw new UsageError(
      `Database "${database}" does not exist on ${engine.endpoint}`,
      'Run "dbbackup list" to see the databases on this server.',
    );
  }
  const dumpVersion = version ?? 'unknown';
  if (
    engine.engine === 'postgres' &&
    dumpVersion !== 'unknown' &&
    majorVersion(dumpVersion) < majorVersion(server.version)
  ) {
    throw new MissingToolError(
      `pg_dump ${dumpVersion} cannot dump a PostgreSQL ${server.version} server (pg_dump must be at least as new as the server)`,
      {
        hint: `Install the PostgreSQL ${majorVersion(server.version)} client programs, or set DBBACKUP_PG_BINDIR.`,
      },
    );
  }
  const extension = extensionFor(engine.engine, 'plain', plan.algorithm);
  // Owned by this run until released: a concurrent sample of the same database takes the next name.
  const claim = await claimFreeName(
    storages,
    (attempt) => sampleFileName(database, spec, started, extension, attempt),
    database,
  );
  const key = claim.key;
  const warnings: string[] = [];
  const onWarning = (line: string): void => {
    warnings.push(line);
    o.onWarning(line);
  };
  // Table statistics (source row counts for the summary) are gathered while the sample is taken.
  let tableStats: TableStats[] = [];
  const rowsOf = (schema: string, name: string): number | undefined =>
    tableStats.find((t) => t.schema === schema && t.name === name)?.rows;
  o.onProgress?.(`sampling ${database}: ${describeSpec(spec)}`);
  const [stats, opened] = await Promise.allSettled([
    Promise.all([
      engine.tableStats(database),
      engine.databaseSize(database),
      engine.databaseProperties(database),
    ]),
    engine.engine === 'postgres'
      ? openPgSample(engine, dump, dumpVersion, database, spec, rowsOf, onWarning, o.signal)
      : openMySample(engine, dump, dumpVersion, database, spec, rowsOf, onWarning, o.signal),
  ]);
  if (opened.status === 'rejected') {
    if (o.signal?.aborted) throw new DbBackupError('Interrupted; nothing was kept', { exitCode: 130 });
    throw opened.reason;
  }
  const source = opened.value;
  if (stats.status === 'rejected') {
    await source.close();
    throw stats.reason;
  }
  const [statsValue, databaseSize, databaseProperties] = stats.value;
  tableStats = statsValue;
  for (const t of source.tables) t.rows = rowsOf(t.schema, t.name) ?? 0;

  const stored: Storage[] = [];
  let stream: DumpStream | undefined;
  const onAbort = (): void => {
    source.abort();
    stream?.abort();
  };
  o.signal?.addEventListener('abort', onAbort);
  try {
    if (o.signal?.aborted) throw new DbBackupError('Interrupted; nothing was kept', { exitCode: 130 });
    o.onProgress?.('writing the sample');
    stream = scriptStream(source.script(), plan, () => source.abort());
    await putEverywhere(storages, key, stream, stored, {
      noOverwrite: true,
      metadata: {
        'dbbackup-database': database,
        'dbbackup-engine': engine.engine,
        'dbbackup-kind': 'sample',
        [TOKEN_METADATA]: claim.token,
      },
    });
    if (o.signal?.aborted) throw new DbBackupError('Interrupted; nothing was kept', { exitCode: 130 });
    await proveStored(storages, key, claim.token);
    for (const storage of storages) await verifyStored(storage, key, engine, 'plain', stream);
    const finished = new Date();
    const metadata: BackupMetadata = {
      schema: METADATA_SCHEMA,
      schemaVersion: METADATA_VERSION,
      tool: { name: 'dbbackup', version: TOOL_VERSION },
      kind: 'sample',
      engine: server.flavor,
      database,
      server: { version: server.version, versionString: server.versionString },
      connection: { host: engine.host, port: engine.port, user: engine.user },
      dumpTool: source.dumpTool,
      format: 'plain',
      compression: { algorithm: plan.algorithm, level: plan.level, implementation: plan.implementation },
      encryption: null,
      file: key,
      sizeBytes: stream.hash.bytes,
      sha256: stream.hash.sha256,
      dumpBytes: stream.raw ? stream.raw.bytes : null,
      databaseSizeBytes: databaseSize,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationSeconds: (finished.getTime() - started.getTime()) / 1000,
      tables: tableStats,
      warnings,
      sample: {
        strategy: spec.strategy,
        value: spec.value,
        keepReferences: spec.keepReferences,
        tables: source.tables,
      },
      // A sample restored with --create gets the source database's owner, encoding, settings…
      databaseProperties,
    };
    for (const storage of storages) {
      await putBuffer(
        storage,
        key + SHA256_SUFFIX,
        sha256Line(metadata.sha256, key.split('/').pop() ?? key),
        {
          noOverwrite: true,
        },
      );
    }
    for (const storage of storages) await writeMetadata(storage, key, metadata);
    return { key, locations: storages.map((st) => describe(st, key)), metadata };
  } catch (err) {
    onAbort();
    await discardOwned(stored, key, claim.token);
    if (o.signal?.aborted && !(err instanceof DbBackupError && err.exitCode === 130)) {
      throw new DbBackupError('Interrupted; nothing was kept', { exitCode: 130 });
    }
    throw err;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    await source.close();
    await claim.release();
  }
}

function describe(storage: Storage, key: string): string {
  return storage.localPath ? storage.localPath(key) : `${storage.location.replace(/\/$/, '')}/${key}`;
}

/**
 * A script produced in this process → compressor → SHA-256/byte count → commit gate. The gate
 * holds back the end until the script finished without error and the compressor exited cleanly.
 */
function scriptStream(
  script: AsyncGenerator<Buffer>,
  plan: CompressionPlan,
  stopSource: () => void,
): DumpStream {
  const input = Readable.from(script, { objectMode: false, highWaterMark: 1024 * 1024 });
  const raw = new Sampler();
  const hash = new HashCounter();
  const processes: ToolProcess[] = [];
  let fed: Promise<void>;
  let stages: Array<Readable | Transform>;
  if (plan.external) {
    // The compressor reads the script from a pipe; only compressed bytes come back.
    const compressor = new ToolProcess(plan.external, ['pipe', 'pipe', 'pipe'], () => 'error');
    processes.push(compressor);
    const stdin = compressor.child.stdin;
    const stdout = compressor.child.stdout;
    if (!stdin || !stdout) throw new Error('compressor has no stdin/stdout');
    fed = pipelineAsync(input, raw, stdin);
    stages = [stdout];
  } else {
    fed = finished(input);
    stages = [input, raw, ...(plan.inProcess ? [plan.inProcess()] : [])];
  }
  fed.catch(() => undefined);
  const result: DumpStream = {
    readable: hash,
    hash,
    processes,
    dumpPid: undefined,
    raw,
    rawBytes: () => raw.bytes,
    tail: () => raw.tail,
    abort: () => {
      stopSource();
      input.destroy();
      for (const p of processes) p.kill();
    },
  };
  const gate = new CommitGate(async () => {
    await fed;
    await waitAll(processes);
    if (raw.bytes === 0) throw new IntegrityError('The sample script is empty');
  });
  result.readable = pipeline([...stages, hash, gate], (err) => {
    if (err) result.abort();
  }) as unknown as Readable;
  return result;
}

/** Runs a dump tool and yields its stdout; throws (after the output) if it failed or stopped early. */
async function* toolOutput(
  cmd: ToolCommand,
  engine: DatabaseEngine,
  running: Set<ToolProcess>,
  trailer: RegExp,
  onWarning: (line: string) => void,
): AsyncGenerator<Buffer> {
  const tool = new ToolProcess(cmd, ['ignore', 'pipe', 'pipe'], (l) => engine.classifyStderr(l), onWarning);
  running.add(tool);
  let tail = '';
  try {
    const out = tool.child.stdout;
    if (!out) throw new Error(`${cmd.name} has no stdout`);
    for await (const chunk of out as AsyncIterable<Buffer>) {
      tail = (tail + chunk.toString('latin1')).slice(-4096);
      yield chunk;
    }
    await tool.done;
    if (!trailer.test(tail)) {
      throw new IntegrityError(`${cmd.name} ended without its completion trailer: the schema is incomplete`, {
        hint: 'The dump tool stopped early; check the server log and try again.',
      });
    }
  } finally {
    tool.kill();
    running.delete(tool);
  }
}

function sqlComment(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: temp tables of sampled ctids inside one REPEATABLE READ transaction whose snapshot
// the pg_dump runs import; rows leave the server through COPY … TO STDOUT on the same session.
// ---------------------------------------------------------------------------------------------

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

const PG_USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;
const PG_NOT_EXTENSION_MEMBER = `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`;

/** COPY … TO STDOUT on a driver connection, as a Readable with backpressure on the socket. */
class CopyOut extends Readable implements pg.Submittable {
  private connection: pg.Connection | undefined;
  private paused = false;

  constructor(private readonly text: string) {
    super({ highWaterMark: 1024 * 1024 });
  }

  submit(connection: pg.Connection): void {
    this.connection = connection;
    connection.query(this.text);
  }

  handleCopyData(msg: { chunk: Buffer }): void {
    if (!this.push(msg.chunk) && this.connection) {
      this.paused = true;
      this.connection.stream.pause();
    }
  }

  override _read(): void {
    if (this.paused && this.connection) {
      this.paused = false;
      this.connection.stream.resume();
    }
  }

  handleReadyForQuery(): void {
    this.resumeSocket();
    this.push(null);
  }

  handleError(err: Error): void {
    this.resumeSocket();
    this.destroy(err);
  }

  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(connection: pg.Connection & { sendCopyFail?: (msg: string) => void }): void {
    connection.sendCopyFail?.('dbbackup does not send COPY data');
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // A reader that stops early must not leave the connection's socket paused.
    this.resumeSocket();
    callback(err);
  }

  private resumeSocket(): void {
    if (this.paused && this.connection) {
      this.paused = false;
      this.connection.stream.resume();
    }
  }
}

async function openPgSample(
  engine: DatabaseEngine,
  dump: ToolCommand,
  dumpVersion: string,
  database: string,
  spec: SampleSpec,
  rowsOf: (schema: string, name: string) => number | undefined,
  onWarning: (line: string) => void,
  signal?: AbortSignal,
): Promise<SampleSource> {
  // The drivers are loaded here, not at start-up: every other command would pay for them.
  const { default: pgDriver } = await import('pg');
  // The engine's own connection: the same server, credentials and TLS as the dump tool.
  const { PostgresEngine } = await import('../engines/postgres.js');
  if (!(engine instanceof PostgresEngine)) throw new Error('openPgSample: not a PostgreSQL engine');
  const ident = pgDriver.escapeIdentifier;
  const client = await engine.connect(database);
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
  signal?.addEventListener('abort', interrupt);
  const q = async <R extends pg.QueryResultRow>(text: string): Promise<pg.QueryResult<R>> => {
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
    // Nothing may end this session while the pg_dump runs share its snapshot.
    await q(`SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0;
             SET row_security = off; SET client_encoding = 'UTF8'`);
    await q('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const snapshot = (await q<{ s: string }>('SELECT pg_catalog.pg_export_snapshot() AS s')).rows[0]?.s;
    if (!snapshot) throw new ToolError('Could not export a snapshot for pg_dump');
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

    // 1. The sample itself.
    for (const t of tables.values()) {
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

    const joinOn = (e: PgEdge, c: string, p: string): string =>
      e.childCols.map((col, i) => `${p}.${ident(e.parentCols[i] ?? '')} = ${c}.${ident(col)}`).join(' AND ');

    // 2. Referenced rows, transitively: only edges whose child gained rows need another look.
    if (spec.keepReferences) {
      let dirty = new Set(tables.values());
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
                   JOIN ONLY ${e.parent.q} p ON ${joinOn(e, 'c', 'p')}
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
    } else {
      // 2'. Leave out rows whose referenced row is not in the sample, until nothing changes.
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
                                     WHERE ${joinOn(e, 'c', 'p')})`,
              )
            ).rowCount ?? 0;
          if (removed > 0) {
            e.child.dropped += removed;
            changed = true;
          }
        }
      }
    }
    for (const t of tables.values()) {
      t.kept = Number((await q<{ n: string }>(`SELECT count(*) AS n FROM ${t.sel}`)).rows[0]?.n ?? 0);
    }
    const dropped = [...tables.values()].filter((t) => t.dropped > 0);
    if (dropped.length) {
      onWarning(
        `--no-keep-references: ${dropped.map((t) => `${t.schema}.${t.name} ${t.dropped}`).join(', ')} sampled rows were left out because rows they reference are not in the sample`,
      );
    }

    const sequences = await q<{ q: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS q
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'S' AND ${PG_USER_SCHEMAS} AND ${PG_NOT_EXTENSION_MEMBER}
        ORDER BY 1`,
    );
    const setvals: string[] = [];
    for (const s of sequences.rows) {
      const cur = (
        await q<{ v: string; called: boolean }>(
          `SELECT last_value::text AS v, is_called AS called FROM ${s.q}`,
        )
      ).rows[0];
      if (cur)
        setvals.push(`SELECT pg_catalog.setval(${pgDriver.escapeLiteral(s.q)}, ${cur.v}, ${cur.called});`);
    }

    const base = dump.args.filter((a) => !a.startsWith('--format='));
    const preArgs = [
      ...base,
      '--format=plain',
      '--schema-only',
      '--section=pre-data',
      `--snapshot=${snapshot}`,
    ];
    const postArgs = [
      ...base,
      '--format=plain',
      '--section=post-data',
      '--no-blobs',
      `--snapshot=${snapshot}`,
    ];
    const trailer = /-- PostgreSQL database dump complete/;
    const ordered = [...tables.values()];
    const summary: SampleTable[] = ordered.map((t) => ({
      schema: t.schema,
      name: t.name,
      rows: 0, // filled in from the table statistics
      keptRows: t.kept,
      sampledRows: t.sampled,
      referencedRows: t.referenced,
      droppedRows: t.dropped,
    }));

    async function* script(): AsyncGenerator<Buffer> {
      yield* toolOutput({ ...dump, args: preArgs }, engine, running, trailer, onWarning);
      yield Buffer.from(
        [
          '',
          '--',
          `-- dbbackup sample data: ${sqlComment(describeSpec(spec))}`,
          '-- Constraints, indexes and triggers follow the data (post-data section).',
          '--',
          '',
          "SET client_encoding = 'UTF8';",
          '',
        ].join('\n'),
      );
      for (const t of ordered) {
        if (t.kept === 0) continue;
        const cols = t.columns.map(ident);
        yield Buffer.from(
          `--\n-- Data for Name: ${sqlComment(t.name)}; Type: TABLE DATA; Schema: ${sqlComment(t.schema)} (sample: ${t.kept} of ${rowsOf(t.schema, t.name) ?? '?'} rows)\n--\n\n` +
            `COPY ${t.q}${cols.length ? ` (${cols.join(', ')})` : ''} FROM stdin;\n`,
        );
        const select = cols.map((c) => `t.${c}`).join(', ');
        const copy = client.query(
          new CopyOut(
            `COPY (SELECT ${select} FROM ONLY ${t.q} t JOIN ${t.sel} s ON t.ctid = s.rid ORDER BY ${t.orderBy('t')}) TO STDOUT`,
          ),
        );
        try {
          for await (const chunk of copy as AsyncIterable<Buffer>) yield chunk;
        } catch (err) {
          throw new ToolError(
            `Could not read the sampled rows of ${t.schema}.${t.name}: ${errorMessage(err)}`,
            {
              cause: err,
            },
          );
        }
        yield Buffer.from('\\.\n\n');
      }
      if (setvals.length)
        yield Buffer.from(`--\n-- Sequence values of the source\n--\n\n${setvals.join('\n')}\n\n`);
      yield* toolOutput({ ...dump, args: postArgs }, engine, running, trailer, onWarning);
    }

    return {
      tables: summary,
      dumpTool: { name: dump.name, version: dumpVersion, args: redactArgs(preArgs) },
      script,
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
    signal?.removeEventListener('abort', interrupt);
  }
}

// ---------------------------------------------------------------------------------------------
// MySQL / MariaDB: sampled keys kept in memory, read inside one consistent-snapshot transaction
// (plain SELECTs only: INSERT … SELECT would lock the source rows); INSERTs written parent-first
// so the data loads with FOREIGN_KEY_CHECKS=1.
// ---------------------------------------------------------------------------------------------

type MyValue = string | Buffer | null;

interface MyColumn {
  name: string;
  binary: boolean;
  numeric: boolean;
  generated: boolean;
  /** What the column's collation treats as equal maps to the same string. */
  fold: (s: string) => string;
}

interface MyEdge {
  name: string;
  child: MyTable;
  parent: MyTable;
  childCols: string[];
  parentCols: string[];
  /** Values looked up in the parent already, folded. */
  resolved: Set<string>;
  pending: Map<string, MyValue[]>;
}

interface MyTable {
  name: string;
  q: string;
  columns: Map<string, MyColumn>;
  insertable: MyColumn[];
  /** Primary key or a unique key of NOT NULL columns; null when the table has neither. */
  key: string[] | null;
  /** Columns read for each selected row: the key, outgoing FK columns, columns referenced by FKs (all columns when keyless). */
  need: string[];
  out: MyEdge[];
  in: MyEdge[];
  /** Selected rows: identity → the `need` values. */
  rows: Map<string, MyValue[]>;
  sampled: number;
  referenced: number;
  dropped: number;
}

const MY_NUMERIC = new Set([
  'tinyint',
  'smallint',
  'mediumint',
  'int',
  'integer',
  'bigint',
  'decimal',
  'numeric',
  'float',
  'double',
  'real',
]);
const MY_BINARY = new Set([
  'binary',
  'varbinary',
  'tinyblob',
  'blob',
  'mediumblob',
  'longblob',
  'bit',
  'geometry',
  'point',
  'linestring',
  'polygon',
  'multipoint',
  'multilinestring',
  'multipolygon',
  'geometrycollection',
]);
const MY_TEXT = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set']);
/** Keys per lookup query. */
const MY_BATCH = 500;
/** Target size of one INSERT statement (mysqldump's default net_buffer_length). */
const MY_STATEMENT_BYTES = 1024 * 1024;

function foldFor(dataType: string, collation: string | null): (s: string) => string {
  if (!MY_TEXT.has(dataType) || !collation) return (s) => s;
  const ci = /_ci(_|$)/.test(collation) || /_ai_/.test(collation);
  const padSpace =
    !/nopad|_0900_|_uca1400_.*_nopad/.test(collation) && dataType !== 'enum' && dataType !== 'set';
  return (s) => {
    let v = padSpace ? s.replace(/ +$/, '') : s;
    if (ci) v = v.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
    return v;
  };
}

function myIdent(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

async function openMySample(
  engine: DatabaseEngine,
  dump: ToolCommand,
  dumpVersion: string,
  database: string,
  spec: SampleSpec,
  rowsOf: (schema: string, name: string) => number | undefined,
  onWarning: (line: string) => void,
  signal?: AbortSignal,
): Promise<SampleSource> {
  // The engine's own connection: the same server, credentials and TLS as the dump tool.
  const { MysqlEngine } = await import('../engines/mysql.js');
  if (!(engine instanceof MysqlEngine)) throw new Error('openMySample: not a MySQL/MariaDB engine');
  const conn = await engine.connect(database, { charset: 'utf8mb4', dateStrings: true });
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
  signal?.addEventListener('abort', interrupt);
  const fail = (err: unknown, sql: string): never => {
    throw new ToolError(`Sampling failed: ${errorMessage(err)}`, {
      hint: 'The sample needs MySQL 8.0+ or MariaDB 10.2+ (window functions) and read access to every table.',
      details: [sql.replace(/\s+/g, ' ').slice(0, 300)],
      cause: err,
    });
  };
  /** Rows as arrays of raw bytes, exactly as the server sent them. */
  const rawRows = async (sql: string): Promise<Array<Array<Buffer | null>>> => {
    try {
      const [rows] = await conn.query({ sql, typeCast: false, rowsAsArray: true });
      return rows as unknown as Array<Array<Buffer | null>>;
    } catch (err) {
      return fail(err, sql);
    }
  };
  const objects = async <T>(sql: string, params: unknown[] = []): Promise<T[]> => {
    try {
      const [rows] = await conn.query(sql, params);
      return rows as T[];
    } catch (err) {
      return fail(err, sql);
    }
  };
  try {
    await objects(
      `SET SESSION time_zone = '+00:00', SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')`,
    );
    await objects('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    await objects('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');

    const tableNames = await objects<{ name: string }>(
      `SELECT TABLE_NAME AS name FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME`,
      [database],
    );
    const columns = await objects<{
      tbl: string;
      col: string;
      type: string;
      extra: string;
      coll: string | null;
      expr: string | null;
    }>(
      `SELECT TABLE_NAME AS tbl, COLUMN_NAME AS col, DATA_TYPE AS type, EXTRA AS extra, COLLATION_NAME AS coll,
              GENERATION_EXPRESSION AS expr
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`,
      [database],
    );
    const keys = await objects<{ tbl: string; name: string; type: string; col: string; nullable: string }>(
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
    const fks = await objects<{
      tbl: string;
      name: string;
      col: string;
      ref_schema: string;
      ref_tbl: string;
      ref_col: string;
    }>(
      `SELECT TABLE_NAME AS tbl, CONSTRAINT_NAME AS name, COLUMN_NAME AS col, REFERENCED_TABLE_SCHEMA AS ref_schema,
              REFERENCED_TABLE_NAME AS ref_tbl, REFERENCED_COLUMN_NAME AS ref_col
         FROM information_schema.KEY_COLUMN_USAGE
        WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL
        ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION`,
      [database],
    );

    const groupBy = <T extends { tbl: string }>(rows: T[]): Map<string, T[]> => {
      const m = new Map<string, T[]>();
      for (const r of rows) {
        const list = m.get(r.tbl);
        if (list) list.push(r);
        else m.set(r.tbl, [r]);
      }
      return m;
    };
    const columnsOf = groupBy(columns);
    const keysOf = groupBy(keys);
    const tables = new Map<string, MyTable>();
    for (const { name } of tableNames) {
      const cols = new Map<string, MyColumn>();
      for (const c of columnsOf.get(name) ?? []) {
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
      for (const k of keysOf.get(name) ?? []) {
        const entry = candidates.get(k.name) ?? { cols: [], nullable: false };
        entry.cols.push(k.col);
        entry.nullable ||= k.nullable === 'YES';
        candidates.set(k.name, entry);
      }
      const key = [...candidates.values()].find((c) => !c.nullable)?.cols ?? null;
      tables.set(name, {
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
      });
    }
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
    for (const t of tables.values()) {
      const need = t.key
        ? [...t.key, ...t.out.flatMap((e) => e.childCols), ...t.in.flatMap((e) => e.parentCols)]
        : t.insertable.map((c) => c.name);
      t.need = [...new Set(need)];
    }

    const idx = (t: MyTable, col: string): number => t.need.indexOf(col);
    const valuesAt = (t: MyTable, row: MyValue[], cols: string[]): MyValue[] =>
      cols.map((c) => row[idx(t, c)] ?? null);
    const foldedKey = (t: MyTable, cols: string[], values: MyValue[]): string =>
      values
        .map((v, i) => {
          if (v === null) return '\u0001N';
          if (Buffer.isBuffer(v)) return `\u0001x${v.toString('hex')}`;
          const col = t.columns.get(cols[i] ?? '');
          return `\u0001s${col ? col.fold(v) : v}`;
        })
        .join('');
    const exactKey = (values: MyValue[]): string =>
      values
        .map((v) =>
          v === null ? '\u0001N' : Buffer.isBuffer(v) ? `\u0001x${v.toString('hex')}` : `\u0001s${v}`,
        )
        .join('');
    const convert = (t: MyTable, cols: string[], raw: Array<Buffer | null>): MyValue[] =>
      raw.map((b, i) => {
        if (b === null || b === undefined) return null;
        return t.columns.get(cols[i] ?? '')?.binary ? b : b.toString('utf8');
      });
    const literal = (col: MyColumn | undefined, v: MyValue): string => {
      if (v === null) return 'NULL';
      if (Buffer.isBuffer(v)) return v.length ? `0x${v.toString('hex')}` : "''";
      if (col?.numeric && /^[-+]?[0-9.eE+-]+$/.test(v)) return v;
      return conn.escape(v);
    };
    const matchAny = (t: MyTable, cols: string[], tuples: MyValue[][]): string => {
      if (cols.length === 1) {
        const col = t.columns.get(cols[0] ?? '');
        return `${myIdent(cols[0] ?? '')} IN (${tuples.map((v) => literal(col, v[0] ?? null)).join(', ')})`;
      }
      return tuples
        .map(
          (v) =>
            `(${cols.map((c, i) => `${myIdent(c)} = ${literal(t.columns.get(c), v[i] ?? null)}`).join(' AND ')})`,
        )
        .join(' OR ');
    };
    /** Adds a row to a table's selection; true when it was new. */
    const select = (t: MyTable, row: MyValue[], duplicates?: Map<string, number>): boolean => {
      let id = t.key ? exactKey(valuesAt(t, row, t.key)) : exactKey(row);
      if (!t.key && duplicates) {
        // Identical rows of a keyless table are distinct rows of the sample.
        const n = duplicates.get(id) ?? 0;
        duplicates.set(id, n + 1);
        id = `${id}#${n}`;
      } else if (!t.key) id = `${id}#0`;
      if (t.rows.has(id)) return false;
      t.rows.set(id, row);
      if (spec.keepReferences) {
        for (const e of t.out) {
          const fk = valuesAt(t, row, e.childCols);
          if (fk.some((v) => v === null)) continue;
          const k = foldedKey(e.child, e.childCols, fk);
          if (!e.resolved.has(k)) e.pending.set(k, fk);
        }
      }
      return true;
    };

    // 1. The sample itself.
    for (const t of tables.values()) {
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
        if (select(t, convert(t, t.need, raw), duplicates)) t.sampled++;
      }
    }

    // 2. Referenced rows, transitively, until no foreign key points outside the selection.
    if (spec.keepReferences) {
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
            p,
            edge.parentCols,
            batch.map(([, v]) => v),
          )}`,
        );
        for (const raw of found) if (select(p, convert(p, p.need, raw))) p.referenced++;
      }
    }

    // 3. Every foreign key value must now have its row; leave out rows where it does not (without
    // --keep-references: rows whose referenced row was not sampled; with it: orphans in the source).
    for (let changed = true; changed;) {
      changed = false;
      for (const e of edges) {
        const present = new Set<string>();
        for (const row of e.parent.rows.values()) {
          present.add(foldedKey(e.parent, e.parentCols, valuesAt(e.parent, row, e.parentCols)));
        }
        for (const [id, row] of e.child.rows) {
          const fk = valuesAt(e.child, row, e.childCols);
          if (fk.some((v) => v === null)) continue;
          if (!present.has(foldedKey(e.parent, e.parentCols, fk))) {
            e.child.rows.delete(id);
            e.child.dropped++;
            changed = true;
          }
        }
      }
    }
    const dropped = [...tables.values()].filter((t) => t.dropped > 0);
    if (dropped.length) {
      const list = dropped.map((t) => `${t.name} ${t.dropped}`).join(', ');
      onWarning(
        spec.keepReferences
          ? `rows left out because the rows they reference do not exist in the source: ${list}`
          : `--no-keep-references: ${list} sampled rows were left out because rows they reference are not in the sample`,
      );
    }

    // 4. Load order: referenced tables first; within a self-referencing table, referenced rows first.
    const { order, cyclic } = tableOrder([...tables.values()]);
    const rowOrder = (t: MyTable): { ids: string[]; looped: string[] } => {
      const self = t.out.filter((e) => e.parent === t);
      const ids = [...t.rows.keys()];
      if (!self.length) return { ids, looped: [] };
      const byRef = self.map((e) => {
        const m = new Map<string, string>();
        for (const [id, row] of t.rows) m.set(foldedKey(t, e.parentCols, valuesAt(t, row, e.parentCols)), id);
        return m;
      });
      const children = new Map<string, string[]>();
      const waiting = new Map<string, number>();
      for (const [id, row] of t.rows) {
        self.forEach((e, i) => {
          const fk = valuesAt(t, row, e.childCols);
          if (fk.some((v) => v === null)) return;
          const parent = byRef[i]?.get(foldedKey(t, e.parentCols, fk));
          if (parent === undefined || parent === id) return;
          const list = children.get(parent);
          if (list) list.push(id);
          else children.set(parent, [id]);
          waiting.set(id, (waiting.get(id) ?? 0) + 1);
        });
      }
      const out: string[] = ids.filter((id) => !waiting.get(id));
      for (let i = 0; i < out.length; i++) {
        for (const child of children.get(out[i] ?? '') ?? []) {
          const left = (waiting.get(child) ?? 0) - 1;
          waiting.set(child, left);
          if (left === 0) out.push(child);
        }
      }
      const done = new Set(out);
      return { ids: out, looped: ids.filter((id) => !done.has(id)) };
    };
    if (cyclic.size) {
      onWarning(
        `tables that reference each other in a cycle are loaded with FOREIGN_KEY_CHECKS=0: ${[...cyclic].map((t) => t.name).join(', ')}`,
      );
    }

    const summary: SampleTable[] = [...tables.values()].map((t) => ({
      schema: database,
      name: t.name,
      rows: 0, // filled in from the table statistics
      keptRows: t.rows.size,
      sampledRows: t.sampled,
      referencedRows: t.referenced,
      droppedRows: t.dropped,
    }));

    const withoutSep = (args: string[]): { before: string[]; after: string[] } => {
      const i = args.indexOf('--');
      return i < 0 ? { before: args, after: [] } : { before: args.slice(0, i), after: args.slice(i) };
    };
    const { before, after } = withoutSep(dump.args);
    const schemaArgs = [
      ...before.filter((a) => a !== '--triggers'),
      '--skip-triggers',
      '--no-data',
      ...after,
    ];
    const triggerArgs = [
      ...before.filter((a) => a !== '--routines' && a !== '--events'),
      '--skip-routines',
      '--no-create-info',
      '--no-data',
      ...after,
    ];
    const trailer = /-- (Dump completed|MariaDB dump completed)/;

    /** INSERT statements for some rows of a table, in the order given. */
    async function* inserts(t: MyTable, ids: string[]): AsyncGenerator<Buffer> {
      const cols = t.insertable;
      const head = `INSERT INTO ${t.q} (${cols.map((c) => myIdent(c.name)).join(', ')}) VALUES\n`;
      let statement: string[] = [];
      let size = 0;
      const flush = (): Buffer | undefined => {
        if (!statement.length) return undefined;
        const b = Buffer.from(`${head}${statement.join(',\n')};\n`);
        statement = [];
        size = 0;
        return b;
      };
      const add = (values: MyValue[]): Buffer | undefined => {
        const tuple = `(${values.map((v, i) => literal(cols[i], v)).join(',')})`;
        let out: Buffer | undefined;
        if (size + tuple.length > MY_STATEMENT_BYTES) out = flush();
        statement.push(tuple);
        size += tuple.length;
        return out;
      };
      if (!t.key) {
        // Keyless tables: the selected rows are the full rows already.
        for (const id of ids) {
          const row = t.rows.get(id);
          if (!row) continue;
          const b = add(cols.map((c) => row[t.need.indexOf(c.name)] ?? null));
          if (b) yield b;
        }
        const last = flush();
        if (last) yield last;
        return;
      }
      const key = t.key;
      const selectCols = [...key, ...cols.map((c) => c.name)];
      for (let i = 0; i < ids.length; i += MY_BATCH) {
        const batchIds = ids.slice(i, i + MY_BATCH);
        const tuples = batchIds.map((id) => {
          const row = t.rows.get(id) ?? [];
          return valuesAt(t, row, key);
        });
        const fetched = new Map<string, MyValue[]>();
        for (const raw of await rawRows(
          `SELECT ${selectCols.map(myIdent).join(', ')} FROM ${t.q} WHERE ${matchAny(t, key, tuples)}`,
        )) {
          const values = convert(t, selectCols, raw);
          fetched.set(exactKey(values.slice(0, key.length)), values.slice(key.length));
        }
        for (const id of batchIds) {
          const row = t.rows.get(id);
          const values = row ? fetched.get(exactKey(valuesAt(t, row, key))) : undefined;
          if (!values) throw new IntegrityError(`A sampled row of ${t.name} could not be read again`);
          const b = add(values);
          if (b) yield b;
        }
        const b = flush();
        if (b) yield b;
      }
    }

    async function* script(): AsyncGenerator<Buffer> {
      yield* toolOutput({ ...dump, args: schemaArgs }, engine, running, trailer, onWarning);
      yield Buffer.from(
        [
          '',
          '--',
          `-- dbbackup sample data: ${sqlComment(describeSpec(spec))}`,
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
      for (const t of order) {
        const { ids, looped } = rowOrder(t);
        const all = [...ids, ...looped];
        if (!all.length) continue;
        yield Buffer.from(
          `--\n-- Data for table ${sqlComment(myIdent(t.name))} (sample: ${all.length} of ${rowsOf(database, t.name) ?? '?'} rows)\n--\n\n`,
        );
        const checksOff = cyclic.has(t);
        if (checksOff) yield Buffer.from('SET FOREIGN_KEY_CHECKS=0;\n');
        yield* inserts(t, ids);
        if (looped.length) {
          onWarning(
            `${t.name}: ${looped.length} rows reference each other in a cycle; they are loaded with FOREIGN_KEY_CHECKS=0`,
          );
          if (!checksOff) yield Buffer.from('SET FOREIGN_KEY_CHECKS=0;\n');
          yield* inserts(t, looped);
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
      await close();
      yield* toolOutput({ ...dump, args: triggerArgs }, engine, running, trailer, onWarning);
    }

    return {
      tables: summary,
      dumpTool: { name: dump.name, version: dumpVersion, args: redactArgs(schemaArgs) },
      script,
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
    signal?.removeEventListener('abort', interrupt);
  }
}

/** Tables ordered so that referenced tables come first; members of multi-table cycles are marked. */
function tableOrder(tables: MyTable[]): { order: MyTable[]; cyclic: Set<MyTable> } {
  const waiting = new Map<MyTable, number>();
  for (const t of tables) {
    waiting.set(t, new Set(t.out.filter((e) => e.parent !== t).map((e) => e.parent)).size);
  }
  const order = tables.filter((t) => !waiting.get(t));
  for (let i = 0; i < order.length; i++) {
    const done = order[i];
    if (!done) continue;
    const dependents = new Set(done.in.filter((e) => e.child !== done).map((e) => e.child));
    for (const d of dependents) {
      const left = (waiting.get(d) ?? 0) - 1;
      waiting.set(d, left);
      if (left === 0) order.push(d);
    }
  }
  const placed = new Set(order);
  const cyclic = new Set(tables.filter((t) => !placed.has(t)));
  return { order: [...order, ...cyclic], cyclic };
}
