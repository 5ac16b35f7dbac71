import { readFileSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { Engine } from '../types.js';
import { ENGINE_ALIASES } from '../config/settings.js';
import type { ConnectionOptions } from '../engines/connection.js';
import { UsageError } from '../errors.js';
import { log } from '../log/logger.js';
import { COMPRESSION_ALGORITHMS, validateLevel, type CompressionAlgorithm } from '../pipeline/compression.js';
import type { CloudSettings } from '../storage/cloud.js';
import type { Storage } from '../storage/storage.js';
import { defaultBackupDir, openStore } from '../storage/uri.js';
import { parseInteger, parseOptionalInteger } from './numbers.js';
import { secrets } from '../secrets.js';

/** Global options as commander parses them. */
export interface GlobalOptions {
  dbType?: string;
  host?: string;
  port?: string;
  user?: string;
  password?: string;
  passwordFile?: string;
  database?: string;
  backupDir?: string;
  compression?: string;
  compressionAlgo?: string;
  sslMode?: string;
  sslCa?: string;
  cloudProvider?: string;
  cloudBucket?: string;
  cloudPrefix?: string;
  cloudRegion?: string;
  cloudEndpoint?: string;
  cloudAccessKey?: string;
  cloudSecretKey?: string;
  cloudPartSize?: string;
  cloudConcurrency?: string;
  cloudTimeout?: string;
  color: boolean;
  debug?: boolean;
}

/** The program a (sub)command belongs to: where the global options live. */
export function rootOf(cmd: Command): Command {
  let c = cmd;
  while (c.parent) c = c.parent;
  return c;
}

/** The command as typed: `backup single`. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

export function parseEngine(value: string | undefined): Engine | undefined {
  if (value === undefined) return undefined;
  const engine = ENGINE_ALIASES[value.toLowerCase()];
  if (!engine) throw new UsageError(`Unknown --db-type "${value}"`, 'Use postgres, mysql or mariadb.');
  return engine;
}

/** The engine from --db-type or DBBACKUP_DB_TYPE; undefined when the user said nothing. */
export function explicitEngine(g: GlobalOptions): Engine | undefined {
  return parseEngine(g.dbType ?? process.env.DBBACKUP_DB_TYPE);
}

function readPasswordFile(file: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    throw new UsageError(`Cannot read --password-file ${file}`, 'Check the path.');
  }
  if (mode & 0o077) {
    throw new UsageError(
      `--password-file ${file} is readable by other users`,
      `Restrict it: chmod 600 ${file}`,
    );
  }
  const password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  secrets.remember(password);
  return password;
}

export function connectionOptions(g: GlobalOptions, engine: Engine): ConnectionOptions {
  const password = g.passwordFile ? readPasswordFile(g.passwordFile) : g.password;
  return {
    engine,
    host: g.host,
    port: parseOptionalInteger('--port', g.port, { min: 1, max: 65535 }),
    user: g.user,
    password,
    sslMode: g.sslMode,
    sslCa: g.sslCa,
    database: g.database,
  };
}

export function backupDir(g: GlobalOptions): string {
  return g.backupDir ?? defaultBackupDir();
}

export function compressionChoice(g: GlobalOptions): { algorithm: CompressionAlgorithm; level: number } {
  const algoName = (g.compressionAlgo ?? process.env.DBBACKUP_COMPRESSION_ALGO ?? 'zstd').toLowerCase();
  if (!COMPRESSION_ALGORITHMS.includes(algoName as CompressionAlgorithm)) {
    throw new UsageError(
      `Unknown --compression-algo "${algoName}"`,
      `Use one of: ${COMPRESSION_ALGORITHMS.join(', ')}.`,
    );
  }
  let algorithm = algoName as CompressionAlgorithm;
  // The range per algorithm is checked below; 22 is zstd's highest level.
  const level = parseOptionalInteger('--compression', g.compression, { min: 0, max: 22 });
  // Level 0 means "do not compress", as in the reference tool.
  if (level === 0) algorithm = 'none';
  return { algorithm, level: validateLevel(algorithm, algorithm === 'none' ? undefined : level) };
}

/**
 * Writes for humans (stdout) and notes (stderr); JSON output keeps stdout machine-readable. Notes go
 * through the logger: as they are in the text format, as records with --log-format json, and into
 * --log-file; -q keeps results and notes quiet (warnings still show).
 */
export const out = {
  line(text = ''): void {
    if (!log.quiet) process.stdout.write(`${text}\n`);
  },
  json(value: unknown): void {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  },
  note(text: string): void {
    log.note(text);
  },
};

