import { Command, Option } from 'commander';
import { NOTIFY_FORMATS, NOTIFY_ON } from '../config/settings.js';
import { SSL_MODES } from '../engines/tls.js';
import { LOG_FORMATS, LOG_LEVELS } from '../log/logger.js';
import { TOOL_VERSION } from '../version.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/**
 * The program with its global options and no commands yet (main.ts adds those it needs). Apart from
 * main.ts, tests build it to run the real option tree.
 */
export function createProgram(): Command {
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
    );
  return withRunOptions(withCloudOptions(program))
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
}

/** The global options of cloud storage (in help order, after the connection's). */
function withCloudOptions(program: Command): Command {
  return program
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
    .option(
      '--cloud-timeout <seconds>',
      'seconds a storage request may wait without a byte moving before it is retried (3 attempts; default 30; env DBBACKUP_CLOUD_TIMEOUT)',
    );
}

/** The global options of every run: locks, output, configuration, logs, audit, metrics, notifications, hooks. */
function withRunOptions(program: Command): Command {
  return program
    .option(
      '--wait-lock <seconds>',
      'when another run holds the lock on the same target, wait up to this long for it (default 0: refuse at once, exit 75; env DBBACKUP_WAIT_LOCK)',
    )
    .option('--no-color', 'plain output without colours')
    .option('--debug', 'show stack traces for errors')
    .option(
      '--config <file>',
      'configuration file (env DBBACKUP_CONFIG; default $XDG_CONFIG_HOME/dbbackup/config.toml)',
    )
    .option('--profile <name>', 'profile of the configuration file to use (env DBBACKUP_PROFILE)')
    .option('--no-config', 'read no configuration file (neither --config nor ./.dbbackup.conf)')
    .addOption(
      new Option(
        '--log-format <format>',
        'log records on stderr and in --log-file as text or json (JSON lines)',
      ).choices(LOG_FORMATS),
    )
    .option('--log-file <file>', 'also append every log record to this file (0600)')
    .addOption(new Option('--log-level <level>', 'debug, info (default), warn or error').choices(LOG_LEVELS))
    .option('-q, --quiet', 'print only warnings and errors: no results, notes or progress')
    .option(
      '-v, --verbose',
      'also print debug records (configuration sources, audit, metrics, notifications)',
    )
    .option(
      '--audit-log <file>',
      'audit trail that history reads (default $XDG_STATE_HOME/dbbackup/audit.jsonl)',
    )
    .option(
      '--metrics-file <file>',
      'write a Prometheus textfile (node_exporter textfile collector) after each operation',
    )
    .option('--notify <url>', 'webhook told about each operation (repeatable)', collect)
    .addOption(new Option('--notify-on <when>', 'failure (default) or always').choices(NOTIFY_ON))
    .addOption(
      new Option(
        '--notify-format <format>',
        "webhook body: auto (default: by the URL's host), generic, slack, discord, teams, googlechat",
      ).choices(NOTIFY_FORMATS),
    )
    .option('--notify-timeout <seconds>', 'seconds one webhook may take, retries included (default 30)')
    .option(
      '--on-success <command>',
      'program and arguments run after a success, without a shell (result in DBBACKUP_RESULT_*)',
    )
    .option(
      '--on-failure <command>',
      'program and arguments run after a failure, without a shell (result in DBBACKUP_RESULT_*)',
    );
}

/** Commands built with `new Command()` do not inherit these: usage errors must exit 2 everywhere. */
export function configureTree(cmd: Command): void {
  cmd.exitOverride().showHelpAfterError('(add --help for usage)');
  cmd.commands.forEach(configureTree);
}
