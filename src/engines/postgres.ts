import { existsSync } from 'node:fs';
import os from 'node:os';
import pg from 'pg';
import type { DumpFormat } from '../catalog/naming.js';
import type { TableStats } from '../catalog/metadata.js';
import { ConnectionError, MissingToolError, errnoCode, errorMessage } from '../errors.js';
import type { ConnectionOptions } from './connection.js';
import type {
  DatabaseEngine,
  DatabaseInfo,
  RestoreCommandOptions,
  ServerInfo,
  StderrClass,
  GlobalsSource,
  ToolCommand,
  ToolStatus,
} from './engine.js';
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
  private tls: TlsAttempt[] | undefined;

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
    this.endpoint = this.host.startsWith('/')
      ? `${this.host}/.s.PGSQL.${this.port}`
      : `${this.host}:${this.port}`;
  }

  /** A client connected to `database`, with the same TLS as the tools (see tls.ts); the caller ends it. */
  async connect(database: string): Promise<pg.Client> {
    // The driver follows the same libpq variables as the tools (toolEnv), so both connect alike.
    this.tls ??= pgTls(this.toolEnv(), this.host.startsWith('/'));
    try {
      return await connectWithTls(this.tls, async (ssl) => {
        const c = new pg.Client({
          host: this.host,
          port: this.port,
          user: this.user,
          password: this.password,
          database,
          ssl: nodeTls(ssl),
          connectionTimeoutMillis: 15_000,
          application_name: 'dbbackup',
        });
        c.on('error', () => undefined);
        await c.connect();
        return c;
      });
    } catch (err) {
      throw this.connectionError(err, database);
    }
  }

  /** Run `fn` with a fresh client connected to `database`; always closes it. */
  private async withClient<T>(database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = await this.connect(database);
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
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

  async createDatabase(name: string): Promise<void> {
    // template0: a restore must start from an empty database, not whatever template1 holds.
    await this.withClient(this.maintenanceDb, (c) =>
      c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE template0`),
    );
  }

  async databaseProperties(name: string): Promise<Record<string, string | null>> {
    return this.withClient(this.maintenanceDb, async (c) => {
      const r = await c.query<Record<string, string | null>>(
        `SELECT pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding,
                d.datcollate AS collate, d.datctype AS ctype, d.datacl::text AS acl,
                (SELECT string_agg(array_to_string(s.setconfig, ','), ';') FROM pg_db_role_setting s
                  WHERE s.setdatabase = d.oid AND s.setrole = 0) AS settings
           FROM pg_database d WHERE d.datname = $1`,
        [name],
      );
      return r.rows[0] ?? {};
    });
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
    await this.withClient(this.maintenanceDb, async (c) => {
      await c.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [name],
      );
      await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)}`);
    });
  }

  async dropDatabase(name: string): Promise<void> {
    await this.withClient(this.maintenanceDb, (c) => c.query(`DROP DATABASE ${pg.escapeIdentifier(name)}`));
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
      if (o.jobs > 1 && o.file) args.push(`--jobs=${o.jobs}`);
      // CREATE DATABASE cannot run inside a transaction block.
      else if (!o.create) args.push('--single-transaction');
      if (o.file) args.push(o.file);
      return { file: await this.tool('pg_restore'), args, env: this.toolEnv(), name: 'pg_restore' };
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
    return { file: await this.tool('psql'), args, env: this.toolEnv(), name: 'psql' };
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

  async close(): Promise<void> {
    // Clients are per call; nothing stays open.
  }
}
