import type { DumpFormat, Engine } from '../catalog/naming.js';
import type { TableStats } from '../catalog/metadata.js';

/** A program to run (never through a shell) with the environment that carries its credentials. */
export interface ToolCommand {
  /** Absolute path or bare name of the executable. */
  file: string;
  args: string[];
  /** Complete environment for the child; secrets travel here or in a 0600 file, never in args. */
  env: NodeJS.ProcessEnv;
  /** Name shown to users in errors and metadata, e.g. `pg_dump`. */
  name: string;
}

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
  /** Create an empty database; `properties` (from databaseProperties) restores its character set where the engine needs it. */
  createDatabase(name: string, properties?: Record<string, string | null>): Promise<void>;
  /** Owner, encoding, collation, settings… of a database, for cluster manifests. */
  databaseProperties(name: string): Promise<Record<string, string | null>>;
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
  /** The dump and restore programs this engine uses, found or not, with versions. */
  tools(): Promise<ToolStatus[]>;
  classifyStderr(line: string): StderrClass;

  /** Close driver connections and remove temporary credential files. */
  close(): Promise<void>;
}
