import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { maskSecrets } from '../../src/engines/connection.js';
import { MysqlEngine } from '../../src/engines/mysql.js';
import { PostgresEngine, conninfoValue } from '../../src/engines/postgres.js';
import { parseVersion, versionBanner } from '../../src/engines/tools.js';

/** libpq's conninfo_parse: `key = value` pairs, values bare or single-quoted with backslash escapes. */
function parseConninfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  const ws = (): void => {
    while (i < text.length && /\s/.test(text[i] ?? '')) i++;
  };
  while (true) {
    ws();
    if (i >= text.length) return out;
    let key = '';
    while (i < text.length && !/[\s=]/.test(text[i] ?? '')) key += text[i++];
    ws();
    if (text[i++] !== '=') throw new Error(`missing "=" after "${key}"`);
    ws();
    let value = '';
    if (text[i] === "'") {
      i++;
      while (true) {
        if (i >= text.length) throw new Error('unterminated quoted string');
        const ch = text[i++];
        if (ch === '\\') value += text[i++] ?? '';
        else if (ch === "'") break;
        else value += ch;
      }
    } else {
      while (i < text.length && !/\s/.test(text[i] ?? '')) {
        const ch = text[i++];
        value += ch === '\\' ? (text[i++] ?? '') : ch;
      }
    }
    out[key] = value;
  }
}

const NAMES = [
  'shop',
  "o'brien",
  "''",
  'back\\slash',
  'trailing\\',
  "\\'",
  'with space',
  'a=b',
  "x' host=evil.example.com port='5432",
  'dbname=other',
  'ünïcödé 🐘',
  '',
];

describe('conninfoValue', () => {
  it('escapes quote and backslash', () => {
    expect(conninfoValue("o'brien")).toBe("'o\\'brien'");
    expect(conninfoValue('a\\b')).toBe("'a\\\\b'");
    expect(conninfoValue('')).toBe("''");
  });

  it('survives libpq parsing for any name, without injecting other keywords', () => {
    for (const name of NAMES) {
      expect(parseConninfo(`dbname=${conninfoValue(name)} port=1`), JSON.stringify(name)).toEqual({
        dbname: name,
        port: '1',
      });
    }
  });

  const psql = '/usr/lib/postgresql/15/bin/psql';
  it('is accepted by libpq itself (the connection fails, not the parsing)', () => {
    for (const name of NAMES) {
      const r = spawnSync(
        psql,
        [`--dbname=dbname=${conninfoValue(name)} host=/nonexistent-dbbackup port=1`],
        {
          encoding: 'utf8',
          env: { ...process.env, PGCONNECT_TIMEOUT: '2' },
        },
      );
      expect(r.stderr, JSON.stringify(name)).toContain('/nonexistent-dbbackup/.s.PGSQL.1');
    }
  });
});

describe('PostgresEngine.classifyStderr', () => {
  const engine = new PostgresEngine({ engine: 'postgres', host: '127.0.0.1', port: 1 });
  const cases: Array<[string, 'error' | 'warning' | 'info']> = [
    [
      'pg_dump: error: connection to server at "127.0.0.1", port 1 failed: FATAL:  password authentication failed for user "x"',
      'error',
    ],
    ['pg_dump: error: query failed: ERROR:  permission denied for table secrets', 'error'],
    ['pg_restore: error: could not execute query: ERROR:  relation "x" already exists', 'error'],
    ['psql:<stdin>:12: ERROR:  relation "x" already exists', 'error'],
    ['psql:/tmp/dump.sql:5: FATAL:  terminating connection due to administrator command', 'error'],
    ['pg_dump: warning: there are circular foreign-key constraints on this table:', 'warning'],
    ['pg_restore: warning: errors ignored on restore: 1', 'warning'],
    ['psql:<stdin>:3: WARNING:  no privileges were granted for "public"', 'warning'],
    ['NOTICE:  table "t" does not exist, skipping', 'info'],
    ['psql:<stdin>:7: NOTICE:  drop cascades to table error_log', 'info'],
    ['pg_dump: detail: Query was: LOCK TABLE public.t IN ACCESS SHARE MODE', 'info'],
    ['DETAIL:  Key (id)=(1) already exists.', 'info'],
  ];
  for (const [line, expected] of cases) {
    it(`${expected}: ${line.slice(0, 70)}`, () => expect(engine.classifyStderr(line)).toBe(expected));
  }
});

