import { engineFamily } from '../engines/family.js';
import { MysqlEngine } from '../engines/mysql.js';
import { UsageError } from '../errors.js';
import { loadEnvFile } from '../pitr/wal-keys.js';
import type { Storage } from '../storage/storage.js';
import { openStore } from '../storage/uri.js';
import { cloudSettings, connectionOptions, explicitEngine, type GlobalOptions } from './context.js';

/*
 * What the archive commands (pitr, wal, binlog, backup base/physical, restore pitr) share: the archive's store and
 * the MariaDB server. PostgreSQL's server is in pg-engine.ts: its module loads the pg driver (~20 files, 50-75 ms of
 * CPU per run, measured), which no MariaDB command needs.
 */

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

/** The MariaDB (or MySQL) server of the global options: binlog commands default to MariaDB. */
export function binlogEngine(g: GlobalOptions, what: string): MysqlEngine {
  const engine = explicitEngine(g) ?? 'mariadb';
  if (engineFamily(engine).logArchive !== 'binlog')
    throw new UsageError(
      `${what} is for MariaDB and MySQL`,
      'PostgreSQL archives WAL instead: see "dbbackup pitr enable" and "dbbackup backup base".',
    );
  return new MysqlEngine(connectionOptions(g, engine));
}
