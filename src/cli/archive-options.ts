import { engineFamily } from '../engines/family.js';
import type { MysqlEngine } from '../engines/mysql.js';
import type { PostgresEngine } from '../engines/postgres.js';
import { UsageError } from '../errors.js';
import { loadEnvFile } from '../pitr/wal-keys.js';
import type { Storage } from '../storage/storage.js';
import { openStore } from '../storage/uri.js';
import { cloudSettings, connectionOptions, explicitEngine, type GlobalOptions } from './context.js';

/* What the archive commands (pitr, wal, binlog, backup base/physical, restore pitr) share: the archive's store and the server. */

/** The archive's store, with the env file's credentials loaded first. */
export async function openArchiveStore(
  g: GlobalOptions,
  archive: string | undefined,
  envFile?: string,
): Promise<Storage> {
  if (!archive)
    throw new UsageError(
      '--archive is required',
      'Give the archive directory or URI (s3://, azure://, gs://).',
    );
  if (envFile) await loadEnvFile(envFile);
  return openStore(archive, cloudSettings(g));
}

/*
 * The engine classes load when a command runs, one of them: each loads its driver as it is evaluated
 * (pg; mysql2 with its ~90 files), and this module is imported by the leaves of `backup`, `pitr` and
 * `binlog`, so a static import loaded both for every leaf of those groups (backup single too).
 */
export async function pgEngine(g: GlobalOptions): Promise<PostgresEngine> {
  const { PostgresEngine } = await import('../engines/postgres.js');
  return new PostgresEngine(connectionOptions(g, 'postgres'));
}

/** The MariaDB (or MySQL) server of the global options: binlog commands default to MariaDB. */
export async function binlogEngine(g: GlobalOptions, what: string): Promise<MysqlEngine> {
  const engine = explicitEngine(g) ?? 'mariadb';
  if (engineFamily(engine).logArchive !== 'binlog')
    throw new UsageError(
      `${what} is for MariaDB and MySQL`,
      'PostgreSQL archives WAL instead: see "dbbackup pitr enable" and "dbbackup backup base".',
    );
  const { MysqlEngine } = await import('../engines/mysql.js');
  return new MysqlEngine(connectionOptions(g, engine));
}
