import { Command } from 'commander';
import { appendDrill, type DrillRecord } from '../../catalog/drill-history.js';
import { unlockersFromFlags, type EncryptionFlags } from '../../crypto/index.js';
import { drillArchive } from '../../drill/archive-drill.js';
import { lazyUnlockers } from '../../pitr/wal-keys.js';
import { resolveSubject, runDrill, type DrillResult, type DrillSubject } from '../../drill/drill.js';
import { openEngine } from '../../engines/index.js';
import { DbBackupError, errorMessage, InterruptedError, UsageError } from '../../errors.js';
import type { ArchiveDrill } from '../../drill/pitr-common.js';
import { currentOperation, reportResult } from '../../ops/operation.js';
import type { MetricSample } from '../../ops/metrics.js';
import { DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_SERVER_WAIT_SECONDS } from '../../restore/partial.js';
import { openStore } from '../../storage/uri.js';
import { TOOL_VERSION } from '../../version.js';
import {
  backupDir,
  cloudSettings,
  cloudUri,
  connectionOptions,
  globals,
  out,
  type GlobalOptions,
} from '../context.js';
import { openArchiveStore } from '../archive-options.js';
import { encryptionFlags, withDecryptOptions } from '../encryption-options.js';
import { parseOptionalInteger } from '../numbers.js';
import { interruptSignal } from '../signals.js';
import { resolveBackupArg, resolveClusterArg } from '../../restore/locate.js';
import type { Storage } from '../../storage/storage.js';

interface DrillFlags extends EncryptionFlags {
  database?: string;
  cloud?: string;
  keep?: boolean;
  sampleRows?: string;
  scratchHost?: string;
  scratchPort?: string;
  scratchUser?: string;
  scratchPasswordFile?: string;
  serverWait?: string;
  archive?: string;
  envFile?: string;
  osUser?: string;
  timeout?: string;
  json?: boolean;
}

/** A drill that ran and found the backup does not restore as it was: exit 1, the first difference named. */
export class DrillFailedError extends DbBackupError {}

