import { appendFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { baseDir } from '../catalog/base-backup.js';
import { findPgTool } from '../engines/tools.js';
import { DbBackupError, errorMessage, UsageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { BaseWindow } from '../pitr/analysis.js';
import type { ArchiveIdentity } from '../pitr/archive.js';
import { giveTo, runAsUser, type OsUser } from '../os/user.js';
import { ensureServerConf, isolationSettings, settingsAsConf, writeLocalHba } from '../pitr/isolation.js';
import { executePitrRestore, planPitrRestore, type PitrRestoreInput } from '../pitr/restore.js';
import { startAndFollow } from '../pitr/start.js';
import { formatLsn, parseLsn, segmentNumber } from '../pitr/wal-names.js';
import type { DrillResult, DrillSubject } from './drill.js';
import { checkPgDatabase } from './pg-checks.js';
import {
  acceptPlan,
  announceArchiveSubject,
  archiveName,
  emptyTally,
  finish,
  newResult,
  type ArchiveDrill,
  type ArchiveDrillInput,
} from './pitr-common.js';
import { freePort, makeScratchDir, removeScratchDir } from '../os/scratch.js';

/**
 * The drill of a PostgreSQL base backup (issue 17): `restore pitr` into a scratch data directory
 * to the end of the archive, the server started on a free port with archiving off (it never
 * pushes into the production archive) and followed until it promotes; then the restored cluster
 * is checked against what the base backup recorded (its system identifier, the WAL it must have
 * replayed) and read end to end (src/drill/pg-checks.ts). The server is stopped and the scratch
 * directory removed afterwards, whatever happened, unless --keep.
 */

interface Scratch {
  dir: string;
  dataDir: string;
  port: number;
  log: string;
  /** The restored cluster's bootstrap superuser, once connected. */
  superuser?: string;
}

export async function drillBaseBackup(
  i: ArchiveDrillInput & { identity: ArchiveIdentity },
): Promise<ArchiveDrill> {
  const started = Date.now();
  const dir = await makeScratchDir(i.osUser);
  const scratch: Scratch = {
    dir,
    dataDir: path.join(dir, 'data'),
    port: await freePort(),
    log: path.join(dir, 'postgres.log'),
  };
  let subject: DrillSubject | undefined;
  const result = newResult(`127.0.0.1:${scratch.port} (scratch, ${scratch.dataDir})`);

  try {
    const input: PitrRestoreInput = {
      storage: i.storage,
      archive: i.archive,
      identity: i.identity,
      base: i.backup === 'latest' ? 'latest' : archiveName(i.backup, 'base'),
      target: { kind: 'end' },
      timeline: 'latest',
      timelineExplicit: false,
      action: 'promote',
      inclusive: true,
      dataDir: scratch.dataDir,
      force: false,
      osUser: i.osUser,
      keepArchiving: false,
      port: scratch.port,
      flags: i.flags,
      envFile: i.envFile,
      unlockers: i.unlockers,
    };
    const { plan, chosen } = await planPitrRestore(input);
    if (!plan.base || !chosen?.meta)
      throw new UsageError(
        `Nothing to drill: ${plan.refusals[0] ?? 'no base backup'}`,
        'Run "dbbackup list backups --backup-dir <archive>" to see the base backups.',
      );
    const meta = chosen.meta;
    // A base backup that cannot reach the end of its archive (a lost WAL segment) is not restorable: a failure.
    subject = await announceArchiveSubject(i, {
      entry: baseDir(plan.base.name),
      engine: 'postgres',
      meta,
    });
    acceptPlan(i, result, plan);
    i.onNote(
      `restoring ${plan.base.name} (WAL ${plan.base.startLsn} … ${plan.base.stopLsn}) into ${scratch.dataDir}, then the archive to its end: ${plan.coverage}`,
    );
    await executePitrRestore(input, plan, chosen, i.signal);
    await scratchSettings(scratch, i.osUser);
    const reached = await startAndFollow({
      dataDir: scratch.dataDir,
      user: i.osUser,
      port: scratch.port,
      action: 'promote',
      logFile: scratch.log,
      timeoutMs: i.timeoutMs,
      signal: i.signal,
    });
    result.restoreSeconds = (Date.now() - started) / 1000;
    i.onNote(
      `server promoted on port ${scratch.port} after ${reached.seconds.toFixed(1)} s of recovery${reached.replayLsn ? `, WAL replayed to ${reached.replayLsn}` : ''}${reached.timeline ? ` (new timeline ${reached.timeline}, never archived)` : ''}`,
    );
    const endDifference = reachedArchiveEnd(reached.replayLsn, chosen, i.identity.walSegmentSize);
    if (endDifference) result.differences.push(endDifference);
    await checkCluster(i, scratch, meta.connection.user, meta.systemIdentifier, result);
  } catch (err) {
    result.error = err;
  } finally {
    result.cleanup = await cleanUp(i, scratch, result);
  }
  return finish(subject, result, i.signal, started);
}

/**
 * Where recovery stopped against the archive: at its end, recovery replays into the newest
 * segment the archive holds on this path (or just past it, when that segment was complete).
 */
function reachedArchiveEnd(replayLsn: string | null, b: BaseWindow, segSize: number): string | undefined {
  const last = b.window?.last;
  const lsn = replayLsn ? parseLsn(replayLsn) : undefined;
  if (!last || lsn === undefined)
    return `recovery's end could not be read (replay LSN ${replayLsn ?? 'unknown'}, newest segment ${last ?? 'none'})`;
  const segment = lsn / BigInt(segSize);
  if (segment < segmentNumber(last, segSize))
    return `recovery stopped at ${formatLsn(lsn)}, before the newest archived segment ${last}: the archive's end was not reached`;
  return undefined;
}

/**
 * The scratch server's own settings, appended after restore pitr's (later lines win): its socket
 * in the scratch directory, TCP on 127.0.0.1 only, an hba file of its own (trust over that
 * socket, which only the server's user and root can reach; passwords over TCP), and its log on
 * stderr (a logging collector would keep recovery's lines from pg_ctl's log, which is followed).
 */
async function scratchSettings(s: Scratch, user: OsUser): Promise<void> {
  const hba = path.join(s.dir, 'drill_hba.conf');
  const ident = path.join(s.dir, 'drill_ident.conf');
  await writeLocalHba(hba, user, 'dbbackup drill: the scratch server only');
  await ensureServerConf(s.dataDir, user, 'dbbackup drill: the backup has no postgresql.conf');
  const lines = [
    '# dbbackup drill: the scratch server',
    ...settingsAsConf(
      isolationSettings({ socketDir: s.dir, hbaFile: hba, identFile: ident, archiveOff: true }),
    ),
    '',
  ];
  await writeFile(ident, '', { mode: 0o600 });
  await appendFile(path.join(s.dataDir, 'postgresql.auto.conf'), `${lines.join('\n')}`);
  await giveTo(ident, user);
}

/** A client of the scratch server over its socket, as `user`. */
async function connect(s: Scratch, user: string, database: string): Promise<pg.Client> {
  const c = new pg.Client({ host: s.dir, port: s.port, user, database, connectionTimeoutMillis: 15_000 });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** The cluster's bootstrap superuser (OID 10), reached through any role that may log in. */
async function superuser(s: Scratch, candidates: string[]): Promise<string> {
  let last: unknown;
  for (const name of [...new Set(candidates)]) {
    try {
      const c = await connect(s, name, 'template1');
      try {
        const r = await c.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE oid = 10');
        return r.rows[0]?.rolname ?? name;
      } finally {
        await c.end().catch(() => undefined);
      }
    } catch (err) {
      last = err;
    }
  }
  throw new DbBackupError(`Cannot connect to the restored server: ${errorMessage(last)}`);
}

async function checkCluster(
  i: ArchiveDrillInput,
  s: Scratch,
  backupUser: string,
  systemIdentifier: string,
  result: DrillResult,
): Promise<void> {
  const su = await superuser(s, [backupUser, i.osUser.name, 'postgres']);
  s.superuser = su;
  const c = await connect(s, su, 'template1');
  let databases: string[];
  try {
    const id = await c.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    const restoredId = id.rows[0]?.id ?? '?';
    if (restoredId !== systemIdentifier)
      result.differences.push(
        `system identifier ${restoredId} of the restored cluster is not the backup's ${systemIdentifier}`,
      );
    const r = await c.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname',
    );
    databases = r.rows.map((x) => x.datname);
  } finally {
    await c.end().catch(() => undefined);
  }
  const tally = emptyTally();
  for (const db of databases) {
    if (i.signal.aborted) throw new DbBackupError('Interrupted', { exitCode: ExitCode.Interrupted });
    const client = await connect(s, su, db);
    try {
      const r = await checkPgDatabase(client, db, i.signal);
      tally.databases++;
      tally.tables += r.tables;
      tally.rows += r.rows;
      tally.indexes += r.indexes;
      tally.heapChecked += r.heapChecked;
      result.differences.push(...r.problems.map((p) => `database ${db}: ${p}`));
      result.warnings.push(...r.notes.map((n) => `database ${db}: ${n}`));
      result.lines?.push(`${db}: ${r.summary}`);
      (result.tables ??= {})[db] = r.counts;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  result.checked = { ...tally };
  if (!tally.indexes && !tally.heapChecked)
    result.warnings.push(
      'amcheck is not installed on this host (postgresql-contrib): pages and indexes were not verified, only read by the counts',
    );
}

/** Stops the scratch server and removes the scratch directory, or says where they are (--keep). */
async function cleanUp(i: ArchiveDrillInput, s: Scratch, r: DrillResult): Promise<string> {
  const pid = await postmasterPid(s.dataDir);
  if (i.keep && !i.signal.aborted) {
    if (pid)
      return `kept (--keep): the server runs on 127.0.0.1:${s.port} (socket directory ${s.dir}, log ${s.log}); psql -h ${s.dir} -p ${s.port} -U ${s.superuser ?? 'postgres'} -d template1; stop it with: pg_ctl stop -D ${s.dataDir} (as ${i.osUser.name}), then rm -rf ${s.dir}`;
    return `kept (--keep): ${s.dir} (the server is not running; its log is ${s.log})`;
  }
  let stopped = '';
  if (pid) {
    const pgCtl = await findPgTool('pg_ctl');
    // Immediate: the scratch copy is thrown away, a shutdown checkpoint would only cost time.
    if (pgCtl)
      await runAsUser(i.osUser, pgCtl, ['stop', '-D', s.dataDir, '-m', 'immediate', '-w', '-t', '30'], {
        cwd: s.dir,
        timeoutMs: 40_000,
      });
    if (alive(pid)) {
      process.kill(pid, 'SIGKILL');
      await waitGone(pid, 10_000);
    }
    stopped = alive(pid)
      ? `the scratch server (pid ${pid}) could NOT be stopped; `
      : 'scratch server stopped, ';
    if (alive(pid)) r.warnings.push(`the scratch server (pid ${pid}) is still running: kill ${pid}`);
  }
  const removed = await removeScratchDir(s.dir);
  if (!removed.removed)
    r.warnings.push(`${s.dir} could not be removed (${removed.error ?? '?'}): rm -rf ${s.dir}`);
  return `${stopped}${removed.removed ? `${s.dir} removed` : `${s.dir} NOT removed`}`;
}

async function postmasterPid(dataDir: string): Promise<number | undefined> {
  const text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitGone(pid: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}
