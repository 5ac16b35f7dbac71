import { Command, Option } from 'commander';
import { backupSingle } from '../../backup/single.js';
import type { DumpFormat } from '../../catalog/naming.js';
import { openEngine } from '../../engines/index.js';
import { UsageError } from '../../errors.js';
import { formatBytes, formatDuration, progressMode } from '../../pipeline/progress.js';
import { openStore } from '../../storage/uri.js';
import { backupDir, compressionChoice, connectionOptions, explicitEngine, globals, out } from '../context.js';
import { interruptSignal } from '../signals.js';

interface SingleOptions {
  format?: DumpFormat;
  progress?: boolean;
  json?: boolean;
}

export function backupCommand(): Command {
  const backup = new Command('backup').description('Back up databases');
  backup
    .command('single')
    .description('Back up one database into one compressed, checksummed file with a metadata sidecar')
    .argument('<database>', 'database to back up')
    .addOption(
      new Option('--format <format>', 'PostgreSQL dump format (MySQL/MariaDB dumps are always SQL)').choices([
        'custom',
        'plain',
      ]),
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
  dbbackup --db-type mariadb --host 127.0.0.1 backup single shop --backup-dir /srv/backups`,
    )
    .action(async (database: string, opts: SingleOptions, cmd: Command) => {
      const g = globals(cmd);
      const engineName = explicitEngine(g) ?? 'postgres';
      const format: DumpFormat = opts.format ?? (engineName === 'postgres' ? 'custom' : 'plain');
      if (engineName !== 'postgres' && format === 'custom') {
        throw new UsageError(
          '--format custom is PostgreSQL only',
          'MySQL and MariaDB backups are SQL dumps; omit --format.',
        );
      }
      const { algorithm, level } = compressionChoice(g);
      const engine = openEngine(connectionOptions(g, engineName));
      const signal = interruptSignal();
      try {
        const result = await backupSingle({
          engine,
          database,
          storage: openStore(backupDir(g)),
          format,
          compression: algorithm,
          level,
          progress: opts.json ? 'off' : progressMode(opts.progress),
          onWarning: (line) => out.note(`warning: ${line}`),
          signal,
        });
        const m = result.metadata;
        if (opts.json) out.json({ path: result.location, metadata: m });
        else {
          out.line(
            `Backup complete: ${result.location} (${formatBytes(m.sizeBytes)}, sha256 ${m.sha256}, ${formatDuration(m.durationSeconds)})`,
          );
        }
      } finally {
        await engine.close();
      }
    });
  return backup;
}
