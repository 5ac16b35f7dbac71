import type { Engine } from '../types.js';
import { SSL_MODES } from '../engines/tls.js';
import { SUPPORTED_SCHEMES } from '../storage/cloud-uri.js';

/**
 * Every setting a configuration profile can hold, with the command-line option it stands for and
 * the environment variables that beat it. This table is the single source for loading, validating,
 * applying (src/cli/apply-config.ts), `config show`, the `config init` template and the README.
 *
 * Precedence, for every setting: flag > environment > profile > top level of the file > the
 * reference tool's ./.dbbackup.conf > built-in default.
 */

export type SettingType =
  | { kind: 'string' }
  | { kind: 'integer'; min: number; max: number }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'strings' }
  /** A program and its arguments, run without a shell. */
  | { kind: 'argv' };

export interface EnvVar {
  name: string;
  /** Only for these engines (PGHOST means nothing to a MySQL connection). */
  engines?: readonly Engine[];
  /**
   * Read by the code that uses the value (engines, storage): the configuration only steps aside.
   * Otherwise the value is put into the command's option like a flag would be.
   */
  native?: boolean;
}

export interface Setting {
  /** Path inside a profile: `connection.host`. */
  key: string;
  type: SettingType;
  /** The commander attribute the value goes into (`--ssl-ca` → `sslCa`). */
  option: string;
  /** How the user writes it on the command line. */
  flag: string;
  /** Global options live on the program; the others on the commands that declare them. */
  scope: 'global' | 'command';
  /** In order: the first one set wins. */
  env: readonly EnvVar[];
  /**
   * Settings that are one choice together: when a flag or environment variable gives any of them,
   * the files' values for all of them are ignored (a `--backup-dir` on the command line is the
   * destination, not one more besides the profile's cloud URI).
   */
  group?: string;
  /** A file holding it must not be readable by others; its value is never shown or logged. */
  secret?: boolean;
  /** Commands where the flag means something else, so a file's value must not stand in for it. */
  notFor?: readonly string[];
  description: string;
  /** What applies when nothing is set, in words (for `config show`). */
  defaultText: string;
  /** A value for the commented template of `config init`. */
  example: string;
}

const string = { kind: 'string' } as const;
const strings = { kind: 'strings' } as const;
const argv = { kind: 'argv' } as const;
const count = { kind: 'integer', min: 0, max: 1_000_000 } as const;
const own = (name: string): EnvVar => ({ name });
const native = (name: string, engines?: readonly Engine[]): EnvVar => ({ name, native: true, engines });
const PG: readonly Engine[] = ['postgres'];
const MY: readonly Engine[] = ['mysql', 'mariadb'];

/** Engine names as users write them (the reference tool's aliases too). */
export const ENGINE_ALIASES: Readonly<Record<string, Engine>> = {
  postgres: 'postgres',
  postgresql: 'postgres',
  pg: 'postgres',
  mysql: 'mysql',
  mariadb: 'mariadb',
  maria: 'mariadb',
  'mariadb-server': 'mariadb',
};
export const ENGINE_NAMES = Object.keys(ENGINE_ALIASES);
export const NOTIFY_FORMATS = ['auto', 'generic', 'slack', 'discord', 'teams', 'googlechat'] as const;
export type NotifyFormat = (typeof NOTIFY_FORMATS)[number];
export const NOTIFY_ON = ['failure', 'always'] as const;
export type NotifyOn = (typeof NOTIFY_ON)[number];

function retention(name: string, description: string, type: SettingType = count): Setting {
  const flag = `--${name.replace(/_/g, '-')}`;
  return {
    key: `retention.${name}`,
    type,
    option: camel(name),
    flag,
    scope: 'command',
    env: [own(`DBBACKUP_${name.toUpperCase()}`)],
    group: 'retention',
    description,
    defaultText: 'not set',
    example: type.kind === 'integer' ? '7' : '"14d"',
  };
}

export function camel(name: string): string {
  return name.replace(/[_-]([a-z])/g, (_, c: string) => c.toUpperCase());
}

