import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { listBackups } from '../../catalog/listing.js';
import { openEngine } from '../../engines/index.js';
import { UsageError } from '../../errors.js';
import { formatDuration } from '../../pipeline/progress.js';
import { describePlan } from '../../restore/plan.js';
import { engineForBackup, executeRestore, inspectBackup, prepareRestore } from '../../restore/single.js';
import type { CloudSettings } from '../../storage/cloud.js';
import { openLocation, openStore, type Location } from '../../storage/uri.js';
import {
  backupDir,
  cloudSettings,
  cloudUri,
  connectionOptions,
  explicitEngine,
  globals,
  out,
} from '../context.js';
import { printBackupList } from './list.js';

interface RestoreOptions {
  target?: string;
  create?: boolean;
  clean?: boolean;
  jobs: string;
  confirm?: boolean;
  force?: boolean;
  owner?: boolean;
  workdir?: string;
  json?: boolean;
}

export function restoreCommand(): Command {
  const restore = new Command('restore').description('Restore backups');
  restore
    .command('single')
    .description('Restore one backup into a database (a dry run that prints the plan unless --confirm)')
    .argument(
      '<backup>',
      'backup file: a name in the backup dir, a path, or a cloud URI (s3://bucket/path/file…)',
    )
    .option('--target <database>', 'database to restore into (default: the database named in the metadata)')
    .option('--create', 'create the target database if it does not exist')
    .option('--clean', 'drop and recreate the target database if it exists')
    .option('--jobs <n>', 'parallel pg_restore jobs (PostgreSQL custom format)', '1')
    .option('--confirm', 'actually restore (without it, only the plan is printed)')
    .option('--force', 'skip the checksum check and restore a dump without metadata')
    .option('--no-owner', 'do not restore object ownership and privileges (PostgreSQL)')
    .option('--workdir <dir>', 'where a temporary decompressed copy goes when --jobs > 1')
    .option('--json', 'print the plan and result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup restore single ~/db_backups/shop_20261126_050000.dump.zst                       # dry run
  dbbackup restore single ~/db_backups/shop_20261126_050000.dump.zst --target shop_copy --create --confirm
  dbbackup restore single shop_20261126_050000.dump.zst --clean --jobs 4 --confirm`,
    )
    .action(async (backup: string, opts: RestoreOptions, cmd: Command) => {
      const g = globals(cmd);
      const jobs = Number(opts.jobs);
      if (!Number.isInteger(jobs) || jobs < 1)
        throw new UsageError(`Invalid --jobs "${opts.jobs}"`, 'Use a whole number of 1 or more.');
      const { storage, key } = await resolveBackupArg(backup, backupDir(g), cloudSettings(g));
      const { metadata, detected } = await inspectBackup(storage, key);
      const needed = engineForBackup(detected, metadata);
      const asked = explicitEngine(g);
      const family = (e: string): string => (e === 'postgres' ? 'postgres' : 'mysql');
      if (asked && family(asked) !== family(needed)) {
        throw new UsageError(
          `${key} is a ${needed === 'postgres' ? 'PostgreSQL' : 'MySQL/MariaDB'} backup, but --db-type is ${asked}`,
          'Omit --db-type: the engine is detected from the backup.',
        );
      }
      const engine = openEngine(connectionOptions(g, asked ?? needed));
      try {
        const inputs = {
          storage,
          key,
          target: opts.target,
          create: Boolean(opts.create),
          clean: Boolean(opts.clean),
          jobs,
          force: Boolean(opts.force),
          noOwner: opts.owner === false,
          workdir: opts.workdir,
        };
        const prepared = await prepareRestore(engine, inputs);
        if (!opts.confirm) {
          if (opts.json) out.json({ dryRun: true, plan: prepared.plan });
          else {
            for (const line of describePlan(prepared.plan)) out.line(line);
            out.line('Dry run: nothing was changed. Add --confirm to restore.');
          }
          return;
        }
        if (!opts.json) for (const line of describePlan(prepared.plan)) out.note(line);
        const result = await executeRestore(engine, inputs, prepared, (line) => out.note(`warning: ${line}`));
        if (opts.json) out.json({ dryRun: false, plan: prepared.plan, result });
        else
          out.line(
            `Restore complete: "${result.target}" on ${engine.endpoint} from ${prepared.plan.source} in ${formatDuration(result.seconds)}`,
          );
      } finally {
        await engine.close();
      }
    });

  restore
    .command('list')
    .description('List the backups in the backup directory (or --cloud URI) with their state')
    .option('--cloud <uri>', 'list a cloud location instead of the backup directory')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean; cloud?: string }, cmd: Command) => {
      const g = globals(cmd);
      const where = cloudUri(g, opts.cloud);
      const storage = where ? await openStore(where, cloudSettings(g)) : await openStore(backupDir(g));
      printBackupList(storage.location, await listBackups(storage), Boolean(opts.json));
    });
  return restore;
}

/** A bare name that is not a file here is looked up in the backup directory. */
export async function resolveBackupArg(arg: string, dir: string, settings: CloudSettings): Promise<Location> {
  if (!arg.includes('/') && !existsSync(arg)) return { storage: await openStore(dir), key: arg };
  return openLocation(arg, settings);
}
