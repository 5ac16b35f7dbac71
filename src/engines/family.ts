import type { DumpFormat, Engine } from '../types.js';

/**
 * What differs between the engine families that is known without a connection: the formats their
 * dump tools write, the file a dump is stored as, the trailer a complete SQL dump ends with, what
 * to install when the client programs are missing, whether the dump tool must be as new as the
 * server. Code outside src/engines/ asks the family instead of comparing engine names; what needs
 * a connection is a method of DatabaseEngine.
 */
export interface EngineFamily {
  /** The dump formats this family's tools write; the first is the default. */
  readonly dumpFormats: readonly DumpFormat[];
  /** Why another format is refused, as a usage error's message and hint. */
  readonly formatRefusal: { message: string; hint: string };
  /** The extension of an uncompressed dump in `format`: a custom archive or an SQL script. */
  dumpExtension(format: DumpFormat): '.dump' | '.sql';
  /** The TRAILERS entry (catalog/trailers.ts) a complete plain dump ends with. */
  readonly plainTrailer: 'postgresPlain' | 'mysqlPlain';
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
}

const POSTGRES: EngineFamily = {
  dumpFormats: ['custom', 'plain'],
  // Never shown: PostgreSQL's tools write every format.
  formatRefusal: { message: '', hint: '' },
  dumpExtension: (format) => (format === 'custom' ? '.dump' : '.sql'),
  plainTrailer: 'postgresPlain',
  installHint: 'Install postgresql-client (or set DBBACKUP_PG_BINDIR).',
  dumpToolMustBeNewer: true,
  hostEnv: 'PGHOST',
  portEnv: 'PGPORT',
  defaultPort: '5432',
  logArchive: 'wal',
};

const MYSQL: EngineFamily = {
  dumpFormats: ['plain'],
  formatRefusal: {
    message: '--format custom is PostgreSQL only',
    hint: 'MySQL and MariaDB backups are SQL dumps; omit --format.',
  },
  dumpExtension: () => '.sql',
  plainTrailer: 'mysqlPlain',
  installHint: 'Install mariadb-client (or mysql-client).',
  dumpToolMustBeNewer: false,
  hostEnv: 'MYSQL_HOST',
  portEnv: 'MYSQL_TCP_PORT',
  defaultPort: '3306',
  logArchive: 'binlog',
};

/** MySQL and MariaDB are one family: the same tools (by either name), formats and files. */
export function engineFamily(engine: Engine): EngineFamily {
  return engine === 'postgres' ? POSTGRES : MYSQL;
}

/** The family's default dump format. */
export function defaultFormat(engine: Engine): DumpFormat {
  return engineFamily(engine).dumpFormats[0] ?? 'plain';
}
