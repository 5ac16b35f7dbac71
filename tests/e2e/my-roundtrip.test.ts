import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMyFidelity } from '../harness/fixtures.js';
import { createMyDatabase, dropMyDatabase, myExec, myQuery } from '../harness/mysql.js';
import { mySnapshot, type MySnapshot } from '../harness/my-snapshot.js';
import { myServer } from '../harness/servers.js';
import {
  cli,
  expectExit,
  myArgs,
  onlyBackup,
  removeDir,
  sha256File,
  tempDir,
  uniqueName,
  listDir,
} from './util.js';

const source = uniqueName('my_src');
const created: string[] = [source];
let before: MySnapshot;

beforeAll(async () => {
  await createMyDatabase(source);
  await loadMyFidelity(source);
  before = await mySnapshot(source);
});

afterAll(async () => {
  for (const db of created) await dropMyDatabase(db);
  await myExec(undefined, `DROP USER IF EXISTS 'dbb_pw'@'%'`);
  await myExec(undefined, `DROP USER IF EXISTS 'dbb_cnf'@'%'`);
});

describe('MariaDB backup → verify → restore', () => {
  it('round-trips tables (InnoDB and MyISAM), routines, triggers, events and views', async () => {
    const dir = await tempDir();
    try {
      const r = await cli([...myArgs(), '--backup-dir', dir, 'backup', 'single', source]);
      expectExit(r, 0);
      const file = await onlyBackup(dir);
      expect(file).toMatch(/\.sql\.zst$/);
      const meta = JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as Record<string, unknown>;
      expect(meta).toMatchObject({ engine: 'mariadb', database: source, format: 'plain' });
      expect(meta.sha256).toBe(await sha256File(file));
      expectExit(await cli(['verify-backup', file]), 0);

      const target = uniqueName('my_dst');
      created.push(target);
      // No --db-type: the engine comes from the backup's content.
      const restore = await cli([
        ...myArgs().slice(2),
        'restore',
        'single',
        file,
        '--target',
        target,
        '--create',
        '--confirm',
      ]);
      expectExit(restore, 0);
      const after = await mySnapshot(target);
      expect(after).toEqual(before);
    } finally {
      await removeDir(dir);
    }
  });

  it('gzip and uncompressed backups restore too, and --clean replaces a non-empty target', async () => {
    for (const compression of [
      ['--compression-algo', 'gzip'],
      ['--compression', '0'],
    ]) {
      const dir = await tempDir();
      try {
        expectExit(
          await cli([...myArgs(), '--backup-dir', dir, ...compression, 'backup', 'single', source]),
          0,
        );
        const file = await onlyBackup(dir);
        const target = uniqueName('my_c');
        created.push(target);
        await createMyDatabase(target);
        await myExec(target, 'CREATE TABLE leftover (id int)');
        const refused = await cli([...myArgs(), 'restore', 'single', file, '--target', target, '--confirm']);
        expect(refused.code).toBe(1);
        expect(refused.stderr).toContain('already exists and is not empty');
        expectExit(
          await cli([...myArgs(), 'restore', 'single', file, '--target', target, '--clean', '--confirm']),
          0,
        );
        expect(
          await myQuery(
            target,
            `SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = ? AND table_name = 'leftover'`,
            [target],
          ),
        ).toEqual([{ n: '0' }]);
        const after = await mySnapshot(target);
        expect(after).toEqual(before);
      } finally {
        await removeDir(dir);
      }
    }
  });

  it('a wrong password fails clearly and is never printed; the right one from a 0600 file works', async () => {
    await myExec(
      undefined,
      `CREATE USER 'dbb_pw'@'%' IDENTIFIED BY 'Corr3ct-Horse"Battery'; GRANT ALL ON *.* TO 'dbb_pw'@'%'`,
    );
    const dir = await tempDir();
    try {
      const args = myArgs().map((a) => (a === 'root' ? 'dbb_pw' : a));
      const wrong = await cli([
        ...args,
        '--password',
        'Wr0ng-Secret-Value',
        '--backup-dir',
        dir,
        'backup',
        'single',
        source,
      ]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toContain('Access denied');
      expect(wrong.stderr + wrong.stdout).not.toContain('Wr0ng-Secret-Value');
      expect(await listDir(dir)).toEqual([]);

      const pwFile = `${dir}.pw`;
      const { writeFile, chmod, rm } = await import('node:fs/promises');
      await writeFile(pwFile, 'Corr3ct-Horse"Battery\n', { mode: 0o644 });
      const loose = await cli([
        ...args,
        '--password-file',
        pwFile,
        '--backup-dir',
        dir,
        'backup',
        'single',
        source,
      ]);
      expect(loose.code).toBe(2);
      expect(loose.stderr).toContain('readable by other users');
      await chmod(pwFile, 0o600);
      const ok = await cli([
        ...args,
        '--password-file',
        pwFile,
        '--backup-dir',
        dir,
        'backup',
        'single',
        source,
      ]);
      expectExit(ok, 0);
      const file = await onlyBackup(dir);
      expect(await readFile(`${file}.meta.json`, 'utf8')).not.toContain('Corr3ct-Horse');
      await rm(pwFile);
    } finally {
      await removeDir(dir);
    }
  });

  it('reads host, port, user and password from ~/.my.cnf [client], as the mysql client does', async () => {
    const password = 'Cnf #pass; "quoted"';
    await myExec(
      undefined,
      `CREATE USER 'dbb_cnf'@'%' IDENTIFIED BY 'Cnf #pass; "quoted"'; GRANT ALL ON *.* TO 'dbb_cnf'@'%'`,
    );
    const home = await tempDir('dbb-e2e-home-');
    const dir = await tempDir();
    try {
      const s = myServer();
      // Double quotes let the value hold '#' and ';'; inner double quotes are escaped.
      await writeFile(
        path.join(home, '.my.cnf'),
        `[client]\nhost=${s.host}\nport=${s.port}\nuser=dbb_cnf\npassword="${password.replaceAll('"', '\\"')}"\n`,
        { mode: 0o600 },
      );
      const env = { HOME: home, USER: 'nobody-here' };
      const status = await cli(['--db-type', 'mariadb', 'status'], { env });
      expectExit(status, 0);
      expect(status.stdout).toContain(`${s.host}:${s.port} as dbb_cnf`);

      // No connection flags at all: the option file supplies them, to the driver and to mariadb-dump.
      const r = await cli(['--db-type', 'mariadb', '--backup-dir', dir, 'backup', 'single', source], { env });
      expectExit(r, 0);
      expect(r.stdout + r.stderr).not.toContain(password);
      const file = await onlyBackup(dir);
      const meta = JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as { connection: unknown };
      expect(meta.connection).toMatchObject({ user: 'dbb_cnf', port: s.port });
      expect(await readFile(`${file}.meta.json`, 'utf8')).not.toContain('Cnf #pass');

      const target = uniqueName('my_cnf');
      created.push(target);
      expectExit(
        await cli(['restore', 'single', file, '--target', target, '--create', '--confirm'], { env }),
        0,
      );
      expect(await mySnapshot(target)).toEqual(before);
    } finally {
      await removeDir(dir);
      await removeDir(home);
    }
  });
});
