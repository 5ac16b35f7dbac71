import { findPhysicalTool, physicalTool, toolMismatch, type ServerFlavor } from '../backup/physical.js';
import { serverFlavorOf } from '../engines/flavor.js';
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
 * `preflight --pitr` for MariaDB (and MySQL): what physical backups, binlog archiving and
 * point-in-time restores need from the server (binary logging, ROW format, privileges, backup
 * locks) and from this machine: the physical backup program of the server's family and version
 * (mariadb-backup; xtrabackup for MySQL, naming its package), its stream extractor, the binlog reader.
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
    // What the server's flavor takes and needs (src/engines/flavor.ts): its locks, tools, privilege names.
    const flavor = serverFlavorOf(f.engine);
    const named = (n: { need: string }): string => flavor.privilegeNames[n.need] ?? n.need;
    const missing = NEEDS.filter((n) => !n.any.some((p) => have.has(p)));
    results.push(
      missing.length
        ? {
            check: 'pitr: privileges',
            status: 'fail',
            detail: missing.map((m) => `${named(m)} (for ${m.why})`).join('; '),
            hint: `GRANT ${missing.map(named).join(', ')} ON *.* TO ${engine.user};`,
          }
        : { check: 'pitr: privileges', status: 'ok', detail: NEEDS.map(named).join(', ') },
    );
    const tool = physicalTool(f.engine, f.server.version);
    // The locks the backup program takes, taken and released at once.
    try {
      await conn.query(flavor.backupLocks[0]);
      await conn.query(flavor.backupLocks[1]);
      results.push({
        check: 'pitr: backup locks',
        status: 'ok',
        detail: `${flavor.backupLocks.join('/')} work`,
      });
    } catch (err) {
      results.push({
        check: 'pitr: backup locks',
        status: 'fail',
        detail: errorMessage(err),
        hint: `${tool.names[0] ?? 'the backup program'} needs ${flavor.backupLocks[0]} (${flavor.lockPrivilege}); another backup may hold it.`,
      });
    }
    results.push(await toolCheck(f.engine, f.server.version));
    const binlogTool = await whichFirst(flavor.binlogTools);
    const extractor = await whichFirst([flavor.extractor]);
    const toolsCheck = `pitr: ${flavor.binlogTools[0] ?? ''}, ${flavor.extractor}`;
    results.push(
      binlogTool && extractor
        ? { check: toolsCheck, status: 'ok', detail: `${binlogTool.path}, ${extractor.path}` }
        : {
            check: toolsCheck,
            status: 'fail',
            detail:
              `${binlogTool ? '' : `${flavor.binlogTools[0] ?? ''} `}${extractor ? '' : `${flavor.extractor} `}not found`.trim(),
            hint: `Install ${flavor.clients} and ${tool.package} (${flavor.extractor} comes with it).`,
          },
    );
    if (!flavor.binlogs)
      results.push({
        check: 'pitr: binlog archive, restore pitr',
        status: 'warn',
        detail: `MariaDB only: this server is ${flavor.label} ${f.server.version}; backup physical works (with xtrabackup), binlog archiving and point-in-time restores do not yet`,
      });
  } catch (err) {
    results.push({ check: 'pitr: server', status: 'fail', detail: errorMessage(err) });
  } finally {
    await conn.end().catch(() => undefined);
  }
  return results;
}

/** The physical backup program of the server's family: found, and of the server's major.minor. */
async function toolCheck(flavor: ServerFlavor, serverVersion: string): Promise<CheckResult> {
  const t = physicalTool(flavor, serverVersion);
  const check = `pitr: ${t.names[0] ?? 'backup program'}`;
  try {
    const tool = await findPhysicalTool(flavor, serverVersion);
    const mismatch = toolMismatch(tool.version, serverVersion, tool.name);
    return mismatch
      ? { check, status: 'fail', detail: mismatch, hint: `Install the ${t.package} of the server's version.` }
      : { check, status: 'ok', detail: `${tool.path} ${tool.version ?? '?'} for server ${serverVersion}` };
  } catch (err) {
    return { check, status: 'fail', detail: errorMessage(err), hint: t.hint };
  }
}
