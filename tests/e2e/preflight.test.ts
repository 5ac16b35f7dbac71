import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMyDatabase, dropMyDatabase, myExec } from '../harness/mysql.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { myServer, pgServer } from '../harness/servers.js';
import { cli, expectExit, listDir, myArgs, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/** The preflight command against the throwaway servers: each check must catch what it claims to. */
const pgDb = uniqueName('pg_pre');
const myDb = uniqueName('my_pre');
const pgRole = uniqueName('pre_reader');
const myUser = uniqueName('pre_user');
let dir: string;

interface Check {
  check: string;
  status: 'ok' | 'warn' | 'fail' | 'skipped';
  detail: string;
  hint?: string;
}

function pgAs(user: string): string[] {
  const s = pgServer();
  return ['--host', s.host, '--port', String(s.port), '--user', user];
}

async function preflight(
  args: string[],
): Promise<{ code: number; checks: Map<string, Check>; stderr: string }> {
  const r = await cli([...args, '--json'], { timeoutMs: 60_000 });
  const parsed = JSON.parse(r.stdout) as { ok: boolean; checks: Check[] };
  expect(parsed.ok).toBe(r.code === 0);
  return { code: r.code, checks: new Map(parsed.checks.map((c) => [c.check, c])), stderr: r.stderr };
}

beforeAll(async () => {
  dir = await tempDir('preflight');
  await createPgDatabase(pgDb);
  await pgExec(
    pgDb,
    `CREATE ROLE ${pgRole} LOGIN;
     CREATE TABLE public.open_t (id int); CREATE TABLE public.closed_t (id int);
     CREATE SEQUENCE public.closed_seq;
     GRANT SELECT ON public.open_t TO ${pgRole};`,
  );
  await createMyDatabase(myDb);
  await myExec(
    undefined,
    `CREATE USER '${myUser}'@'%' IDENTIFIED BY 'pw-${myUser}';
     CREATE USER '${myUser}'@'localhost' IDENTIFIED BY 'pw-${myUser}';
     CREATE TABLE \`${myDb}\`.t (id int);
     GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES ON \`${myDb}\`.* TO '${myUser}'@'%';
     GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES ON \`${myDb}\`.* TO '${myUser}'@'localhost'`,
  );
});

afterAll(async () => {
  await dropPgDatabase(pgDb);
  await pgExec('postgres', `DROP ROLE IF EXISTS ${pgRole}`);
  await dropMyDatabase(myDb);
  await myExec(undefined, `DROP USER IF EXISTS '${myUser}'@'%', '${myUser}'@'localhost'`);
  await removeDir(dir);
});

describe('preflight', () => {
  it('passes on a database the user can read, and leaves nothing in the backup directory', async () => {
    const target = path.join(dir, 'ok');
    const r = await cli([...pgArgs(), '--backup-dir', target, 'preflight', pgDb]);
    expectExit(r, 0);
    for (const check of [
      'connection',
      'tools',
      'compressor',
      'database',
      'privileges',
      `destination ${target}`,
    ]) {
      expect(r.stdout).toMatch(new RegExp(`^${check.replace(/[/.]/g, '\\$&')}\\s+ok\\s`, 'm'));
    }
    expect(r.stdout).toMatch(/: PostgreSQL \d+\.\d+\s*$/m);
    expect(r.stdout).toMatch(/^free space .*\s+ok\s+[\d.]+ [KMGT]iB free/m);
    // The probe object was written, read back and removed.
    expect(await listDir(target)).toEqual([]);
  });

  it('names every table and sequence the user may not read, and passes once they are granted', async () => {
    const args = [...pgAs(pgRole), '--backup-dir', dir, 'preflight', pgDb];
    const before = await preflight(args);
    expect(before.code).toBe(1);
    const privileges = before.checks.get('privileges');
    expect(privileges?.status).toBe('fail');
    expect(privileges?.detail).toContain('no SELECT on table public.closed_t');
    expect(privileges?.detail).toContain('no SELECT on sequence public.closed_seq');
    expect(privileges?.detail).not.toContain('open_t');
    expect(privileges?.hint).toContain(`Grant the missing privileges to "${pgRole}"`);
    expect(before.stderr).toContain('Preflight failed: privileges');

    await pgExec(pgDb, `GRANT SELECT ON public.closed_t, public.closed_seq TO ${pgRole}`);
    const after = await preflight(args);
    expect(after.checks.get('privileges')?.status).toBe('ok');
    expect(after.code).toBe(0);

    // pg_dump would refuse this table: row-level security hides rows from a non-owner.
    await pgExec(pgDb, 'ALTER TABLE public.open_t ENABLE ROW LEVEL SECURITY');
    const rls = await preflight(args);
    expect(rls.code).toBe(1);
    expect(rls.checks.get('privileges')?.detail).toBe(
      'row-level security on table public.open_t hides rows from this user',
    );
    await pgExec(pgDb, 'ALTER TABLE public.open_t DISABLE ROW LEVEL SECURITY');
  });

  it('warns, without failing, that a non-superuser cluster backup leaves role passwords out', async () => {
    const r = await preflight([...pgAs(pgRole), '--backup-dir', dir, 'preflight']);
    const privileges = r.checks.get('privileges');
    expect(privileges?.status).toBe('warn');
    expect(privileges?.detail).toContain(`"${pgRole}" is not a superuser`);
    expect(r.code).toBe(0);
  });

  it('a missing database and an unusable destination fail; a dead server skips what needs it', async () => {
    const file = path.join(dir, 'a-file');
    await writeFile(file, 'not a directory');
    const missing = await preflight([
      ...pgArgs(),
      '--backup-dir',
      path.join(file, 'sub'),
      'preflight',
      'no_such_db',
    ]);
    expect(missing.code).toBe(1);
    expect(missing.checks.get('database')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('"no_such_db" does not exist') as string,
    });
    expect(missing.checks.get('privileges')?.status).toBe('skipped');
    expect(missing.checks.get(`destination ${path.join(file, 'sub')}`)).toMatchObject({
      status: 'fail',
      detail: `${file} is not a directory`,
    });

    const dead = await preflight([
      '--host',
      '127.0.0.1',
      '--port',
      '1',
      '--backup-dir',
      dir,
      'preflight',
      pgDb,
    ]);
    expect(dead.code).toBe(1);
    expect(dead.checks.get('connection')?.status).toBe('fail');
    expect(dead.checks.get('connection')?.detail).toContain('127.0.0.1:1');
    expect(dead.checks.get('database')?.status).toBe('skipped');
    expect(dead.checks.get(`destination ${dir}`)?.status).toBe('ok');
  });

  it('MariaDB: a user without the EVENT privilege is told before mariadb-dump --events fails', async () => {
    const pw = path.join(dir, 'pw');
    await writeFile(pw, `pw-${myUser}`, { mode: 0o600 });
    const s = myServer();
    const args = [
      '--db-type',
      'mariadb',
      '--host',
      s.host,
      '--port',
      String(s.port),
      '--user',
      myUser,
      '--password-file',
      pw,
      '--backup-dir',
      dir,
      'preflight',
      myDb,
    ];
    const before = await preflight(args);
    expect(before.code).toBe(1);
    expect(before.checks.get('connection')?.detail).toContain('MariaDB');
    expect(before.checks.get('privileges')?.detail).toMatch(/^events cannot be listed: .*Access denied/);

    await myExec(undefined, `GRANT EVENT ON \`${myDb}\`.* TO '${myUser}'@'%', '${myUser}'@'localhost'`);
    const after = await preflight(args);
    expect(after.checks.get('privileges')?.status).toBe('ok');
    expect(after.code).toBe(0);
    // And the real backup agrees with the preflight.
    const backup = await cli([...args.slice(0, -2), 'backup', 'single', myDb]);
    expectExit(backup, 0);
  });

  it('the root user on MariaDB passes', async () => {
    const r = await cli([...myArgs(), '--backup-dir', dir, 'preflight', myDb]);
    expectExit(r, 0);
  });
});