describe('MysqlEngine.classifyStderr', () => {
  const engine = new MysqlEngine({ engine: 'mariadb', host: '127.0.0.1', port: 1 });
  const cases: Array<[string, 'error' | 'warning' | 'info']> = [
    [`mariadb-dump: Got error: 1049: "Unknown database 'nope'" when selecting the database`, 'error'],
    [
      `mysqldump: Got error: 1045: "Access denied for user 'x'@'localhost' (using password: YES)" when trying to connect`,
      'error',
    ],
    [`mariadb-dump: Couldn't execute 'show events': Access denied for user 'x'@'%' to database 'd'`, 'error'],
    ['ERROR 1064 (42000) at line 3: You have an error in your SQL syntax; check the manual', 'error'],
    [
      `ERROR 2002 (HY000): Can't connect to local server through socket '/run/mysqld/mysqld.sock' (2)`,
      'error',
    ],
    [
      `mysqldump: Deprecated program name. It will be removed in a future release, use '/usr/bin/mariadb-dump' instead`,
      'info',
    ],
    [
      `mysql: Deprecated program name. It will be removed in a future release, use '/usr/bin/mariadb' instead`,
      'info',
    ],
    ['Warning: Using a password on the command line interface can be insecure.', 'warning'],
    ['mysqldump: [Warning] Using a password on the command line interface can be insecure.', 'warning'],
    ['-- Retrieving table structure for table error_log...', 'info'],
  ];
  for (const [line, expected] of cases) {
    it(`${expected}: ${line.slice(0, 70)}`, () => expect(engine.classifyStderr(line)).toBe(expected));
  }
});

describe('maskSecrets', () => {
  it('replaces every occurrence of every secret', () => {
    const text = 'password=hunter2 failed; retry with hunter2; token s3cr3t-tok';
    expect(maskSecrets(text, ['hunter2', undefined, 's3cr3t-tok'])).toBe(
      'password=**** failed; retry with ****; token ****',
    );
  });

  it('treats secrets literally, not as patterns', () => {
    expect(maskSecrets('pw a.b*c$ and axbbbc', ['a.b*c$'])).toBe('pw **** and axbbbc');
    expect(maskSecrets('p@ss(1)+[x]', ['p@ss(1)+[x]'])).toBe('****');
  });

  it('leaves text alone without secrets', () => {
    expect(maskSecrets('nothing to hide', [])).toBe('nothing to hide');
    expect(maskSecrets('nothing to hide', [undefined, ''])).toBe('nothing to hide');
  });
});

describe('parseVersion', () => {
  const banners: Array<[string, string | null]> = [
    ['pg_dump (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)', '15.19'],
    ['psql (PostgreSQL) 17.2 (Ubuntu 17.2-1.pgdg24.04+1)', '17.2'],
    ['mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)', '10.11.19'],
    ['mariadb-dump from 11.4.2-MariaDB, client 10.19 for debian-linux-gnu (x86_64)', '11.4.2'],
    ['mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)', '8.0.36'],
    ['zstd: *** Zstandard CLI (64-bit) v1.5.4, by Yann Collet ***', '1.5.4'],
    ['pigz 2.8', '2.8'],
    ['no version here', null],
  ];
  for (const [banner, expected] of banners) {
    it(`${banner} → ${expected}`, () => expect(parseVersion(banner)).toBe(expected));
  }
});

