import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DbBackupError, errnoCode, errorMessage, UsageError } from '../errors.js';
import { SECTIONS, SETTINGS_BY_KEY, type Setting } from './settings.js';
import { ExitCode } from '../exit-codes.js';
import { secrets } from '../secrets.js';

/**
 * The configuration file: TOML (parsed by smol-toml, loaded only when a file exists). TOML rather
 * than YAML: no implicit typing (`no` is not false, `0600` is not octal, a bare `1.10` stays a
 * string only when quoted and is an error otherwise), comments, and one obvious way to write a
 * table per profile.
 *
 *   default_profile = "prod"     # optional: the profile used without --profile
 *   [notify]                     # the top level: applies to every profile
 *   [profiles.prod.connection]   # one profile's own settings; they win over the top level
 */

export type SettingValue = string | number | string[];

export interface ConfigEntry {
  value: SettingValue;
  /** 1-based line of the key in the file, when it could be found. */
  line?: number;
}

export interface ConfigFile {
  path: string;
  /** Settings outside any profile. */
  base: Map<string, ConfigEntry>;
  profiles: Map<string, Map<string, ConfigEntry>>;
  defaultProfile?: string;
  /** Keys holding a password, secret key or webhook URL (the file must then be private). */
  secrets: string[];
}

export interface ConfigProblem {
  /** Dotted path of the key: `profiles.prod.connection.port`. */
  key: string;
  line?: number;
  message: string;
}

export interface ConfigLocation {
  path: string;
  /** How it was chosen: `--config`, `DBBACKUP_CONFIG` or `default`. */
  via: '--config' | 'DBBACKUP_CONFIG' | 'default';
}

/** `--config FILE`, else $DBBACKUP_CONFIG, else $XDG_CONFIG_HOME/dbbackup/config.toml. */
export function configLocation(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ConfigLocation {
  if (flag) return { path: flag, via: '--config' };
  if (env.DBBACKUP_CONFIG) return { path: env.DBBACKUP_CONFIG, via: 'DBBACKUP_CONFIG' };
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return { path: path.join(base, 'dbbackup', 'config.toml'), via: 'default' };
}

/** Line of each key, found by reading the text as TOML is written (tables, dotted and quoted keys). */
export function keyLines(text: string): Map<string, number> {
  const lines = new Map<string, number>();
  let table: string[] = [];
  let inMultiline: string | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (inMultiline) {
      if (line.includes(inMultiline)) inMultiline = undefined;
      return;
    }
    const header = /^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/.exec(line);
    if (header?.[1]) {
      table = splitKey(header[1]);
      lines.set(table.join('.'), i + 1);
      return;
    }
    const assignment =
      /^((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=(.*)$/.exec(
        line,
      );
    if (!assignment?.[1]) return;
    const key = [...table, ...splitKey(assignment[1])].join('.');
    if (!lines.has(key)) lines.set(key, i + 1);
    const rest = assignment[2] ?? '';
    for (const quote of ['"""', "'''"]) {
      if (rest.split(quote).length === 2) inMultiline = quote;
    }
  });
  return lines;
}

function splitKey(key: string): string[] {
  const parts: string[] = [];
  const re = /\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*(?:\.|$)/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(key)) && m[0] !== '') parts.push(m[1] ?? m[2] ?? m[3] ?? '');
  return parts;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] ?? 0;
      row[j] = Math.min(above + 1, (row[j - 1] ?? 0) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length] ?? 0;
}

function suggestion(name: string, known: readonly string[]): string {
  const best = known
    .map((k) => ({ k, d: distance(name, k) }))
    .filter(({ d }) => d <= 2)
    .sort((x, y) => x.d - y.d)[0];
  return best ? ` (did you mean ${best.k}?)` : ` (known: ${known.join(', ')})`;
}

function describeType(setting: Setting): string {
  const t = setting.type;
  switch (t.kind) {
    case 'string':
      return 'a string';
    case 'integer':
      return `a whole number from ${t.min} to ${t.max}`;
    case 'enum':
      return `one of ${t.values.map((v) => `"${v}"`).join(', ')}`;
    case 'strings':
      return 'a string or an array of strings';
    case 'argv':
      return 'an array of strings: the program, then its arguments (run without a shell)';
  }
}

