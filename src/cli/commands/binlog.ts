import { Command } from 'commander';
import type { EncryptionFlags } from '../../crypto/index.js';
import { DbBackupError } from '../../errors.js';
import { copyClosedBinlogs } from '../../pitr/binlog/copy.js';
import { requireBinlogIdentity } from '../../pitr/binlog/identity.js';
import { binlogStatus, type BinlogStatus } from '../../pitr/binlog/status.js';
import { streamBinlogs } from '../../pitr/binlog/stream.js';
import { formatBytes } from '../../units.js';
import { parseInteger } from '../numbers.js';
import { compressionChoice, globals, out } from '../context.js';
import { encryptionFlags, withDecryptOptions, withEncryptOptions } from '../encryption-options.js';
import { interruptSignal } from '../signals.js';
import { binlogEngine, openArchiveStore } from '../archive-options.js';

interface BinlogOptions extends EncryptionFlags {
  archive?: string;
  envFile?: string;
  spoolDir?: string;
  json?: boolean;
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
  addArchive(binlog);
  addStream(binlog);
  addStatus(binlog);
  return binlog;
}

/** `binlog archive`: every closed binlog the archive lacks (for cron). */
function addArchive(binlog: Command): void {
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
}

/** `binlog stream`: the long-running streamer. */
function addStream(binlog: Command): void {
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
        const engine = binlogEngine(g, 'binlog stream');
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

/** `binlog status`: the newest archived position, its age, gaps. */
function addStatus(binlog: Command): void {
  withDecryptOptions(binlog.command('status'))
    .description(
      "The archive's newest binlog position and its age, gaps, and how far it is behind the server (when it answers)",
    )
    .option('--archive <dir|uri>', 'the binlog archive')
    .option('--env-file <file>', 'credentials for a cloud archive')
    .option('--offline', 'do not ask the server (the archive alone)')
    .option(
      '--max-age <seconds>',
      'a problem when the newest stored binlog is older than this (default: none)',
    )
    .option('--json', 'print as JSON')
    .action(
      async (
        opts: EncryptionFlags & {
          archive?: string;
          envFile?: string;
          offline?: boolean;
          maxAge?: string;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        const g = globals(cmd);
        const maxAge =
          opts.maxAge === undefined
            ? undefined
            : parseInteger('--max-age', opts.maxAge, { min: 1, max: 10 ** 9 });
        const storage = await openArchiveStore(g, opts.archive, opts.envFile);
        const identity = await requireBinlogIdentity(storage);
        const engine = opts.offline ? undefined : binlogEngine(g, 'binlog status');
        try {
          const status = await binlogStatus(storage, identity, engine);
          if (maxAge !== undefined && status.newest && status.newest.ageSeconds > maxAge)
            status.problems.push(
              `the newest stored binlog (${status.newest.file}) was stored ${status.newest.ageSeconds} s ago, more than --max-age ${maxAge}`,
            );
          if (opts.json) out.json(status);
          else printBinlogStatus(status);
          if (status.problems.length)
            throw new DbBackupError(`Binlog archive needs attention: ${status.problems[0]}`, {
              hint:
                status.problems.length > 1
                  ? `${status.problems.length} problems, listed above.`
                  : 'See the status above.',
            });
        } finally {
          await engine?.close();
        }
      },
    );
}

function printBinlogStatus(s: BinlogStatus): void {
  out.line(
    `Archive:  ${s.archive} (server_id ${s.server.serverId}, ${s.server.hostname}:${s.server.port}, binlogs ${s.server.basename}.*)`,
  );
  out.line(
    `Binlogs:  ${s.files.count}${s.files.oldest ? ` (${s.files.oldest} … ${s.files.newest ?? '?'}), ${formatBytes(s.files.bytes)} stored` : ''}`,
  );
  if (s.newest)
    out.line(
      `Newest:   ${s.newest.file}${s.newest.partial ? ' (open: a prefix)' : ' (closed)'} to byte ${s.newest.bytes}, GTID ${s.newest.endGtids || '-'}, last event ${s.newest.lastEventTime ?? '?'}; stored ${s.newest.storedAt} (${s.newest.ageSeconds} s ago)`,
    );
  if (s.live)
    out.line(
      `Server:   writing ${s.live.file} at ${s.live.position}, GTID ${s.live.gtid || '-'}${s.live.lagBytes === null ? '' : `; the archive is ${s.live.lagBytes} bytes behind`}`,
    );
  else if (s.liveError) out.line(`Server:   not reachable (${s.liveError})`);
  for (const i of s.incomplete) out.line(`Incomplete: ${i} (a store that did not finish: not counted)`);
  for (const p of s.problems) out.line(`PROBLEM:  ${p}`);
  if (!s.problems.length) out.line('OK:       no gaps');
}
