import { Command } from 'commander';
import { DbBackupError, UsageError } from '../../errors.js';
import { describeArchiveEncryption } from '../../pitr/archive.js';
import { disablePitr, enablePitr, restartServer } from '../../pitr/enable.js';
import { loadEnvFile } from '../../pitr/wal-keys.js';
import { pitrStatus, printPitrStatus } from '../../pitr/status.js';
import { pitrStatusMetrics } from '../../pitr/status-metrics.js';
import { reportResult } from '../../ops/operation.js';
import { cloudSettings, compressionChoice, globals, out, type GlobalOptions } from '../context.js';
import { encryptionFlags, withDecryptOptions, withEncryptOptions } from '../encryption-options.js';
import type { EncryptionFlags } from '../../crypto/index.js';
import { openArchiveStore, pgEngine } from '../archive-options.js';

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

export function pitrCommand(): Command {
  const pitr = new Command('pitr').description(
    'PostgreSQL continuous archiving for point-in-time recovery: enable, disable, status',
  );
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
      const engine = pgEngine(g);
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

  pitr
    .command('disable')
    .description(
      'Undo "pitr enable": put back the settings it changed (archive_command, archive_mode, wal_level)',
    )
    .option('--archive <dir|uri>', 'the archive (default: the one archive_command names)')
    .option('--env-file <file>', 'credentials for a cloud archive')
    .option('--restart', 'restart the server with pg_ctl when a setting needs it')
    .option('--server-log <file>', "with --restart: the server's log file (pg_ctl -l)")
    .action(
      async (
        opts: { archive?: string; envFile?: string; restart?: boolean; serverLog?: string },
        cmd: Command,
      ) => {
        const g = globals(cmd);
        const engine = pgEngine(g);
        const client = await engine.connect(g.database ?? 'postgres');
        try {
          const { commandOption } = await import('../../pitr/commands.js');
          const current = await client.query<{ c: string }>(
            "SELECT setting AS c FROM pg_file_settings WHERE name = 'archive_command' AND error IS NULL ORDER BY seqno DESC LIMIT 1",
          );
          const archive = opts.archive ?? commandOption(current.rows[0]?.c ?? '', '--archive');
          const storage = archive
            ? await openArchiveStore(
                g,
                archive,
                opts.envFile ?? commandOption(current.rows[0]?.c ?? '', '--env-file'),
              )
            : undefined;
          const r = await disablePitr(client, storage);
          for (const [name, value] of Object.entries(r.restored))
            out.line(
              value === null ? `Reset ${name} (to the configuration file's value)` : `Set ${name} = ${value}`,
            );
          if (r.restartNeeded.length) {
            const dir = await client.query<{ d: string }>("SELECT current_setting('data_directory') AS d");
            const dataDirectory = dir.rows[0]?.d ?? '';
            if (opts.restart) {
              const { ownerOf } = await import('../../pitr/os-user.js');
              await client.end().catch(() => undefined);
              await restartServer(await ownerOf(dataDirectory), dataDirectory, opts.serverLog);
              out.line('Server restarted.');
            } else
              out.line(
                `Restart needed: ${r.restartNeeded.join(', ')} change only after the server restarts.`,
              );
          }
          out.line('The archive and its base backups are left as they are.');
        } finally {
          await client.end().catch(() => undefined);
        }
      },
    );

  withDecryptOptions(pitr.command('status'))
    .description(
      'Archiving health: archiver statistics, .ready backlog, failures with the last error, newest archived segment and its age, the recoverable window of each base backup',
    )
    .option('--archive <dir|uri>', 'the archive (default: the one archive_command names)')
    .option('--env-file <file>', 'credentials for a cloud archive')
    .option('--json', 'print as JSON')
    .action(
      async (
        opts: EncryptionFlags & { archive?: string; envFile?: string; json?: boolean },
        cmd: Command,
      ) => {
        const g = globals(cmd);
        if (opts.envFile) await loadEnvFile(opts.envFile);
        const status = await pitrStatus({
          engine: pgEngine(g),
          database: g.database ?? 'postgres',
          archive: opts.archive,
          settings: cloudSettings(g),
          flags: encryptionFlags(opts),
        });
        reportResult({
          metrics: pitrStatusMetrics(status, new Date()),
          details: { problems: status.problems.length, ready: status.backlog?.count ?? -1 },
        });
        if (opts.json) out.json(status);
        else printPitrStatus(status, (l) => out.line(l));
        if (status.problems.length)
          throw new DbBackupError(`Archiving needs attention: ${status.problems[0]}`, {
            hint:
              status.problems.length > 1
                ? `${status.problems.length} problems, listed above.`
                : 'See the status above.',
          });
      },
    );
  return pitr;
}
