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
    out[key] = eq < 0 ? '' : parseOptionValue(line.slice(eq + 1).trim());
  }
  return out;
}

const ESCAPES: Record<string, string> = {
  n: '\n',
  t: '\t',
  r: '\r',
  b: '\b',
  s: ' ',
  '\\': '\\',
  '"': '"',
  "'": "'",
};

/** A value as the MySQL clients read it: quoted (up to the closing quote) or up to a `#` comment, escapes applied. */
function parseOptionValue(text: string): string {
  const quote = text[0];
  let body: string;
  if (quote === '"' || quote === "'") {
    let end = 1;
    while (end < text.length && text[end] !== quote) end += text[end] === '\\' ? 2 : 1;
    body = text.slice(1, end);
  } else {
    const hash = text.indexOf('#');
    body = (hash < 0 ? text : text.slice(0, hash)).trimEnd();
  }
  return body.replace(/\\(.)/g, (_m, c: string) => ESCAPES[c] ?? `\\${c}`);
}

/** An option-file line whose value survives any character: quoted, with \ and " escaped. */
export function optionFileLine(key: string, value: string): string {
  const escaped = value
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/\t/g, '\\t');
  return `${key}="${escaped}"\n`;
}
