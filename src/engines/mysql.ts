import { existsSync } from 'node:fs';
import os from 'node:os';
import type mysql from 'mysql2/promise';
import type { DumpFormat, Engine } from '../types.js';
import type { TableStats } from '../catalog/metadata.js';
import type { CreationProperties, DatabaseProperties } from '../catalog/properties.js';
import type { BackupFacts, FactReadOptions, FactSnapshot } from '../catalog/facts.js';
import { ConnectionError, MissingToolError, UsageError, errorMessage } from '../errors.js';
import type { ConnectionOptions } from './connection.js';
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
import { SNAPSHOT_POSITION_ARGS } from '../catalog/trailers.js';
import { optionFileLine, readClientOptions } from './mysql-options.js';
import { SecretFiles } from './secrets.js';
import { SharedConnection } from './my-idle.js';
import { parseVersion, shouldCountExactly, toolVersion, versionBanner, whichFirst } from './tools.js';
import {
  connectWithTls,
  isTlsFailure,
  parseSslMode,
  readPem,
  TLS_HINT,
  tlsAttempts,
  type SslMode,
  type TlsAttempt,
  type TlsFiles,
} from './tls.js';

const SYSTEM_SCHEMAS = ['information_schema', 'performance_schema', 'mysql', 'sys'];
const SOCKETS = [
  '/run/mysqld/mysqld.sock',
  '/var/run/mysqld/mysqld.sock',
  '/tmp/mysql.sock',
  '/var/lib/mysql/mysql.sock',
];

interface MyHolderRow {
  id: number | string;
  user: string;
  host: string;
  db: string | null;
  command: string;
  time: number | string;
  state: string | null;
  info: string | null;
  trxStarted: string | Date | null;
}

/** One line per session: who it is, what it is doing, since when. */
function describeMyHolder(r: MyHolderRow, certain: string | undefined, database: string): string {
  const role =
    certain ??
    (r.db === database
      ? 'is connected to it (may hold a lock)'
      : 'has an open transaction (may hold a lock)');
  const trx = r.trxStarted
    ? `, in a transaction since ${r.trxStarted instanceof Date ? r.trxStarted.toISOString() : r.trxStarted}`
    : '';
  const doing = r.info ? `running for ${r.time} s: ${r.info}` : `${r.command} for ${r.time} s`;
  return `session ${r.id} (${r.user}@${r.host}) ${role}: ${doing}${trx}`;
}

/** MySQL and MariaDB identifiers: at most 64 characters (a longer database name is refused, not cut). */
const MY_NAME_CHARS = 64;

