import { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_SERVER_WAIT_SECONDS } from '../../restore/partial.js';
import { globals, out } from '../context.js';
import { withDecryptOptions } from '../encryption-options.js';
import { addPitrRestoreCommand } from './restore-pitr.js';
import type { ClusterRestoreOptions, RestoreListOptions, RestoreOptions } from './restore/run.js';

/*
 * The restore command group. Each action's code loads when it runs (restore-run.ts; restore-pitr.ts
 * loads its own): `restore pitr` needs none of the engines and planners of the logical restores.
 */

export function restoreCommand(): Command {
  const restore = new Command('restore').description('Restore backups');
  addSingleRestore(restore);
  addClusterRestore(restore);
  addRestoreList(restore);
  addPitrRestoreCommand(restore);
  return restore;
}

/** `restore single`: one backup (or one database out of a cluster backup) into a database. */
function addSingleRestore(restore: Command): void {
  withFaultOptions(withDecryptOptions(restore.command('single')))
    .description('Restore one backup into a database (a dry run that prints the plan unless --confirm)')
    .argument(
      '[backup]',
      'backup file: a name in the backup dir, a path, or a cloud URI (s3://bucket/path/file…)',
    )
    .option('--target <database>', 'database to restore into (default: the database named in the metadata)')
    .option('--create', 'create the target database if it does not exist')
    .option('--clean', 'drop and recreate the target database if it exists')
    .option('--jobs <n>', 'parallel pg_restore jobs (PostgreSQL custom format)', '1')
    .option('--confirm', 'actually restore (without it, only the plan is printed)')
    .option('--force', 'skip the checksum check and restore a dump without metadata')
    .option(
      '--no-owner',
      'do not restore ownership and privileges (PostgreSQL): of the objects, and of the database it creates',
    )
    .option(
      '--no-db-properties',
      "create the database with the server's defaults: no recorded encoding, locale, character set, settings, connection limit or comment",
    )
    .option('--workdir <dir>', 'where a temporary decompressed copy goes when --jobs > 1')
    .option(
      '--from-cluster <cluster>',
      "restore one database (--database NAME) out of this cluster backup (or the reference tool's cluster_<ts>.tar.gz)",
    )
    .option('--progress', 'show progress lines even when stderr is not a terminal')
    .option('--no-progress', 'never show progress')
    .option('--json', 'print the plan and result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup restore single --from-cluster cluster_20261126_050000 --database shop --target shop_copy --create --confirm
  dbbackup restore single --from-cluster /old/backups/cluster_20251126_120000.tar.gz --database shop --target shop_copy --create --confirm
  dbbackup restore single ~/db_backups/shop_20261126_050000.dump.zst                       # dry run
  dbbackup restore single ~/db_backups/shop_20261126_050000.dump.zst --target shop_copy --create --confirm
  dbbackup restore single shop_20261126_050000.dump.zst --clean --jobs 4 --confirm`,
    )
    .action(async (backup: string | undefined, opts: RestoreOptions, cmd: Command) =>
      (await import('./restore/run.js')).runSingleRestore(backup, opts, globals(cmd)),
    );
}

/** `restore cluster`: roles, then every database of a cluster backup (ours or the reference tool's archive). */
function addClusterRestore(restore: Command): void {
  withFaultOptions(withDecryptOptions(restore.command('cluster')))
    .description(
      'Restore a cluster backup: roles/users first, then every database (dry run unless --confirm)',
    )
    .argument(
      '<backup>',
      "cluster backup: a name in the backup dir (cluster_…), a directory, a cloud prefix URI, or the reference tool's cluster_<ts>.tar.gz",
    )
    .option('--confirm', 'actually restore (without it, only the plan is printed)')
    .option(
      '--clean-cluster',
      'terminate sessions and drop the databases that already exist (never postgres, template0, template1)',
    )
    .option(
      '--jobs <n>',
      'dbbackup cluster backups: databases restored at the same time (default 2); reference .tar.gz archives: pg_restore jobs per database (default 1; above 1 each dump is extracted into --workdir first)',
    )
    .option(
      '--workdir <dir>',
      'where a dump is extracted when --jobs > 1 needs a seekable file (default: the system temp dir); nothing is written without --jobs',
    )
    .option(
      '--include-database <glob>',
      'only these databases: repeat the option, or separate globs with commas (db_a,db_b)',
      collectGlobs,
    )
    // The option once took several values (`--include-database a b`) and swallowed the backup after
    // them; its old spelling after the backup still works: extra arguments are more globs.
    .allowExcessArguments()
    .option(
      '--force',
      'skip the checksum verification (reference archives: restore despite a checksum mismatch)',
    )
    .option('--progress', 'show progress lines even when stderr is not a terminal')
    .option('--no-progress', 'never show progress')
    .option('--json', 'print the plan as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup restore cluster cluster_20261126_050000                           # dry run: the plan and any conflicts
  dbbackup restore cluster cluster_20261126_050000 --confirm                 # onto a server without these databases
  dbbackup restore cluster s3://bucket/backups/cluster_20261126_050000/ --clean-cluster --jobs 4 --confirm
  dbbackup restore cluster /old/backups/cluster_20251126_120000.tar.gz       # the reference tool's archive: dry run
  dbbackup restore cluster /old/backups/cluster_20251126_120000.tar.gz --jobs 4 --workdir /srv/tmp --confirm`,
    )
    .action(async (backup: string, opts: ClusterRestoreOptions, cmd: Command) => {
      opts.includeDatabase = includeGlobs(opts.includeDatabase, cmd.args.slice(1));
      await (await import('./restore/run.js')).runClusterRestore(backup, opts, globals(cmd));
    });
}

