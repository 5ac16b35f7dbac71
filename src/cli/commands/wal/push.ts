import type { Command } from 'commander';
import { withEncryptOptions } from '../../encryption-options.js';
import { walPush } from '../../wal-main.js';
import type { WalOptions } from '../../wal-args.js';
import { asWalCommand, walOptions } from '../../wal-leaf.js';

/** `wal push` (archive_command), also under the reference tool's spelling `wal archive`. */
export function addPushCommand(wal: Command, name: string, hidden = false): void {
  withEncryptOptions(walOptions(wal.command(name, { hidden })))
    .description(
      'archive_command: store one WAL file (%p) in the archive; exit 0 only once it is durable there (or already there, identical)',
    )
    .argument('<path>', 'the WAL file (%p)')
    .option('--async', 'hand the file to a long-lived uploader through --spool-dir')
    .option('--spool-dir <dir>', 'spool directory for --async')
    .option('--async-timeout <seconds>', 'how long to wait for the uploader (default 60)')
    .action(async (file: string, opts: WalOptions) =>
      asWalCommand('push', () => walPush(file, opts), opts.verbose),
    );
}
