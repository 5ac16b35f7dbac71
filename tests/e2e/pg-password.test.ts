import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockPgGlobals, unlockPgGlobals } from '../harness/cluster-lock.js';
import { repoRoot, type CliResult } from '../harness/cli.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgIdent, pgQuery, withPg } from '../harness/pg.js';
import { PASSWORD_ROLE } from '../harness/pg-server.js';
import { pgServer } from '../harness/servers.js';
import { childrenNamed, waitUntil } from './proc-util.js';
import { cli, expectExit, listDir, onlyBackup, removeDir, tempDir, uniqueName } from './util.js';

/**
 * The throwaway server trusts every role except PASSWORD_ROLE, which must authenticate with
 * scram-sha-256 (tests/harness/pg-server.ts). The password has a space, quotes, a colon and a
 * backslash: everything a .pgpass line or a careless shell would get wrong.
 */
const PASSWORD = `Corr3ct Horse:"Battery'\\${randomBytes(6).toString('hex')}`;
const WRONG = `Wr0ng-Secret-${randomBytes(6).toString('hex')}`;

const source = uniqueName('pgpw_src');
const created = [source];
let secrets: string;

interface Auth {
  label: string;
  args: string[];
  env: Record<string, string | undefined>;
}

/** Global options for the server as PASSWORD_ROLE, with no password (an Auth adds one). */
function roleArgs(): string[] {
  const s = pgServer();
  return ['--host', s.host, '--port', String(s.port), '--user', PASSWORD_ROLE];
}

/** Runs the CLI as PASSWORD_ROLE; PGPASSFILE points nowhere unless `auth` sets it, so ~/.pgpass cannot help. */
function roleCli(args: string[], auth: Auth, timeoutMs?: number): Promise<CliResult> {
  return cli([...roleArgs(), ...auth.args, ...args], {
    env: { PGPASSFILE: path.join(secrets, 'no-such-pgpass'), ...auth.env },
    timeoutMs,
  });
}

async function secretFile(name: string, content: string, mode: number): Promise<string> {
  const file = path.join(secrets, name);
  await writeFile(file, content, { mode });
  await chmod(file, mode); // writeFile's mode is filtered by the umask and ignored for an existing file
  return file;
}

/** `.pgpass` field quoting: backslash and colon are escaped with a backslash. */
function pgpassField(value: string): string {
  return value.replace(/[\\:]/g, (c) => `\\${c}`);
}

async function fingerprint(db: string): Promise<{ n: number; md5: string }> {
  const [row] = await pgQuery<{ n: number; md5: string }>(
    db,
    `SELECT count(*)::int AS n, md5(string_agg(t::text, ',' ORDER BY id)) AS md5 FROM t`,
  );
  if (!row) throw new Error(`no fingerprint for ${db}`);
  return row;
}

function expectNoSecret(r: CliResult, secret: string): void {
  expect(r.stdout).not.toContain(secret);
  expect(r.stderr).not.toContain(secret);
}