/** `restore list`: the backups in the backup directory or a cloud location. */
function addRestoreList(restore: Command): void {
  restore
    .command('list')
    .description('List the backups in the backup directory (or --cloud URI) with their state')
    .option('--cloud <uri>', 'list a cloud location instead of the backup directory')
    .option('--verify', 'read every backup and check its SHA-256 (without it: sizes only, "unverified")')
    .option('--json', 'print as JSON')
    .action(async (opts: RestoreListOptions, cmd: Command) =>
      (await import('./restore/run.js')).runRestoreList(opts, globals(cmd)),
    );
}

/**
 * One `--include-database` value: globs separated by commas, except commas inside braces, which
 * belong to a glob (`db_{a,b}`).
 */
export function collectGlobs(value: string, previous: string[] = []): string[] {
  const globs: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of value) {
    if (ch === '{') depth++;
    if (ch === '}') depth = Math.max(0, depth - 1);
    if (ch === ',' && depth === 0) {
      globs.push(current);
      current = '';
    } else current += ch;
  }
  globs.push(current);
  const empty = globs.find((g) => !g.trim());
  if (empty !== undefined)
    throw new UsageError(
      `Empty database name in --include-database "${value}"`,
      'Write e.g. --include-database db_a,db_b.',
    );
  return [...previous, ...globs];
}

/** Arguments after the backup are `--include-database` globs in the option's old, multi-value spelling. */
function includeGlobs(given: string[] | undefined, extra: string[]): string[] {
  if (!extra.length) return given ?? [];
  if (!given?.length)
    throw new UsageError(
      `Unexpected argument${extra.length > 1 ? 's' : ''}: ${extra.join(' ')}`,
      'restore cluster takes one backup; name databases with --include-database NAME (repeat it, or separate with commas).',
    );
  out.note(
    `note: ${extra.map((e) => `"${e}"`).join(', ')} taken as --include-database too (write --include-database ${[...given, ...extra].join(',')})`,
  );
  return [...given, ...extra.flatMap((e) => collectGlobs(e))];
}

/** How a restore copes with a lost server and with another session's locks (single and cluster alike). */
function withFaultOptions(cmd: Command): Command {
  return cmd
    .option(
      '--server-wait <seconds>',
      `how long a failed or interrupted restore waits for an unreachable server to drop what it created (default ${DEFAULT_SERVER_WAIT_SECONDS})`,
    )
    .option(
      '--lock-timeout <seconds>',
      `how long dropping, creating and restoring wait for a lock another session holds before giving up and naming that session (default ${DEFAULT_LOCK_TIMEOUT_SECONDS}; 0: no limit)`,
    );
}
