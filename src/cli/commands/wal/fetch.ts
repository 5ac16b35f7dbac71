import type { Command } from 'commander';
import { withDecryptOptions } from '../../encryption-options.js';
import { parseInteger } from '../../numbers.js';
import { walFetch } from '../../wal-main.js';
import type { WalOptions } from '../../wal-args.js';
import { asWalCommand, walOptions } from '../../wal-leaf.js';

/** `wal fetch` (restore_command). */
export function addFetchCommand(wal: Command): void {
  withDecryptOptions(walOptions(wal.command('fetch')))
    .description(
      'restore_command: fetch one WAL file (%f) into %p; exit 1 only when it is not in the archive, 128 when it is there but unusable (recovery stops)',
    )
    .argument('<name>', 'the WAL file name (%f)')
    .argument('<dest>', 'where to write it (%p)')
    .option('--prefetch <n>', 'fetch the next n segments ahead into --spool-dir')
    .option('--spool-dir <dir>', 'spool directory for --prefetch')
    .action(async (name: string, dest: string, opts: WalOptions & { prefetch?: unknown }) => {
      if (opts.prefetch !== undefined)
        opts.prefetch = parseInteger('--prefetch', String(opts.prefetch), { min: 0, max: 64 });
      await asWalCommand('fetch', () => walFetch(name, dest, opts), opts.verbose);
    });
}
