import type { Command } from 'commander';
import type { EncryptionFlags } from '../../crypto/index.js';
import { formatBytes, formatDuration } from '../../units.js';
import { progressMode } from '../progress.js';
import { compressionChoice, globals, out } from '../context.js';
import { encryptionFlags, withEncryptOptions } from '../encryption-options.js';
import { interruptSignal } from '../signals.js';
import { binlogEngine, openArchiveStore } from '../archive-options.js';

interface PhysicalOptions extends EncryptionFlags {
  archive?: string;
  envFile?: string;
  incremental?: boolean;
  progress?: boolean;
  json?: boolean;
}

/** `backup physical`: registered by backup.ts. */
export function addPhysicalCommand(backup: Command): void {
  withEncryptOptions(backup.command('physical'))
    .description(
      'MariaDB physical backup (mariadb-backup streamed into the pipeline, no local copy) into the binlog archive, with its LSNs and binlog position; --incremental: the changes since the newest valid one; for "restore pitr"',
    )
    .option('--archive <dir|uri>', 'the binlog archive (directory or s3://, azure://, gs://)')
    .option('--env-file <file>', 'credentials for a cloud archive')
    .option('--incremental', 'only the changes since the newest valid physical backup of this server')
    .option('--progress', 'show progress even when stderr is not a terminal')
    .option('--no-progress', 'never show progress')
    .option('--json', 'print the metadata as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup --db-type mariadb --host 127.0.0.1 --user backup backup physical --archive /srv/binlog-archive
  dbbackup --db-type mariadb backup physical --incremental --archive s3://bucket/mariadb-main/ --env-file /etc/dbbackup/s3.env
It runs on the database host (mariadb-backup reads the data directory) and needs RELOAD, PROCESS, LOCK TABLES and BINLOG MONITOR.`,
    )
    .action(async (opts: PhysicalOptions, cmd: Command) => {
      const g = globals(cmd);
      const { backupPhysical } = await import('../../backup/physical.js');
      const engine = await binlogEngine(g, 'backup physical');
      const storage = await openArchiveStore(g, opts.archive, opts.envFile);
      try {
        const meta = await backupPhysical({
          engine,
          storage,
          flags: encryptionFlags(opts),
          compression: compressionChoice(g),
          incremental: Boolean(opts.incremental),
          progress: opts.json ? 'off' : progressMode(opts.progress),
          signal: interruptSignal(),
          onNote: (l) => out.note(l),
        });
        if (opts.json) out.json({ location: storage.location, metadata: meta });
        else
          out.line(
            `Physical backup complete: ${storage.location.replace(/\/$/, '')}/physical/${meta.name}/ (${meta.backupType}${meta.parent ? ` on ${meta.parent}` : ''}; ${formatBytes(meta.sizeBytes)} stored; LSN ${meta.fromLsn} … ${meta.toLsn}${meta.binlog ? `; binlog ${meta.binlog.file}:${meta.binlog.position}, GTID ${meta.binlog.gtid || '-'}` : ''}; ${formatDuration(meta.durationSeconds)})`,
          );
      } finally {
        await engine.close();
      }
    });
}
