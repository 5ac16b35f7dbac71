import type { Command } from 'commander';
import { incompleteUploads } from '../../../catalog/uploads.js';
import { openStore } from '../../../storage/uri.js';
import { formatBytes } from '../../../units.js';
import { listBackups } from '../../../verify/listing.js';
import { printBackupList } from '../../backup-list.js';
import { requireCloud } from '../../cloud-transfer.js';
import { cloudSettings, globals, out } from '../../context.js';
import { printIncompleteUploads } from '../../incomplete-uploads.js';

export function addListCommand(cloud: Command): void {
  cloud
    .command('list')
    .description('List the backups under a cloud prefix with their state (--all: every object)')
    .argument('<uri>', 'cloud prefix URI')
    .option('--all', 'list every object, not just backups')
    .option('--json', 'print as JSON')
    .action(async (uri: string, opts: { all?: boolean; json?: boolean }, cmd: Command) => {
      requireCloud(uri);
      const store = await openStore(uri, cloudSettings(globals(cmd)));
      if (!opts.all) {
        printBackupList(store.location, await listBackups(store), Boolean(opts.json));
        return;
      }
      const objects = [];
      for await (const o of store.list('')) objects.push(o);
      objects.sort((a, b) => a.key.localeCompare(b.key));
      // Unfinished uploads hold bytes that no object listing shows (S3 parts, Azure blocks).
      if (opts.json)
        out.json({ location: store.location, objects, incompleteUploads: await incompleteUploads(store) });
      else {
        for (const o of objects)
          out.line(`${o.modified.toISOString()}  ${formatBytes(o.size).padStart(10)}  ${o.key}`);
        await printIncompleteUploads(store, out.line);
      }
    });
}
