import path from 'node:path';
import mysql from 'mysql2/promise';
import { physicalDir } from '../catalog/physical-backup.js';
import { DbBackupError, errorMessage, UsageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { BinlogArchiveIdentity } from '../pitr/binlog/identity.js';
import { startMariadbd, stopServer, type RunningServer } from '../pitr/binlog/mariadbd.js';
import { executePhysicalRestore, RESTORED_CNF, serverFiles } from '../pitr/binlog/restore.js';
import { planBinlogRestore } from '../pitr/binlog/restore-plan.js';
import type { DrillResult, DrillSubject } from './drill.js';
import {
  acceptPlan,
  announceArchiveSubject,
  archiveName,
  emptyTally,
  finish,
  newResult,
  whenAborted,
  type ArchiveDrill,
  type ArchiveDrillInput,
} from './pitr-common.js';
import { freePort, makeScratchDir, removeScratchDir } from '../os/scratch.js';

/**
 * The drill of a MariaDB physical backup (issue 17): `restore pitr`'s physical path into a scratch
 * data directory — every member of the chain streamed with its checksum verified, prepared,
 * incrementals applied, moved back, the archive's binlogs replayed to its end — then a scratch
 * mariadbd started on it (socket only, no network, no grant checks: nothing else can reach it)
 * and every table checked (CHECK TABLE reads each index of an InnoDB table, the clustered one
 * holding the rows, and compares their entry counts) and counted. The server is stopped and the
 * scratch directory removed afterwards, whatever happened, unless --keep.
 */
export async function drillPhysicalBackup(
  i: ArchiveDrillInput & { identity: BinlogArchiveIdentity },
): Promise<ArchiveDrill> {
  const started = Date.now();
  const dir = await makeScratchDir(i.osUser);
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  let subject: DrillSubject | undefined;
  let server: RunningServer | undefined;
  const result = newResult(`scratch mariadbd (${dataDir})`);

  try {
    const target = { kind: 'end' } as const;
    const planned = await planBinlogRestore({
      storage: i.storage,
      identity: i.identity,
      backup: i.backup === 'latest' ? 'latest' : archiveName(i.backup, 'physical'),
      target,
      dataDir,
      force: false,
      osUser: i.osUser,
      port,
    });
    const { plan } = planned;
    const meta = planned.chain.at(-1);
    if (!plan.base || !meta)
      throw new UsageError(
        `Nothing to drill: ${plan.refusals[0] ?? 'no physical backup'}`,
        'Run "dbbackup list backups --backup-dir <archive>" to see the physical backups.',
      );
    subject = await announceArchiveSubject(i, {
      entry: physicalDir(plan.base.name),
      engine: meta.engine,
      meta,
    });
    acceptPlan(i, result, plan);
    i.onNote(
      `restoring ${plan.base.chain.map((m) => m.name).join(' + ')} into ${dataDir}, then ${plan.binlogs ? `${plan.binlogs.files.length} binlog(s)` : 'no binlog'}: ${plan.coverage}`,
    );
    const restored = await executePhysicalRestore(
      {
        storage: i.storage,
        target,
        osUser: i.osUser,
        port,
        start: false,
        unlockers: i.unlockers,
        signal: i.signal,
        onStep: i.onNote,
        timeoutMs: i.timeoutMs,
      },
      planned,
    );
    if (restored.replay)
      i.onNote(
        `replayed ${restored.replay.applied} transaction(s)${restored.replay.last ? `, the last ${restored.replay.last.gtid} (${restored.replay.last.file}, stamped ${restored.replay.last.time})` : ''}`,
      );
    server = await startMariadbd({
      ...serverFiles(dataDir),
      cnf: path.join(dataDir, RESTORED_CNF),
      user: i.osUser,
      private: true,
      timeoutMs: i.timeoutMs,
      signal: i.signal,
    });
    result.restoreSeconds = (Date.now() - started) / 1000;
    i.onNote(`scratch server up (pid ${server.pid}, socket ${server.socket}, no network)`);
    await checkTables(server.socket, i.signal, result);
    if (i.keep && !i.signal.aborted) {
      // Kept for inspection: the same server with networking and grants, on its port.
      await server.stop();
      server = await startMariadbd({
        ...serverFiles(dataDir),
        cnf: path.join(dataDir, RESTORED_CNF),
        user: i.osUser,
        private: false,
        timeoutMs: i.timeoutMs,
        signal: i.signal,
      });
    }
  } catch (err) {
    result.error = err;
  } finally {
    result.cleanup = await cleanUp(i, dir, dataDir, port, server, result);
  }
  return finish(subject, result, i.signal, started);
}

interface CheckRow {
  Msg_type: string;
  Msg_text: string;
}

const SKIP_SCHEMAS = ['information_schema', 'performance_schema', 'sys'];

async function checkTables(socket: string, signal: AbortSignal, result: DrillResult): Promise<void> {
  const c = await mysql.createConnection({ socketPath: socket, user: 'root', connectTimeout: 15_000 });
  const run = async <T>(sql: string): Promise<T[]> =>
    (await Promise.race([c.query(sql), whenAborted(signal)]))[0] as T[];
  const tally = emptyTally();
  const perDb = new Map<string, { tables: number; rows: number; problems: number }>();
  try {
    const tables = await run<{ s: string; t: string }>(
      `SELECT table_schema AS s, table_name AS t FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_schema NOT IN (${SKIP_SCHEMAS.map((x) => `'${x}'`).join(', ')})
        ORDER BY table_schema, table_name`,
    );
    for (const { s, t } of tables) {
      if (signal.aborted) throw new DbBackupError('Interrupted', { exitCode: ExitCode.Interrupted });
      const name = `${c.escapeId(s)}.${c.escapeId(t)}`;
      const db = perDb.get(s) ?? { tables: 0, rows: 0, problems: 0 };
      perDb.set(s, db);
      try {
        const check = await run<CheckRow>(`CHECK TABLE ${name}`);
        const bad = check.find(
          (r) =>
            r.Msg_type === 'error' ||
            (r.Msg_type === 'status' && !/^(OK|Table is already up to date)$/.test(r.Msg_text)),
        );
        if (bad) {
          result.differences.push(`table ${s}.${t}: CHECK TABLE says ${bad.Msg_type}: ${bad.Msg_text}`);
          db.problems++;
        } else tally.heapChecked++;
        const n = await run<{ n: string | number }>(`SELECT COUNT(*) AS n FROM ${name}`);
        const rows = Number(n[0]?.n ?? 0);
        tally.tables++;
        tally.rows += rows;
        db.tables++;
        db.rows += rows;
        ((result.tables ??= {})[s] ??= {})[t] = rows;
      } catch (err) {
        if (signal.aborted) throw err;
        result.differences.push(`table ${s}.${t} cannot be read: ${errorMessage(err)}`);
        db.problems++;
      }
    }
  } finally {
    await c.end().catch(() => undefined);
  }
  tally.databases = perDb.size;
  for (const [s, d] of perDb)
    result.lines?.push(
      `${s}: ${d.tables} tables checked (CHECK TABLE) and counted (${d.rows} rows)${d.problems ? `; ${d.problems} problem(s)` : ''}`,
    );
  result.checked = { ...tally };
}

/** Stops the scratch server and removes the scratch directory, or says how to reach them (--keep). */
async function cleanUp(
  i: ArchiveDrillInput,
  dir: string,
  dataDir: string,
  port: number,
  server: RunningServer | undefined,
  r: DrillResult,
): Promise<string> {
  if (i.keep && !i.signal.aborted) {
    if (server)
      return `kept (--keep): mariadbd (pid ${server.pid}) on 127.0.0.1:${port}, socket ${server.socket}; mariadb --socket=${server.socket} -u root; stop it with: kill ${server.pid}, then rm -rf ${dir}`;
    return `kept (--keep): ${dir} (no server is running; configuration ${path.join(dataDir, RESTORED_CNF)})`;
  }
  let stopped = '';
  if (server) {
    try {
      // SIGKILL: the scratch copy is thrown away, a clean InnoDB shutdown would only cost time (and an
      // interrupted drill has CLEANUP_GRACE_MS to finish); stopServer then waits until it is gone.
      process.kill(server.pid, 'SIGKILL');
      await stopServer(server.pid, serverFiles(dataDir).pidFile, 10_000);
      stopped = 'scratch server stopped, ';
    } catch (err) {
      r.warnings.push(`the scratch server (pid ${server.pid}): ${errorMessage(err)}`);
      stopped = `the scratch server (pid ${server.pid}) was killed, `;
    }
  }
  const removed = await removeScratchDir(dir);
  if (!removed.removed)
    r.warnings.push(`${dir} could not be removed (${removed.error ?? '?'}): rm -rf ${dir}`);
  return `${stopped}${removed.removed ? `${dir} removed` : `${dir} NOT removed`}`;
}
