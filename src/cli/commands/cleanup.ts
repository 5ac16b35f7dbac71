import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import picomatch from 'picomatch';
import { listBackups, type CatalogEntry } from '../../catalog/listing.js';
import {
  hasRule,
  parseDuration,
  planRetention,
  type RetentionDecision,
  type RetentionPolicy,
} from '../../catalog/retention.js';
import { deleteBackup } from '../../catalog/transfer.js';
import { DbBackupError, UsageError, errorMessage } from '../../errors.js';
import { formatBytes } from '../../pipeline/progress.js';
import type { Storage } from '../../storage/storage.js';
import { openStore } from '../../storage/uri.js';
import { cloudSettings, globals, out } from '../context.js';
import { ARCHIVE_FILE } from '../../pitr/archive.js';
import { archiveKind } from '../../pitr/binlog/identity.js';

export interface RetentionOptions {
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  keepWithin?: string;
  retentionDays?: string;
  minBackups?: string;
  timeZone?: string;
}

/** Adds the retention flags to a command (cleanup, and backup commands that prune afterwards). */
export function withRetentionOptions(cmd: Command): Command {
  return cmd
    .option('--keep-last <n>', 'keep the n newest backups')
    .option('--keep-hourly <n>', 'keep the newest backup of each of the last n hours that have one')
    .option('--keep-daily <n>', 'keep the newest backup of each of the last n days that have one')
    .option('--keep-weekly <n>', 'keep the newest backup of each of the last n ISO weeks that have one')
    .option('--keep-monthly <n>', 'keep the newest backup of each of the last n months that have one')
    .option('--keep-yearly <n>', 'keep the newest backup of each of the last n years that have one')
    .option(
      '--keep-within <duration>',
      'keep everything within this long of the newest backup (e.g. 7d, 2w, 1y6m)',
    )
    .option('--retention-days <n>', 'keep everything younger than n days…')
    .option('--min-backups <n>', '…and the n newest, whatever their age')
    .option('--time-zone <tz>', 'time zone for hour/day/week/month/year buckets (default: local)');
}

function count(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`Invalid ${flag} "${value}"`, 'Use a whole number of 0 or more.');
  return n;
}

export function retentionPolicy(o: RetentionOptions): RetentionPolicy {
  return {
    keepLast: count(o.keepLast, '--keep-last'),
    keepHourly: count(o.keepHourly, '--keep-hourly'),
    keepDaily: count(o.keepDaily, '--keep-daily'),
    keepWeekly: count(o.keepWeekly, '--keep-weekly'),
    keepMonthly: count(o.keepMonthly, '--keep-monthly'),
    keepYearly: count(o.keepYearly, '--keep-yearly'),
    keepWithinMs: o.keepWithin === undefined ? undefined : parseDuration(o.keepWithin),
    retentionDays: count(o.retentionDays, '--retention-days'),
    minBackups: count(o.minBackups, '--min-backups'),
  };
}

export function timeZoneOf(o: RetentionOptions): string {
  const tz = o.timeZone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new UsageError(`Unknown time zone "${tz}"`, 'Use an IANA name such as Europe/Berlin or UTC.');
  }
  return tz;
}

export interface CleanupOptions {
  policy: RetentionPolicy;
  timeZone: string;
  dryRun: boolean;
  /** Only this group (engine + server + database), e.g. after a backup. */
  group?: string;
  database?: string;
  pattern?: string;
  pruneIncomplete: boolean;
  graceHours: number;
  now?: Date;
}

export interface CleanupResult {
  location: string;
  decisions: Array<RetentionDecision & { sizeBytes: number | null; state: string }>;
  incomplete: Array<{ key: string; state: string; detail: string; removed: boolean }>;
  deleted: string[];
  freedBytes: number;
  errors: string[];
  /** The reference tool's backups: never kept or deleted by rules, never pruned (see README, Migrating). */
  leftAlone: string[];
}

