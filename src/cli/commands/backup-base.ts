import type { Command } from 'commander';
import type { EncryptionFlags } from '../../crypto/index.js';
import { UsageError } from '../../errors.js';
import { commandOption, commandWords, isDbbackupArchiveCommand } from '../../pitr/commands.js';
import { formatBytes, formatDuration } from '../../units.js';
import { progressMode } from '../progress.js';
import { compressionChoice, globals, out } from '../context.js';
import { encryptionFlags, withEncryptOptions } from '../encryption-options.js';
import { interruptSignal } from '../signals.js';
import { openArchiveStore, pgEngine } from '../archive-options.js';

interface BaseOptions extends EncryptionFlags {
  archive?: string;
  envFile?: string;
  progress?: boolean;
  json?: boolean;
  incremental?: boolean;
  differential?: boolean;
  pgdata?: string;
  fromPgdata?: boolean;
}

/** The key options archive_command carries, for a base backup that names none. */
function keyFlagsOf(command: string): EncryptionFlags {
  const words = commandWords(command);
  const all = (flag: string) =>
    words.flatMap((w, i) => (w === flag && words[i + 1] ? [words[i + 1] ?? ''] : []));
  return {
    encryptionKeyFile: commandOption(command, '--encryption-key-file'),
    encryptionKeyEnv: commandOption(command, '--encryption-key-env'),
    recipient: all('--recipient'),
    recipientsFile: all('--recipients-file'),
    insecureKeyFile: words.includes('--insecure-key-file'),
  };
}

/** `backup base`: registered by backup.ts. */
export function addBaseCommand(backup: Command): void {
  withEncryptOptions(backup.command('base'))
    .description(
      'Physical base backup into the WAL archive (pg_basebackup streamed into the pipeline), with its start/stop LSN, timeline and the server\'s backup_manifest; for "restore pitr"',
    )
    .option('--archive <dir|uri>', 'the WAL archive (default: the one archive_command names)')
    .option('--env-file <file>', 'credentials for a cloud archive')
    .option('--progress', 'show progress even when stderr is not a terminal')
    .option('--no-progress', 'never show progress')
    .option('--json', 'print the metadata as JSON')
    .option('--incremental', 'only the pages changed since the newest base backup (reads the data directory)')
    .option(
      '--differential',
      'only the pages changed since the newest full base backup (reads the data directory)',
    )
    .option(
      '--from-pgdata',
      'a full backup read by dbbackup from the data directory instead of pg_basebackup (for a server newer than the client programs here)',
    )
    .option(
      '--pgdata <dir>',
      "the data directory for --incremental/--differential (default: the server's data_directory)",
    )
    .addHelpText(
      'after',
      `
Examples:
  dbbackup --user postgres backup base                          # into the archive "pitr enable" set up
  dbbackup --user postgres backup base --archive s3://bucket/pg-main/ --env-file /etc/dbbackup/s3.env
  dbbackup --user postgres backup base --incremental            # on the database host: pages changed since the newest base backup
  dbbackup --user postgres backup base --differential           # pages changed since the newest full`,
    )
    .action(async (opts: BaseOptions, cmd: Command) => {
      const g = globals(cmd);
      // The PITR modules load only when a base backup runs (start-up time of every other backup).
      // (pgEngine loads the pg driver only when called: see archive-options.ts.)
      const [{ requireIdentity }, { backupBase }, { backupDelta }, { protectorsForArchive }] =
        await Promise.all([
          import('../../pitr/archive.js'),
          import('../../pitr/base-backup.js'),
          import('../../pitr/incremental/backup.js'),
          import('../../pitr/wal-keys.js'),
        ]);
      const engine = await pgEngine(g);
      const client = await engine.connect(g.database ?? 'postgres');
      try {
        const current = await client
          .query<{ c: string }>(
            "SELECT setting AS c FROM pg_file_settings WHERE name = 'archive_command' AND error IS NULL ORDER BY seqno DESC LIMIT 1",
          )
          .catch(() => ({ rows: [] as Array<{ c: string }> }));
        const command = current.rows[0]?.c ?? '';
        const ours = isDbbackupArchiveCommand(command);
        const archive = opts.archive ?? (ours ? commandOption(command, '--archive') : undefined);
        if (!archive)
          throw new UsageError(
            'No archive: give --archive, or run "dbbackup pitr enable" first',
            'A base backup goes into the WAL archive of its cluster.',
          );
        const storage = await openArchiveStore(
          g,
          archive,
          opts.envFile ?? (ours ? commandOption(command, '--env-file') : undefined),
        );
        const identity = await requireIdentity(storage);
        const given = encryptionFlags(opts);
        const flags =
          Object.values(given).some((v) => (Array.isArray(v) ? v.length : v)) || !ours
            ? given
            : keyFlagsOf(command);
        const protectors = await protectorsForArchive(flags, identity);
        if ([opts.incremental, opts.differential, opts.fromPgdata].filter(Boolean).length > 1)
          throw new UsageError('Give one of --incremental, --differential and --from-pgdata');
        const kind = opts.incremental
          ? 'incremental'
          : opts.differential
            ? 'differential'
            : opts.fromPgdata
              ? 'full'
              : undefined;
        const input = {
          client,
          program: (args: string[]) => engine.clientProgram('pg_basebackup', args),
          replication: () => engine.connect(g.database ?? 'postgres', { replication: true }),
          connection: { host: engine.host, port: engine.port, user: engine.user },
          storage,
          archiveUri: archive,
          identity,
          compression: compressionChoice(g),
          protectors,
          progress: opts.json ? 'off' : progressMode(opts.progress),
          signal: interruptSignal(),
          onNote: (l: string) => out.note(l),
        };
        const meta = kind
          ? await backupDelta({ ...input, kind, pgdata: opts.pgdata })
          : await backupBase(input);
        if (opts.json) out.json({ location: storage.location, metadata: meta });
        else
          out.line(
            `${meta.parent ? `${kind === 'incremental' ? 'Incremental' : 'Differential'} base backup (on ${meta.parent})` : 'Base backup'} complete: ${storage.location.replace(/\/$/, '')}/base/${meta.name}/ (${formatBytes(meta.sizeBytes)} stored, ${formatBytes(meta.manifest.bytes)} of data in ${meta.manifest.files} files; WAL ${meta.startSegment} … ${meta.stopSegment} on timeline ${meta.timeline} archived; ${formatDuration(meta.durationSeconds)})`,
          );
      } finally {
        await client.end().catch(() => undefined);
      }
    });
}
