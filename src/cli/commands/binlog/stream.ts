import type { Command } from 'commander';
import { streamBinlogs } from '../../../pitr/binlog/stream.js';
import { parseInteger } from '../../numbers.js';
import { compressionChoice, globals, out } from '../../context.js';
import { encryptionFlags } from '../../encryption-options.js';
import { interruptSignal } from '../../signals.js';
import { binlogEngine, openArchiveStore } from '../../archive-options.js';
import { archiveOptions, type BinlogOptions } from '../../binlog-options.js';

/** `binlog stream`: the archive kept current to within seconds. */
export function addStreamCommand(binlog: Command): void {
  archiveOptions(binlog.command('stream'))
    .description(
      'Keep the archive current to within seconds: supervises mariadb-binlog --read-from-remote-server --raw --stop-never, stores each binlog once closed and the open one as a prefix; reconnects after server restarts and network drops; stops cleanly on SIGTERM',
    )
    .option('--partial-interval <seconds>', 'how often the open binlog is stored as a prefix (default 10)')
    .option(
      '--stall-timeout <seconds>',
      'reconnect when the server is ahead and nothing arrives for this long (default 60)',
    )
    .option(
      '--replica-id <id>',
      'the replica server id mariadb-binlog registers with (default: its own, 65535)',
    )
    .addHelpText(
      'after',
      `
Examples:
  dbbackup --db-type mariadb --host db1 --user repl binlog stream --archive /srv/binlog-archive
  dbbackup --db-type mariadb binlog stream --archive s3://bucket/mariadb-main/ --env-file /etc/dbbackup/s3.env --partial-interval 5
Run it under systemd (Restart=always); it needs REPLICATION SLAVE on the server.`,
    )
    .action(
      async (
        opts: BinlogOptions & { partialInterval?: string; stallTimeout?: string; replicaId?: string },
        cmd: Command,
      ) => {
        const g = globals(cmd);
        const partial =
          opts.partialInterval === undefined
            ? 10
            : parseInteger('--partial-interval', opts.partialInterval, { min: 1, max: 86400 });
        const stall =
          opts.stallTimeout === undefined
            ? 60
            : parseInteger('--stall-timeout', opts.stallTimeout, { min: 5, max: 86400 });
        const replicaId =
          opts.replicaId === undefined
            ? undefined
            : parseInteger('--replica-id', opts.replicaId, { min: 1, max: 4294967295 });
        const engine = await binlogEngine(g, 'binlog stream');
        const storage = await openArchiveStore(g, opts.archive, opts.envFile);
        const stamp = (l: string): void => out.line(`${new Date().toISOString()} ${l}`);
        try {
          const summary = await streamBinlogs({
            engine,
            storage,
            flags: encryptionFlags(opts),
            compression: compressionChoice(g),
            spoolDir: opts.spoolDir,
            partialIntervalMs: partial * 1000,
            stallMs: stall * 1000,
            replicaId,
            signal: interruptSignal(),
            log: stamp,
          });
          if (opts.json) out.json(summary);
          else
            stamp(
              `stopped: ${summary.stored.length} binlog(s) stored closed, ${summary.partials} prefix update(s), ${summary.sessions} connection(s)`,
            );
        } finally {
          await engine.close();
        }
      },
    );
}
