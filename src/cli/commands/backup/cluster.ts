import type { Command } from 'commander';
import { DbBackupError } from '../../../errors.js';
import { ExitCode } from '../../../exit-codes.js';
import { formatBytes, formatDuration } from '../../../units.js';
import { ClusterProgress, progressMode } from '../../progress.js';
import {
  backupDir,
  cloudSettings,
  cloudUri,
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
import { parseOptionalInteger } from '../../numbers.js';

interface ClusterOptions extends EncryptionFlags, FactFlags {
  cloud?: string;
  clusterParallelism?: string;
  includeDatabase?: string[];
  excludeDatabase?: string[];
  allowPartial?: boolean;
  progress?: boolean;
  json?: boolean;
}

/** `backup cluster`: every database plus the globals, as one unit. */
export function addClusterCommand(backup: Command): void {
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
      `finish even if some databases fail: the backup is marked partial and the exit code is ${ExitCode.Partial}`,
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
    .action(runCluster);
}

async function runCluster(opts: ClusterOptions, cmd: Command): Promise<void> {
  const g = globals(cmd);
  const [{ backupCluster, defaultParallelism }, { openEngine }, { openStore }, { protectorsFromFlags }] =
    await Promise.all([
      import('../../../backup/cluster.js'),
      import('../../../engines/index.js'),
      import('../../../storage/uri.js'),
      import('../../../crypto/index.js'),
    ]);
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
        exitCode: ExitCode.Partial,
        hint: 'The other databases are in the backup; the manifest marks it partial.',
      });
    }
  } finally {
    await engine.close();
  }
}
