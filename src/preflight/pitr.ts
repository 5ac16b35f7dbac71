import { findPhysicalTool, toolMismatch } from '../backup/physical.js';
import type { MysqlEngine } from '../engines/mysql.js';
import { whichFirst } from '../engines/tools.js';
import { errorMessage } from '../errors.js';
import { binlogServerFacts } from '../pitr/binlog/server.js';
import type { CheckResult } from './preflight.js';

/** Privileges that stand for each need (MariaDB renamed some in 10.5). */
const NEEDS: Array<{ need: string; any: string[]; why: string }> = [
  { need: 'RELOAD', any: ['RELOAD'], why: 'backup physical (BACKUP STAGE) and binlog archive --flush' },
  { need: 'PROCESS', any: ['PROCESS'], why: 'backup physical (InnoDB status)' },
  { need: 'LOCK TABLES', any: ['LOCK TABLES'], why: 'backup physical (non-InnoDB tables)' },
  {
    need: 'BINLOG MONITOR',
    any: ['BINLOG MONITOR', 'REPLICATION CLIENT', 'SUPER'],
    why: 'the binlog position of backups, SHOW BINARY LOGS',
  },
  {
    need: 'REPLICATION SLAVE',
    any: ['REPLICATION SLAVE'],
    why: 'binlog archive and binlog stream (reading binlogs)',
  },
];

/**
 * `preflight --pitr` for MariaDB: what physical backups, binlog archiving and point-in-time
 * restores need from the server (binary logging, ROW format, privileges, backup locks) and from
 * this machine (mariadb-backup of the server's version, mbstream, mariadb-binlog).
 */
export async function pitrChecks(engine: MysqlEngine): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let conn;
  try {
    conn = await engine.connect();
  } catch (err) {
    return [{ check: 'pitr: server', status: 'skipped', detail: `needs a connection: ${errorMessage(err)}` }];
  }
  try {
    const f = await binlogServerFacts(conn);
    results.push(
      f.logBin
        ? {
            check: 'pitr: log_bin',
            status: 'ok',
            detail: `ON (${f.server.basename}.*, server_id ${f.server.serverId})`,
          }
        : {
            check: 'pitr: log_bin',
            status: 'fail',
            detail: 'OFF: no binary log, so no point-in-time recovery',
            hint: 'Set log-bin=mysql-bin and server_id in the server configuration and restart it.',
          },
    );
    results.push(
      f.binlogFormat === 'ROW'
        ? { check: 'pitr: binlog_format', status: 'ok', detail: 'ROW' }
        : {
            check: 'pitr: binlog_format',
            status: 'warn',
            detail: `${f.binlogFormat}: statements replayed later may not give the same rows`,
            hint: 'Set binlog_format=ROW.',
          },
    );
    // A user who may read mysql.* sees everyone's privileges here: only this account's count.
    const [rows] = await conn.query(
      `SELECT PRIVILEGE_TYPE AS p FROM information_schema.USER_PRIVILEGES
        WHERE GRANTEE = CONCAT("'", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), "'@'", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), "'")`,
    );
    const have = new Set((rows as Array<{ p: string }>).map((r) => r.p.toUpperCase()));
    const missing = NEEDS.filter((n) => !n.any.some((p) => have.has(p)));
    results.push(
      missing.length
        ? {
            check: 'pitr: privileges',
            status: 'fail',
            detail: missing.map((m) => `${m.need} (for ${m.why})`).join('; '),
            hint: `GRANT ${missing.map((m) => m.need).join(', ')} ON *.* TO ${engine.user};`,
          }
        : { check: 'pitr: privileges', status: 'ok', detail: NEEDS.map((n) => n.need).join(', ') },
    );
    // The locks mariadb-backup takes, taken and released at once.
    try {
      await conn.query('BACKUP STAGE START');
      await conn.query('BACKUP STAGE END');
      results.push({ check: 'pitr: backup locks', status: 'ok', detail: 'BACKUP STAGE START/END work' });
    } catch (err) {
      results.push({
        check: 'pitr: backup locks',
        status: 'fail',
        detail: errorMessage(err),
        hint: 'mariadb-backup needs BACKUP STAGE (RELOAD); another backup may hold it.',
      });
    }
    results.push(await toolCheck(f.server.version));
    const binlogTool = await whichFirst(['mariadb-binlog', 'mysqlbinlog']);
    const mbstream = await whichFirst(['mbstream']);
    results.push(
      binlogTool && mbstream
        ? {
            check: 'pitr: mariadb-binlog, mbstream',
            status: 'ok',
            detail: `${binlogTool.path}, ${mbstream.path}`,
          }
        : {
            check: 'pitr: mariadb-binlog, mbstream',
            status: 'fail',
            detail: `${binlogTool ? '' : 'mariadb-binlog '}${mbstream ? '' : 'mbstream '}not found`.trim(),
            hint: 'Install mariadb-client and mariadb-backup.',
          },
    );
  } catch (err) {
    results.push({ check: 'pitr: server', status: 'fail', detail: errorMessage(err) });
  } finally {
    await conn.end().catch(() => undefined);
  }
  return results;
}

async function toolCheck(serverVersion: string): Promise<CheckResult> {
  try {
    const tool = await findPhysicalTool('mariadb');
    const mismatch = toolMismatch(tool.version, serverVersion);
    return mismatch
      ? {
          check: 'pitr: mariadb-backup',
          status: 'fail',
          detail: mismatch,
          hint: "Install the mariadb-backup of the server's version.",
        }
      : {
          check: 'pitr: mariadb-backup',
          status: 'ok',
          detail: `${tool.path} ${tool.version ?? '?'} for server ${serverVersion}`,
        };
  } catch (err) {
    return {
      check: 'pitr: mariadb-backup',
      status: 'fail',
      detail: errorMessage(err),
      hint: 'apt-get install mariadb-backup',
    };
  }
}
