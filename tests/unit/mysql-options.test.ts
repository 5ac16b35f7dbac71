import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { optionFileLine, parseOptionGroups } from '../../src/engines/mysql-options.js';

const CLIENT = ['client', 'client-server', 'client-mariadb'];
const MY_PRINT_DEFAULTS = '/usr/bin/my_print_defaults';

/** What the MySQL/MariaDB client programs read from an option file: `my_print_defaults client`. */
function clientView(text: string): Record<string, string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dbbackup-unit-'));
  try {
    const file = path.join(dir, 'my.cnf');
    writeFileSync(file, text, { mode: 0o600 });
    const r = spawnSync(MY_PRINT_DEFAULTS, [`--defaults-file=${file}`, 'client'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const out: Record<string, string> = {};
    // One `--key=value` per line (a value holding a newline would span lines; not used here).
    for (const line of r.stdout.split('\n').filter(Boolean)) {
      const m = /^--([^=]+)(?:=(.*))?$/s.exec(line);
      if (m?.[1]) out[m[1].replace(/_/g, '-').toLowerCase()] = m[2] ?? '';
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('parseOptionGroups', () => {
  const file = [
    '# ~/.my.cnf',
    '; another comment style',
    '[mysqld]',
    'password = server-side-secret',
    'port = 9999',
    '',
    '[client]',
    'user = alice',
    '  password = "s3cr=t \\"quoted\\" back\\\\slash"  ',
    'ssl_ca = /etc/ssl/ca.pem',
    'Default_Character_Set=utf8mb4',
    "host = 'db.example.com'",
    'skip-ssl',
    '[mysqldump]',
    'user = not-for-the-driver',
    '[client-mariadb]',
    'port=3307',
  ].join('\r\n');

  it('reads only the client groups, unquoting and unescaping values', () => {
    expect(parseOptionGroups(file, CLIENT)).toEqual({
      user: 'alice',
      password: 's3cr=t "quoted" back\\slash',
      'ssl-ca': '/etc/ssl/ca.pem',
      'default-character-set': 'utf8mb4',
      host: 'db.example.com',
      'skip-ssl': '',
      port: '3307',
    });
  });

  it('matches group names case-insensitively and lets later groups override', () => {
    const text = '[CLIENT]\nuser=a\n[client-mariadb]\nuser=b\n';
    expect(parseOptionGroups(text, CLIENT)).toEqual({ user: 'b' });
    expect(parseOptionGroups(text, ['client'])).toEqual({ user: 'a' });
  });

  it('agrees with my_print_defaults on the same file', () => {
    expect(parseOptionGroups(file, ['client'])).toEqual(
      clientView(file.replace(/\[client-mariadb\][^]*$/, '')),
    );
  });

  // BUG (src/engines/mysql-options.ts, parseOptionGroups): MySQL and MariaDB end a value at an
  // unquoted '#', so the clients read `alice` and `secret` here while the driver gets the comment
  // too and connects with a different user and password. Remove `.fails` once fixed.
  it('strips trailing # comments like the MySQL clients do', () => {
    const text = '[client]\nuser = alice   # the backup user\npassword = "secret" # rotated monthly\n';
    expect(parseOptionGroups(text, ['client'])).toEqual({ user: 'alice', password: 'secret' });
  });
});

describe('optionFileLine', () => {
  const passwords = [
    'plain',
    'with space',
    '  leading and trailing  ',
    'dq"uote',
    "sq'uote",
    '"fully quoted"',
    "'single quoted'",
    'back\\slash',
    'trailing\\',
    '\\"',
    '\\\\\\',
    'has#hash',
    '#starts-with-hash',
    ';starts-with-semicolon',
    'a=b=c',
    '[client]',
    'tab\there',
    '\\n is not a newline',
    'pässwörd 🔑',
  ];

  it('writes one quoted line that parseOptionGroups reads back exactly', () => {
    for (const value of passwords) {
      const line = optionFileLine('password', value);
      expect(line.endsWith('\n')).toBe(true);
      expect(line.slice(0, -1)).not.toContain('\n');
      expect(parseOptionGroups(`[client]\n${line}`, ['client']), JSON.stringify(value)).toEqual({
        password: value,
      });
    }
  });

  it('writes lines the MariaDB client programs read back exactly', () => {
    const text = `[client]\n${passwords.map((p, i) => optionFileLine(`password${i}`, p)).join('')}`;
    const seen = clientView(text);
    passwords.forEach((value, i) => expect(seen[`password${i}`], JSON.stringify(value)).toBe(value));
  });

  // BUG (src/engines/mysql-options.ts, optionFileLine): "survives any character" does not hold for
  // a newline: the value is cut at it and the rest becomes a separate option line.
  it('keeps a password containing a newline', () => {
    const line = optionFileLine('password', 'first\nsecond');
    expect(parseOptionGroups(`[client]\n${line}`, ['client'])).toEqual({ password: 'first\nsecond' });
  });
});
