import type { Command } from 'commander';
import { DbBackupError } from '../../../errors.js';
import { copyClosedBinlogs } from '../../../pitr/binlog/copy.js';
import { compressionChoice, globals, out } from '../../context.js';
import { encryptionFlags } from '../../encryption-options.js';
import { interruptSignal } from '../../signals.js';
import { binlogEngine, openArchiveStore } from '../../archive-options.js';
import { archiveOptions, type BinlogOptions } from '../../binlog-options.js';

/** `binlog archive`: the closed binlogs the archive lacks (for cron). */
export function addArchiveCommand(binlog: Command): void {
  archiveOptions(binlog.command('archive'))
    .description(
      'Copy every closed binary log the server has and the archive lacks into the archive, with its checksum (run it from cron)',
    )
    .option('--flush', 'FLUSH BINARY LOGS first, so the file being written is closed and copied too')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup --db-type mariadb --host 127.0.0.1 --user backup binlog archive --archive /srv/binlog-archive
  dbbackup --db-type mariadb binlog archive --archive s3://bucket/mariadb-main/ --env-file /etc/dbbackup/s3.env --flush`,
    )
    .action(async (opts: BinlogOptions & { flush?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const engine = await binlogEngine(g, 'binlog archive');
      const storage = await openArchiveStore(g, opts.archive, opts.envFile);
      try {
        const report = await copyClosedBinlogs({
          engine,
          storage,
          flags: encryptionFlags(opts),
          compression: compressionChoice(g),
          flush: Boolean(opts.flush),
          spoolDir: opts.spoolDir,
          signal: interruptSignal(),
          onLine: opts.json ? undefined : (l) => out.line(l),
        });
        if (opts.json) out.json(report);
        else
          out.line(
            `Binlog archive ${report.archive}${report.created ? ' (created)' : ''}: ${report.stored.length} stored, ${report.alreadyArchived} already there; ${report.open ?? 'no file'} is still being written`,
          );
        if (report.purged)
          throw new DbBackupError(
            `The server purged ${report.purged.from} … ${report.purged.to} before they were archived: point-in-time recovery cannot cross that gap`,
            {
              hint: 'Run "binlog archive" more often than the server expires binlogs (expire_logs_days / binlog_expire_logs_seconds), or use "binlog stream"; take a new physical backup after the gap.',
            },
          );
      } finally {
        await engine.close();
      }
    });
}