/** Plan (and unless dry-run, apply) a retention policy to the backups in one store. */
export async function runCleanup(storage: Storage, o: CleanupOptions): Promise<CleanupResult> {
  const now = o.now ?? new Date();
  const isMatch = o.pattern ? picomatch(o.pattern) : () => true;
  const entries = (await listBackups(storage)).filter(
    (e) => isMatch(e.key) && (!o.database || e.database === o.database) && (!o.group || e.group === o.group),
  );
  const withMeta = entries.filter(
    (e): e is CatalogEntry & { group: string; created: Date } => e.group !== null && e.created !== null,
  );
  const decisions = planRetention(
    withMeta.map((e) => ({ key: e.key, group: e.group, time: e.created, valid: e.state === 'valid' })),
    o.policy,
    now,
    o.timeZone,
  ).map((d) => {
    const e = withMeta.find((x) => x.key === d.key);
    return { ...d, sizeBytes: e?.sizeBytes ?? null, state: e?.state ?? 'valid' };
  });
  const result: CleanupResult = {
    location: storage.location,
    decisions,
    incomplete: [],
    deleted: [],
    freedBytes: 0,
    errors: [],
    leftAlone: entries.filter((e) => e.producer === 'reference').map((e) => e.key),
  };
  for (const d of decisions.filter((x) => !x.keep)) {
    if (o.dryRun) continue;
    try {
      await deleteBackup(storage, d.key);
      result.deleted.push(d.key);
      result.freedBytes += d.sizeBytes ?? 0;
    } catch (err) {
      result.errors.push(`${d.key}: ${errorMessage(err)}`);
    }
  }
  // Incomplete and corrupt backups are reported; removed only on request, and only once old enough
  // that no backup still running could own them.
  const graceMs = o.graceHours * 3_600_000;
  // The reference tool's backups are another tool's files: a cluster_<ts>.tar.gz without its
  // .meta.json may still restore, so even a damaged one is only reported.
  for (const e of entries.filter(
    (x) => x.state !== 'valid' && x.producer !== 'reference' && (x.group === null || !o.group),
  )) {
    const old = e.created !== null && now.getTime() - e.created.getTime() > graceMs;
    const remove = o.pruneIncomplete && old && !o.dryRun;
    if (remove) {
      try {
        await deleteBackup(storage, e.key);
        result.freedBytes += e.sizeBytes ?? 0;
      } catch (err) {
        result.errors.push(`${e.key}: ${errorMessage(err)}`);
      }
    }
    result.incomplete.push({ key: e.key, state: e.state, detail: e.detail, removed: remove });
  }
  return result;
}

export function printCleanup(r: CleanupResult, dryRun: boolean, json: boolean): void {
  if (json) {
    out.json({ ...r, dryRun });
    return;
  }
  out.line(`Retention plan for ${r.location}${dryRun ? ' (dry run: nothing is deleted)' : ''}:`);
  let group = '';
  for (const d of r.decisions) {
    if (d.group !== group) {
      group = d.group;
      out.line(`  ${group}`);
    }
    const when = d.time.toISOString().replace('T', ' ').slice(0, 19);
    out.line(
      `    ${d.keep ? 'keep  ' : dryRun ? 'DELETE' : 'deleted'}  ${when}  ${d.key}  (${d.reasons.join(', ')})`,
    );
  }
  for (const i of r.incomplete)
    out.line(`  ${i.removed ? 'removed' : 'report '}  ${i.key}: ${i.state}: ${i.detail}`);
  const doomed = r.decisions.filter((d) => !d.keep);
  out.line(
    `${r.decisions.filter((d) => d.keep).length} kept, ${doomed.length} ${dryRun ? 'would be deleted' : 'deleted'}, ${formatBytes(
      dryRun ? doomed.reduce((s, d) => s + (d.sizeBytes ?? 0), 0) : r.freedBytes,
    )} ${dryRun ? 'would be freed' : 'freed'}.`,
  );
  if (r.leftAlone.length)
    out.line(
      `${r.leftAlone.length} backup${r.leftAlone.length === 1 ? '' : 's'} of the reference tool left alone (retention does not apply to them): ${r.leftAlone.join(', ')}`,
    );
  for (const e of r.errors) out.note(`error: ${e}`);
}

