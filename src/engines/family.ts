import type { DumpFormat, Engine } from '../types.js';

/**
 * What differs between the engine families that is known without a connection: the formats their
 * dump tools write, the file a dump is stored as, the trailer a complete SQL dump ends with, what
 * to install when the client programs are missing, whether the dump tool must be as new as the
 * server. Code outside src/engines/ asks the family instead of comparing engine names; what needs
 * a connection is a method of DatabaseEngine.
 */
export interface EngineFamily {
  /** The family as a dump's content names it ('mysql' covers MariaDB: detectDump cannot tell them apart). */
  readonly id: 'postgres' | 'mysql';
  /** The family in messages. */
  readonly label: string;
  /** Its engines; the first is assumed for a dump that does not say which (no metadata). */
  readonly engines: readonly Engine[];
  /** The dump formats this family's tools write; the first is the default. */
  readonly dumpFormats: readonly DumpFormat[];
  /** Why another format is refused, as a usage error's message and hint. */
  readonly formatRefusal: { message: string; hint: string };
  /** The extension of an uncompressed dump in `format`: a custom archive or an SQL script. */
  dumpExtension(format: DumpFormat): '.dump' | '.sql';
  /** The TRAILERS entry (catalog/trailers.ts) a complete plain dump ends with. */
  readonly plainTrailer: 'postgresPlain' | 'mysqlPlain';
  /** The TRAILERS entry the family's globals dump (roles, users, grants) ends with. */
  readonly globalsTrailer: 'postgresGlobals' | 'mysqlGlobals';
  /**
   * The format of a cluster backup's databases; custom archives carry the database's own properties
   * and create it themselves on restore (pg_restore --create).
   */
  readonly clusterFormat: DumpFormat;
  /**
   * Grants on tables and columns are in the globals dump, so they can only be replayed once the
   * tables are restored: a cluster restore runs the globals a second time, and on the first pass a
   * grant on a missing table is expected (MySQL/MariaDB; PostgreSQL archives carry their grants).
   */
  readonly grantsAfterData: boolean;
  /** The restore tool cannot read an archive from a newer dump tool (pg_restore), checked before a restore. */
  readonly restoreToolMustBeNewer: boolean;
  /** A dump from a newer major server version may not load into an older one (a warning in the plan). */
  readonly warnsOnOlderTarget: boolean;
  /** The reference tool writes cluster archives (`cluster_<ts>.tar.gz`) of this family only. */
  readonly referenceClusterArchive: boolean;
  /** What to install when a client program is missing. */
  readonly installHint: string;
  /** The dump tool refuses a server of a newer major version (pg_dump does; mysqldump does not). */
  readonly dumpToolMustBeNewer: boolean;
  /** The environment variables the client programs read for host and port, and the default port. */
  readonly hostEnv: string;
  readonly portEnv: string;
  readonly defaultPort: string;
  /** How the server's changes are archived for point-in-time recovery: WAL segments or binlogs. */
  readonly logArchive: 'wal' | 'binlog';
  /**
   * A table as a user names it: schema-qualified in PostgreSQL; in MySQL/MariaDB the schema is the
   * database itself, so the bare name.
   */
  tableName(t: { schema: string; name: string }): string;
  /** What a backup of one database runs, in a confirmation before it does (the terminal UI). */
  readonly dumpDescription: string;
}

const POSTGRES: EngineFamily = {
  id: 'postgres',
  label: 'PostgreSQL',
  engines: ['postgres'],
  dumpFormats: ['custom', 'plain'],
  // Never shown: PostgreSQL's tools write every format.
  formatRefusal: { message: '', hint: '' },
  dumpExtension: (format) => (format === 'custom' ? '.dump' : '.sql'),
  plainTrailer: 'postgresPlain',
  globalsTrailer: 'postgresGlobals',
  clusterFormat: 'custom',
  grantsAfterData: false,
  restoreToolMustBeNewer: true,
  warnsOnOlderTarget: true,
  referenceClusterArchive: true,
  installHint: 'Install postgresql-client (or set DBBACKUP_PG_BINDIR).',
  dumpToolMustBeNewer: true,
  hostEnv: 'PGHOST',
  portEnv: 'PGPORT',
  defaultPort: '5432',
  logArchive: 'wal',
  tableName: (t) => `${t.schema}.${t.name}`,
  dumpDescription: 'pg_dump, custom format',
};

const MYSQL: EngineFamily = {
  id: 'mysql',
  label: 'MySQL/MariaDB',
  engines: ['mariadb', 'mysql'],
  dumpFormats: ['plain'],
  formatRefusal: {
    message: '--format custom is PostgreSQL only',
    hint: 'MySQL and MariaDB backups are SQL dumps; omit --format.',
  },
  dumpExtension: () => '.sql',
  plainTrailer: 'mysqlPlain',
  globalsTrailer: 'mysqlGlobals',
  clusterFormat: 'plain',
  grantsAfterData: true,
  restoreToolMustBeNewer: false,
  warnsOnOlderTarget: false,
  referenceClusterArchive: false,
  installHint: 'Install mariadb-client (or mysql-client).',
  dumpToolMustBeNewer: false,
  hostEnv: 'MYSQL_HOST',
  portEnv: 'MYSQL_TCP_PORT',
  defaultPort: '3306',
  logArchive: 'binlog',
  tableName: (t) => t.name,
  dumpDescription: 'SQL dump',
};

/** MySQL and MariaDB are one family: the same tools (by either name), formats and files. */
export function engineFamily(engine: Engine): EngineFamily {
  return engine === 'postgres' ? POSTGRES : MYSQL;
}

/** The family whose point-in-time logs are of this kind (an archive records which it holds). */
export function logArchiveFamily(kind: EngineFamily['logArchive']): EngineFamily {
  return kind === POSTGRES.logArchive ? POSTGRES : MYSQL;
}

/** The family's default dump format. */
export function defaultFormat(engine: Engine): DumpFormat {
  return engineFamily(engine).dumpFormats[0] ?? 'plain';
}

const ENGINES: readonly Engine[] = [...POSTGRES.engines, ...MYSQL.engines];

/** A name (the reference tool's `database_type`, a manifest's field) as an engine, if it is one. */
export function asEngine(name: string | undefined | null): Engine | null {
  return ENGINES.find((e) => e === name) ?? null;
}
