import type { DumpFormat, Engine, ToolCommand } from '../types.js';
import type { TableStats } from '../catalog/metadata.js';
import type { CreationProperties, DatabaseProperties } from '../catalog/properties.js';
import type { BackupFacts, FactReadOptions, FactSnapshot } from '../catalog/facts.js';

export type { ToolCommand };

export interface ServerInfo {
  /** Short numeric version, e.g. `15.19` or `10.11.19`. */
  version: string;
  /** What the server says about itself, e.g. `PostgreSQL 15.19 (Debian 15.19-0+deb12u1) on x86_64…`. */
  versionString: string;
  /** `mariadb` or `mysql` for the MySQL family, `postgres` otherwise. */
  flavor: Engine;
}

export interface DatabaseInfo {
  name: string;
  sizeBytes: number | null;
}

export interface ToolStatus {
  name: string;
  path: string | null;
  version: string | null;
}

export type StderrClass = 'error' | 'warning' | 'info';

export interface RestoreCommandOptions {
  target: string;
  format: DumpFormat;
  /** Parallel jobs (pg_restore only; needs `file`). */
  jobs: number;
  /** A seekable file to read instead of stdin. */
  file?: string;
  /** Skip restoring ownership (pg_restore/psql --no-owner). */
  noOwner: boolean;
  /** Let the archive create the database itself, with its owner, encoding and settings (pg_restore --create). */
  create?: boolean;
  /** Drop the archive's objects before recreating them (pg_restore --clean --if-exists). */
  cleanFirst?: boolean;
  /** Say what is being restored (pg_restore --verbose), for progress: schema, data, indexes. */
  verbose?: boolean;
}

/** One statement that gives a restored database one of its recorded properties (see propertyStatements). */
export interface PropertyStatement {
  /** What users read in the plan and in warnings, e.g. `owner app_owner`, `revoke CONNECT from PUBLIC`. */
  label: string;
  /** Roles that must exist on the server for the statement to apply. */
  roles: string[];
  sql: string;
}

/** Server-wide objects (roles, users, grants, tablespaces) as a program to run or as ready SQL. */
export type GlobalsSource = { command: ToolCommand } | { sql: string; warnings: string[] };

/** Everything the commands need from a database engine; one implementation per engine family. */
export interface DatabaseEngine {
  readonly engine: Engine;
  /** `host:port` or socket path, for messages. */
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;

  serverInfo(): Promise<ServerInfo>;
  listDatabases(): Promise<DatabaseInfo[]>;
  databaseExists(name: string): Promise<boolean>;
  /** Number of user tables, views, routines etc.; 0 means a restore target is safe to fill. */
  countUserObjects(name: string): Promise<number>;
  tableStats(name: string): Promise<TableStats[]>;
  databaseSize(name: string): Promise<number | null>;
  /**
   * What this user may not read that a dump of `database` needs (tables without SELECT, hidden
   * routines…), or, without a database, what a cluster backup needs (role passwords, every database).
   * Empty when nothing is missing. For preflight: the dump itself would fail later, less clearly.
   */
  privilegeProblems(database?: string): Promise<string[]>;
  /**
   * Create an empty database, with the encoding, locale or character set and tablespace of
   * `properties` (recorded by databaseProperties) when given; the server's defaults otherwise.
   */
  createDatabase(name: string, properties?: CreationProperties): Promise<void>;
  /** Owner, encoding, collation, privileges, settings… of a database, recorded in backups. Empty when it does not exist. */
  databaseProperties(name: string): Promise<DatabaseProperties>;
  /**
   * Why createDatabase could not create a database with these properties here (an encoding, locale
   * or collation this server does not have), one line each; empty when it can. Changes nothing.
   */
  creationProblems(properties: CreationProperties): Promise<string[]>;
  /**
   * The statements that give an existing database `name` the properties applied after its data
   * (owner, privileges, connection limit, settings, comment), in the order they must run. No I/O.
   */
  propertyStatements(name: string, properties: DatabaseProperties): PropertyStatement[];
  /** Which of these roles or tablespaces do not exist on this server. */
  missingGlobals(kind: 'role' | 'tablespace', names: string[]): Promise<string[]>;
  /** Run one statement of propertyStatements. */
  applyProperty(statement: PropertyStatement): Promise<void>;
  /** The roles/users and their grants; `noRolePasswords` for users not allowed to read password hashes. */
  dumpGlobals(noRolePasswords: boolean): Promise<GlobalsSource>;
  /** Databases a cluster backup includes by default (no templates, no system schemas). */
  clusterDatabases(): Promise<string[]>;
  /** Close every session on a database and drop it (cluster restore with --clean-cluster). */
  forceDropDatabase(name: string): Promise<void>;
  dropDatabase(name: string): Promise<void>;
  /**
   * Throws a UsageError (exit 2) for a database name the server would not keep as given: PostgreSQL
   * cuts names to 63 bytes, so a longer one silently names another database.
   */
  checkDatabaseName(name: string): void;
  /**
   * The other sessions that hold a lock on `database` (or on something in it), or are connected to it,
   * one line each (id, user, state, since when, last query): what a lock timeout waited for.
   */
  lockHolders(database: string): Promise<string[]>;
  /** `name` quoted as an identifier of this engine's SQL, for statements shown to the user. */
  quoteIdentifier(name: string): string;

  dumpCommand(database: string, format: DumpFormat): Promise<ToolCommand>;
  restoreCommand(options: RestoreCommandOptions): Promise<ToolCommand>;
  /**
   * The tool that replays a globals dump (roles, users, grants) and goes on past a failing
   * statement: one role that exists already must not undo the others.
   */
  globalsRestoreCommand(): Promise<ToolCommand>;
  /** The dump and restore programs this engine uses, found or not, with versions. */
  tools(): Promise<ToolStatus[]>;
  classifyStderr(line: string): StderrClass;

  /**
   * The facts a restore drill compares (src/catalog/facts.ts), read consistently with a dump of
   * `database` that starts right after this returns: its `dumpArgs` go to the dump tool, `close`
   * once the dump has ended.
   */
  snapshotFacts(database: string, options: FactReadOptions): Promise<FactSnapshot>;
  /** The same facts of a database nobody writes to (a drill's restored copy). */
  readFacts(database: string, options: FactReadOptions): Promise<BackupFacts>;

  /** Close driver connections and remove temporary credential files. */
  close(): Promise<void>;
}
