import type { Command } from 'commander';
import { DbBackupError } from '../../../errors.js';
import { loadEnvFile } from '../../../pitr/wal-keys.js';
import { pitrStatus, printPitrStatus } from '../../../pitr/status.js';
import { pitrStatusMetrics } from '../../../pitr/status-metrics.js';
import { reportResult } from '../../../ops/operation.js';
import { cloudSettings, globals, out } from '../../context.js';
import { encryptionFlags, withDecryptOptions } from '../../encryption-options.js';
import type { EncryptionFlags } from '../../../crypto/index.js';
import { pgEngine } from '../../archive-options.js';

/** `pitr status`: archiving health. */
export function addStatusCommand(pitr: Command): void {
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
          engine: await pgEngine(g),
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
}
