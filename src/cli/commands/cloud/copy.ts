import type { Command } from 'commander';
import { maskUri } from '../../../storage/cloud-uri.js';
import { openStore } from '../../../storage/uri.js';
import { openSource, transfer, transferLine } from '../../cloud-transfer.js';
import { cloudSettings, globals, out } from '../../context.js';

export function addCopyCommand(cloud: Command): void {
  cloud
    .command('copy')
    .description(
      'Copy a backup, or a cluster backup as one unit, between locations (provider to provider), streamed, checksum preserved',
    )
    .argument('<from>', 'source backup URI or path (a cluster backup: its prefix or directory)')
    .argument('<to>', 'destination prefix URI or directory')
    .option('--overwrite', 'replace a different backup of the same name at the destination')
    .action(async (from: string, to: string, opts: { overwrite?: boolean }, cmd: Command) => {
      const settings = cloudSettings(globals(cmd));
      const { storage, key } = await openSource(from, settings);
      const dest = await openStore(to, settings);
      out.line(transferLine('Copied', maskUri(from), dest, await transfer(storage, key, dest, opts)));
    });
}
