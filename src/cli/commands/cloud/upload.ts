import type { Command } from 'commander';
import { isSidecar } from '../../../catalog/naming.js';
import { UsageError } from '../../../errors.js';
import { openStore } from '../../../storage/uri.js';
import { openSource, requireCloud, transfer, transferLine } from '../../cloud-transfer.js';
import { cloudSettings, globals, out } from '../../context.js';

export function addUploadCommand(cloud: Command): void {
  cloud
    .command('upload')
    .description(
      'Upload local backups (with their .sha256 and .meta.json), or cluster backups (their directory), to a cloud prefix, verified on the way',
    )
    .argument('<files...>', 'backup files or cluster directories, then the destination URI (last argument)')
    .option('--overwrite', 'replace a different backup of the same name at the destination')
    .action(async (args: string[], opts: { overwrite?: boolean }, cmd: Command) => {
      const dest = args.pop();
      if (!dest || !args.length)
        throw new UsageError(
          'Give one or more files and a destination URI',
          'dbbackup cloud upload shop_….dump.zst s3://bucket/backups/',
        );
      requireCloud(dest);
      const store = await openStore(dest, cloudSettings(globals(cmd)));
      for (const file of args.filter((f) => !isSidecar(f))) {
        const { storage, key } = await openSource(file, {});
        out.line(transferLine('Uploaded', file, store, await transfer(storage, key, store, opts)));
      }
    });
}
