import type { Command } from 'commander';
import { disablePitr, restartServer } from '../../../pitr/enable.js';
import { globals, out } from '../../context.js';
import { openArchiveStore, pgEngine } from '../../archive-options.js';

/** `pitr disable`: the settings `pitr enable` changed, put back. */
export function addDisableCommand(pitr: Command): void {
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
        const engine = await pgEngine(g);
        const client = await engine.connect(g.database ?? 'postgres');
        try {
          const { commandOption } = await import('../../../pitr/commands.js');
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
              const { ownerOf } = await import('../../../os/user.js');
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
}
