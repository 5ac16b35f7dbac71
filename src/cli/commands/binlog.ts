import { Command } from 'commander';
import type { EncryptionFlags } from '../../crypto/index.js';
import { MysqlEngine } from '../../engines/mysql.js';
import { DbBackupError, UsageError } from '../../errors.js';
import { copyClosedBinlogs } from '../../pitr/binlog/copy.js';
import {
  compressionChoice,
  connectionOptions,
  explicitEngine,
  globals,
  out,
  type GlobalOptions,
} from '../context.js';
import { encryptionFlags, withEncryptOptions } from '../encryption-options.js';
import { interruptSignal } from '../signals.js';
import { openArchiveStore } from './pitr.js';

interface BinlogOptions extends EncryptionFlags {
  archive?: string;
  envFile?: string;
  spoolDir?: string;
  json?: boolean;
}

/** The MariaDB (or MySQL) server of the global options: binlog commands default to MariaDB. */
export function binlogEngine(g: GlobalOptions, what: string): MysqlEngine {
  const engine = explicitEngine(g) ?? 'mariadb';
  if (engine === 'postgres')
    throw new UsageError(
      `${what} is for MariaDB and MySQL`,
      'PostgreSQL archives WAL instead: see "dbbackup pitr enable" and "dbbackup backup base".',
    );
  return new MysqlEngine(connectionOptions(g, engine));
}

function archiveOptions(cmd: Command): Command {
  return withEncryptOptions(cmd)
    .option('--archive <dir|uri>', 'the binlog archive (a directory or s3://, azure://, gs://)')
    .option('--env-file <file>', 'KEY=VALUE file (mode 0600) with cloud credentials')
    .option(
      '--spool-dir <dir>',
      'local directory for binlogs on their way (default: a private temporary one)',
    )
    .option('--json', 'print the result as JSON');
}

export function binlogCommand(): Command {
  const binlog = new Command('binlog').description(
    'MariaDB binary log archiving for point-in-time recovery: archive (for cron), stream (continuous), status',
  );
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
      const engine = binlogEngine(g, 'binlog archive');
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
  return binlog;
}
