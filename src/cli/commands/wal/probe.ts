import type { Command } from 'commander';
import { withEncryptOptions } from '../../encryption-options.js';
import { walProbe } from '../../wal-main.js';
import type { WalOptions } from '../../wal-args.js';
import { asWalCommand, walOptions } from '../../wal-leaf.js';

/** `wal probe` (hidden): what `pitr enable` runs to check the archive command works. */
export function addProbeCommand(wal: Command): void {
  withEncryptOptions(walOptions(wal.command('probe', { hidden: true })))
    .argument('<mode>', 'push or fetch')
    .action(async (mode: string, opts: WalOptions) =>
      asWalCommand('probe', () => walProbe(mode, opts), opts.verbose),
    );
}
