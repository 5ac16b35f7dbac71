import { Command } from 'commander';
import { listBackups } from '../../verify/listing.js';
import { openEngine } from '../../engines/index.js';
import { formatBytes } from '../../units.js';
import { openStore } from '../../storage/uri.js';
import {
  backupDir,
  cloudSettings,
  cloudUri,
  connectionOptions,
  explicitEngine,
  globals,
  out,
  requireDirectory,
  table,
} from '../context.js';
import { printBackupList, withDrills } from '../backup-list.js';

export function listCommand(): Command {
  const list = new Command('list')
    .description('List the databases on the server with their sizes (or "list backups")')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const g = globals(cmd);
      const engine = await openEngine(connectionOptions(g, explicitEngine(g) ?? 'postgres'));
      try {
        const [server, databases] = await Promise.all([engine.serverInfo(), engine.listDatabases()]);
        if (opts.json) {
          out.json({ endpoint: engine.endpoint, server, databases });
          return;
        }
        out.line(`Databases on ${engine.endpoint} (${server.versionString.split(' on ')[0]}):`);
        const rows = databases.map((d) => [d.name, d.sizeBytes === null ? '?' : formatBytes(d.sizeBytes)]);
        for (const line of table(['DATABASE', 'SIZE'], rows)) out.line(line);
      } finally {
        await engine.close();
      }
    });
  list
    .command('backups')
    .description(
      'List the backups in the backup directory (or --cloud URI): name, database, engine, created, size, state (unverified: size only; --verify: SHA-256)',
    )
    .option('--cloud <uri>', 'list a cloud location instead of the backup directory')
    .option(
      '--verify',
      'read every backup and check its SHA-256 (valid / corrupt); without it only sizes are checked (unverified)',
    )
    .option('--json', 'print as JSON')
    .action(async (_opts: { json?: boolean }, cmd: Command) => {
      // `--json` may land on the parent `list` command, which has the same option.
      const g = cmd.optsWithGlobals<
        ReturnType<typeof globals> & { json?: boolean; cloud?: string; verify?: boolean }
      >();
      const where = cloudUri(g, g.cloud);
      const storage = where ? await openStore(where, cloudSettings(g)) : await openStore(backupDir(g));
      await requireDirectory(storage);
      const verify = Boolean(g.verify);
      const entries = await withDrills(storage, await listBackups(storage, { verify }));
      printBackupList(storage.location, entries, Boolean(g.json), verify);
    });
  return list;
}
