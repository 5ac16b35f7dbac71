import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { setConfigValue } from '../../src/config/edit.js';
import { ConfigFileError, keyLines, loadConfig, parseConfigText } from '../../src/config/file.js';
import { parseReferenceConfig } from '../../src/reference/config.js';
import { SETTINGS } from '../../src/config/settings.js';
import { configTemplate } from '../../src/config/template.js';
import { splitCommand } from '../../src/config/words.js';
import { UsageError } from '../../src/errors.js';
import { repoRoot } from '../harness/cli.js';
import { tempDir } from './helpers.js';

const TWO_PROFILES = `default_profile = "prod"

[notify]
url = ["https://hooks.slack.com/services/T0/B0/secret"]

[profiles.prod.connection]
engine = "postgres"
host = "db1.example.com"
port = 5432
password_file = "/etc/dbbackup/prod.password"

[profiles.prod.retention]
keep_daily = 7

[profiles."staging db".connection]
engine = "mariadb"
host = "db2"
`;

describe('configuration file (TOML)', () => {
  it('reads the top level and every profile, with the line of each key', async () => {
    const { config, problems } = await parseConfigText(TWO_PROFILES, 'c.toml');
    expect(problems).toEqual([]);
    expect(config?.defaultProfile).toBe('prod');
    expect([...(config?.profiles.keys() ?? [])]).toEqual(['prod', 'staging db']);
    expect(config?.profiles.get('prod')?.get('connection.port')).toEqual({ value: 5432, line: 9 });
    expect(config?.profiles.get('staging db')?.get('connection.host')).toEqual({ value: 'db2', line: 17 });
    expect(config?.base.get('notify.url')?.line).toBe(4);
    expect(config?.secrets).toEqual(['notify.url']);
  });

  it('reports every unknown key and wrong type, one line each with its key path and line', async () => {
    const text = [
      '[profiles.prod.connection]', //     1
      'prot = 5432', //                    2
      'port = "5432"', //                  3
      '[profiles.prod.retention]', //      4
      'keep_daily = -1', //                5
      '[profiles.prod.hooks]', //          6
      'on_failure = "page me"', //         7
      '[logs]', //                         8
      'format = "json"', //                9
    ].join('\n');
    const { problems } = await parseConfigText(text, 'c.toml');
    expect(problems).toEqual([
      { key: 'logs', line: 8, message: expect.stringContaining('did you mean log?') },
      {
        key: 'profiles.prod.connection.prot',
        line: 2,
        message: expect.stringContaining('did you mean port?'),
      },
      {
        key: 'profiles.prod.connection.port',
        line: 3,
        message: 'expected a whole number from 1 to 65535, got "5432"',
      },
      { key: 'profiles.prod.retention.keep_daily', line: 5, message: expect.stringContaining('got -1') },
      {
        key: 'profiles.prod.hooks.on_failure',
        line: 7,
        message: expect.stringContaining('run without a shell'),
      },
    ]);
  });

  it('a syntax error is one problem with its line', async () => {
    const { config, problems } = await parseConfigText('[profiles.prod]\nhost = \n', 'c.toml');
    expect(config).toBeUndefined();
    expect(problems).toHaveLength(1);
    expect(problems[0]?.line).toBe(2);
  });

  it('default_profile must name a profile of the file', async () => {
    const { problems } = await parseConfigText(
      'default_profile = "prdo"\n[profiles.prod.log]\nformat = "json"\n',
      'c.toml',
    );
    expect(problems).toEqual([
      { key: 'default_profile', line: 1, message: 'names profile "prdo", which is not in the file' },
    ]);
  });

  it('finds lines of dotted, quoted and inline keys', () => {
    const lines = keyLines(
      '[profiles.prod]\nconnection.host = "x"\n"storage".backup_dir = "/b"\n[ profiles . "a b" . log ]\nformat="json"\n',
    );
    expect(lines.get('profiles.prod.connection.host')).toBe(2);
    expect(lines.get('profiles.prod.storage.backup_dir')).toBe(3);
    expect(lines.get('profiles.a b.log.format')).toBe(5);
  });

  it('a file holding a secret must be private; without one, any mode will do', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const secret = path.join(dir, 'secret.toml');
      await writeFile(secret, '[profiles.p.connection]\npassword = "hunter22"\n', { mode: 0o644 });
      await chmod(secret, 0o644);
      const refused = await loadConfig({ path: secret, via: '--config' }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(UsageError);
      expect((refused as UsageError).message).toContain(
        'readable by other users (mode 0644) and holds profiles.p.connection.password',
      );
      expect((refused as UsageError).message).not.toContain('hunter22');
      await chmod(secret, 0o600);
      expect((await loadConfig({ path: secret, via: '--config' }))?.config.secrets).toEqual([
        'profiles.p.connection.password',
      ]);

      const plain = path.join(dir, 'plain.toml');
      await writeFile(plain, '[profiles.p.connection]\npassword_file = "/etc/pw"\n', { mode: 0o644 });
      await chmod(plain, 0o644);
      expect(await loadConfig({ path: plain, via: '--config' })).toBeDefined();
    } finally {
      await cleanup();
    }
  });

  it('a missing default file is no configuration; a missing named one is an error', async () => {
    expect(await loadConfig({ path: '/nonexistent/config.toml', via: 'default' })).toBeUndefined();
    await expect(loadConfig({ path: '/nonexistent/config.toml', via: 'DBBACKUP_CONFIG' })).rejects.toThrow(
      /DBBACKUP_CONFIG.*does not exist/,
    );
  });

  it('a file with problems is refused with all of them', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = path.join(dir, 'c.toml');
      await writeFile(file, '[connection]\nhots = "x"\nport = 0\n', { mode: 0o600 });
      const err = await loadConfig({ path: file, via: '--config' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigFileError);
      expect((err as ConfigFileError).exitCode).toBe(2);
      expect((err as ConfigFileError).details).toEqual([
        `${file}:2: connection.hots: unknown key (did you mean host?)`,
        `${file}:3: connection.port: expected a whole number from 1 to 65535, got 0`,
      ]);
    } finally {
      await cleanup();
    }
  });

  it('the config init template parses clean, names every setting, and has its profile', async () => {
    const text = configTemplate('nightly');
    const { config, problems } = await parseConfigText(text, 'c.toml');
    expect(problems).toEqual([]);
    expect(config?.defaultProfile).toBe('nightly');
    for (const s of SETTINGS) expect(text).toContain(`# ${s.key.split('.')[1]} = `);
    // Every example, uncommented, is valid too.
    const uncommented = text.replace(/^# ([a-z_]+ = .*)$/gm, '$1');
    const checked = await parseConfigText(uncommented, 'c.toml');
    expect(checked.problems).toEqual([]);
    expect(checked.config?.base.size).toBeGreaterThan(0);
  });
});

