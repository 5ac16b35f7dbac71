import { Option, type Command } from 'commander';
import type { DumpFormat } from '../../../types.js';
import { defaultFormat, engineFamily } from '../../../engines/family.js';
import { UsageError } from '../../../errors.js';
import { formatBytes, formatDuration } from '../../../units.js';
import { progressMode } from '../../progress.js';
import {
  backupStores,
  compressionChoice,
  connectionOptions,
  explicitEngine,
  globals,
  out,
} from '../../context.js';
import { reportResult } from '../../../ops/operation.js';
import { interruptSignal } from '../../signals.js';
import type { EncryptionFlags } from '../../../crypto/index.js';
import { encryptionFlags, withEncryptOptions } from '../../encryption-options.js';
import { factOptions, withFactOptions, type FactFlags } from '../../fact-options.js';
import type { CleanupResult } from '../../../retention/cleanup.js';
import type { Storage } from '../../../storage/storage.js';
import type { BackupMetadata } from '../../../catalog/metadata.js';
import { hasRule, type RetentionPolicy } from '../../../catalog/retention.js';
import {
  printCleanup,
  retentionPolicy,
  timeZoneOf,
  withRetentionOptions,
  type RetentionOptions,
} from '../../retention-options.js';

interface SingleOptions extends RetentionOptions, EncryptionFlags, FactFlags {
  cloud?: string;
  format?: DumpFormat;
  progress?: boolean;
  json?: boolean;
}

/** `backup single`: one database into one file. The domain modules load only when it runs (start-up time). */
export function addSingleCommand(backup: Command): void {
  withFactOptions(withEncryptOptions(withRetentionOptions(backup.command('single'))))
    .description('Back up one database into one compressed, checksummed file with a metadata sidecar')
    .argument('<database>', 'database to back up')
    .addOption(
      new Option('--format <format>', 'PostgreSQL dump format (MySQL/MariaDB dumps are always SQL)').choices([
        'custom',
        'plain',
      ]),
    )
    .option(
      '--cloud <uri>',
      'store the backup in the cloud (s3://, minio://, b2://, azure://, gs://); with --backup-dir as well, in both',
    )
    .option('--progress', 'show progress even when stderr is not a terminal')
    .option('--no-progress', 'never show progress')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup backup single shop                                # PostgreSQL, zstd, into ~/db_backups
  dbbackup backup single shop --format plain --compression-algo gzip --compression 9
  dbbackup --db-type mariadb --host 127.0.0.1 backup single shop --backup-dir /srv/backups
  dbbackup backup single shop --cloud s3://my-bucket/backups/
  dbbackup backup single shop --keep-daily 7 --keep-weekly 4     # prune this database's older backups afterwards
  dbbackup backup single shop --recipient age1…                   # encrypted: only the identity's holder can restore
  dbbackup backup single shop --encryption-key-file /etc/dbbackup/key   # encrypted with a 32-byte key (keygen --symmetric)`,
    )
    .action(runSingle);
}

async function runSingle(database: string, opts: SingleOptions, cmd: Command): Promise<void> {
  const g = globals(cmd);
  const engineName = explicitEngine(g) ?? 'postgres';
  const family = engineFamily(engineName);
  const format: DumpFormat = opts.format ?? defaultFormat(engineName);
  if (!family.dumpFormats.includes(format))
    throw new UsageError(family.formatRefusal.message, family.formatRefusal.hint);
  const { algorithm, level } = compressionChoice(g);
  const [{ openEngine }, { backupSingle }, { protectorsFromFlags }] = await Promise.all([
    import('../../../engines/index.js'),
    import('../../../backup/single.js'),
    import('../../../crypto/index.js'),
  ]);
  const engine = await openEngine(connectionOptions(g, engineName));
  const policy = retentionPolicy(opts);
  // Validated before the backup starts, so a typo cannot fail after it. Only when asked for or used:
  // the first Intl time-zone lookup costs ~20 ms of a tiny backup.
  const timeZone = opts.timeZone !== undefined || hasRule(policy) ? timeZoneOf(opts) : undefined;
  // Keys are loaded (and checked) before anything runs: a bad key file fails here, not after the dump.
  const encryption = await protectorsFromFlags(encryptionFlags(opts));
  const stores = await backupStores(g, opts.cloud);
  const facts = factOptions(opts);
  const signal = interruptSignal();
  try {
    const result = await backupSingle({
      engine,
      database,
      storages: stores,
      format,
      compression: algorithm,
      level,
      progress: opts.json ? 'off' : progressMode(opts.progress),
      onWarning: (line) => out.note(`warning: ${line}`),
      signal,
      encryption,
      facts,
    });
    const m = result.metadata;
    reportResult({ backup: result.key, bytes: m.sizeBytes, destination: result.locations.join(' and ') });
    if (!opts.json) {
      const where = result.locations.join(' and ');
      out.line(
        `Backup complete: ${where} (${formatBytes(m.sizeBytes)}, sha256 ${m.sha256}, ${formatDuration(m.durationSeconds)})`,
      );
    }
    const retention = await pruneAfterBackup(stores, m, policy, timeZone, Boolean(opts.json));
    if (opts.json) out.json({ paths: result.locations, metadata: m, retention });
  } finally {
    await engine.close();
  }
}

/** Retention runs only once the new backup is stored and verified, and only on its own group. */
async function pruneAfterBackup(
  stores: Storage[],
  m: BackupMetadata,
  policy: RetentionPolicy,
  timeZone: string | undefined,
  json: boolean,
): Promise<CleanupResult[]> {
  const retention: CleanupResult[] = [];
  // (The time zone is known whenever a rule is: see runSingle.)
  if (!hasRule(policy) || timeZone === undefined) return retention;
  const [{ runCleanup }, { retentionGroup }] = await Promise.all([
    import('../../../retention/cleanup.js'),
    import('../../../verify/listing.js'),
  ]);
  for (const storage of stores) {
    const r = await runCleanup(storage, {
      policy,
      timeZone,
      dryRun: false,
      group: retentionGroup(m),
      pruneIncomplete: false,
      graceHours: 24,
    });
    retention.push(r);
    if (!json) printCleanup(r, false, false);
    if (r.errors.length) out.note(`warning: retention could not delete ${r.errors.length} backups`);
  }
  return retention;
}
