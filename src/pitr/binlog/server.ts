import path from 'node:path';
import type mysql from 'mysql2/promise';
import { serverFlavorOf, type FlavorId } from '../../engines/flavor.js';
import { UsageError } from '../../errors.js';
import type { BinlogServer } from './identity.js';

/** What the binlog commands need to know about a MariaDB (or MySQL) server. */
export interface BinlogServerFacts {
  engine: FlavorId;
  server: BinlogServer;
  versionString: string;
  logBin: boolean;
  binlogFormat: string;
  gtidBinlogPos: string;
  datadir: string;
}

type Row = Record<string, string | number | null>;

/**
 * MariaDB says so in @@version ("10.11.6-MariaDB-0+deb12u1") or @@version_comment ("mariadb.org
 * binary distribution"); anything else (Oracle MySQL "8.0.36" / "MySQL Community Server - GPL",
 * Percona Server "Percona Server (GPL), Release 27") is of the MySQL family. Pure.
 */
export function serverFlavor(version: string, versionComment = ''): FlavorId {
  return /mariadb/i.test(version) || /mariadb/i.test(versionComment) ? 'mariadb' : 'mysql';
}

async function rows(conn: mysql.Connection, sql: string): Promise<Row[]> {
  const [r] = await conn.query(sql);
  return r as Row[];
}

export async function binlogServerFacts(conn: mysql.Connection): Promise<BinlogServerFacts> {
  const [v] = await rows(
    conn,
    'SELECT @@version AS version, @@version_comment AS comment, @@server_id AS serverId, @@hostname AS hostname, @@port AS port, @@log_bin AS logBin, @@log_bin_basename AS basename, @@binlog_format AS format, @@datadir AS datadir',
  );
  const versionString = String(v?.version ?? '');
  const engine = serverFlavor(versionString, String(v?.comment ?? ''));
  const gtidQuery = serverFlavorOf(engine).gtidPositionQuery;
  const gtid = gtidQuery ? ((await rows(conn, gtidQuery))[0]?.g ?? '') : '';
  return {
    engine,
    versionString,
    server: {
      serverId: Number(v?.serverId ?? 0),
      hostname: String(v?.hostname ?? ''),
      port: Number(v?.port ?? 0),
      basename: v?.basename ? path.basename(String(v.basename)) : '',
      version: /^(\d+\.\d+\.\d+)/.exec(versionString)?.[1] ?? versionString,
    },
    logBin: Number(v?.logBin ?? 0) === 1,
    binlogFormat: String(v?.format ?? ''),
    gtidBinlogPos: String(gtid),
    datadir: String(v?.datadir ?? ''),
  };
}

/** The server must write binary logs, and be MariaDB (the format this reads). */
export function requireBinlogs(f: BinlogServerFacts, what: string): void {
  if (!serverFlavorOf(f.engine).binlogs)
    throw new UsageError(
      `${what} supports MariaDB; this server is ${f.versionString}`,
      'MySQL binlog archiving is not implemented yet.',
    );
  if (!f.logBin || !f.server.basename)
    throw new UsageError(
      `The server does not write binary logs (log_bin is OFF): ${what} needs them`,
      'Set log_bin (e.g. log-bin=mysql-bin) and server_id in its configuration and restart it; binlog_format=ROW is recommended.',
    );
}

/** SHOW BINARY LOGS: the files the server still has, oldest first, with their sizes. */
export async function binaryLogs(conn: mysql.Connection): Promise<Array<{ name: string; size: number }>> {
  return (await rows(conn, 'SHOW BINARY LOGS')).map((r) => ({
    name: String(r.Log_name ?? ''),
    size: Number(r.File_size ?? 0),
  }));
}
