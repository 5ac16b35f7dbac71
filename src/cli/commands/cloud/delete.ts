import type { Command } from 'commander';
import { deleteBackup } from '../../../catalog/transfer.js';
import { DbBackupError } from '../../../errors.js';
import { maskUri } from '../../../storage/cloud-uri.js';
import { openLocation } from '../../../storage/uri.js';
import { formatBytes } from '../../../units.js';
import { requireCloud } from '../../cloud-transfer.js';
import { cloudSettings, globals, out } from '../../context.js';

export function addDeleteCommand(cloud: Command): void {
  cloud
    .command('delete')
    .description('Delete a backup and its sidecars from the cloud (metadata first); needs --confirm')
    .argument('<uri>', 'cloud URI of the backup')
    .option('--confirm', 'really delete (without it, only says what would be deleted)')
    .action(async (uri: string, opts: { confirm?: boolean }, cmd: Command) => {
      requireCloud(uri);
      const { storage, key } = await openLocation(uri, cloudSettings(globals(cmd)));
      const found = await storage.stat(key);
      const meta = await storage.stat(`${key}.meta.json`);
      if (!found && !meta)
        throw new DbBackupError(`Nothing to delete: ${uri} does not exist`, {
          hint: 'Check the URI with dbbackup cloud list.',
        });
      if (!opts.confirm) {
        out.line(
          `Would delete ${uri} (${found ? formatBytes(found.size) : 'data missing'}) and its .meta.json and .sha256.`,
        );
        out.line('Dry run: nothing was deleted. Add --confirm to delete.');
        return;
      }
      await deleteBackup(storage, key);
      out.line(`Deleted ${maskUri(uri)} and its sidecars.`);
    });
}