/**
 * Text as one printable line: control characters (a newline or an escape sequence in a database
 * name) are shown as escapes, so they cannot break a table or rewrite the terminal.
 */
export function printable(text: string): string {
  let out = '';
  for (const c of text) out += isControl(c.charCodeAt(0)) ? escapeControl(c) : c;
  return out;
}

/** C0 and C1 controls, DEL, and the Unicode line and paragraph separators. */
function isControl(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029;
}

function escapeControl(c: string): string {
  const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  return named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** A fixed-width text table; cells are made printable (see `printable`). */
export function table(headers: string[], textRows: string[][]): string[] {
  const rows = textRows.map((r) => r.map(printable));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [fmt(headers), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)];
}

/** A whole number from its flag, else its environment variable; an error names the one that was given. */
function numberSetting(
  flag: string,
  value: string | undefined,
  variable: string,
  env: NodeJS.ProcessEnv,
  range: { min: number; max: number },
): number | undefined {
  if (value !== undefined) return parseInteger(flag, value, range);
  return parseOptionalInteger(variable, env[variable], range);
}

/** Cloud settings from flags, then DBBACKUP_CLOUD_* environment variables. */
export function cloudSettings(g: GlobalOptions, env: NodeJS.ProcessEnv = process.env): CloudSettings {
  // S3 takes parts of 5 MiB to 5 GiB.
  const partMiB = numberSetting('--cloud-part-size', g.cloudPartSize, 'DBBACKUP_CLOUD_PART_SIZE_MB', env, {
    min: 5,
    max: 5120,
  });
  const concurrency = numberSetting(
    '--cloud-concurrency',
    g.cloudConcurrency,
    'DBBACKUP_CLOUD_CONCURRENCY',
    env,
    {
      min: 1,
      max: 64,
    },
  );
  return {
    partSizeBytes: partMiB === undefined ? undefined : partMiB * 1024 * 1024,
    concurrency,
    region: g.cloudRegion ?? env.DBBACKUP_CLOUD_REGION,
    endpoint: g.cloudEndpoint ?? env.DBBACKUP_CLOUD_ENDPOINT,
    accessKey: g.cloudAccessKey ?? env.DBBACKUP_CLOUD_ACCESS_KEY,
    secretKey: g.cloudSecretKey ?? env.DBBACKUP_CLOUD_SECRET_KEY,
    timeoutSeconds: numberSetting('--cloud-timeout', g.cloudTimeout, 'DBBACKUP_CLOUD_TIMEOUT', env, {
      min: 1,
      max: 3600,
    }),
  };
}

/** A cloud URI from `--cloud URI`, or assembled from --cloud-provider/--cloud-bucket/--cloud-prefix. */
export function cloudUri(
  g: GlobalOptions,
  explicit: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (explicit) return explicit;
  const bucket = g.cloudBucket ?? env.DBBACKUP_CLOUD_BUCKET;
  if (!bucket) return undefined;
  const provider = g.cloudProvider ?? env.DBBACKUP_CLOUD_PROVIDER ?? 's3';
  const prefix = g.cloudPrefix ?? env.DBBACKUP_CLOUD_PREFIX ?? '';
  return `${provider}://${bucket}/${prefix.replace(/^\/+/, '')}`;
}

/** Whether the user chose a backup directory (flag or environment) rather than getting the default. */
export function backupDirGiven(g: GlobalOptions, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(g.backupDir ?? env.DBBACKUP_BACKUP_DIR);
}

/** Where a backup goes: the local directory, the cloud, or both when the user named both. */
export async function backupStores(g: GlobalOptions, cloudOption: string | undefined): Promise<Storage[]> {
  const cloud = cloudUri(g, cloudOption);
  const stores: Storage[] = [];
  if (!cloud || backupDirGiven(g)) stores.push(await openStore(backupDir(g)));
  if (cloud) stores.push(await openStore(cloud, cloudSettings(g)));
  return stores;
}

/**
 * A store that is a local directory must exist: a mistyped path (a cron line with a typo) must be
 * an error, not "no backups" or "0 kept, 0 deleted".
 */
export async function requireDirectory(storage: Storage): Promise<void> {
  const local = storage.localPath?.('x');
  if (!local) return;
  const info = await stat(path.dirname(local)).catch(() => undefined);
  if (!info?.isDirectory())
    throw new UsageError(`${storage.location} is not a directory`, 'Check the path of the backup directory.');
}