function shown(value: unknown): string {
  if (typeof value === 'string') return `"${value}"`;
  if (value instanceof Date) return 'a date';
  if (Array.isArray(value)) return 'an array';
  if (isTable(value)) return 'a table';
  return String(value);
}

/** The value in the setting's type, or undefined when it is not one. */
export function coerce(setting: Setting, value: unknown): SettingValue | undefined {
  const t = setting.type;
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
  switch (t.kind) {
    case 'string':
      return typeof value === 'string' ? value : undefined;
    case 'integer':
      return typeof value === 'number' && Number.isSafeInteger(value) && value >= t.min && value <= t.max
        ? value
        : undefined;
    case 'enum':
      return typeof value === 'string' && t.values.includes(value) ? value : undefined;
    case 'strings':
      if (typeof value === 'string') return [value];
      return isStrings(value) ? value : undefined;
    case 'argv':
      return isStrings(value) && value.length > 0 && value[0] !== '' ? value : undefined;
  }
}

interface Collected {
  values: Map<string, ConfigEntry>;
  secrets: string[];
}

function collectSettings(
  table: Record<string, unknown>,
  prefix: string,
  lines: Map<string, number>,
  problems: ConfigProblem[],
  skip: readonly string[],
): Collected {
  const values = new Map<string, ConfigEntry>();
  const secrets: string[] = [];
  const at = (key: string): { key: string; line?: number } => ({ key, line: lines.get(key) });
  for (const [section, content] of Object.entries(table)) {
    if (skip.includes(section)) continue;
    const sectionPath = `${prefix}${section}`;
    if (!SECTIONS.includes(section)) {
      problems.push({
        ...at(sectionPath),
        message: `unknown key${suggestion(section, [...SECTIONS, ...skip])}`,
      });
      continue;
    }
    if (!isTable(content)) {
      problems.push({
        ...at(sectionPath),
        message: `expected a table ([${sectionPath}]), got ${shown(content)}`,
      });
      continue;
    }
    const names = [...SETTINGS_BY_KEY.keys()]
      .filter((k) => k.startsWith(`${section}.`))
      .map((k) => k.slice(section.length + 1));
    for (const [name, raw] of Object.entries(content)) {
      const keyPath = `${sectionPath}.${name}`;
      const setting = SETTINGS_BY_KEY.get(`${section}.${name}`);
      if (!setting) {
        problems.push({ ...at(keyPath), message: `unknown key${suggestion(name, names)}` });
        continue;
      }
      const value = coerce(setting, raw);
      if (value === undefined) {
        problems.push({ ...at(keyPath), message: `expected ${describeType(setting)}, got ${shown(raw)}` });
        continue;
      }
      values.set(setting.key, { value, line: lines.get(keyPath) });
      if (setting.secret) secrets.push(keyPath);
    }
  }
  return { values, secrets };
}

/** The settings in a parsed TOML document; every problem is reported, none stops the others. */
export function readConfigDocument(
  doc: Record<string, unknown>,
  text: string,
  file: string,
): { config: ConfigFile; problems: ConfigProblem[] } {
  const lines = keyLines(text);
  const problems: ConfigProblem[] = [];
  const base = collectSettings(doc, '', lines, problems, ['default_profile', 'profiles']);
  const profiles = new Map<string, Map<string, ConfigEntry>>();
  const secrets = [...base.secrets];
  let defaultProfile: string | undefined;
  if (doc.default_profile !== undefined) {
    if (typeof doc.default_profile === 'string' && doc.default_profile !== '')
      defaultProfile = doc.default_profile;
    else
      problems.push({
        key: 'default_profile',
        line: lines.get('default_profile'),
        message: `expected a profile name, got ${shown(doc.default_profile)}`,
      });
  }
  if (doc.profiles !== undefined) {
    if (!isTable(doc.profiles)) {
      problems.push({
        key: 'profiles',
        line: lines.get('profiles'),
        message: 'expected tables [profiles.NAME]',
      });
    } else {
      for (const [name, content] of Object.entries(doc.profiles)) {
        const keyPath = `profiles.${name}`;
        if (!isTable(content)) {
          problems.push({
            key: keyPath,
            line: lines.get(keyPath),
            message: `expected a table, got ${shown(content)}`,
          });
          continue;
        }
        const collected = collectSettings(content, `${keyPath}.`, lines, problems, []);
        profiles.set(name, collected.values);
        secrets.push(...collected.secrets);
      }
    }
  }
  if (defaultProfile !== undefined && !profiles.has(defaultProfile))
    problems.push({
      key: 'default_profile',
      line: lines.get('default_profile'),
      message: `names profile "${defaultProfile}", which is not in the file`,
    });
  return { config: { path: file, base: base.values, profiles, defaultProfile, secrets }, problems };
}