export function drillCommand(): Command {
  return withDecryptOptions(new Command('drill'))
    .description(
      'Prove a backup restorable: restore it into a scratch database, compare it with what was recorded when it was taken, time it (RTO), drop it',
    )
    .argument(
      '<backup>',
      'latest, a single backup, or a cluster backup (name in the backup dir, path or URI)',
    )
    .option(
      '--database <db>',
      'with latest: the newest backup of this database; with a cluster backup: only this database',
    )
    .option('--cloud <uri>', 'with latest: look in this cloud location instead of the backup directory')
    .option('--keep', 'keep the scratch database for inspection (it is named in the output)')
    .option(
      '--sample-rows <n>',
      'also compare the checksums of the first n rows of each table by primary key (recorded by backup --record-rows)',
    )
    .option('--scratch-host <host>', 'restore on this server instead of --host (a scratch server)')
    .option('--scratch-port <port>', 'its port')
    .option('--scratch-user <user>', 'its user')
    .option('--scratch-password-file <file>', "its user's password, in a file readable only by you")
    .option(
      '--server-wait <seconds>',
      `how long to wait for an unreachable server to drop the scratch database (default ${DEFAULT_SERVER_WAIT_SECONDS})`,
    )
    .option(
      '--archive <dir|uri>',
      'drill a point-in-time backup of this WAL or binlog archive (base_…, phys_… or latest): restored into a scratch data directory, replayed to the end of the archive, checked, removed',
    )
    .option(
      '--env-file <file>',
      'with --archive: credentials for a cloud archive (also used by restore_command)',
    )
    .option(
      '--os-user <name>',
      "with --archive: the server's OS user, owner of the scratch directory (default: postgres or mysql as root, else you)",
    )
    .option('--timeout <seconds>', 'with --archive: how long recovery may take (default 3600)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup drill latest                                       # the newest backup in ~/db_backups, on the configured server
  dbbackup drill latest --database shop --sample-rows 100     # the newest backup of shop, rows compared too
  dbbackup drill cluster_20261207_020000 --scratch-host scratch.internal
  dbbackup drill s3://bucket/backups/shop_20261207_020000.dump.zst --keep
  dbbackup drill latest --archive /srv/wal-archive              # the newest base backup, replayed to the archive's end
  dbbackup drill phys_20261207_020000 --archive /srv/binlog-archive

The scratch database is named dbbackup_drill_<time>_<random> and dropped afterwards, whatever happens
(success, failure, Ctrl-C, SIGTERM), unless --keep. With --archive, a scratch server on a free port in a
new temporary directory instead, stopped and removed the same way. Exit 0: passed; 1: it failed to restore
or differs.`,
    )
    .action(async (backup: string, opts: DrillFlags, cmd: Command) => {
      const g = globals(cmd);
      // --database names what to drill here, not the server's maintenance database.
      const database = opts.database ?? g.database;
      g.database = undefined;
      const sampleRows =
        parseOptionalInteger('--sample-rows', opts.sampleRows, { min: 0, max: 1_000_000 }) ?? 0;
      const serverWaitMs =
        (parseOptionalInteger('--server-wait', opts.serverWait, { min: 0, max: 86_400 }) ??
          DEFAULT_SERVER_WAIT_SECONDS) * 1000;
      const signal = interruptSignal();
      if (opts.archive) {
        const drilled = await archiveDrill(backup, opts, g, signal);
        await record(drilled.subject, drilled.result, drilled.subject.storage);
        report(drilled.subject, drilled.result, Boolean(opts.json));
        if (drilled.result.outcome === 'interrupted')
          throw new InterruptedError(`Interrupted: the drill was stopped; ${dropped(drilled.result)}`);
        if (drilled.result.outcome === 'failed') throw failure(drilled.result);
        return;
      }
      const { storage, name } = await locate(backup, opts, g);
      const subject = await resolveSubject(storage, name, database);
      reportResult({ database: subject.label, backup: subject.location, engine: subject.engine });
      const unlockers = await unlockersFromFlags(encryptionFlags(opts));
      const engine = await openEngine({
        ...connectionOptions(scratchGlobals(g, opts), subject.engine),
        lockTimeoutSeconds: DEFAULT_LOCK_TIMEOUT_SECONDS,
      });
      let result: DrillResult;
      try {
        if (!opts.json)
          out.note(
            `Drill of ${subject.location} (${subject.label}, taken ${subject.takenAt}) on ${engine.endpoint}`,
          );
        result = await runDrill(engine, subject, {
          keep: Boolean(opts.keep),
          sampleRows,
          unlockers: unlockers.length ? unlockers : undefined,
          signal,
          serverWaitMs,
          onNote: (line) => out.note(`  ${line}`),
          onWarning: (line) => out.note(`warning: ${line}`),
        });
      } finally {
        await engine.close();
      }
      await record(subject, result, storage);
      report(subject, result, Boolean(opts.json));
      if (result.outcome === 'interrupted')
        throw new InterruptedError(`Interrupted: the drill was stopped; ${dropped(result)}`);
      if (result.outcome === 'failed') throw failure(result);
    });
}

/** `drill … --archive`: a base backup (PostgreSQL) or physical backup (MariaDB) in its archive. */
async function archiveDrill(
  backup: string,
  opts: DrillFlags,
  g: GlobalOptions,
  signal: AbortSignal,
): Promise<ArchiveDrill> {
  if (opts.database !== undefined || opts.sampleRows !== undefined || opts.scratchHost !== undefined)
    throw new UsageError(
      '--database, --sample-rows and --scratch-* are for single and cluster backups',
      'A point-in-time drill restores the whole server into a scratch data directory of its own.',
    );
  const storage = await openArchiveStore(g, opts.archive, opts.envFile);
  const flags = encryptionFlags(opts);
  return drillArchive({
    storage,
    archive: opts.archive ?? '',
    backup,
    osUserName: opts.osUser,
    flags,
    envFile: opts.envFile,
    unlockers: lazyUnlockers(flags),
    keep: Boolean(opts.keep),
    timeoutMs: (parseOptionalInteger('--timeout', opts.timeout, { min: 1, max: 864_000 }) ?? 3600) * 1000,
    signal,
    onNote: (line) => (opts.json ? undefined : out.note(`  ${line}`)),
    onWarning: (line) => out.note(`warning: ${line}`),
    onSubject: (subject) => {
      reportResult({ database: subject.label, backup: subject.location, engine: subject.engine });
      if (!opts.json) out.note(`Drill of ${subject.location} (taken ${subject.takenAt}) on a scratch server`);
      return Promise.resolve();
    },
  });
}

/** Where the backup is: `latest` in --cloud or the backup directory; otherwise as restore finds it. */
async function locate(
  backup: string,
  opts: DrillFlags,
  g: GlobalOptions,
): Promise<{ storage: Storage; name: string }> {
  const settings = cloudSettings(g);
  if (backup === 'latest') {
    const cloud = cloudUri(g, opts.cloud);
    return { storage: await openStore(cloud ?? backupDir(g), cloud ? settings : undefined), name: 'latest' };
  }
  const single = await resolveBackupArg(backup, backupDir(g), settings);
  if (await single.storage.stat(single.key)) return { storage: single.storage, name: single.key };
  const cluster = await resolveClusterArg(backup, backupDir(g), settings);
  return { storage: cluster.storage, name: cluster.name };
}

/** The server to restore on: --scratch-* where given, else the global connection options. */
function scratchGlobals(g: GlobalOptions, o: DrillFlags): GlobalOptions {
  if (!o.scratchHost && !o.scratchPort && !o.scratchUser && !o.scratchPasswordFile) return g;
  return {
    ...g,
    host: o.scratchHost ?? g.host,
    port: o.scratchPort ?? g.port,
    user: o.scratchUser ?? g.user,
    ...(o.scratchPasswordFile ? { passwordFile: o.scratchPasswordFile, password: undefined } : {}),
  };
}

function dropped(r: DrillResult): string {
  if (r.cleanup !== undefined) return r.cleanup;
  const lines = r.units.map((u) => u.dropped).filter(Boolean);
  return lines.length ? `scratch database ${lines.join('; ')}` : 'no scratch database was created';
}

function failure(r: DrillResult): DrillFailedError {
  const first = r.differences[0];
  if (first && r.lines !== undefined)
    return new DrillFailedError(`Drill failed: ${first}`, {
      details: [...r.differences.slice(1, 20), dropped(r)],
      hint: 'The backup does not come back whole from this archive: do not rely on it. Take a new backup, check the archive ("dbbackup pitr status", "binlog status", "wal verify") and drill again.',
    });
  if (first)
    return new DrillFailedError(`Drill failed: the restored copy differs from the backup: ${first}`, {
      details: [...r.differences.slice(1, 20), dropped(r)],
      hint: 'The backup restores, but not as the data it was taken from: do not rely on it. Take a new backup and drill it; if it differs again, report it.',
    });
  return new DrillFailedError(`Drill failed: ${errorMessage(r.error)}`, {
    details: [dropped(r)],
    hint:
      r.error instanceof DbBackupError && r.error.hint
        ? r.error.hint
        : 'The backup could not be restored: do not rely on it.',
  });
}

function report(subject: DrillSubject, r: DrillResult, json: boolean): void {
  if (json) {
    out.json({
      backup: subject.location,
      database: subject.label,
      takenAt: subject.takenAt,
      server: r.server,
      outcome: r.outcome,
      restoreSeconds: r.restoreSeconds,
      totalSeconds: r.totalSeconds,
      differences: r.differences,
      warnings: r.warnings,
      databases: r.units,
      ...(r.lines
        ? { checks: r.lines, checked: r.checked ?? {}, tables: r.tables ?? {}, scratch: r.cleanup }
        : {}),
    });
    return;
  }
  for (const w of r.warnings) out.note(`warning: ${w}`);
  for (const l of r.lines ?? []) out.line(l);
  if (r.cleanup !== undefined) out.line(`scratch: ${r.cleanup}`);
  for (const u of r.units) {
    const c = u.comparison?.checked;
    const compared = c
      ? `${c.counted} of ${c.tables} tables counted, ${c.objects} objects, ${c.sequences} sequences${c.sampledRows ? `, ${c.sampledRows} rows in ${c.sampledTables} tables` : ''} compared`
      : u.compared
        ? 'not compared'
        : 'nothing recorded to compare';
    const time = u.restoreSeconds === null ? 'not restored' : `restored in ${u.restoreSeconds.toFixed(1)} s`;
    out.line(`${u.database} → ${u.scratch}: ${time}; ${compared}; ${u.dropped}`);
  }
  if (r.outcome === 'passed')
    out.line(
      `Drill passed: ${subject.location} ${r.lines ? 'restores to the end of its archive and reads back whole' : 'restores as recorded'}. RTO (restore${r.lines ? ' and recovery' : ''}) ${r.restoreSeconds?.toFixed(1) ?? '?'} s, whole drill ${r.totalSeconds.toFixed(1)} s.`,
    );
}

/** The drill history sidecar, the audit record's fields and the metrics (issue 17). */
async function record(subject: DrillSubject, r: DrillResult, storage: Storage): Promise<void> {
  const time = new Date();
  const entry: DrillRecord = {
    time: time.toISOString(),
    outcome: r.outcome,
    database: subject.label,
    restoreSeconds: r.restoreSeconds,
    totalSeconds: Math.round(r.totalSeconds * 100) / 100,
    server: r.server,
    host: (await import('node:os')).hostname(),
    version: TOOL_VERSION,
    operationId: currentOperation()?.id,
    differences: r.differences.slice(0, 20),
    warnings: r.warnings.slice(0, 20),
    checked:
      r.checked ??
      Object.fromEntries(
        Object.entries(
          r.units.reduce<Record<string, number>>((sum, u) => {
            for (const [k, v] of Object.entries(u.comparison?.checked ?? {})) sum[k] = (sum[k] ?? 0) + v;
            return sum;
          }, {}),
        ),
      ),
    ...(r.error ? { error: errorMessage(r.error) } : {}),
  };
  try {
    await appendDrill(storage, subject.entry, entry);
  } catch (err) {
    out.note(
      `warning: the drill's result could not be added to the backup's drill history (${errorMessage(err)}); it is in the audit log`,
    );
  }
  const labels = { database: subject.label, source: subject.source };
  const now = time.getTime() / 1000;
  const passed = r.outcome === 'passed';
  const metrics: MetricSample[] = [
    {
      name: 'dbbackup_drill_last_status',
      help: 'Outcome of the last restore drill: 1 passed, 0 failed or interrupted.',
      labels,
      value: passed ? 1 : 0,
    },
    {
      name: 'dbbackup_drill_last_timestamp_seconds',
      help: 'Unix time the last restore drill finished, whatever its outcome.',
      labels,
      value: now,
    },
  ];
  if (passed)
    metrics.push(
      {
        name: 'dbbackup_drill_last_success_timestamp_seconds',
        help: 'Unix time the last passed restore drill finished (time() minus this: how old the proof is).',
        labels,
        value: now,
      },
      {
        name: 'dbbackup_drill_proven_backup_timestamp_seconds',
        help: 'Unix time the backup the last passed drill proved was taken (time() minus this: the age of the newest proven backup).',
        labels,
        value: Date.parse(subject.takenAt) / 1000,
      },
      {
        name: 'dbbackup_drill_restore_seconds',
        help: 'Restore wall time of the last passed drill (checksum check and restore): the measured RTO.',
        labels,
        value: r.restoreSeconds ?? 0,
      },
      {
        name: 'dbbackup_drill_total_seconds',
        help: 'Wall time of the whole last passed drill: restore, comparison and drop.',
        labels,
        value: r.totalSeconds,
      },
    );
  reportResult({
    details: {
      drill: r.outcome,
      restoreSeconds: r.restoreSeconds ?? -1,
      totalSeconds: Math.round(r.totalSeconds * 100) / 100,
      differences: r.differences.length,
      scratchServer: r.server,
      ...(r.differences[0] ? { firstDifference: r.differences[0] } : {}),
    },
    metrics,
  });
}
