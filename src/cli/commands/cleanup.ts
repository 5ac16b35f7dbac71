import { Command } from 'commander';
import { hasRule } from '../../catalog/retention.js';
import { DbBackupError, UsageError } from '../../errors.js';
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
import { parseInteger } from '../numbers.js';
import { reportResult } from '../../ops/operation.js';
import { ARCHIVE_FILE } from '../../pitr/archive.js';
import { archiveKind } from '../../pitr/binlog/identity.js';
import {
  plural,
  printCleanup,
  retentionPolicy,
  timeZoneOf,
  withRetentionOptions,
  type RetentionOptions,
} from '../retention-options.js';

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
          const { pruneIncompleteUploads } = await import('../incomplete-uploads.js');
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