describe("the reference tool's .dbbackup.conf", () => {
  // As the reference tool writes it (reference-system.md, §10.8).
  const REFERENCE = `# dbbackup configuration
# This file is auto-generated. Edit with care.

[database]
type = postgres
host = db.internal
port = 5433
user = postgres
database = postgres
ssl_mode = prefer

[backup]
backup_dir = /home/u/db_backups
compression = 6
jobs = 8
dump_jobs = 4

[performance]
cpu_workload = balanced
max_cores = 16

[security]
retention_days = 30
min_backups = 5
max_retries = 3
`;

  it('maps its keys onto ours, with their lines', () => {
    const r = parseReferenceConfig(REFERENCE, '/w/.dbbackup.conf');
    expect(Object.fromEntries([...r.values].map(([k, v]) => [k, v.value]))).toEqual({
      'connection.engine': 'postgres',
      'connection.host': 'db.internal',
      'connection.port': 5433,
      'connection.user': 'postgres',
      'connection.database': 'postgres',
      'connection.ssl_mode': 'prefer',
      'storage.backup_dir': '/home/u/db_backups',
      'backup.compression': 6,
      'retention.retention_days': 30,
      'retention.min_backups': 5,
    });
    expect(r.values.get('connection.port')?.line).toBe(7);
  });

  it('says, in one line, which of its keys mean nothing here and why', () => {
    const r = parseReferenceConfig(REFERENCE, '/w/.dbbackup.conf');
    expect(r.warnings).toHaveLength(1);
    for (const key of [
      'jobs (line 15',
      'dump_jobs (line 16',
      'cpu_workload (line 19',
      'max_cores (line 20',
      'max_retries (line 25',
    ])
      expect(r.warnings[0]).toContain(key);
  });

  it('warns about unknown keys, bad values and stray lines, never drops them silently', () => {
    const r = parseReferenceConfig(
      '[database]\nport = abc\nhots = x\n[cloud]\nbucket = b\ngarbage\n',
      '/w/.dbbackup.conf',
    );
    expect(r.values.size).toBe(0);
    expect(r.warnings).toEqual([
      '/w/.dbbackup.conf:2: [database] port = "abc" is not valid here; ignored',
      '/w/.dbbackup.conf:3: unknown key [database] hots; ignored',
      '/w/.dbbackup.conf:5: unknown key [cloud] bucket; ignored',
      '/w/.dbbackup.conf:6: not a "key = value" line; ignored',
    ]);
  });

  it('its "localhost" meant the local socket: the host is left to the default, which finds it', () => {
    const r = parseReferenceConfig('[database]\nhost = localhost\ntype = mariadb\n', 'f');
    expect(r.values.has('connection.host')).toBe(false);
    expect(r.values.get('connection.engine')?.value).toBe('mariadb');
  });
});

