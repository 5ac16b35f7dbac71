import { Command } from 'commander';
import { checkPolicy, hasRule, parseDuration, type RetentionPolicy } from '../../catalog/retention.js';
import { DbBackupError, UsageError } from '../../errors.js';
import { formatBytes } from '../../pipeline/progress.js';
import type { CleanupResult, PlannedBackup, PruneItem } from '../../retention/cleanup.js';
import { runCleanup } from '../../retention/cleanup.js';
import { openStore } from '../../storage/uri.js';
import {
  backupDir,
  backupDirGiven,
  cloudSettings,
  globals,
  out,
  printable,
  requireDirectory,
} from '../context.js';
import { parseInteger, parseOptionalInteger } from '../numbers.js';
import { reportResult } from '../../ops/operation.js';
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

/** Counts of backups, days: whole numbers, strictly parsed (a blank `--keep-last ""` is an error, not 0). */
const COUNT = { min: 0, max: 1_000_000 };

export function retentionPolicy(o: RetentionOptions): RetentionPolicy {
  const policy: RetentionPolicy = {
    keepLast: parseOptionalInteger('--keep-last', o.keepLast, COUNT),
    keepHourly: parseOptionalInteger('--keep-hourly', o.keepHourly, COUNT),
    keepDaily: parseOptionalInteger('--keep-daily', o.keepDaily, COUNT),
    keepWeekly: parseOptionalInteger('--keep-weekly', o.keepWeekly, COUNT),
    keepMonthly: parseOptionalInteger('--keep-monthly', o.keepMonthly, COUNT),
    keepYearly: parseOptionalInteger('--keep-yearly', o.keepYearly, COUNT),
    keepWithinMs: o.keepWithin === undefined ? undefined : parseDuration(o.keepWithin),
    retentionDays: parseOptionalInteger('--retention-days', o.retentionDays, COUNT),
    minBackups: parseOptionalInteger('--min-backups', o.minBackups, COUNT),
  };
  checkPolicy(policy);
  return policy;
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

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** The label of a backup in the plan: what the rule decided and what really happened to it. */
function planLabel(d: PlannedBackup): string {
  switch (d.outcome) {
    case 'kept':
      return 'keep  ';
    case 'would delete':
      return 'DELETE';
    case 'deleted':
      return 'deleted';
    default:
      return 'FAILED';
  }
}

function pruneLabel(i: PruneItem): string {
  switch (i.action) {
    case 'reported':
    case 'within grace':
      return 'report ';
    case 'would remove':
      return 'REMOVE ';
    case 'removed':
      return 'removed';
    default:
      return 'FAILED ';
  }
}

export function printCleanup(r: CleanupResult, dryRun: boolean, json: boolean, graceHours = 24): void {
  if (json) {
    out.json({ ...r, dryRun });
    return;
  }
  out.line(`Retention plan for ${r.location}${dryRun ? ' (dry run: nothing is deleted)' : ''}:`);
  let group = '';
  for (const d of r.decisions) {
    if (d.group !== group) {
      group = d.group;
      out.line(`  ${printable(group)}`);
    }
    const when = d.time.toISOString().replace('T', ' ').slice(0, 19);
    const proven = d.keep && d.state === 'valid' ? ' [checksum verified]' : '';
    const failed = d.error ? `: ${d.error}` : '';
    out.line(`    ${planLabel(d)}  ${when}  ${d.key}  (${d.reasons.join(', ')})${proven}${failed}`);
  }
  for (const i of r.incomplete) {
    const note =
      i.action === 'within grace'
        ? ` (kept: younger than the ${graceHours} h grace period)`
        : i.action === 'would remove'
          ? ` (would remove ${i.files.join(', ')})`
          : i.error
            ? `: ${i.error}`
            : '';
    out.line(`  ${pruneLabel(i)}  ${i.key}: ${i.state}: ${printable(i.detail)}${note}`);
  }
  if (r.notOurs.length) {
    out.line('Not ours, left alone (dbbackup removes only what it wrote itself):');
    for (const n of r.notOurs) out.line(`  ${n.key}: ${n.reason}`);
  }
  if (r.checked.length) {
    const bad = r.checked.filter((c) => c.state !== 'valid');
    out.line(
      `Read in full before deleting what they replace: ${plural(r.checked.length, 'backup')}${bad.length ? `, ${bad.length} not valid (${bad.map((c) => c.key).join(', ')}): not counted` : ', all match their checksums'}.`,
    );
  }
  out.line(summary(r, dryRun));
  const pruned = pruneSummary(r);
  if (pruned) out.line(pruned);
  if (r.leftAlone.length)
    out.line(
      `${r.leftAlone.length} backup${r.leftAlone.length === 1 ? '' : 's'} of the reference tool left alone (retention does not apply to them): ${r.leftAlone.join(', ')}`,
    );
}

/** "6 kept, 5 deleted, 1 not deleted, 12.0 MiB freed." — what really happened. */
function summary(r: CleanupResult, dryRun: boolean): string {
  const kept = r.decisions.filter((d) => d.keep).length;
  const chosen = r.decisions.filter((d) => !d.keep);
  if (dryRun) {
    const bytes = chosen.reduce((s, d) => s + (d.sizeBytes ?? 0), 0);
    return `${kept} kept, ${chosen.length} would be deleted, ${formatBytes(bytes)} would be freed.`;
  }
  const failed = chosen.filter((d) => d.outcome !== 'deleted').length;
  return `${kept} kept, ${r.deleted.length} deleted${failed ? `, ${failed} not deleted` : ''}, ${formatBytes(r.freedBytes)} freed.`;
}

function pruneSummary(r: CleanupResult): string | undefined {
  const count = (a: PruneItem['action']): number => r.incomplete.filter((i) => i.action === a).length;
  const parts = [
    [count('removed'), 'removed'],
    [count('would remove'), 'would be removed'],
    [count('partly removed') + count('not removed'), 'could not be removed'],
    [count('within grace'), 'kept within the grace period'],
  ] as const;
  const said = parts.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`);
  return said.length ? `Incomplete or corrupt: ${said.join(', ')}.` : undefined;
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
    .option(
      '--prune-incomplete',
      'also remove incomplete and corrupt backups older than the grace period (only files dbbackup wrote)',
    )
    .option('--grace <hours>', 'grace period for --prune-incomplete, in whole hours', '24')
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
        const graceHours = parseInteger('--grace', opts.grace, { min: 0, max: 1_000_000 });
        const policy = retentionPolicy(opts);
        if (!hasRule(policy))
          throw new UsageError(
            'No retention rule given',
            'Add --keep-last, --keep-daily…, --keep-within, or --retention-days with --min-backups.',
          );
        const g = globals(cmd);
        // A configured backup directory (--backup-dir, DBBACKUP_BACKUP_DIR or the profile's) is the
        // default, so `dbbackup --profile prod cleanup` from cron prunes where the backups go. The
        // built-in ~/db_backups is not: deleting needs a place someone chose.
        const where = opts.archive ?? location ?? (backupDirGiven(g) ? backupDir(g) : undefined);
        if (!where)
          throw new UsageError(
            'Give a location (or --archive), or configure a backup directory',
            'dbbackup cleanup ~/db_backups --keep-last 7 (or set backup_dir in the profile, or DBBACKUP_BACKUP_DIR)',
          );
        if (!location && !opts.archive && !opts.json)
          out.line(`Location: ${printable(where)} (the configured backup directory)`);
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
        // A location that cannot even be asked (bad credentials) fails below with the listing's own error.
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
        await requireDirectory(storage);
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
        reportResult({
          destination: result.location,
          bytes: result.freedBytes,
          details: { deleted: result.deleted.length, errors: result.errors.length },
        });
        printCleanup(result, Boolean(opts.dryRun), Boolean(opts.json), graceHours);
        // --- incomplete uploads (cloud: orphaned multipart uploads, uncommitted blocks); one block ---
        if (opts.pruneIncomplete) {
          const { pruneIncompleteUploads } = await import('./incomplete-uploads.js');
          await pruneIncompleteUploads(
            storage,
            { graceHours, dryRun: Boolean(opts.dryRun) },
            opts.json ? out.note : out.line,
          );
        }
        // --- end of the incomplete-uploads block ---
        if (result.errors.length)
          throw new DbBackupError(`cleanup did not finish: ${plural(result.errors.length, 'problem')}`, {
            details: result.errors.map(printable),
            hint: [
              ...result.hints,
              'Each backup above says what really happened to it. A backup whose deletion stopped half way is "incomplete" (its metadata goes first), never "valid"; fix the cause and run cleanup again.',
            ].join(' '),
          });
      },
    );
}
