#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { DbBackupError, errorMessage, rememberedSecrets } from '../errors.js';
import { maskSecrets } from '../engines/connection.js';
import { SSL_MODES } from '../engines/tls.js';
import { TOOL_VERSION } from '../version.js';

/**
 * The commands, in help order. A command's module (and all it imports: engines and their drivers, cloud SDKs,
 * schemas…) is loaded only when its name is on the command line; help, or no known name, loads them all.
 */
const COMMANDS: ReadonlyArray<readonly [name: string, load: () => Promise<Command>]> = [
  ['backup', async () => (await import('./commands/backup.js')).backupCommand()],
  ['restore', async () => (await import('./commands/restore.js')).restoreCommand()],
  ['verify-backup', async () => (await import('./commands/verify.js')).verifyCommand()],
  ['cleanup', async () => (await import('./commands/cleanup.js')).cleanupCommand()],
  ['cloud', async () => (await import('./commands/cloud.js')).cloudCommand()],
  ['list', async () => (await import('./commands/list.js')).listCommand()],
  ['keygen', async () => (await import('./commands/keygen.js')).keygenCommand()],
  ['rekey', async () => (await import('./commands/rekey.js')).rekeyCommand()],
  ['status', async () => (await import('./commands/status.js')).statusCommand()],
  ['pitr', async () => (await import('./commands/pitr.js')).pitrCommand()],
  ['wal', async () => (await import('./commands/wal.js')).walCommand()],
  ['binlog', async () => (await import('./commands/binlog.js')).binlogCommand()],
  ['preflight', async () => (await import('./commands/preflight.js')).preflightCommand()],
  ['version', async () => (await import('./commands/version.js')).versionCommand()],
];

async function buildProgram(argv: string[]): Promise<Command> {
  const program = new Command('dbbackup')
    .description(
      'Back up and restore PostgreSQL, MySQL and MariaDB: streamed, compressed, checksummed, verifiable.',
    )
    .version(TOOL_VERSION, '-V, --version')
    .addOption(
      new Option(
        '-d, --db-type <type>',
        'postgres, mysql or mariadb (env DBBACKUP_DB_TYPE; default postgres)',
      ),
    )
    .option('--host <host>', 'server host or socket directory (env PGHOST / MYSQL_HOST)')
    .option('--port <port>', 'server port (env PGPORT / MYSQL_TCP_PORT)')
    .option('--user <user>', 'user name (env PGUSER; default: your login name)')
    .option(
      '--password <password>',
      'password (visible to other local users in ps: prefer --password-file, PGPASSWORD, ~/.pgpass or ~/.my.cnf)',
    )
    .option('--password-file <file>', 'read the password from a file readable only by you')
    .option('--database <db>', 'database to connect to for server queries (default postgres)')
    .option('--backup-dir <dir>', 'where backups are stored (env DBBACKUP_BACKUP_DIR; default ~/db_backups)')
    .option(
      '--compression <level>',
      'compression level (zstd 1-19, default 3; gzip 1-9, default 6; 0 = none)',
    )
    .addOption(
      new Option('--compression-algo <algo>', 'compression algorithm (default zstd)').choices([
        'zstd',
        'gzip',
        'none',
      ]),
    )
    .addOption(
      new Option(
        '--ssl-mode <mode>',
        'TLS to the server, as libpq: prefer (default) tries TLS then plain (env PGSSLMODE)',
      ).choices(SSL_MODES),
    )
    .option(
      '--ssl-ca <file>',
      "CA certificate that signed the server's (verify-ca, verify-full; env PGSSLROOTCERT)",
    )
    .option(
      '--cloud-provider <provider>',
      's3, minio, b2, azure or gcs (with --cloud-bucket, instead of a URI)',
    )
    .option('--cloud-bucket <bucket>', 'bucket or container (env DBBACKUP_CLOUD_BUCKET)')
    .option('--cloud-prefix <prefix>', 'path inside the bucket (env DBBACKUP_CLOUD_PREFIX)')
    .option('--cloud-region <region>', 'S3 region (env DBBACKUP_CLOUD_REGION, AWS_REGION)')
    .option('--cloud-endpoint <url>', 'S3-compatible or emulator endpoint (env DBBACKUP_CLOUD_ENDPOINT)')
    .option(
      '--cloud-access-key <key>',
      'access key id / account name (prefer the environment: AWS_ACCESS_KEY_ID…)',
    )
    .option(
      '--cloud-secret-key <key>',
      'secret key (visible in ps: prefer AWS_SECRET_ACCESS_KEY / AZURE_STORAGE_KEY)',
    )
    .option(
      '--cloud-part-size <MiB>',
      'upload part/block size in MiB (default 8; grows for very large streams)',
    )
    .option('--cloud-concurrency <n>', 'parts uploaded in parallel (default 4)')
    .option('--no-color', 'plain output without colours')
    .option('--debug', 'show stack traces for errors')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  // A value that happens to equal a command name (a database called "backup") only loads one module more.
  const named = COMMANDS.filter(([name]) => argv.includes(name));
  for (const [, load] of named.length ? named : COMMANDS) program.addCommand(await load());
  // Commands built with `new Command()` do not inherit these: usage errors must exit 2 everywhere.
  const configure = (cmd: Command): void => {
    cmd.exitOverride().showHelpAfterError('(add --help for usage)');
    cmd.commands.forEach(configure);
  };
  configure(program);
  return program;
}