describe('hook commands given as one string', () => {
  it('splits on spaces, groups quotes, never interprets shell syntax', () => {
    expect(splitCommand(`/usr/bin/notify "db down" 'it''s' a\\ b $HOME;rm`, '--on-failure')).toEqual([
      '/usr/bin/notify',
      'db down',
      'its',
      'a b',
      '$HOME;rm',
    ]);
    expect(splitCommand('["/bin/x", "a b"]', '--on-success')).toEqual(['/bin/x', 'a b']);
  });

  it('refuses an empty command, an unbalanced quote and a JSON value that is not a list of strings', () => {
    expect(() => splitCommand('   ', '--on-failure')).toThrow(/--on-failure is empty/);
    expect(() => splitCommand('/bin/x "open', '--on-failure')).toThrow(/unbalanced/);
    expect(() => splitCommand('[1, 2]', '--on-success')).toThrow(/not a JSON array of strings/);
  });
});

describe('the configuration guide (docs/configuration.md)', () => {
  it('documents every setting, and its example configuration file is valid', async () => {
    const guide = await readFile(path.join(repoRoot, 'docs', 'configuration.md'), 'utf8');
    for (const s of SETTINGS) expect(guide, s.key).toContain(`| \`${s.key}\` | \`${s.flag}\` |`);
    const example = /^# Configuration[\s\S]*?```toml\n([\s\S]*?)```/m.exec(guide)?.[1] ?? '';
    const { config, problems } = await parseConfigText(example, 'docs/configuration.md');
    expect(problems).toEqual([]);
    expect([...(config?.profiles.keys() ?? [])]).toEqual(['prod', 'shop']);
  });
});

describe('changing one setting in the file (for a settings screen)', () => {
  it('replaces the line, adds under the table, or adds the table; comments and other lines stay', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = path.join(dir, 'c.toml');
      await writeFile(file, TWO_PROFILES, { mode: 0o600 });
      await setConfigValue(file, 'prod', 'connection.port', 5433);
      await setConfigValue(file, 'prod', 'connection.user', 'backup');
      await setConfigValue(file, 'staging db', 'retention.keep_last', 3);
      await setConfigValue(file, undefined, 'metrics.file', '/var/lib/x.prom');
      await setConfigValue(file, 'prod', 'connection.password_file', undefined);
      const text = await readFile(file, 'utf8');
      expect(text).toContain('default_profile = "prod"');
      expect(text).toContain('[profiles.prod.connection]\nuser = "backup"\nengine = "postgres"');
      expect(text).not.toContain('password_file');
      const { config, problems } = await parseConfigText(text, file);
      expect(problems).toEqual([]);
      expect(config?.profiles.get('prod')?.get('connection.port')?.value).toBe(5433);
      expect(config?.profiles.get('staging db')?.get('retention.keep_last')?.value).toBe(3);
      expect(config?.base.get('metrics.file')?.value).toBe('/var/lib/x.prom');
      expect((await stat(file)).mode & 0o777).toBe(0o600);
    } finally {
      await cleanup();
    }
  });

  it('a value the file may not hold is refused and the file left as it was', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = path.join(dir, 'c.toml');
      await writeFile(file, TWO_PROFILES, { mode: 0o600 });
      await expect(setConfigValue(file, 'prod', 'connection.port', 70000)).rejects.toThrow(/has a problem/);
      expect(await readFile(file, 'utf8')).toBe(TWO_PROFILES);
    } finally {
      await cleanup();
    }
  });
});
