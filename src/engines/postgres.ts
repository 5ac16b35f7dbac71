import { existsSync } from 'node:fs';
import os from 'node:os';
import pg from 'pg';
import type { DumpFormat } from '../types.js';
import type { TableStats } from '../catalog/metadata.js';
import type { CreationProperties, DatabaseProperties } from '../catalog/properties.js';
import type { BackupFacts, FactReadOptions, FactSnapshot } from '../catalog/facts.js';
import { ConnectionError, MissingToolError, UsageError, errnoCode, errorMessage } from '../errors.js';
import type { ConnectionOptions } from './connection.js';
import { IdleClients } from './pg-idle.js';
import type {
  DatabaseEngine,
  DatabaseInfo,
  PropertyStatement,
  RestoreCommandOptions,
  ServerInfo,
  StderrClass,
  GlobalsSource,
  ToolCommand,
  ToolStatus,
} from './engine.js';
import {
  PG_PROPERTIES_QUERY,
  pgCreateDatabaseSql,
  pgCreationProblems,
  pgPropertiesFromRow,
  pgPropertyStatements,
  type PgPropertiesRow,
} from './pg-properties.js';
import { findPgTool, parseVersion, shouldCountExactly, toolVersion } from './tools.js';
import {
  connectWithTls,
  isTlsFailure,
  nodeTls,
  parseSslMode,
  pgTls,
  TLS_HINT,
  type SslMode,
  type TlsAttempt,
} from './tls.js';