function report(err: unknown, secrets: string[], debug: boolean): number {
  const mask = (s: string): string => maskSecrets(s, secrets);
  if (err instanceof DbBackupError) {
    process.stderr.write(`dbbackup: error: ${mask(err.message)}\n`);
    for (const d of err.details) process.stderr.write(`  ${mask(d)}\n`);
    if (err.hint) process.stderr.write(`hint: ${mask(err.hint)}\n`);
    if (debug && err.stack) process.stderr.write(`${mask(err.stack)}\n`);
    return err.exitCode;
  }
  process.stderr.write(`dbbackup: error: ${mask(errorMessage(err))}\n`);
  process.stderr.write('hint: this looks like a bug in dbbackup; run again with --debug and report it.\n');
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${mask(err.stack)}\n`);
  return 1;
}

/** Passwords from the command line and the environment, so no message ever shows them. */
function secretArgs(argv: string[]): string[] {
  const found: string[] = [];
  argv.forEach((arg, i) => {
    if (arg === '--password' && argv[i + 1]) found.push(argv[i + 1] ?? '');
    else if (arg.startsWith('--password=')) found.push(arg.slice('--password='.length));
  });
  argv.forEach((arg, i) => {
    if (arg === '--cloud-secret-key' && argv[i + 1]) found.push(argv[i + 1] ?? '');
    else if (arg.startsWith('--cloud-secret-key=')) found.push(arg.slice('--cloud-secret-key='.length));
  });
  for (const name of [
    'PGPASSWORD',
    'MYSQL_PWD',
    'AWS_SECRET_ACCESS_KEY',
    'AZURE_STORAGE_KEY',
    'DBBACKUP_CLOUD_SECRET_KEY',
  ]) {
    const value = process.env[name];
    if (value) found.push(value);
  }
  return found;
}

async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(argv);
  if (argv.includes('--debug')) process.env.DBBACKUP_DEBUG = '1';
  const secrets = secretArgs(argv);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version output are successes; commander has already printed usage errors.
      return err.exitCode === 0 ? 0 : 2;
    }
    return report(
      err,
      [...secrets, ...rememberedSecrets()].filter((s): s is string => Boolean(s)),
      argv.includes('--debug'),
    );
  }
}

// A promise that can never settle (a stream waiting on a pipe nobody reads) would otherwise end the
// process with Node's bare exit code 13 and no word of what happened.
const stalled = (): void => {
  process.stderr.write(
    'dbbackup: error: the command stopped with work unfinished and nothing left to wait for\n' +
      'hint: this is a bug in dbbackup; nothing is reported as done. Run again with --debug and report it.\n',
  );
  process.exit(70);
};
process.once('beforeExit', stalled);
process.exitCode = await main(process.argv);
process.off('beforeExit', stalled);
