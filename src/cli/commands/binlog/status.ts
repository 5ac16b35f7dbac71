import type { Command } from 'commander';
import type { EncryptionFlags } from '../../../crypto/index.js';
import { DbBackupError } from '../../../errors.js';
import { requireBinlogIdentity } from '../../../pitr/binlog/identity.js';
import { binlogStatus, type BinlogStatus } from '../../../pitr/binlog/status.js';
import { formatBytes } from '../../../units.js';
import { parseInteger } from '../../numbers.js';
import { globals, out } from '../../context.js';
import { withDecryptOptions } from '../../encryption-options.js';
import { binlogEngine, openArchiveStore } from '../../archive-options.js';

/** `binlog status`: the archive's newest position, its age and gaps. */
export function addStatusCommand(binlog: Command): void {
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
        const engine = opts.offline ? undefined : await binlogEngine(g, 'binlog status');
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