export const SETTINGS: readonly Setting[] = [
  {
    key: 'connection.engine',
    type: { kind: 'enum', values: ENGINE_NAMES },
    option: 'dbType',
    flag: '--db-type',
    scope: 'global',
    env: [native('DBBACKUP_DB_TYPE')],
    description: 'postgres, mysql or mariadb',
    defaultText: 'postgres',
    example: '"postgres"',
  },
  {
    key: 'connection.host',
    type: string,
    option: 'host',
    flag: '--host',
    scope: 'global',
    env: [native('PGHOST', PG), native('MYSQL_HOST', MY)],
    description: 'server host name, address or socket directory',
    defaultText: 'the local socket if there is one, else localhost',
    example: '"db1.example.com"',
  },
  {
    key: 'connection.port',
    type: { kind: 'integer', min: 1, max: 65535 },
    option: 'port',
    flag: '--port',
    scope: 'global',
    env: [native('PGPORT', PG), native('MYSQL_TCP_PORT', MY)],
    description: 'server port',
    defaultText: '5432 (PostgreSQL), 3306 (MySQL/MariaDB)',
    example: '5432',
  },
  {
    key: 'connection.user',
    type: string,
    option: 'user',
    flag: '--user',
    scope: 'global',
    env: [own('DBBACKUP_USER'), native('PGUSER', PG)],
    description: 'user name on the server',
    defaultText: 'your login name (MySQL: also ~/.my.cnf)',
    example: '"backup"',
  },
  {
    key: 'connection.password',
    type: string,
    option: 'password',
    flag: '--password',
    scope: 'global',
    env: [native('PGPASSWORD', PG), native('MYSQL_PWD', MY)],
    group: 'password',
    secret: true,
    description: 'password (prefer password_file: a file holding this must be chmod 600)',
    defaultText: 'none (~/.pgpass, ~/.my.cnf)',
    example: '"…"',
  },
  {
    key: 'connection.password_file',
    type: string,
    option: 'passwordFile',
    flag: '--password-file',
    scope: 'global',
    env: [own('DBBACKUP_PASSWORD_FILE')],
    group: 'password',
    description: 'file holding the password (mode 0600)',
    defaultText: 'none',
    example: '"/etc/dbbackup/prod.password"',
  },
  {
    key: 'connection.ssl_mode',
    type: { kind: 'enum', values: SSL_MODES },
    option: 'sslMode',
    flag: '--ssl-mode',
    scope: 'global',
    env: [own('DBBACKUP_SSL_MODE'), native('PGSSLMODE', PG)],
    description: `TLS to the server: ${SSL_MODES.join(', ')}`,
    defaultText: 'prefer',
    example: '"verify-full"',
  },
  {
    key: 'connection.ssl_ca',
    type: string,
    option: 'sslCa',
    flag: '--ssl-ca',
    scope: 'global',
    env: [own('DBBACKUP_SSL_CA'), native('PGSSLROOTCERT', PG)],
    description: "CA certificate that signed the server's certificate",
    defaultText: 'none (PostgreSQL: ~/.postgresql/root.crt)',
    example: '"/etc/dbbackup/db-ca.pem"',
  },
  {
    key: 'connection.database',
    type: string,
    option: 'database',
    flag: '--database',
    scope: 'global',
    env: [own('DBBACKUP_DATABASE'), native('PGDATABASE', PG)],
    // There, a typed --database picks backups (cleanup) or a cluster member (restore --from-cluster).
    notFor: ['cleanup', 'restore single'],
    description: 'database to connect to for server-level queries',
    defaultText: 'postgres (PostgreSQL)',
    example: '"postgres"',
  },
  {
    key: 'storage.backup_dir',
    type: string,
    option: 'backupDir',
    flag: '--backup-dir',
    scope: 'global',
    env: [native('DBBACKUP_BACKUP_DIR')],
    group: 'destination',
    description: 'local backup directory (with cloud as well: both)',
    defaultText: '~/db_backups',
    example: '"/srv/backups/prod"',
  },
  {
    key: 'storage.cloud',
    type: string,
    option: 'cloud',
    flag: '--cloud',
    scope: 'command',
    env: [own('DBBACKUP_CLOUD')],
    group: 'destination',
    description: 'cloud destination URI (s3://, minio://, b2://, azure://, gs://)',
    defaultText: 'none',
    example: '"s3://acme-backups/prod/"',
  },
  {
    key: 'storage.cloud_provider',
    type: { kind: 'enum', values: SUPPORTED_SCHEMES },
    option: 'cloudProvider',
    flag: '--cloud-provider',
    scope: 'global',
    env: [native('DBBACKUP_CLOUD_PROVIDER')],
    group: 'destination',
    description: 'with cloud_bucket instead of a URI',
    defaultText: 's3',
    example: '"s3"',
  },
  {
    key: 'storage.cloud_bucket',
    type: string,
    option: 'cloudBucket',
    flag: '--cloud-bucket',
    scope: 'global',
    env: [native('DBBACKUP_CLOUD_BUCKET')],
    group: 'destination',
    description: 'bucket or container',
    defaultText: 'none',
    example: '"acme-backups"',
  },
  {
    key: 'storage.cloud_prefix',
    type: string,
    option: 'cloudPrefix',
    flag: '--cloud-prefix',
    scope: 'global',
    env: [native('DBBACKUP_CLOUD_PREFIX')],
    group: 'destination',
    description: 'path inside the bucket',
    defaultText: 'none',
    example: '"prod/"',
  },
  {
    key: 'storage.cloud_region',
    type: string,
    option: 'cloudRegion',
    flag: '--cloud-region',
    scope: 'global',
    env: [native('DBBACKUP_CLOUD_REGION'), native('AWS_REGION'), native('AWS_DEFAULT_REGION')],
    description: 'S3 region',
    defaultText: 'the SDK default',
    example: '"eu-west-1"',
  },
  {
    key: 'storage.cloud_endpoint',
    type: string,
    option: 'cloudEndpoint',
    flag: '--cloud-endpoint',
    scope: 'global',
    env: [native('DBBACKUP_CLOUD_ENDPOINT')],
    description: 'S3-compatible endpoint URL',
    defaultText: 'the provider default',
    example: '"https://s3.eu-west-1.amazonaws.com"',
  },
  {
    key: 'storage.cloud_access_key',
    type: string,
    option: 'cloudAccessKey',
    flag: '--cloud-access-key',
    scope: 'global',
    env: [native('DBBACKUP_CLOUD_ACCESS_KEY'), native('AWS_ACCESS_KEY_ID'), native('AZURE_STORAGE_ACCOUNT')],
    group: 'cloud-credentials',
    description: 'access key id / storage account name',
    defaultText: "the SDK's own chain",
    example: '"AKIA…"',
  },
  {
    key: 'storage.cloud_secret_key',
    type: string,
    option: 'cloudSecretKey',
    flag: '--cloud-secret-key',
    scope: 'global',
    env: [native('DBBACKUP_CLOUD_SECRET_KEY'), native('AWS_SECRET_ACCESS_KEY'), native('AZURE_STORAGE_KEY')],
    group: 'cloud-credentials',
    secret: true,
    description: 'secret key (a file holding this must be chmod 600)',
    defaultText: "the SDK's own chain",
    example: '"…"',
  },
  {
    key: 'storage.cloud_part_size',
    type: { kind: 'integer', min: 5, max: 5120 },
    option: 'cloudPartSize',
    flag: '--cloud-part-size',
    scope: 'global',
    env: [native('DBBACKUP_CLOUD_PART_SIZE_MB')],
    description: 'upload part size in MiB',
    defaultText: '8',
    example: '16',
  },
  {
    key: 'storage.cloud_concurrency',
    type: { kind: 'integer', min: 1, max: 64 },
    option: 'cloudConcurrency',
    flag: '--cloud-concurrency',
    scope: 'global',
    env: [native('DBBACKUP_CLOUD_CONCURRENCY')],
    description: 'parts uploaded in parallel',
    defaultText: '4',
    example: '4',
  },
  {
    key: 'storage.cloud_timeout',
    type: { kind: 'integer', min: 1, max: 3600 },
    option: 'cloudTimeout',
    flag: '--cloud-timeout',
    scope: 'global',
    env: [native('DBBACKUP_CLOUD_TIMEOUT')],
    description: 'seconds a storage request may wait without a byte moving before it is retried',
    defaultText: '30',
    example: '30',
  },
  {
    key: 'backup.compression',
    type: { kind: 'integer', min: 0, max: 22 },
    option: 'compression',
    flag: '--compression',
    scope: 'global',
    env: [own('DBBACKUP_COMPRESSION')],
    description: 'compression level (zstd 1-19, gzip 1-9, 0 = none)',
    defaultText: 'zstd 3, gzip 6',
    example: '3',
  },
  {
    key: 'backup.compression_algo',
    type: { kind: 'enum', values: ['zstd', 'gzip', 'none'] },
    option: 'compressionAlgo',
    flag: '--compression-algo',
    scope: 'global',
    env: [native('DBBACKUP_COMPRESSION_ALGO')],
    description: 'zstd, gzip or none',
    defaultText: 'zstd',
    example: '"zstd"',
  },
  {
    key: 'backup.cluster_parallelism',
    type: { kind: 'integer', min: 1, max: 64 },
    option: 'clusterParallelism',
    flag: '--cluster-parallelism',
    scope: 'command',
    env: [own('DBBACKUP_CLUSTER_PARALLELISM')],
    description: 'databases dumped at the same time by backup cluster',
    defaultText: 'CPU count, at most 4',
    example: '2',
  },
  {
    key: 'encryption.key_file',
    type: string,
    option: 'encryptionKeyFile',
    flag: '--encryption-key-file',
    scope: 'command',
    env: [own('DBBACKUP_ENCRYPTION_KEY_FILE')],
    group: 'encryption',
    description: 'a 32-byte key file (dbbackup keygen --symmetric): encrypts backups, decrypts restores',
    defaultText: 'none',
    example: '"/etc/dbbackup/backup.key"',
  },
  {
    key: 'encryption.key_env',
    type: string,
    option: 'encryptionKeyEnv',
    flag: '--encryption-key-env',
    scope: 'command',
    env: [own('DBBACKUP_ENCRYPTION_KEY_ENV')],
    group: 'encryption',
    description: 'environment variable holding the base64 key',
    defaultText: 'DBBACKUP_ENCRYPTION_KEY (read when restoring)',
    example: '"DBBACKUP_ENCRYPTION_KEY"',
  },
  {
    key: 'encryption.passphrase_file',
    type: string,
    option: 'passphraseFile',
    flag: '--passphrase-file',
    scope: 'command',
    env: [own('DBBACKUP_PASSPHRASE_FILE')],
    group: 'encryption',
    description: 'a passphrase file (scrypt)',
    defaultText: 'none',
    example: '"/etc/dbbackup/passphrase"',
  },
  {
    key: 'encryption.recipients',
    type: strings,
    option: 'recipient',
    flag: '--recipient',
    scope: 'command',
    env: [own('DBBACKUP_RECIPIENTS')],
    group: 'encryption',
    description: 'age public keys backups are encrypted to',
    defaultText: 'none',
    example: '["age1…"]',
  },
  {
    key: 'encryption.recipients_file',
    type: strings,
    option: 'recipientsFile',
    flag: '--recipients-file',
    scope: 'command',
    env: [own('DBBACKUP_RECIPIENTS_FILE')],
    group: 'encryption',
    description: 'files listing age public keys',
    defaultText: 'none',
    example: '["/etc/dbbackup/recipients.txt"]',
  },
  {
    key: 'encryption.identity_file',
    type: strings,
    option: 'identityFile',
    flag: '--identity-file',
    scope: 'command',
    env: [own('DBBACKUP_IDENTITY_FILE')],
    group: 'encryption',
    description: 'age identities for restoring (never used by backups)',
    defaultText: 'none',
    example: '["/root/.config/dbbackup/identity.txt"]',
  },
  retention('keep_last', 'keep the n newest backups'),
  retention('keep_hourly', 'newest backup of each of the last n hours'),
  retention('keep_daily', 'newest backup of each of the last n days'),
  retention('keep_weekly', 'newest backup of each of the last n ISO weeks'),
  retention('keep_monthly', 'newest backup of each of the last n months'),
  retention('keep_yearly', 'newest backup of each of the last n years'),
  retention('keep_within', 'everything within this long of the newest backup (7d, 2w, 1y6m)', string),
  retention('retention_days', 'everything younger than n days…'),
  retention('min_backups', '…and the n newest, whatever their age'),
  {
    key: 'retention.time_zone',
    type: string,
    option: 'timeZone',
    flag: '--time-zone',
    scope: 'command',
    env: [own('DBBACKUP_TIME_ZONE')],
    description: 'time zone of the hour/day/week/month/year buckets',
    defaultText: 'local',
    example: '"Europe/Berlin"',
  },
  {
    key: 'pitr.archive',
    type: string,
    option: 'archive',
    flag: '--archive',
    scope: 'command',
    env: [own('DBBACKUP_PITR_ARCHIVE')],
    description: 'WAL archive (directory or cloud URI) of the PITR commands',
    defaultText: 'none',
    example: '"s3://acme-backups/prod-wal/"',
  },
  {
    key: 'notify.url',
    type: strings,
    option: 'notify',
    flag: '--notify',
    scope: 'global',
    env: [own('DBBACKUP_NOTIFY_URL')],
    secret: true,
    description: 'webhook URLs told about each operation (a file holding these must be chmod 600)',
    defaultText: 'none',
    example: '["https://hooks.slack.com/services/T000/B000/XXXX"]',
  },
  {
    key: 'notify.format',
    type: { kind: 'enum', values: NOTIFY_FORMATS },
    option: 'notifyFormat',
    flag: '--notify-format',
    scope: 'global',
    env: [own('DBBACKUP_NOTIFY_FORMAT')],
    description: `body shape: ${NOTIFY_FORMATS.join(', ')} (auto: by the URL's host)`,
    defaultText: 'auto',
    example: '"auto"',
  },
  {
    key: 'notify.on',
    type: { kind: 'enum', values: NOTIFY_ON },
    option: 'notifyOn',
    flag: '--notify-on',
    scope: 'global',
    env: [own('DBBACKUP_NOTIFY_ON')],
    description: 'failure or always',
    defaultText: 'failure',
    example: '"failure"',
  },
  {
    key: 'notify.timeout',
    type: { kind: 'integer', min: 1, max: 600 },
    option: 'notifyTimeout',
    flag: '--notify-timeout',
    scope: 'global',
    env: [own('DBBACKUP_NOTIFY_TIMEOUT')],
    description: 'seconds one webhook may take, retries included',
    defaultText: '30',
    example: '30',
  },
  {
    key: 'hooks.on_success',
    type: argv,
    option: 'onSuccess',
    flag: '--on-success',
    scope: 'global',
    env: [own('DBBACKUP_ON_SUCCESS')],
    description: 'program and arguments run after a successful operation (no shell)',
    defaultText: 'none',
    example: '["/usr/local/bin/backup-ok", "--quiet"]',
  },
  {
    key: 'hooks.on_failure',
    type: argv,
    option: 'onFailure',
    flag: '--on-failure',
    scope: 'global',
    env: [own('DBBACKUP_ON_FAILURE')],
    description: 'program and arguments run after a failed operation (no shell)',
    defaultText: 'none',
    example: '["/usr/local/bin/page-oncall", "dbbackup"]',
  },
  {
    key: 'log.format',
    type: { kind: 'enum', values: ['text', 'json'] },
    option: 'logFormat',
    flag: '--log-format',
    scope: 'global',
    env: [own('DBBACKUP_LOG_FORMAT')],
    description: 'text or json (JSON lines) on stderr and in the log file',
    defaultText: 'text',
    example: '"json"',
  },
  {
    key: 'log.file',
    type: string,
    option: 'logFile',
    flag: '--log-file',
    scope: 'global',
    env: [own('DBBACKUP_LOG_FILE')],
    description: 'also append every log record to this file',
    defaultText: 'none',
    example: '"/var/log/dbbackup/dbbackup.log"',
  },
  {
    key: 'log.level',
    type: { kind: 'enum', values: ['debug', 'info', 'warn', 'error'] },
    option: 'logLevel',
    flag: '--log-level',
    scope: 'global',
    env: [own('DBBACKUP_LOG_LEVEL')],
    description: 'debug, info, warn or error (-v is debug, -q is warn)',
    defaultText: 'info',
    example: '"info"',
  },
  {
    key: 'log.audit_file',
    type: string,
    option: 'auditLog',
    flag: '--audit-log',
    scope: 'global',
    env: [own('DBBACKUP_AUDIT_LOG')],
    description: 'the audit trail (NDJSON) that history reads',
    defaultText: '$XDG_STATE_HOME/dbbackup/audit.jsonl (~/.local/state/…)',
    example: '"/var/lib/dbbackup/audit.jsonl"',
  },
  {
    key: 'metrics.file',
    type: string,
    option: 'metricsFile',
    flag: '--metrics-file',
    scope: 'global',
    env: [own('DBBACKUP_METRICS_FILE')],
    description: 'Prometheus textfile written after each operation (node_exporter textfile collector)',
    defaultText: 'none',
    example: '"/var/lib/prometheus/node-exporter/dbbackup.prom"',
  },
];

export const SETTINGS_BY_KEY: ReadonlyMap<string, Setting> = new Map(SETTINGS.map((s) => [s.key, s]));

/** The tables of a profile (and of the file's top level): `connection`, `storage`, … */
export const SECTIONS: readonly string[] = [...new Set(SETTINGS.map((s) => s.key.split('.')[0] ?? ''))];

/** The environment variables that count for a setting with this engine, in order. */
export function envVarsFor(setting: Setting, engine: Engine): EnvVar[] {
  return setting.env.filter((e) => !e.engines || e.engines.includes(engine));
}
