import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * The `[client]` group of MySQL option files (~/.my.cnf, MYSQL_HOME/my.cnf), which the command-line
 * clients read themselves; the driver needs the same values so both reach the same server.
 */
export function readClientOptions(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const files = [path.join(os.homedir(), '.my.cnf')];
  if (env.MYSQL_HOME) files.unshift(path.join(env.MYSQL_HOME, 'my.cnf'));
  const options: Record<string, string> = {};
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    Object.assign(options, parseOptionGroups(text, ['client', 'client-server', 'client-mariadb']));
  }
  return options;
}

export function parseOptionGroups(text: string, groups: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  let active = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const group = /^\[(.+)\]$/.exec(line);
    if (group?.[1]) {
      active = groups.includes(group[1].trim().toLowerCase());
      continue;
    }
    if (!active) continue;
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim().replace(/_/g, '-').toLowerCase();
    let value = eq < 0 ? '' : line.slice(eq + 1).trim();
    const quoted = /^(["'])(.*)\1$/.exec(value);
    if (quoted?.[2] !== undefined) value = quoted[2].replace(/\\(.)/g, '$1');
    out[key] = value;
  }
  return out;
}

/** An option-file line whose value survives any character: quoted, with \ and " escaped. */
export function optionFileLine(key: string, value: string): string {
  return `${key}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"\n`;
}
