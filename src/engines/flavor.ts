import type { Engine } from '../types.js';

/** A MySQL-family server: MariaDB (mariadb-backup) or MySQL/Percona Server (Percona XtraBackup). */
export type FlavorId = 'mariadb' | 'mysql';

/** A physical backup program, and what to install when it is missing. */
export interface PhysicalTool {
  names: string[];
  package: string;
  hint: string;
}

/**
 * What differs between the two servers of the MySQL family below the SQL dump, where their files and
 * logs part ways: the physical backup program, the binlog format dbbackup reads (MariaDB's GTIDs),
 * what restore pitr can prepare. Code outside src/engines/ asks the flavor instead of comparing
 * names.
 */
export interface ServerFlavor {
  readonly id: FlavorId;
  /** The server in messages. */
  readonly label: string;
  /** The physical backup program for a server of this version. */
  physicalTool(serverVersion?: string): PhysicalTool;
  /** The query for the server's GTID binlog position (MariaDB's @@gtid_binlog_pos), when it has one. */
  readonly gtidPositionQuery: string | undefined;
  /**
   * dbbackup reads this server's binary logs: archives them (binlog archive/stream) and replays them
   * (restore pitr). MySQL's GTIDs and binlog events differ and are not implemented yet.
   */
  readonly binlogs: boolean;
  /** restore pitr prepares this server's physical backups itself (mariadb-backup --prepare). */
  readonly preparesPhysical: boolean;
  /**
   * The lock the physical backup program takes, and its release (`preflight --pitr` takes and
   * releases it at once): mariadb-backup's BACKUP STAGE; XtraBackup's LOCK INSTANCE FOR BACKUP.
   */
  readonly backupLocks: readonly [take: string, release: string];
  /** The privilege that lock needs. */
  readonly lockPrivilege: string;
  /** The stream extractor that comes with the physical backup program (mbstream, xbstream). */
  readonly extractor: string;
  /** The binlog reader, by its names on this flavor's systems, the flavor's own first. */
  readonly binlogTools: readonly string[];
  /** What to install for the client programs (the binlog reader among them). */
  readonly clients: string;
  /**
   * This flavor's names of privileges, where they differ from MariaDB's (MySQL has no BINLOG
   * MONITOR: REPLICATION CLIENT stands for it).
   */
  readonly privilegeNames: Readonly<Record<string, string>>;
}

/**
 * The Debian/Ubuntu package of Percona XtraBackup for a MySQL server version: XtraBackup is built
 * per server series (2.4 for 5.7, 8.0 for 8.0, 8.4 for 8.4…) and refuses newer servers.
 */
export function xtrabackupPackage(serverVersion?: string): string {
  const m = /^(\d+)\.(\d+)/.exec(serverVersion ?? '');
  if (!m) return 'percona-xtrabackup-80';
  if (m[1] === '5' && m[2] === '7') return 'percona-xtrabackup-24';
  if (m[1] === '8') return `percona-xtrabackup-8${m[2] ?? '0'}`;
  return 'percona-xtrabackup';
}

const MARIADB: ServerFlavor = {
  id: 'mariadb',
  label: 'MariaDB',
  physicalTool: () => ({
    names: ['mariadb-backup', 'mariabackup'],
    package: 'mariadb-backup',
    hint: 'Install mariadb-backup, of the same version as the server (Debian/Ubuntu: apt-get install mariadb-backup).',
  }),
  gtidPositionQuery: 'SELECT @@gtid_binlog_pos AS g',
  binlogs: true,
  preparesPhysical: true,
  backupLocks: ['BACKUP STAGE START', 'BACKUP STAGE END'],
  lockPrivilege: 'RELOAD',
  extractor: 'mbstream',
  binlogTools: ['mariadb-binlog', 'mysqlbinlog'],
  clients: 'mariadb-client',
  privilegeNames: {},
};

const MYSQL: ServerFlavor = {
  id: 'mysql',
  label: 'MySQL',
  physicalTool: (serverVersion) => {
    const pkg = xtrabackupPackage(serverVersion);
    return {
      names: ['xtrabackup'],
      package: pkg,
      hint: `Physical backups of MySQL need Percona XtraBackup of the server's series: apt-get install ${pkg}, from the Percona repository (https://docs.percona.com/percona-xtrabackup/). Without it, use "backup single" or "backup cluster".`,
    };
  },
  gtidPositionQuery: undefined,
  binlogs: false,
  preparesPhysical: false,
  backupLocks: ['LOCK INSTANCE FOR BACKUP', 'UNLOCK INSTANCE'],
  lockPrivilege: 'BACKUP_ADMIN',
  extractor: 'xbstream',
  binlogTools: ['mysqlbinlog', 'mariadb-binlog'],
  clients: 'the MySQL client programs',
  privilegeNames: { 'BINLOG MONITOR': 'REPLICATION CLIENT' },
};

const FLAVORS: Record<FlavorId, ServerFlavor> = { mariadb: MARIADB, mysql: MYSQL };
const BY_ENGINE: Partial<Record<Engine, ServerFlavor>> = FLAVORS;

/** The flavor a server, an archive or a physical backup records. */
export function serverFlavorOf(id: FlavorId): ServerFlavor {
  return FLAVORS[id];
}

/** The flavor of an engine that writes binary logs; undefined for PostgreSQL (WAL). */
export function binlogFlavor(engine: Engine): ServerFlavor | undefined {
  return BY_ENGINE[engine];
}
