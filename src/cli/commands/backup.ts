import { Command, Option } from 'commander';
import { backupSingle } from '../../backup/single.js';
import type { DumpFormat } from '../../types.js';
import { defaultFormat, engineFamily } from '../../engines/family.js';
import { openEngine } from '../../engines/index.js';
import { DbBackupError, UsageError } from '../../errors.js';
import { formatBytes, formatDuration } from '../../units.js';
import { ClusterProgress, progressMode } from '../progress.js';
import { openStore } from '../../storage/uri.js';
import {
  backupDir,
  backupStores,
  cloudSettings,
  cloudUri,
  compressionChoice,
  connectionOptions,
  explicitEngine,
  globals,
  out,
} from '../context.js';
import { reportResult } from '../../ops/operation.js';
import { interruptSignal } from '../signals.js';
import { retentionGroup } from '../../verify/listing.js';
import { protectorsFromFlags, type EncryptionFlags } from '../../crypto/index.js';
import { encryptionFlags, withEncryptOptions } from '../encryption-options.js';
import { addSampleCommand } from './sample.js';
import { addBaseCommand } from './backup-base.js';
import { addPhysicalCommand } from './backup-physical.js';
import { factOptions, withFactOptions, type FactFlags } from '../fact-options.js';
import { backupCluster, defaultParallelism, PARTIAL_EXIT_CODE } from '../../backup/cluster.js';
import { hasRule } from '../../catalog/retention.js';
import { runCleanup, type CleanupResult } from '../../retention/cleanup.js';
import { parseOptionalInteger } from '../numbers.js';
import {
  printCleanup,
  retentionPolicy,
  timeZoneOf,
  withRetentionOptions,
  type RetentionOptions,
} from '../retention-options.js';

interface SingleOptions extends RetentionOptions, EncryptionFlags, FactFlags {
  cloud?: string;
  format?: DumpFormat;
  progress?: boolean;
  json?: boolean;
}

export function backupCommand(): Command {
  const backup = new Command('backup').description('Back up databases');
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
    .action(async (database: string, opts: SingleOptions, cmd: Command) => {
      const g = globals(cmd);
      const engineName = explicitEngine(g) ?? 'postgres';
      const family = engineFamily(engineName);
      const format: DumpFormat = opts.format ?? defaultFormat(engineName);
      if (!family.dumpFormats.includes(format))
        throw new UsageError(family.formatRefusal.message, family.formatRefusal.hint);
      const { algorithm, level } = compressionChoice(g);
      const engine = await openEngine(connectionOptions(g, engineName));
      const policy = retentionPolicy(opts);
      // Validated before the backup starts, so a typo cannot fail after it.
      const timeZone = timeZoneOf(opts);
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
        // Retention runs only now that the new backup is stored and verified, and only on its own group.
        const retention: CleanupResult[] = [];
        if (hasRule(policy)) {
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
            if (!opts.json) printCleanup(r, false, false);
            if (r.errors.length) out.note(`warning: retention could not delete ${r.errors.length} backups`);
          }
        }
        if (opts.json) out.json({ paths: result.locations, metadata: m, retention });
      } finally {
        await engine.close();
      }
    });
  withFactOptions(withEncryptOptions(backup.command('cluster')))
    .description(
      'Back up every database plus roles/users and grants, as one unit with a manifest written last',
    )
    .option('--cloud <uri>', 'store the cluster backup in the cloud instead of --backup-dir')
    .option('--cluster-parallelism <n>', 'databases dumped at the same time (default: CPU count, at most 4)')
    .option('--include-database <glob...>', 'only databases matching these globs')
    .option('--exclude-database <glob...>', 'skip databases matching these globs')
    .option(
      '--allow-partial',
      `finish even if some databases fail: the backup is marked partial and the exit code is ${PARTIAL_EXIT_CODE}`,
    )
    .option('--progress', 'show progress lines even when stderr is not a terminal')
    .option('--no-progress', 'never show progress')
    .option('--json', 'print the manifest as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup backup cluster                                         # PostgreSQL: pg_dumpall --globals-only + every database
  dbbackup --db-type mariadb --host 127.0.0.1 backup cluster      # MariaDB/MySQL: users and grants + every database
  dbbackup backup cluster --exclude-database 'tmp_*' --cluster-parallelism 2 --cloud s3://bucket/backups/`,
    )
    .action(async (opts: ClusterOptions, cmd: Command) => {
      const g = globals(cmd);
      const { algorithm, level } = compressionChoice(g);
      const parallelism =
        parseOptionalInteger('--cluster-parallelism', opts.clusterParallelism, { min: 1, max: 64 }) ??
        defaultParallelism();
      const encryption = await protectorsFromFlags(encryptionFlags(opts));
      const facts = factOptions(opts);
      const where = cloudUri(g, opts.cloud);
      const storage = where ? await openStore(where, cloudSettings(g)) : await openStore(backupDir(g));
      const engine = await openEngine(connectionOptions(g, explicitEngine(g) ?? 'postgres'));
      try {
        const manifest = await backupCluster({
          engine,
          storage,
          compression: algorithm,
          level,
          parallelism,
          include: opts.includeDatabase ?? [],
          exclude: opts.excludeDatabase ?? [],
          allowPartial: Boolean(opts.allowPartial),
          onWarning: (line) => out.note(`warning: ${line}`),
          progress: new ClusterProgress(
            opts.json ? 'off' : progressMode(opts.progress),
            'cluster backup',
            'dumping',
            'dumped',
          ),
          signal: interruptSignal(),
          encryption,
          facts,
        });
        const ok = manifest.databases.filter((d) => d.status === 'ok').length;
        const location = `${storage.location.replace(/\/$/, '')}/${manifest.name}`;
        reportResult({
          backup: manifest.name,
          bytes: manifest.totalBytes,
          destination: storage.location,
          details: { databases: manifest.databases.length, failed: manifest.databases.length - ok },
        });
        if (opts.json) out.json({ path: location, manifest });
        else {
          out.line(
            `Cluster backup ${manifest.status}: ${location} (${ok} of ${manifest.databases.length} databases${manifest.dropped?.length ? `; ${manifest.dropped.length} dropped during backup` : ''}, ${formatBytes(manifest.totalBytes)}, ${formatDuration(manifest.durationSeconds)})`,
          );
        }
        if (manifest.status === 'partial') {
          const failed = manifest.databases.filter((d) => d.status === 'failed').map((d) => d.database);
          throw new DbBackupError(`Cluster backup is partial: ${failed.join(', ')} could not be dumped`, {
            exitCode: PARTIAL_EXIT_CODE,
            hint: 'The other databases are in the backup; the manifest marks it partial.',
          });
        }
      } finally {
        await engine.close();
      }
    });
  addSampleCommand(backup);
  addBaseCommand(backup);
  addPhysicalCommand(backup);
  return backup;
}

interface ClusterOptions extends EncryptionFlags, FactFlags {
  cloud?: string;
  clusterParallelism?: string;
  includeDatabase?: string[];
  excludeDatabase?: string[];
  allowPartial?: boolean;
  progress?: boolean;
  json?: boolean;
}