export function cleanupCommand(): Command {
  return withRetentionOptions(
    new Command('cleanup')
      .description(
        'Apply a retention policy to the backups in a directory or cloud prefix (per database group)',
      )
      .argument('[location]', 'backup directory or cloud prefix URI (or a WAL archive)'),
  )
    .option(
      '--archive <dir|uri>',
      'a WAL archive: base backups by the rules, then WAL older than the oldest kept one',
    )
    .option('--database <name>', 'only backups of this database')
    .option('--pattern <glob>', 'only backups whose name matches this glob')
    .option('--dry-run', 'print the plan, delete nothing')
    .option('--prune-incomplete', 'also remove incomplete and corrupt backups older than the grace period')
    .option('--grace <hours>', 'grace period for --prune-incomplete', '24')
    .option('--json', 'print the plan as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup cleanup ~/db_backups --keep-last 3 --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
  dbbackup cleanup s3://bucket/backups/ --retention-days 30 --min-backups 5
  dbbackup cleanup ~/db_backups --keep-within 14d --database shop`,
    )
    .action(
      async (
        location: string | undefined,
        opts: RetentionOptions & {
          archive?: string;
          database?: string;
          pattern?: string;
          dryRun?: boolean;
          pruneIncomplete?: boolean;
          grace: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const graceHours = Number(opts.grace);
        if (!Number.isFinite(graceHours) || graceHours < 0)
          throw new UsageError(`Invalid --grace "${opts.grace}"`, 'Use a number of hours.');
        const policy = retentionPolicy(opts);
        if (!hasRule(policy))
          throw new UsageError(
            'No retention rule given',
            'Add --keep-last, --keep-daily…, --keep-within, or --retention-days with --min-backups.',
          );
        const where = opts.archive ?? location;
        if (!where)
          throw new UsageError(
            'Give a location (or --archive)',
            'dbbackup cleanup ~/db_backups --keep-last 7',
          );
        const storage = await openStore(where, cloudSettings(globals(cmd)));
        // A MariaDB binlog archive: physical chains by the rules, binlogs before the oldest kept one.
        // Unreadable (wrong credentials): the cleanup below reports it with the storage's own words.
        if ((await archiveKind(storage).catch(() => undefined)) === 'binlog') {
          const { cleanupBinlogArchive } = await import('./cleanup-binlog.js');
          await cleanupBinlogArchive(storage, policy, {
            timeZone: timeZoneOf(opts),
            dryRun: Boolean(opts.dryRun),
            json: Boolean(opts.json),
          });
          return;
        }
        const isArchive = opts.archive || (await storage.stat(ARCHIVE_FILE).catch(() => undefined));
        if (isArchive) {
          const { cleanupArchive } = await import('./cleanup-archive.js');
          await cleanupArchive(storage, policy, {
            timeZone: timeZoneOf(opts),
            dryRun: Boolean(opts.dryRun),
            json: Boolean(opts.json),
          });
          return;
        }
        // A mistyped directory must not look like "nothing to clean" in a cron log.
        const local = storage.localPath?.('x');
        if (local && !(await isDirectory(path.dirname(local)))) {
          throw new UsageError(
            `${storage.location} is not a directory`,
            'Check the path of the backup directory.',
          );
        }
        // `--database` is also a global option (the server's maintenance database); here it filters.
        const database = opts.database ?? globals(cmd).database;
        const result = await runCleanup(storage, {
          policy,
          timeZone: timeZoneOf(opts),
          dryRun: Boolean(opts.dryRun),
          database,
          pattern: opts.pattern,
          pruneIncomplete: Boolean(opts.pruneIncomplete),
          graceHours,
        });
        printCleanup(result, Boolean(opts.dryRun), Boolean(opts.json));
        if (result.errors.length)
          throw new DbBackupError(`${result.errors.length} deletions failed`, {
            hint: 'Run cleanup again; nothing valid was left half-deleted.',
          });
      },
    );
}

async function isDirectory(dir: string): Promise<boolean> {
  return (await stat(dir).catch(() => undefined))?.isDirectory() ?? false;
}