const USER_SCHEMA_FILTER = `n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;

/** libpq connection-string value quoting, so any database name is passed as data, not syntax. */
export function conninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** NAMEDATALEN - 1: the server keeps this many bytes of an identifier and silently drops the rest. */
const PG_NAME_BYTES = 63;

/** The first `max` bytes of `s`'s UTF-8, cut before a character that would not fit (as the server does). */
function truncateUtf8(s: string, max: number): string {
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

interface LockHolderRow {
  pid: number;
  user: string | null;
  app: string | null;
  client: string | null;
  state: string | null;
  database: string | null;
  xact_start: string | null;
  query_start: string | null;
  query: string | null;
  locks: boolean;
}

/** One line per session: who it is, what it is doing, since when. */
function describeHolder(r: LockHolderRow): string {
  const who = [r.user ? `user ${r.user}` : '', r.app ? `"${r.app}"` : '', r.client ? `from ${r.client}` : '']
    .filter(Boolean)
    .join(' ');
  const where = r.locks ? 'holds a lock on it' : `is connected to it`;
  const since = r.xact_start ? `, in a transaction since ${r.xact_start}` : '';
  const query = r.query ? `, last query (started ${r.query_start ?? '?'}): ${r.query}` : '';
  return `pid ${r.pid} (${who || 'unknown user'}) ${where}: ${r.state ?? 'state unknown'}${since}${query}`;
}

function defaultHost(port: number): string {
  // libpq's default on Debian is the socket directory; use it explicitly so driver and tools agree.
  const dir = '/var/run/postgresql';
  return existsSync(`${dir}/.s.PGSQL.${port}`) ? dir : 'localhost';
}

export class PostgresEngine implements DatabaseEngine {
  readonly engine = 'postgres' as const;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly endpoint: string;
  private readonly password: string | undefined;
  private readonly sslMode: SslMode | undefined;
  private readonly sslCa: string | undefined;
  private readonly maintenanceDb: string;
  /** How long statements that change the server wait for a lock (0: as long as the server lets them). */
  private readonly lockTimeoutSeconds: number;
  private tls: TlsAttempt[] | undefined;
  private readonly idle = new IdleClients();

  constructor(options: ConnectionOptions, env: NodeJS.ProcessEnv = process.env) {
    this.port = options.port ?? (env.PGPORT ? Number(env.PGPORT) : 5432);
    this.host = options.host ?? env.PGHOST ?? defaultHost(this.port);
    this.user = options.user ?? env.PGUSER ?? os.userInfo().username;
    this.password = options.password ?? env.PGPASSWORD ?? undefined;
    this.sslMode = options.sslMode
      ? parseSslMode(options.sslMode, '--ssl-mode')
      : parseSslMode(env.PGSSLMODE, 'PGSSLMODE');
    this.sslCa = options.sslCa;
    this.maintenanceDb = options.database ?? env.PGDATABASE ?? 'postgres';
    this.lockTimeoutSeconds = options.lockTimeoutSeconds ?? 0;
    // The server would connect to the truncated name: another database than the one named.
    this.checkDatabaseName(this.maintenanceDb);
    this.endpoint = this.host.startsWith('/')
      ? `${this.host}/.s.PGSQL.${this.port}`
      : `${this.host}:${this.port}`;
  }

  /**
   * A client connected to `database`, with the same TLS as the tools (see tls.ts); the caller ends it.
   * `replication`: a walsender session (BASE_BACKUP and the other replication commands), as pg_basebackup opens.
   */
  async connect(database: string, options: { replication?: boolean } = {}): Promise<pg.Client> {
    // The driver follows the same libpq variables as the tools (toolEnv), so both connect alike.
    this.tls ??= pgTls(this.toolEnv(), this.host.startsWith('/'));
    try {
      return await connectWithTls(this.tls, async (ssl) => {
        // The driver sends `replication` in the startup packet; its types do not list it.
        const config: pg.ClientConfig & { replication?: string } = {
          host: this.host,
          port: this.port,
          user: this.user,
          password: this.password,
          database,
          ssl: nodeTls(ssl),
          connectionTimeoutMillis: 15_000,
          application_name: 'dbbackup',
          ...(options.replication ? { replication: 'database' } : {}),
        };
        const c = new pg.Client(config);
        c.on('error', () => undefined);
        await c.connect();
        return c;
      });
    } catch (err) {
      throw this.connectionError(err, database);
    }
  }

  /**
   * A client on the maintenance database for statements that change the server (CREATE/DROP
   * DATABASE): they give up after the lock timeout instead of waiting for another session forever
   * (reset before the client is lent again).
   */
  private async withDdlClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    if (!this.lockTimeoutSeconds) return this.withClient(this.maintenanceDb, fn);
    return this.withClient(this.maintenanceDb, async (c) => {
      await c.query(`SET lock_timeout = '${this.lockTimeoutSeconds}s'`);
      const result = await fn(c);
      await c.query('RESET lock_timeout');
      return result;
    });
  }

  /**
   * Run `fn` with a client connected to `database`: on the maintenance database one lent by the
   * idle set (see pg-idle.ts); in any other a fresh one, ended after — an idle session in a
   * database would make a DROP DATABASE (ours, or pg_restore --clean's) wait and fail.
   */
  private async withClient<T>(database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const reuse = database === this.maintenanceDb;
    const client = (reuse && this.idle.take(database)) || this.idle.track(await this.connect(database));
    let result: T;
    try {
      result = await fn(client);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (reuse) this.idle.give(database, client);
    else await client.end().catch(() => undefined);
    return result;
  }

  private connectionError(err: unknown, database: string): ConnectionError {
    const message = errorMessage(err);
    const code = errnoCode(err);
    let hint = 'Check --host, --port and --user (or PGHOST, PGPORT, PGUSER) and that the server is running.';
    if (isTlsFailure(message)) {
      hint = TLS_HINT;
    } else if (/password authentication failed|no password supplied|SASL/i.test(message)) {
      hint = 'Check the password: --password, PGPASSWORD or ~/.pgpass (PGPASSFILE).';
    } else if (code === '3D000' || /database .* does not exist/i.test(message)) {
      hint = 'Run "dbbackup list" to see the databases on this server.';
    } else if (/ECONNREFUSED|ENOENT|EHOSTUNREACH|ETIMEDOUT|timeout/i.test(message)) {
      hint = `Nothing accepts connections at ${this.endpoint}: is the server running, and are --host/--port right?`;
    }
    return new ConnectionError(
      `Cannot connect to PostgreSQL at ${this.endpoint} (database "${database}") as "${this.user}": ${message}`,
      {
        hint,
        cause: err,
      },
    );
  }

  async serverInfo(): Promise<ServerInfo> {
    return this.withClient(this.maintenanceDb, async (c) => {
      const r = await c.query<{ v: string; s: string }>(
        `SELECT version() AS v, current_setting('server_version') AS s`,
      );
      const row = r.rows[0];
      return {
        version: parseVersion(row?.s ?? '') ?? 'unknown',
        versionString: row?.v ?? 'unknown',
        flavor: 'postgres',
      };
    });
  }

  async listDatabases(): Promise<DatabaseInfo[]> {
    return this.withClient(this.maintenanceDb, async (c) => {
      const r = await c.query<{ name: string; size: string | null }>(
        `SELECT datname AS name,
                CASE WHEN has_database_privilege(datname, 'CONNECT') THEN pg_database_size(datname) END AS size
           FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname`,
      );
      return r.rows.map((row) => ({
        name: row.name,
        sizeBytes: row.size === null ? null : Number(row.size),
      }));
    });
  }

  async databaseExists(name: string): Promise<boolean> {
    return this.withClient(this.maintenanceDb, async (c) => {
      const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      return (r.rowCount ?? 0) > 0;
    });
  }

  async countUserObjects(name: string): Promise<number> {
    return this.withClient(name, async (c) => {
      const r = await c.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE ${USER_SCHEMA_FILTER})
              + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                  WHERE ${USER_SCHEMA_FILTER})
              + (SELECT count(*) FROM pg_largeobject_metadata)
              + (SELECT count(*) FROM pg_namespace n WHERE ${USER_SCHEMA_FILTER} AND n.nspname <> 'public') AS n`,
      );
      return Number(r.rows[0]?.n ?? 0);
    });
  }

  async tableStats(name: string): Promise<TableStats[]> {
    return this.withClient(name, async (c) => {
      const r = await c.query<{ schema: string; name: string; rows: string; bytes: string }>(
        `SELECT n.nspname AS schema, c.relname AS name, c.reltuples::bigint AS rows,
                pg_table_size(c.oid) AS bytes
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'm') AND ${USER_SCHEMA_FILTER}
          ORDER BY 1, 2`,
      );
      const stats: TableStats[] = [];
      for (const row of r.rows) {
        const bytes = Number(row.bytes);
        let rows = Number(row.rows);
        let rowsExact = false;
        // Small tables are counted exactly (cheap); big ones keep the planner's estimate.
        if (shouldCountExactly(bytes, r.rows.length)) {
          const q = `SELECT count(*) AS n FROM ${pg.escapeIdentifier(row.schema)}.${pg.escapeIdentifier(row.name)}`;
          const counted = await c.query<{ n: string }>(q).catch(() => undefined);
          if (counted?.rows[0]) {
            rows = Number(counted.rows[0].n);
            rowsExact = true;
          }
        }
        stats.push({ schema: row.schema, name: row.name, rows: Math.max(rows, 0), rowsExact, bytes });
      }
      return stats;
    });
  }

  async privilegeProblems(database?: string): Promise<string[]> {
    if (database === undefined) {
      return this.withClient(this.maintenanceDb, async (c) => {
        const problems: string[] = [];
        const me = await c.query<{ sup: boolean }>(
          'SELECT rolsuper AS sup FROM pg_catalog.pg_roles WHERE rolname = current_user',
        );
        if (!me.rows[0]?.sup) {
          problems.push(
            `"${this.user}" is not a superuser: role passwords (pg_authid) cannot be read, so a cluster backup leaves them out`,
          );
        }
        const denied = await c.query<{ name: string }>(
          `SELECT datname AS name FROM pg_catalog.pg_database
            WHERE NOT datistemplate AND datallowconn AND NOT has_database_privilege(datname, 'CONNECT')
            ORDER BY 1`,
        );
        for (const row of denied.rows) problems.push(`no CONNECT privilege on database "${row.name}"`);
        return problems;
      });
    }
    return this.withClient(database, async (c) => {
      // pg_dump locks and reads every table and sequence, and refuses tables whose row-level
      // security would hide rows from it (it dumps with row_security = off).
      const r = await c.query<{ problem: string }>(
        `SELECT format('no USAGE on schema %I', n.nspname) AS problem
           FROM pg_catalog.pg_namespace n
          WHERE ${USER_SCHEMA_FILTER} AND NOT has_schema_privilege(n.oid, 'USAGE')
         UNION ALL
         SELECT format('no SELECT on %s %I.%I', CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END,
                       n.nspname, c.relname)
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'S') AND ${USER_SCHEMA_FILTER}
            AND has_schema_privilege(n.oid, 'USAGE') AND NOT has_table_privilege(c.oid, 'SELECT')
         UNION ALL
         SELECT format('row-level security on table %I.%I hides rows from this user', n.nspname, c.relname)
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity AND ${USER_SCHEMA_FILTER}
            AND NOT pg_has_role(c.relowner, 'USAGE')
            AND NOT (SELECT rolbypassrls OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
         ORDER BY 1`,
      );
      return r.rows.map((row) => row.problem);
    });
  }

  async databaseSize(name: string): Promise<number | null> {
    return this.withClient(this.maintenanceDb, async (c) => {
      const r = await c.query<{ s: string | null }>('SELECT pg_database_size($1) AS s', [name]);
      return r.rows[0]?.s ? Number(r.rows[0].s) : null;
    });
  }

  async createDatabase(name: string, properties?: CreationProperties): Promise<void> {
    // template0: a restore must start from an empty database, not whatever template1 holds.
    const sql = pgCreateDatabaseSql(name, properties);
    await this.withDdlClient((c) => c.query(sql));
  }

  async databaseProperties(name: string): Promise<DatabaseProperties> {
    return this.withClient(this.maintenanceDb, async (c) => {
      const r = await c.query<PgPropertiesRow>(PG_PROPERTIES_QUERY, [name]);
      const row = r.rows[0];
      return row ? pgPropertiesFromRow(row) : {};
    });
  }

  async creationProblems(p: CreationProperties): Promise<string[]> {
    return this.withClient(this.maintenanceDb, (c) => pgCreationProblems(c, p));
  }

  propertyStatements(name: string, properties: DatabaseProperties): PropertyStatement[] {
    return pgPropertyStatements(name, properties);
  }

  async missingGlobals(kind: 'role' | 'tablespace', names: string[]): Promise<string[]> {
    if (!names.length) return [];
    const catalog =
      kind === 'role'
        ? 'SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = n'
        : 'SELECT 1 FROM pg_catalog.pg_tablespace WHERE spcname = n';
    return this.withClient(this.maintenanceDb, async (c) => {
      const r = await c.query<{ n: string }>(
        `SELECT n FROM unnest($1::text[]) n WHERE NOT EXISTS (${catalog}) ORDER BY n`,
        [[...new Set(names)]],
      );
      return r.rows.map((row) => row.n);
    });
  }

  async applyProperty(statement: PropertyStatement): Promise<void> {
    await this.withClient(this.maintenanceDb, (c) => c.query(statement.sql));
  }

  async dumpGlobals(noRolePasswords: boolean): Promise<GlobalsSource> {
    const args = ['--no-password', '--globals-only', `--dbname=dbname=${conninfoValue(this.maintenanceDb)}`];
    if (noRolePasswords) args.push('--no-role-passwords');
    return {
      command: { file: await this.tool('pg_dumpall'), args, env: this.toolEnv(), name: 'pg_dumpall' },
    };
  }

  async clusterDatabases(): Promise<string[]> {
    return (await this.listDatabases()).map((d) => d.name);
  }

  async forceDropDatabase(name: string): Promise<void> {
    await this.withDdlClient(async (c) => {
      await c.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [name],
      );
      await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)}`);
    });
  }

  async dropDatabase(name: string): Promise<void> {
    await this.withDdlClient((c) => c.query(`DROP DATABASE ${pg.escapeIdentifier(name)}`));
  }

  async lockHolders(database: string): Promise<string[]> {
    return this.withClient(this.maintenanceDb, async (c) => {
      // Sessions in the database, and sessions elsewhere holding a lock on it or on anything in it
      // (an open transaction that ran COMMENT ON DATABASE, GRANT … ON DATABASE, a table lock…).
      const r = await c.query<LockHolderRow>(
        `WITH db AS (SELECT oid FROM pg_catalog.pg_database WHERE datname = $1)
         SELECT a.pid, a.usename AS user, a.application_name AS app, host(a.client_addr) AS client,
                a.state, a.datname AS database, a.xact_start::text AS xact_start,
                a.query_start::text AS query_start, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 160) AS query,
                EXISTS (SELECT 1 FROM pg_catalog.pg_locks l, db WHERE l.pid = a.pid AND l.granted
                          AND (l.database = db.oid OR (l.locktype = 'object'
                               AND l.classid = 'pg_catalog.pg_database'::regclass AND l.objid = db.oid))) AS locks
           FROM pg_catalog.pg_stat_activity a
          WHERE a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
            AND (a.datname = $1 OR EXISTS (SELECT 1 FROM pg_catalog.pg_locks l, db WHERE l.pid = a.pid AND l.granted
                   AND (l.database = db.oid OR (l.locktype = 'object'
                        AND l.classid = 'pg_catalog.pg_database'::regclass AND l.objid = db.oid))))
          ORDER BY a.pid`,
        [database],
      );
      return r.rows.map(describeHolder);
    });
  }

  checkDatabaseName(name: string): void {
    const bytes = Buffer.byteLength(name, 'utf8');
    if (bytes > PG_NAME_BYTES) {
      throw new UsageError(
        `Database name "${name}" is ${bytes} bytes long: PostgreSQL keeps at most ${PG_NAME_BYTES} bytes of a name, so it would be cut to "${truncateUtf8(name, PG_NAME_BYTES)}", another database`,
        `Use a name of at most ${PG_NAME_BYTES} bytes (non-ASCII characters take 2 to 4 bytes each).`,
      );
    }
  }

  quoteIdentifier(name: string): string {
    return pg.escapeIdentifier(name);
  }

  private toolEnv(database?: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PGHOST: this.host,
      PGPORT: String(this.port),
      PGUSER: this.user,
      PGAPPNAME: 'dbbackup',
      PGCONNECT_TIMEOUT: process.env.PGCONNECT_TIMEOUT ?? '15',
    };
    if (database !== undefined) env.PGDATABASE = database;
    else delete env.PGDATABASE;
    if (this.password !== undefined) env.PGPASSWORD = this.password;
    if (this.sslMode !== undefined) env.PGSSLMODE = this.sslMode;
    if (this.sslCa !== undefined) env.PGSSLROOTCERT = this.sslCa;
    return env;
  }

  /** The restore tools' environment: their statements, too, give up after the lock timeout. */
  private restoreEnv(): NodeJS.ProcessEnv {
    const env = this.toolEnv();
    if (this.lockTimeoutSeconds)
      env.PGOPTIONS = [env.PGOPTIONS, `-c lock_timeout=${this.lockTimeoutSeconds}s`]
        .filter(Boolean)
        .join(' ');
    return env;
  }

  private async tool(name: string): Promise<string> {
    const file = await findPgTool(name);
    if (!file) {
      throw new MissingToolError(`${name} was not found`, {
        hint: 'Install the PostgreSQL client programs (Debian: apt-get install postgresql-client), or set DBBACKUP_PG_BINDIR.',
      });
    }
    return file;
  }

  async dumpCommand(database: string, format: DumpFormat): Promise<ToolCommand> {
    // The database name travels in PGDATABASE: as an argument, a name containing '=' would be
    // parsed as a connection string.
    const args = ['--no-password', `--format=${format}`];
    // Compression is our pipeline's job (multi-threaded); pg_dump's own zlib is single-threaded.
    if (format === 'custom') args.push('--compress=0');
    return { file: await this.tool('pg_dump'), args, env: this.toolEnv(database), name: 'pg_dump' };
  }

  async restoreCommand(o: RestoreCommandOptions): Promise<ToolCommand> {
    const dbname = `dbname=${conninfoValue(o.target)}`;
    if (o.format === 'custom') {
      // With --create the archive creates its own database; pg_restore connects to the maintenance one first.
      const connect = o.create ? `dbname=${conninfoValue(this.maintenanceDb)}` : dbname;
      const args = ['--no-password', '--exit-on-error', `--dbname=${connect}`];
      if (o.create) args.push('--create');
      if (o.noOwner) args.push('--no-owner', '--no-privileges');
      if (o.cleanFirst) args.push('--clean', '--if-exists');
      if (o.verbose) args.push('--verbose');
      if (o.jobs > 1 && o.file) args.push(`--jobs=${o.jobs}`);
      // CREATE DATABASE cannot run inside a transaction block.
      else if (!o.create) args.push('--single-transaction');
      if (o.file) args.push(o.file);
      return { file: await this.tool('pg_restore'), args, env: this.restoreEnv(), name: 'pg_restore' };
    }
    const args = [
      '--no-password',
      '--no-psqlrc',
      '--quiet',
      '--set=ON_ERROR_STOP=1',
      '--single-transaction',
      `--dbname=${dbname}`,
    ];
    if (o.file) args.push(`--file=${o.file}`);
    return { file: await this.tool('psql'), args, env: this.restoreEnv(), name: 'psql' };
  }

  /** psql on the maintenance database without ON_ERROR_STOP or a transaction. */
  async globalsRestoreCommand(): Promise<ToolCommand> {
    const base = await this.restoreCommand({ target: 'postgres', format: 'plain', jobs: 1, noOwner: false });
    return {
      ...base,
      args: base.args.filter((a) => a !== '--set=ON_ERROR_STOP=1' && a !== '--single-transaction'),
    };
  }

  /**
   * Another PostgreSQL client program (pg_basebackup, pg_ctl…) with this connection's environment:
   * host, port, user, password and TLS travel in PG* variables, never in its arguments.
   */
  async clientProgram(name: string, args: string[]): Promise<ToolCommand> {
    return { file: await this.tool(name), args, env: this.toolEnv(), name };
  }

  async tools(): Promise<ToolStatus[]> {
    return Promise.all(
      ['pg_dump', 'pg_restore', 'psql', 'pg_dumpall'].map(async (name) => {
        const file = await findPgTool(name);
        return { name, path: file, version: file ? await toolVersion(file) : null };
      }),
    );
  }

  classifyStderr(line: string): StderrClass {
    if (/^(pg_dump|pg_restore|pg_dumpall|psql)(:[^:]*)*: (error|fatal):/i.test(line)) return 'error';
    if (/\b(ERROR|FATAL|PANIC):/.test(line)) return 'error';
    if (/\bwarning:/i.test(line)) return 'warning';
    return 'info';
  }

  async snapshotFacts(database: string, options: FactReadOptions): Promise<FactSnapshot> {
    const { pgSnapshotFacts } = await import('./pg-facts.js');
    const cancel = (pid: number): Promise<void> =>
      this.withClient(database, async (c) => {
        await c.query('SELECT pg_catalog.pg_cancel_backend($1)', [pid]);
      });
    return pgSnapshotFacts(await this.connect(database), options, cancel);
  }

  async readFacts(database: string, options: FactReadOptions): Promise<BackupFacts> {
    const { pgReadFacts } = await import('./pg-facts.js');
    return this.withClient(database, (c) => pgReadFacts(c, options));
  }

  async close(): Promise<void> {
    await this.idle.closeAll();
  }
}