/** Parses TOML text; a syntax error is one problem with its line. */
export async function parseConfigText(
  text: string,
  file: string,
): Promise<{ config: ConfigFile | undefined; problems: ConfigProblem[] }> {
  const toml = await import('smol-toml');
  let doc: Record<string, unknown>;
  try {
    doc = toml.parse(text) as Record<string, unknown>;
  } catch (err) {
    const line = err instanceof toml.TomlError ? err.line : undefined;
    const first = errorMessage(err).split('\n')[0] ?? 'invalid TOML';
    return { config: undefined, problems: [{ key: '(syntax)', line, message: first }] };
  }
  return readConfigDocument(doc, text, file);
}

export function formatProblem(file: string, p: ConfigProblem): string {
  return `${file}${p.line ? `:${p.line}` : ''}: ${p.key}: ${p.message}`;
}

/** A private file is needed for secrets, as for key and password files. */
export function permissionProblem(file: string, mode: number, secrets: string[]): string | undefined {
  if (process.platform === 'win32' || !secrets.length || !(mode & 0o077)) return undefined;
  return `${file} is readable by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}) and holds ${secrets.join(', ')}`;
}

export interface LoadedConfig {
  config: ConfigFile;
  location: ConfigLocation;
}

/**
 * The configuration file, or undefined when the default location has none. A file named by
 * --config or DBBACKUP_CONFIG must exist; any problem in it is one usage error listing them all.
 */
export async function loadConfig(location: ConfigLocation): Promise<LoadedConfig | undefined> {
  let text: string;
  let mode: number;
  try {
    mode = (await stat(location.path)).mode;
    text = await readFile(location.path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' && location.via === 'default') return undefined;
    throw new UsageError(
      `Cannot read the configuration file ${location.path} (${location.via}): ${errnoCode(err) === 'ENOENT' ? 'it does not exist' : errorMessage(err)}`,
      'Check the path, or create one with "dbbackup config init".',
    );
  }
  const { config, problems } = await parseConfigText(text, location.path);
  if (!config || problems.length) {
    throw new ConfigFileError(location.path, problems);
  }
  const insecure = permissionProblem(location.path, mode, config.secrets);
  if (insecure)
    throw new UsageError(
      `Refusing the configuration file: ${insecure}`,
      `Restrict it: chmod 600 ${location.path} (or keep the password in a password_file).`,
    );
  rememberConfigSecrets(config);
  return { config, location };
}

/** A configuration file with problems: one line each, with its key and line. */
export class ConfigFileError extends DbBackupError {
  readonly problems: ConfigProblem[];

  constructor(file: string, problems: ConfigProblem[]) {
    super(
      `The configuration file ${file} has ${problems.length === 1 ? 'a problem' : `${problems.length} problems`}`,
      {
        exitCode: ExitCode.Usage,
        details: problems.map((p) => formatProblem(file, p)),
        hint: 'Fix the lines named above; "dbbackup config validate" checks the file again.',
      },
    );
    this.problems = problems;
  }
}

/** Secrets read from the file are masked in every message and log line from now on. */
function rememberConfigSecrets(config: ConfigFile): void {
  for (const values of [config.base, ...config.profiles.values()]) {
    for (const [key, entry] of values) {
      if (!SETTINGS_BY_KEY.get(key)?.secret) continue;
      for (const v of Array.isArray(entry.value) ? entry.value : [String(entry.value)]) secrets.remember(v);
    }
  }
}