/** Connects as PASSWORD_ROLE with `password`: null when accepted, else the server's message. */
async function tryLogin(password: string): Promise<string | null> {
  const s = pgServer();
  const client = new pg.Client({
    host: s.host,
    port: s.port,
    user: PASSWORD_ROLE,
    password,
    database: source,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

// A cluster restore elsewhere would bring back (or re-password) this role from its globals: take turns.
beforeAll(() => lockPgGlobals(), 900_000);

beforeAll(async () => {
  secrets = await tempDir('dbb-e2e-pw-');
  await withPg('postgres', async (c) => {
    const exists = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [PASSWORD_ROLE]);
    const verb = exists.rowCount ? 'ALTER' : 'CREATE';
    await c.query(
      `${verb} ROLE ${pgIdent(PASSWORD_ROLE)} LOGIN CREATEDB NOSUPERUSER PASSWORD ${c.escapeLiteral(PASSWORD)}`,
    );
  });
  await createPgDatabase(source);
  await pgExec('postgres', `ALTER DATABASE ${pgIdent(source)} OWNER TO ${pgIdent(PASSWORD_ROLE)}`);
  await pgExec(
    source,
    `CREATE TABLE t (id int PRIMARY KEY, v text, note text);
     INSERT INTO t SELECT g, md5(g::text), CASE WHEN g % 7 = 0 THEN 'quote '' and : colon' END
       FROM generate_series(1, 20000) g;
     ALTER TABLE t OWNER TO ${pgIdent(PASSWORD_ROLE)};`,
  );
  // Everything below means something only if the server really checks this role's password.
  const wrong = await tryLogin(WRONG);
  if (wrong === null || !/password authentication failed/.test(wrong)) {
    throw new Error(
      `the test PostgreSQL server does not require a password for role "${PASSWORD_ROLE}" ` +
        `(a wrong password got: ${wrong ?? 'accepted'}); pg_hba.conf must start with the ` +
        `scram-sha-256 lines for it that tests/harness/pg-server.ts writes`,
    );
  }
  const right = await tryLogin(PASSWORD);
  if (right !== null) throw new Error(`role "${PASSWORD_ROLE}" cannot log in with its password: ${right}`);
});

afterAll(async () => {
  try {
    for (const db of created) await dropPgDatabase(db);
    await pgExec('postgres', `DROP ROLE IF EXISTS ${pgIdent(PASSWORD_ROLE)}`);
    if (secrets) await removeDir(secrets);
  } finally {
    await unlockPgGlobals();
  }
});

const AUTH_ERROR = new RegExp(
  `^dbbackup: error: Cannot connect to PostgreSQL at 127\\.0\\.0\\.1:\\d+ \\(database "postgres"\\) as "${PASSWORD_ROLE}": password authentication failed for user "${PASSWORD_ROLE}"$`,
  'm',
);

describe(`PostgreSQL password authentication (role ${PASSWORD_ROLE}, scram-sha-256)`, () => {
  const wrongAuths: Array<[string, () => Promise<Auth>]> = [
    [
      'a 0600 --password-file',
      async () => ({
        label: 'file',
        args: ['--password-file', await secretFile('wrong.pw', `${WRONG}\n`, 0o600)],
        env: {},
      }),
    ],
    ['PGPASSWORD', async () => ({ label: 'env', args: [], env: { PGPASSWORD: WRONG } })],
    ['--password on argv', async () => ({ label: 'argv', args: ['--password', WRONG], env: {} })],
  ];

  it.each(wrongAuths)(
    'a wrong password from %s: exit 1, one authentication error with a hint, never printed, no backup',
    async (_how, makeAuth) => {
      const auth = await makeAuth();
      const dir = await tempDir();
      try {
        const r = await roleCli(['--backup-dir', dir, 'backup', 'single', source], auth);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(AUTH_ERROR);
        expect(r.stderr).toMatch(/^hint: Check the password: --password, PGPASSWORD or ~\/\.pgpass/m);
        // The error is one line, followed by its hint: no stack trace, no dump tool chatter.
        expect(r.stderr.trim().split('\n')).toHaveLength(2);
        expect(r.stdout).toBe('');
        expectNoSecret(r, WRONG);
        expect(await listDir(dir)).toEqual([]);
      } finally {
        await removeDir(dir);
      }
    },
  );

  const rightAuths: Array<[string, () => Promise<Auth>]> = [
    [
      'a 0600 --password-file',
      async () => ({
        label: 'file',
        args: ['--password-file', await secretFile('right.pw', `${PASSWORD}\n`, 0o600)],
        env: {},
      }),
    ],
    ['PGPASSWORD', async () => ({ label: 'env', args: [], env: { PGPASSWORD: PASSWORD } })],
    [
      'a 0600 PGPASSFILE (.pgpass format)',
      async () => {
        const s = pgServer();
        const line = [s.host, String(s.port), '*', PASSWORD_ROLE, PASSWORD].map(pgpassField).join(':');
        return {
          label: 'pgpass',
          args: [],
          env: { PGPASSFILE: await secretFile('pgpass', `# test\n${line}\n`, 0o600) },
        };
      },
    ],
  ];

  it.each(rightAuths)(
    'the right password from %s: backup, verify and restore --create as that role round-trip',
    async (_how, makeAuth) => {
      const auth = await makeAuth();
      const dir = await tempDir();
      try {
        const backup = await roleCli(['--backup-dir', dir, 'backup', 'single', source], auth, 300_000);
        expectExit(backup, 0);
        expectNoSecret(backup, PASSWORD);
        const file = await onlyBackup(dir);
        for (const sidecar of (await listDir(dir)).filter((f) => f !== path.basename(file)))
          expect(await readFile(path.join(dir, sidecar), 'utf8')).not.toContain(PASSWORD);

        const verify = await cli(['verify-backup', file]);
        expectExit(verify, 0);
        expect(verify.stdout).toMatch(/^OK {2}/m);

        const target = uniqueName(`pgpw_${auth.label}`);
        created.push(target);
        const restore = await roleCli(
          ['restore', 'single', file, '--target', target, '--create', '--confirm'],
          auth,
          300_000,
        );
        expectExit(restore, 0);
        expectNoSecret(restore, PASSWORD);
        expect(await fingerprint(target)).toEqual(await fingerprint(source));
        // Created by the role itself, and the table restored under its name.
        expect(
          await pgQuery(
            'postgres',
            'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1',
            [target],
          ),
        ).toEqual([{ owner: PASSWORD_ROLE }]);
        expect(
          await pgQuery(target, `SELECT tableowner AS owner FROM pg_tables WHERE tablename = 't'`),
        ).toEqual([{ owner: PASSWORD_ROLE }]);
      } finally {
        await removeDir(dir);
      }
    },
  );

  it.each([
    ['0644 (world-readable)', 0o644],
    ['0640 (group-readable)', 0o640],
  ])('a --password-file that is %s is refused before connecting', async (_what, mode) => {
    const file = await secretFile(`loose-${mode.toString(8)}.pw`, `${PASSWORD}\n`, mode);
    const dir = await tempDir();
    try {
      const r = await roleCli(['--backup-dir', dir, 'backup', 'single', source], {
        label: 'loose',
        args: ['--password-file', file],
        env: {},
      });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`dbbackup: error: --password-file ${file} is readable by other users`);
      expect(r.stderr).toMatch(
        new RegExp(`^hint: Restrict it: chmod 600 ${file.replace(/[.]/g, '\\.')}`, 'm'),
      );
      expectNoSecret(r, PASSWORD);
      expect(await listDir(dir)).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });

  it.each([
    ['--password-file', true],
    ['--password on argv', false],
  ])('with %s, no child process of a running backup has the password in its argv', async (how, fromFile) => {
    const passwordArgs = fromFile
      ? ['--password-file', await secretFile('argv-check.pw', `${PASSWORD}\n`, 0o600)]
      : ['--password', PASSWORD];
    const dir = await tempDir();
    const env: NodeJS.ProcessEnv = { ...process.env, PGPASSFILE: path.join(secrets, 'no-such-pgpass') };
    for (const name of ['PGHOST', 'PGPORT', 'PGUSER', 'PGPASSWORD', 'PGDATABASE']) delete env[name];
    // A superuser transaction holds an exclusive lock on the table, so pg_dump (authenticated,
    // already dumping) waits on its own LOCK TABLE: its process is there to inspect, no race.
    const s = pgServer();
    const locker = new pg.Client({ host: s.host, port: s.port, user: s.user, database: source });
    locker.on('error', () => undefined);
    await locker.connect();
    let child: ReturnType<typeof spawn> | undefined;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
      child = spawn(
        process.execPath,
        [
          path.join(repoRoot, 'bin/dbbackup.js'),
          ...roleArgs(),
          ...passwordArgs,
          '--backup-dir',
          dir,
          'backup',
          'single',
          source,
        ],
        { env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (x: string) => (stderr += x));
      const exited = new Promise<number | null>((resolve) => child?.once('close', (code) => resolve(code)));
      const cliPid = child.pid ?? 0;
      await waitUntil(`pg_dump as ${PASSWORD_ROLE} to wait for its table lock (${how})`, 60_000, async () => {
        if (child?.exitCode !== null)
          throw new Error(`the backup exited early (${child?.exitCode}):\n${stderr}`);
        const rows = await pgQuery(
          'postgres',
          `SELECT 1 FROM pg_stat_activity WHERE usename = $1 AND datname = $2
               AND wait_event_type = 'Lock' AND query ILIKE 'LOCK TABLE%'`,
          [PASSWORD_ROLE, source],
        );
        return rows.length > 0 && (await childrenNamed(cliPid, 'pg_dump')).length > 0;
      });

      const pids = await descendants(cliPid);
      const cmdlines = new Map<number, string>();
      for (const pid of pids) {
        const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => null);
        if (raw !== null) cmdlines.set(pid, raw.split('\0').join(' '));
      }
      const [dumpPid] = await childrenNamed(cliPid, 'pg_dump');
      // Not vacuous: pg_dump's own command line was read while it ran.
      expect(cmdlines.get(dumpPid ?? -1)).toMatch(/pg_dump/);
      for (const [pid, cmdline] of cmdlines) {
        expect(cmdline, `argv of child ${pid} (${cmdline.slice(0, 80)})`).not.toContain(PASSWORD);
        // Nor any recognisable part of it (e.g. with quotes shell-escaped).
        expect(cmdline).not.toContain(PASSWORD.slice(-12));
      }
      if (fromFile) expect(await readFile(`/proc/${cliPid}/cmdline`, 'utf8')).not.toContain(PASSWORD);

      await locker.query('COMMIT');
      const code = await exited;
      if (code !== 0) throw new Error(`backup exited ${code}\n${stderr}`);
      child = undefined;
      await onlyBackup(dir);
      expect(stderr).not.toContain(PASSWORD);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      await locker.end().catch(() => undefined);
      if (child && child.exitCode === null) child.kill('SIGKILL');
      await removeDir(dir);
    }
  });
});

/** Every process below `root` (children, grandchildren, ...), from /proc. */
async function descendants(root: number): Promise<number[]> {
  const parentOf = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    const close = stat.lastIndexOf(')');
    parentOf.set(Number(entry), Number(stat.slice(close + 2).split(' ')[1]));
  }
  const found: number[] = [];
  let frontier = [root];
  while (frontier.length) {
    const next = [...parentOf].filter(([, ppid]) => frontier.includes(ppid)).map(([pid]) => pid);
    found.push(...next);
    frontier = next;
  }
  return found;
}
