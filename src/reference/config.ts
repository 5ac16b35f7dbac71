import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, errorMessage } from '../errors.js';
import { coerce, type ConfigEntry } from '../config/file.js';
import { SETTINGS_BY_KEY } from '../config/settings.js';

/**
 * The reference tool's `.dbbackup.conf` (INI: `[section]`, `key = value`, `#` comments) in the
 * working directory, so its users keep their settings. Its keys map onto ours; keys it wrote that
 * mean nothing here, and keys nobody knows, are warned about — never silently dropped.
 */

export const REFERENCE_FILE = '.dbbackup.conf';

/** `[section] key` of the reference tool → our setting. */
export const REFERENCE_KEYS: Readonly<Record<string, string>> = {
  'database.type': 'connection.engine',
  'database.host': 'connection.host',
  'database.port': 'connection.port',
  'database.user': 'connection.user',
  'database.database': 'connection.database',
  'database.ssl_mode': 'connection.ssl_mode',
  'backup.backup_dir': 'storage.backup_dir',
  'backup.compression': 'backup.compression',
  'security.retention_days': 'retention.retention_days',
  'security.min_backups': 'retention.min_backups',
};

/** Keys the reference tool wrote that have no counterpart here, and why. */
const UNUSED: Record<string, string> = {
  'backup.jobs': 'pigz threads: the compressor picks its own',
  'backup.dump_jobs': 'pg_dump --jobs for a format it never used',
  'performance.cpu_workload': 'no workload profiles',
  'performance.max_cores': 'no workload profiles',
  'security.max_retries': 'no connection rate limiter',
};

export interface ReferenceConfig {
  path: string;
  values: Map<string, ConfigEntry>;
  warnings: string[];
}

const INTEGER = /^[0-9]+$/;

/** The settings in the text of a `.dbbackup.conf`, with a warning for everything not used. */
export function parseReferenceConfig(text: string, file: string): ReferenceConfig {
  const values = new Map<string, ConfigEntry>();
  const warnings: string[] = [];
  const unused: string[] = [];
  let section = '';
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    const at = `${file}:${i + 1}`;
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    const header = /^\[([^\]]*)\]$/.exec(line);
    if (header) {
      section = (header[1] ?? '').trim().toLowerCase();
      return;
    }
    const eq = line.indexOf('=');
    if (eq < 0) {
      warnings.push(`${at}: not a "key = value" line; ignored`);
      return;
    }
    const name = `${section}.${line.slice(0, eq).trim().toLowerCase()}`;
    const text = line.slice(eq + 1).trim();
    const why = UNUSED[name];
    if (why) {
      unused.push(`[${section}] ${name.slice(section.length + 1)} (line ${i + 1}: ${why})`);
      return;
    }
    const key = REFERENCE_KEYS[name];
    const setting = key ? SETTINGS_BY_KEY.get(key) : undefined;
    if (!setting) {
      warnings.push(`${at}: unknown key [${section}] ${name.slice(section.length + 1)}; ignored`);
      return;
    }
    // The reference tool's "localhost" meant its local socket; leaving the host unset does the same here.
    if (key === 'connection.host' && text === 'localhost') return;
    const value = coerce(
      setting,
      setting.type.kind === 'integer' && INTEGER.test(text) ? Number(text) : text,
    );
    if (value === undefined) {
      warnings.push(
        `${at}: [${section}] ${name.slice(section.length + 1)} = "${text}" is not valid here; ignored`,
      );
      return;
    }
    values.set(setting.key, { value, line: i + 1 });
  });
  if (unused.length) warnings.push(`${file}: ignored, no equivalent in dbbackup: ${unused.join('; ')}`);
  return { path: file, values, warnings };
}

/** ./.dbbackup.conf in `dir`, or undefined when there is none. */
export async function loadReferenceConfig(dir: string = process.cwd()): Promise<ReferenceConfig | undefined> {
  const file = path.join(dir, REFERENCE_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    return {
      path: file,
      values: new Map(),
      warnings: [`cannot read ${file}: ${errorMessage(err)}; ignored`],
    };
  }
  return parseReferenceConfig(text, file);
}