function quoteIdent(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/** MySQL and MariaDB: same protocol and tools, small differences in program names and options. */
/**
 * mysql2 (89 modules, ~60 ms of a run's start-up) is loaded on the first connection: a PostgreSQL
 * backup and a command that never connects do without it.
 */
let driverLoad: Promise<typeof mysql> | undefined;
function mysqlDriver(): Promise<typeof mysql> {
  driverLoad ??= import('mysql2/promise').then((m) => m.default);
  return driverLoad;
}

export class MysqlEngine implements DatabaseEngine {
  readonly engine: Engine;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly endpoint: string;
  private readonly socket: string | undefined;
  private readonly password: string | undefined;
  private readonly sslMode: SslMode | undefined;
  /** `--ssl-ca`, passed on to the tools (which read ~/.my.cnf's ssl-ca themselves). */
  private readonly sslCa: string | undefined;
  private readonly tlsFiles: () => TlsFiles;
  private attempts: TlsAttempt[] | undefined;
  private readonly secrets = new SecretFiles();
  /** How long statements that change the server wait for a lock (0: as long as the server lets them). */
  private readonly lockTimeoutSeconds: number;
  private defaultsFile: Promise<string | undefined> | undefined;
  private readonly shared = new SharedConnection(() => this.connect());

  constructor(options: ConnectionOptions, env: NodeJS.ProcessEnv = process.env) {
    const file = readClientOptions(env);
    this.engine = options.engine;
    this.host = options.host ?? env.MYSQL_HOST ?? file.host ?? 'localhost';
    this.port = options.port ?? Number(env.MYSQL_TCP_PORT ?? file.port ?? 3306);
    this.user = options.user ?? file.user ?? os.userInfo().username;
    // MYSQL_PWD is honoured for compatibility, but we never pass it on: children get a 0600 file.
    this.password = options.password ?? env.MYSQL_PWD ?? file.password;
    this.sslMode = parseSslMode(options.sslMode, '--ssl-mode');
    this.sslCa = options.sslCa;
    this.lockTimeoutSeconds = options.lockTimeoutSeconds ?? 0;
    const ca = options.sslCa ?? file['ssl-ca'];
    const cert = file['ssl-cert'];
    const key = file['ssl-key'];
    // Read when a connection needs them: a command that never connects must not fail on a CA file.
    this.tlsFiles = () => ({
      ca: ca ? readPem(ca, 'CA certificate (--ssl-ca, ssl-ca)') : undefined,
      cert: cert && key ? readPem(cert, 'client certificate (ssl-cert)') : undefined,
      key: cert && key ? readPem(key, 'client key (ssl-key)') : undefined,
    });
    this.socket =
      this.host === 'localhost'
        ? (env.MYSQL_UNIX_PORT ?? file.socket ?? SOCKETS.find((s) => existsSync(s)))
        : undefined;
    this.endpoint = this.socket ? this.socket : `${this.host}:${this.port}`;
  }

  /** A driver connection with the same TLS the tools get (see tls.ts for the order of attempts). */
  async connect(database?: string, extra: mysql.ConnectionOptions = {}): Promise<mysql.Connection> {
    try {
      // One list per engine: connectWithTls remembers which attempt worked on it.
      const attempts = (this.attempts ??= tlsAttempts(
        this.sslMode ?? 'prefer',
        this.tlsFiles(),
        Boolean(this.socket),
      ));
      const driver = await mysqlDriver();
      return await connectWithTls(attempts, (ssl) =>
        driver.createConnection({
          host: this.socket ? undefined : this.host,
          port: this.socket ? undefined : this.port,
          socketPath: this.socket,
          user: this.user,
          password: this.password,
          database,
          connectTimeout: 15_000,
          supportBigNumbers: true,
          bigNumberStrings: true,
          ssl: mysqlSsl(ssl),
          ...extra,
        }),
      );
    } catch (err) {
      if (err instanceof UsageError) throw err;
      const message = errorMessage(err);
      let hint = 'Check --host, --port and --user, and that the server is running.';
      if (isTlsFailure(message)) hint = TLS_HINT;
      else if (/Access denied/i.test(message))
        hint =
          this.sslMode === 'disable'
            ? 'Check the user and password (--password, or password= in ~/.my.cnf); a user created with REQUIRE SSL cannot connect with --ssl-mode disable.'
            : 'Check the user and password (--password, or password= in ~/.my.cnf).';
      else if (/Unknown database/i.test(message))
        hint = 'Run "dbbackup list" to see the databases on this server.';
      else if (/ECONNREFUSED|ENOENT|EHOSTUNREACH|ETIMEDOUT/i.test(message))
        hint = `Nothing accepts connections at ${this.endpoint}: is the server running, and are --host/--port right?`;
      throw new ConnectionError(
        `Cannot connect to ${this.label()} at ${this.endpoint} as "${this.user}": ${message}`,
        {
          hint,
          cause: err,
        },
      );
    }
  }

  private label(): string {
    return this.engine === 'mariadb' ? 'MariaDB' : 'MySQL';
  }

  /**
   * One statement: on the shared connection to no database (my-idle.ts), or with `database` on a
   * fresh connection to it, ended after.
   */
  private async query<T>(sql: string, params: unknown[] = [], database?: string): Promise<T[]> {
    if (database === undefined) return (await this.shared.query(sql, params)) as T[];
    const conn = await this.connect(database);
    try {
      const [rows] = await conn.query(sql, params);
      return rows as T[];
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  async serverInfo(): Promise<ServerInfo> {
    const rows = await this.query<{ v: string }>('SELECT VERSION() AS v');
    const v = rows[0]?.v ?? 'unknown';
    return {
      version: parseVersion(v) ?? 'unknown',
      versionString: v,
      flavor: /mariadb/i.test(v) ? 'mariadb' : 'mysql',
    };
  }

  async listDatabases(): Promise<DatabaseInfo[]> {
    const rows = await this.query<{ name: string; size: string | null }>(
      `SELECT s.schema_name AS name, SUM(t.data_length + t.index_length) AS size
         FROM information_schema.schemata s LEFT JOIN information_schema.tables t ON t.table_schema = s.schema_name
        WHERE s.schema_name NOT IN (?) GROUP BY s.schema_name ORDER BY s.schema_name`,
      [SYSTEM_SCHEMAS],
    );
    return rows.map((r) => ({ name: r.name, sizeBytes: r.size === null ? 0 : Number(r.size) }));
  }

  async databaseExists(name: string): Promise<boolean> {
    const rows = await this.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = ?', [name]);
    return rows.length > 0;
  }

  async countUserObjects(name: string): Promise<number> {
    const rows = await this.query<{ n: string }>(
      `SELECT (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?)
            + (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = ?)
            + (SELECT COUNT(*) FROM information_schema.events WHERE event_schema = ?) AS n`,
      [name, name, name],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async tableStats(name: string): Promise<TableStats[]> {
    const rows = await this.query<{ name: string; rows: string | null; bytes: string | null }>(
      `SELECT table_name AS name, table_rows AS \`rows\`, data_length AS bytes FROM information_schema.tables
        WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name`,
      [name],
    );
    const stats: TableStats[] = [];
    for (const r of rows) {
      const bytes = Number(r.bytes ?? 0);
      let count = Number(r.rows ?? 0);
      let rowsExact = false;
      // InnoDB's table_rows is an estimate; small tables are counted exactly.
      if (shouldCountExactly(bytes, rows.length)) {
        const counted = await this.query<{ n: string }>(
          `SELECT COUNT(*) AS n FROM ${quoteIdent(name)}.${quoteIdent(r.name)}`,
        ).catch(() => undefined);
        if (counted?.[0]) {
          count = Number(counted[0].n);
          rowsExact = true;
        }
      }
      stats.push({ schema: name, name: r.name, rows: count, rowsExact, bytes });
    }
    return stats;
  }

  async privilegeProblems(database?: string): Promise<string[]> {
    const conn = await this.connect(database);
    const problems: string[] = [];
    // Each probe runs what the dump will run; an error is the missing privilege, in the server's words.
    const probe = async (sql: string, problem: string): Promise<void> => {
      await conn.query(sql).catch((err: unknown) => problems.push(`${problem}: ${errorMessage(err)}`));
    };
    try {
      if (database === undefined) {
        await probe('SELECT 1 FROM mysql.user LIMIT 0', 'users and grants cannot be read');
        return problems;
      }
      // Tables the user holds no privilege on at all are invisible here; the dump would skip them too.
      const [rows] = await conn.query(
        `SELECT table_name AS name, table_type AS type FROM information_schema.tables
          WHERE table_schema = ? ORDER BY table_name`,
        [database],
      );
      for (const t of rows as Array<{ name: string; type: string }>) {
        const q = `${conn.escapeId(database)}.${conn.escapeId(t.name)}`;
        if (t.type === 'VIEW') await probe(`SHOW CREATE VIEW ${q}`, `view ${t.name} cannot be dumped`);
        else await probe(`SELECT 1 FROM ${q} LIMIT 0`, `no SELECT on table ${t.name}`);
      }
      await probe(`SHOW EVENTS FROM ${conn.escapeId(database)}`, 'events cannot be listed');
      const [hidden] = await conn.query(
        `SELECT routine_name AS name FROM information_schema.routines
          WHERE routine_schema = ? AND routine_definition IS NULL ORDER BY 1`,
        [database],
      );
      for (const r of hidden as Array<{ name: string }>) {
        problems.push(`the definition of routine ${r.name} is not visible to "${this.user}"`);
      }
      return problems;
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  async databaseSize(name: string): Promise<number | null> {
    const rows = await this.query<{ s: string | null }>(
      'SELECT SUM(data_length + index_length) AS s FROM information_schema.tables WHERE table_schema = ?',
      [name],
    );
    return rows[0]?.s ? Number(rows[0].s) : 0;
  }

  async createDatabase(name: string, properties?: CreationProperties): Promise<void> {
    const charset = properties?.charset ? ` CHARACTER SET ${properties.charset}` : '';
    const collation = properties?.collation ? ` COLLATE ${properties.collation}` : '';
    if (!/^[A-Za-z0-9_]*$/.test(`${properties?.charset ?? ''}${properties?.collation ?? ''}`)) {
      throw new UsageError(
        `Unexpected character set or collation for ${name}`,
        'The backup manifest looks damaged.',
      );
    }
    await this.ddl(`CREATE DATABASE ${quoteIdent(name)}${charset}${collation}`);
  }

  async databaseProperties(name: string): Promise<DatabaseProperties> {
    const rows = await this.query<{ charset: string; collation: string }>(
      'SELECT default_character_set_name AS charset, default_collation_name AS collation FROM information_schema.schemata WHERE schema_name = ?',
      [name],
    );
    const row = rows[0];
    return row ? { charset: row.charset, collation: row.collation } : {};
  }

  async creationProblems(p: CreationProperties): Promise<string[]> {
    if (!p.charset && !p.collation) return [];
    // A MySQL 8 collation (utf8mb4_0900_ai_ci) does not exist on MariaDB 10, and the other way round.
    const rows = await this.query<{ charset: string; collation: string }>(
      `SELECT CHARACTER_SET_NAME AS charset, COLLATION_NAME AS collation FROM information_schema.COLLATIONS
        WHERE COLLATION_NAME = ? OR CHARACTER_SET_NAME = ?`,
      [p.collation ?? '', p.charset ?? ''],
    );
    const problems: string[] = [];
    if (p.charset && !rows.some((r) => r.charset === p.charset))
      problems.push(`character set ${p.charset} is unknown to this server`);
    const collation = rows.find((r) => r.collation === p.collation);
    if (p.collation && !collation) problems.push(`collation ${p.collation} is unknown to this server`);
    else if (p.collation && p.charset && collation && collation.charset !== p.charset)
      problems.push(`collation ${p.collation} belongs to ${collation.charset} here, not ${p.charset}`);
    return problems;
  }

  propertyStatements(_name: string, _properties: DatabaseProperties): PropertyStatement[] {
    // A MySQL database has no owner, privileges or settings of its own: grants live with the users
    // (in a cluster backup's globals), and the character set is given when the database is created.
    return [];
  }

  async missingGlobals(_kind: 'role' | 'tablespace', _names: string[]): Promise<string[]> {
    return [];
  }

  async applyProperty(statement: PropertyStatement): Promise<void> {
    await this.query(statement.sql);
  }

  /**
   * Users and their grants as SQL that can be replayed on a new server: CREATE USER IF NOT EXISTS
   * (password hashes included) followed by every GRANT. System accounts are left out.
   */
  async dumpGlobals(_noRolePasswords: boolean): Promise<GlobalsSource> {
    const conn = await this.connect();
    const first = (rows: unknown): string | undefined =>
      Object.values((rows as Array<Record<string, string>>)[0] ?? {})[0];
    try {
      // MariaDB marks roles in mysql.user; MySQL has no is_role column (roles are then plain accounts).
      const [accounts] = await conn
        .query(
          `SELECT User AS user, Host AS host, IFNULL(is_role, 'N') = 'Y' AS isRole FROM mysql.user
            WHERE User NOT IN ('mariadb.sys', 'mysql.sys', 'mysql.session', 'mysql.infoschema', '')
            ORDER BY isRole DESC, User, Host`,
        )
        .catch(async () =>
          conn.query(
            `SELECT User AS user, Host AS host, 0 AS isRole FROM mysql.user
              WHERE User NOT IN ('mysql.sys', 'mysql.session', 'mysql.infoschema', '') ORDER BY User, Host`,
          ),
        );
      const lines = [
        '-- dbbackup: roles, users and grants',
        'SET @OLD_SQL_MODE=@@SQL_MODE;',
        "SET SQL_MODE='';",
      ];
      const warnings: string[] = [];
      const list = accounts as Array<{ user: string; host: string; isRole: number | string }>;
      // Roles first: users' GRANT role TO user needs them.
      for (const r of list.filter((a) => Number(a.isRole) === 1)) {
        lines.push(`CREATE ROLE IF NOT EXISTS ${conn.escapeId(r.user)};`);
      }
      for (const a of list) {
        const role = Number(a.isRole) === 1;
        const account = role ? conn.escapeId(a.user) : `${conn.escape(a.user)}@${conn.escape(a.host)}`;
        try {
          if (!role) {
            const createSql = first((await conn.query(`SHOW CREATE USER ${account}`))[0]);
            if (createSql)
              lines.push(`${createSql.replace(/^CREATE USER /i, 'CREATE USER IF NOT EXISTS ')};`);
          }
          const [grants] = await conn.query(`SHOW GRANTS FOR ${account}`);
          for (const g of grants as Array<Record<string, string>>) {
            const grant = Object.values(g)[0];
            if (grant) lines.push(`${grant};`);
          }
        } catch (err) {
          // e.g. errno 1133 for host-name accounts on a server running with --skip-name-resolve.
          warnings.push(`account ${a.user}@${a.host} was skipped: ${errorMessage(err)}`);
        }
      }
      lines.push('SET SQL_MODE=@OLD_SQL_MODE;', 'FLUSH PRIVILEGES;', '');
      return { sql: lines.join('\n'), warnings };
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  async clusterDatabases(): Promise<string[]> {
    return (await this.listDatabases()).map((d) => d.name);
  }

  async forceDropDatabase(name: string): Promise<void> {
    const sessions = await this.query<{ id: number }>(
      'SELECT ID AS id FROM information_schema.processlist WHERE DB = ? AND ID <> CONNECTION_ID()',
      [name],
    );
    for (const s of sessions) await this.query(`KILL ${Number(s.id)}`).catch(() => undefined);
    await this.ddl(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
  }

  async dropDatabase(name: string): Promise<void> {
    await this.ddl(`DROP DATABASE ${quoteIdent(name)}`);
  }

  /** A statement that changes the server, giving up after the lock timeout instead of waiting forever. */
  private async ddl(sql: string): Promise<void> {
    const conn = await this.connect();
    try {
      if (this.lockTimeoutSeconds)
        await conn.query(`SET SESSION lock_wait_timeout = ${this.lockTimeoutSeconds}`);
      await conn.query(sql);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  async lockHolders(database: string): Promise<string[]> {
    const conn = await this.connect();
    try {
      // performance_schema names the holders of metadata locks exactly, when it is on (MySQL 8's
      // default; MariaDB's is off): otherwise the sessions in the database or in a transaction may hold one.
      const [exact] = await conn
        .query(
          `SELECT DISTINCT t.PROCESSLIST_ID AS id FROM performance_schema.metadata_locks m
             JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID
            WHERE m.OBJECT_SCHEMA = ? AND m.LOCK_STATUS = 'GRANTED' AND t.PROCESSLIST_ID <> CONNECTION_ID()`,
          [database],
        )
        .catch(() => [undefined]);
      const ids = (exact as Array<{ id: number | string }> | undefined)?.map((r) => Number(r.id));
      const [rows] = await conn.query(
        `SELECT p.ID AS id, p.USER AS user, p.HOST AS host, p.DB AS db, p.COMMAND AS command, p.TIME AS time,
                p.STATE AS state, LEFT(p.INFO, 160) AS info, t.trx_started AS trxStarted
           FROM information_schema.PROCESSLIST p
           LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID
          WHERE p.ID <> CONNECTION_ID() AND COALESCE(p.STATE, '') NOT LIKE 'Waiting for%lock%'
            AND (p.DB = ? OR t.trx_mysql_thread_id IS NOT NULL)
          ORDER BY p.ID`,
        [database],
      );
      return (rows as MyHolderRow[])
        .filter((r) => !ids?.length || ids.includes(Number(r.id)))
        .map((r) => describeMyHolder(r, ids?.length ? 'holds a lock on it' : undefined, database));
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  checkDatabaseName(name: string): void {
    const length = [...name].length;
    if (length > MY_NAME_CHARS) {
      throw new UsageError(
        `Database name "${name}" is ${length} characters long: ${this.label()} allows at most ${MY_NAME_CHARS}`,
        `Use a name of at most ${MY_NAME_CHARS} characters.`,
      );
    }
  }

  quoteIdentifier(name: string): string {
    return quoteIdent(name);
  }

  /** Arguments every client program gets; the password file must come first (a client rule). */
  private async connectionArgs(program: string): Promise<string[]> {
    this.defaultsFile ??=
      this.password === undefined
        ? Promise.resolve(undefined)
        : this.secrets.write('client.cnf', `[client]\n${optionFileLine('password', this.password)}`);
    const file = await this.defaultsFile;
    const args = file ? [`--defaults-extra-file=${file}`] : [];
    args.push(`--user=${this.user}`);
    if (this.socket) args.push(`--socket=${this.socket}`);
    else args.push('--protocol=TCP', `--host=${this.host}`, `--port=${this.port}`);
    if (!this.socket) {
      // Without --ssl-mode the TLS arguments are the same for both families: the client program is
      // asked which it is (a `--version` run, ~10 ms) only when they differ.
      const mariadb =
        this.sslMode === undefined || /MariaDB/i.test((await versionBanner(program)) ?? 'MariaDB');
      args.push(...clientTlsArgs(this.sslMode, this.sslCa, mariadb));
    }
    return args;
  }

  private async program(names: string[]): Promise<{ name: string; path: string }> {
    const found = await whichFirst(names);
    if (!found) {
      throw new MissingToolError(`${names.join(' or ')} was not found`, {
        hint: 'Install the MariaDB or MySQL client programs (Debian: apt-get install mariadb-client).',
      });
    }
    return found;
  }

  /**
   * Another client program of the family (mariadb-backup, mariadb-binlog…) with this connection:
   * the password in a 0600 defaults file (first, as the clients require), never in its arguments —
   * mariadb-backup even records its command line in every backup (xtrabackup_info).
   */
  async clientProgram(names: readonly string[], args: string[], missingHint: string): Promise<ToolCommand> {
    const found = await whichFirst([...names]);
    if (!found) throw new MissingToolError(`${names.join(' or ')} was not found`, { hint: missingHint });
    return {
      file: found.path,
      args: [...(await this.connectionArgs(found.path)), ...args],
      env: this.toolEnv(),
      name: found.name,
    };
  }

  private dumpPrograms(): string[] {
    return this.engine === 'mysql' ? ['mysqldump', 'mariadb-dump'] : ['mariadb-dump', 'mysqldump'];
  }

  private clientPrograms(): string[] {
    return this.engine === 'mysql' ? ['mysql', 'mariadb'] : ['mariadb', 'mysql'];
  }

  private toolEnv(): NodeJS.ProcessEnv {
    const env = { ...process.env };
    delete env.MYSQL_PWD;
    return env;
  }

  async dumpCommand(database: string, _format: DumpFormat): Promise<ToolCommand> {
    const tool = await this.program(this.dumpPrograms());
    const args = [
      ...(await this.connectionArgs(tool.path)),
      // One consistent snapshot for InnoDB tables without locking writers.
      '--single-transaction',
      '--quick',
      '--routines',
      '--triggers',
      '--events',
      // Binary data as hex literals: immune to client character-set conversion on restore.
      '--hex-blob',
      '--default-character-set=utf8mb4',
      // Tablespace statements need the PROCESS privilege and are never wanted in a database dump.
      '--no-tablespaces',
      ...(await this.snapshotPositionArgs()),
      '--',
      database,
    ];
    return { file: tool.path, args, env: this.toolEnv(), name: tool.name };
  }

  /**
   * MariaDB writing binary logs: the dump records where its snapshot lies in them (a commented
   * CHANGE MASTER and gtid_slave_pos), so `restore pitr` can replay the binlogs after it. With
   * --single-transaction MariaDB reads that position from the snapshot itself: no lock is taken.
   */
  private async snapshotPositionArgs(): Promise<string[]> {
    const rows = await this.query<{ b: string | number; v: string }>(
      'SELECT @@log_bin AS b, VERSION() AS v',
    ).catch(() => []);
    const r = rows[0];
    return r && Number(r.b) === 1 && /mariadb/i.test(r.v) ? [...SNAPSHOT_POSITION_ARGS] : [];
  }

  async restoreCommand(o: RestoreCommandOptions): Promise<ToolCommand> {
    const tool = await this.program(this.clientPrograms());
    const args = [
      ...(await this.connectionArgs(tool.path)),
      '--default-character-set=utf8mb4',
      '--batch',
      `--database=${o.target}`,
    ];
    // The dump's own statements (DROP TABLE, LOCK TABLES…) give up after the lock timeout, too.
    if (this.lockTimeoutSeconds)
      args.push(`--init-command=SET SESSION lock_wait_timeout=${this.lockTimeoutSeconds}`);
    return { file: tool.path, args, env: this.toolEnv(), name: tool.name };
  }

  /** The client on no database (the globals name theirs) with --force. */
  async globalsRestoreCommand(): Promise<ToolCommand> {
    const base = await this.restoreCommand({ target: '', format: 'plain', jobs: 1, noOwner: false });
    return { ...base, args: [...base.args.filter((a) => !a.startsWith('--database=')), '--force'] };
  }

  async tools(): Promise<ToolStatus[]> {
    const groups = [this.dumpPrograms(), this.clientPrograms()];
    return Promise.all(
      groups.map(async (names) => {
        const found = await whichFirst(names);
        return {
          name: found?.name ?? names[0] ?? '',
          path: found?.path ?? null,
          version: found ? await toolVersion(found.path) : null,
        };
      }),
    );
  }

  classifyStderr(line: string): StderrClass {
    if (/Deprecated program name/i.test(line)) return 'info';
    if (
      /^(mysqldump|mariadb-dump|mysql|mariadb)(:| Ver)/i.test(line) &&
      /\b(error|couldn't|got errno)\b/i.test(line)
    )
      return 'error';
    if (/^ERROR \d+/.test(line)) return 'error';
    if (/warning/i.test(line)) return 'warning';
    if (/\berror\b/i.test(line)) return 'error';
    return 'info';
  }

  async snapshotFacts(database: string, options: FactReadOptions): Promise<FactSnapshot> {
    const { mySnapshotFacts } = await import('./my-facts.js');
    return mySnapshotFacts(() => this.connect(), database, options);
  }

  async readFacts(database: string, options: FactReadOptions): Promise<BackupFacts> {
    const { myReadFacts } = await import('./my-facts.js');
    const conn = await this.connect();
    try {
      return await myReadFacts(conn, database, options);
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.shared.close();
    await this.secrets.dispose();
  }
}

/** mysql2's TLS options for an attempt: it checks the host name only when told to (verifyIdentity). */
function mysqlSsl(attempt: TlsAttempt): mysql.SslOptions | undefined {
  if (!attempt) return undefined;
  const { files, verify } = attempt;
  return {
    ...(files.ca ? { ca: files.ca } : {}),
    ...(files.cert && files.key ? { cert: files.cert, key: files.key } : {}),
    rejectUnauthorized: verify !== 'none',
    verifyIdentity: verify === 'full',
  };
}

/**
 * The TLS options of a client program for an sslmode: MariaDB's clients (`--ssl`, `--skip-ssl`,
 * `--ssl-verify-server-cert`; from 11.4 they verify by default, so `require` says not to) or Oracle
 * MySQL's (`--ssl-mode=REQUIRED`…). No mode: the client's own default (both try TLS, unverified).
 */
export function clientTlsArgs(mode: SslMode | undefined, ca: string | undefined, mariadb: boolean): string[] {
  const caArg = ca ? [`--ssl-ca=${ca}`] : [];
  if (mode === undefined) return caArg;
  if (!mariadb) {
    const oracle: Record<SslMode, string> = {
      disable: 'DISABLED',
      allow: 'PREFERRED',
      prefer: 'PREFERRED',
      require: 'REQUIRED',
      'verify-ca': 'VERIFY_CA',
      'verify-full': 'VERIFY_IDENTITY',
    };
    return mode === 'disable' ? [`--ssl-mode=${oracle[mode]}`] : [`--ssl-mode=${oracle[mode]}`, ...caArg];
  }
  switch (mode) {
    case 'disable':
      return ['--skip-ssl'];
    case 'allow':
    case 'prefer':
      return caArg;
    case 'require':
      return ['--ssl', '--skip-ssl-verify-server-cert', ...caArg];
    case 'verify-ca':
    case 'verify-full':
      return ['--ssl', '--ssl-verify-server-cert', ...caArg];
  }
}
