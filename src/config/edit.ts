import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { ConfigFileError, keyLines, parseConfigText, type SettingValue } from './file.js';
import { SETTINGS_BY_KEY } from './settings.js';

/**
 * Changes one setting in the configuration file, keeping every other line (comments included) as
 * it is: for a settings screen (issue 18) or a script. The value replaces the key's line, or goes
 * under its table, or into a new table at the end. The result is checked like any configuration
 * before it replaces the file (written 0600 beside it, then renamed).
 */

function tomlKey(part: string): string {
  return /^[A-Za-z0-9_-]+$/.test(part) ? part : JSON.stringify(part);
}

function tomlValue(value: SettingValue): string {
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value);
}

/** The text with `key` set to `value` in `profile` (or the top level when undefined); undefined removes it. */
export function editConfigText(
  text: string,
  profile: string | undefined,
  key: string,
  value: SettingValue | undefined,
): string {
  const [section, name] = key.split('.') as [string, string];
  const table = profile === undefined ? [section] : ['profiles', profile, section];
  const tablePath = table.join('.');
  const lines = text.split('\n');
  const found = keyLines(text);
  const at = found.get(`${tablePath}.${name}`);
  const line = `${tomlKey(name)} = ${value === undefined ? '' : tomlValue(value)}`;
  if (at !== undefined) {
    if (value === undefined) lines.splice(at - 1, 1);
    else lines[at - 1] = line;
    return lines.join('\n');
  }
  if (value === undefined) return text;
  const header = found.get(tablePath);
  if (header !== undefined) {
    lines.splice(header, 0, line);
    return lines.join('\n');
  }
  const end = text.endsWith('\n') || text === '' ? '' : '\n';
  return `${text}${end}\n[${table.map(tomlKey).join('.')}]\n${line}\n`;
}

/** Sets one setting in the file (created 0600 if missing); refuses a result that would not load. */
export async function setConfigValue(
  file: string,
  profile: string | undefined,
  key: string,
  value: SettingValue | undefined,
): Promise<void> {
  if (!SETTINGS_BY_KEY.has(key)) throw new Error(`unknown setting ${key}`);
  const text = await readFile(file, 'utf8').catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return '';
    throw err;
  });
  const next = editConfigText(text, profile, key, value);
  const { problems } = await parseConfigText(next, file);
  if (problems.length) throw new ConfigFileError(file, problems);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(temp, next, { mode: 0o600 });
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}