describe('versionBanner', () => {
  // mariadb-backup prints its banner on standard error; reading only standard output gave '' and
  // the client-TLS choice then took it for Oracle MySQL (--ssl-mode=…, which it rejects).
  it('reads a banner printed on standard error (mariadb-backup)', async () => {
    const banner = await versionBanner('mariadb-backup');
    expect(banner).toMatch(/MariaDB/);
    expect(parseVersion(banner ?? '')).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe('checkDatabaseName: names the server would not keep as given', () => {
  const pg = new PostgresEngine({ engine: 'postgres', host: '127.0.0.1', port: 5432, user: 'u' }, {});
  const my = new MysqlEngine({ engine: 'mariadb', host: '127.0.0.1', port: 3306, user: 'u' }, {});

  it('PostgreSQL counts bytes: 63 pass, 64 fail, and two-byte characters count twice', () => {
    expect(() => pg.checkDatabaseName('a'.repeat(63))).not.toThrow();
    expect(() => pg.checkDatabaseName('a'.repeat(64))).toThrow(/is 64 bytes long/);
    expect(() => pg.checkDatabaseName('é'.repeat(31))).not.toThrow(); // 62 bytes
    // 32 × 2 bytes: cut by the server before the character that does not fit.
    expect(() => pg.checkDatabaseName('é'.repeat(32))).toThrow(`would be cut to "${'é'.repeat(31)}"`);
    const thrown = ((): unknown => {
      try {
        pg.checkDatabaseName(`${'a'.repeat(63)}_copy`);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(thrown).toMatchObject({ name: 'UsageError', exitCode: 2 });
  });

  it('a --database (maintenance database) over the limit is refused when the engine is made', () => {
    expect(
      () =>
        new PostgresEngine(
          { engine: 'postgres', host: 'h', port: 1, user: 'u', database: 'm'.repeat(64) },
          {},
        ),
    ).toThrow(/is 64 bytes long/);
  });

  it('MySQL/MariaDB count characters: 64 pass, 65 fail', () => {
    expect(() => my.checkDatabaseName('é'.repeat(64))).not.toThrow();
    expect(() => my.checkDatabaseName('a'.repeat(65))).toThrow(
      /is 65 characters long: MariaDB allows at most 64/,
    );
  });
});

describe('--lock-timeout reaches the restore tools', () => {
  it('pg_restore and psql get lock_timeout through PGOPTIONS (kept beside the caller’s own)', async () => {
    const engine = new PostgresEngine(
      { engine: 'postgres', host: 'h', port: 1, user: 'u', lockTimeoutSeconds: 7 },
      {},
    );
    const saved = process.env.PGOPTIONS;
    process.env.PGOPTIONS = '-c work_mem=64MB';
    try {
      for (const format of ['custom', 'plain'] as const) {
        const cmd = await engine.restoreCommand({ target: 'x', format, jobs: 1, noOwner: false });
        expect(cmd.env.PGOPTIONS).toBe('-c work_mem=64MB -c lock_timeout=7s');
      }
      const dump = await engine.dumpCommand('x', 'custom');
      expect(dump.env.PGOPTIONS).toBe('-c work_mem=64MB');
    } finally {
      if (saved === undefined) delete process.env.PGOPTIONS;
      else process.env.PGOPTIONS = saved;
    }
  });

  it('the mariadb client sets lock_wait_timeout for its session; without a limit nothing is added', async () => {
    const engine = new MysqlEngine(
      { engine: 'mariadb', host: 'h', port: 1, user: 'u', lockTimeoutSeconds: 7 },
      {},
    );
    const cmd = await engine.restoreCommand({ target: 'x', format: 'plain', jobs: 1, noOwner: false });
    expect(cmd.args).toContain('--init-command=SET SESSION lock_wait_timeout=7');
    const unlimited = new MysqlEngine({ engine: 'mariadb', host: 'h', port: 1, user: 'u' }, {});
    const plain = await unlimited.restoreCommand({ target: 'x', format: 'plain', jobs: 1, noOwner: false });
    expect(plain.args.some((a) => a.startsWith('--init-command'))).toBe(false);
  });
});
