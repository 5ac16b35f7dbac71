import type { Command } from 'commander';
import { UsageError } from '../../../errors.js';
import { describeArchiveEncryption } from '../../../pitr/archive.js';
import { enablePitr, restartServer } from '../../../pitr/enable.js';
import { compressionChoice, globals, out, type GlobalOptions } from '../../context.js';
import { encryptionFlags, withEncryptOptions } from '../../encryption-options.js';
import type { EncryptionFlags } from '../../../crypto/index.js';
import { openArchiveStore, pgEngine } from '../../archive-options.js';

interface EnableOptions extends EncryptionFlags {
  archive?: string;
  envFile?: string;
  async?: boolean;
  spoolDir?: string;
  restart?: boolean;
  serverLog?: string;
  json?: boolean;
}

/** WAL compression: the global --compression-algo, at level 1 unless --compression says otherwise. */
function walCompression(g: GlobalOptions): { algorithm: 'zstd' | 'gzip' | 'none'; level: number } {
  const choice = compressionChoice(g);
  if (g.compression !== undefined || choice.algorithm !== 'zstd') return choice;
  return { algorithm: 'zstd', level: 1 };
}

/** `pitr enable`: archiving on, with ALTER SYSTEM. */
export function addEnableCommand(pitr: Command): void {
  withEncryptOptions(pitr.command('enable'))
    .description(
      "Archive this server's WAL into an archive (directory or s3://, azure://, gs://): sets wal_level, archive_mode and archive_command with ALTER SYSTEM",
    )
    .option('--archive <dir|uri>', 'where WAL and base backups go (one archive per cluster)')
    .option(
      '--env-file <file>',
      'KEY=VALUE file (mode 0600, owned by the server user) with cloud credentials for archive_command',
    )
    .option('--async', 'push through a spool directory and a long-lived uploader (for cloud archives)')
    .option('--spool-dir <dir>', 'spool directory for --async (owned by the server user)')
    .option('--restart', 'restart the server with pg_ctl when a setting needs it (otherwise only say so)')
    .option('--server-log <file>', "with --restart: the server's log file (pg_ctl -l)")
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup --user postgres pitr enable --archive /srv/wal-archive
  dbbackup --user postgres pitr enable --archive s3://bucket/pg-main/ --env-file /etc/dbbackup/s3.env --async --spool-dir /var/spool/dbbackup
  dbbackup --user postgres pitr enable --archive /srv/wal-archive --encryption-key-file /etc/dbbackup/wal.key`,
    )
    .action(async (opts: EnableOptions, cmd: Command) => {
      const g = globals(cmd);
      if (opts.async && !opts.spoolDir)
        throw new UsageError(
          '--async needs --spool-dir',
          'Give a directory on local disk owned by the server user.',
        );
      const storage = await openArchiveStore(g, opts.archive, opts.envFile);
      const engine = await pgEngine(g);
      const client = await engine.connect(g.database ?? 'postgres');
      let report;
      try {
        report = await enablePitr({
          client,
          archive: opts.archive ?? '',
          storage,
          flags: encryptionFlags(opts),
          envFile: opts.envFile,
          compression: walCompression(g),
          spoolDir: opts.spoolDir,
          asyncPush: opts.async,
        });
      } finally {
        await client.end().catch(() => undefined);
      }
      let restarted = false;
      if (report.restartNeeded.length && opts.restart) {
        await restartServer(report.serverUser, report.dataDirectory, opts.serverLog);
        restarted = true;
      }
      if (opts.json) {
        out.json({ ...report, restarted });
        return;
      }
      const id = report.identity;
      out.line(
        `Archive: ${storage.location} (${report.created ? 'created' : 'existing'}; cluster ${id.systemIdentifier}, PostgreSQL ${id.pgMajor}, ${id.walSegmentSize / 1048576} MiB segments, ${describeArchiveEncryption(id)})`,
      );
      for (const [name, [before, after]] of Object.entries(report.changed))
        out.line(
          `Set ${name} = ${after}${before && before !== after && name !== 'archive_command' ? ` (was ${before})` : ''}`,
        );
      out.line(`Check: ${report.check}`);
      for (const w of report.warnings) out.note(`warning: ${w}`);
      if (report.restartNeeded.length && !restarted)
        out.line(
          `Restart needed: ${report.restartNeeded.join(', ')} take effect only after the server restarts (e.g. "systemctl restart postgresql" or "pg_ctl restart -D ${report.dataDirectory}"; or run again with --restart).`,
        );
      else
        out.line(restarted ? 'Server restarted: archiving is on.' : 'Archiving is on (no restart needed).');
      out.line(
        'Next: "dbbackup backup base --archive …" takes the first base backup; "dbbackup pitr status" shows how archiving goes.',
      );
    });
}
