import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/cli.js';
import { createMyDatabase, dropMyDatabase, myExec, myQuery } from '../harness/mysql.js';
import { childrenNamed, waitUntil } from './proc-util.js';
import {
  cli,
  expectExit,
  listDir,
  listJson,
  myArgs,
  onlyBackup,
  removeDir,
  tempDir,
  uniqueName,
  copyBackup,
} from './util.js';

const small = uniqueName('my_small');
const large = uniqueName('my_large');
const created = [small, large];
let goodDir: string;
let good: string;

beforeAll(async () => {
  await createMyDatabase(small);
  await myExec(
    small,
    `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT seq, md5(seq) FROM seq_1_to_5000;`,
  );
  await createMyDatabase(large);
  // Random hex compresses poorly: ~60 MB of dump, enough to interrupt mid-stream.
  await myExec(
    large,
    `CREATE TABLE t (id int, v text); INSERT INTO t SELECT seq, concat(md5(rand()), md5(rand())) FROM seq_1_to_800000;`,
  );
  goodDir = await tempDir();
  expectExit(await cli([...myArgs(), '--backup-dir', goodDir, 'backup', 'single', small]), 0);
  good = await onlyBackup(goodDir);
});

afterAll(async () => {
  for (const db of created) await dropMyDatabase(db);
  await removeDir(goodDir);
});

async function databaseExists(name: string): Promise<boolean> {
  return (
    (await myQuery(undefined, 'SELECT 1 FROM information_schema.schemata WHERE schema_name = ?', [name]))
      .length > 0
  );
}

/** A fresh target name, dropped after the run whatever happens. */
function targetName(prefix: string): string {
  const name = uniqueName(prefix);
  created.push(name);
  return name;
}

/** `restore single <file> --target <target> --create --confirm …extra` against the throwaway server. */
function restoreInto(file: string, target: string, ...extra: string[]) {
  return cli([...myArgs(), 'restore', 'single', file, '--target', target, '--create', '--confirm', ...extra]);
}

/** Rewrites the sidecars so they describe the file as it is now (size and SHA-256). */
async function resealSidecars(file: string): Promise<void> {
  const data = await readFile(file);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const meta = JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as Record<string, unknown>;
  expect(meta).toHaveProperty('sha256');
  expect(meta).toHaveProperty('sizeBytes');
  await writeFile(`${file}.meta.json`, JSON.stringify({ ...meta, sha256, sizeBytes: data.length }, null, 2));
  await writeFile(`${file}.sha256`, `${sha256}  ${path.basename(file)}\n`);
}

describe('MariaDB failures leave nothing that looks like a backup', () => {
  it('a nonexistent database: clear error naming it, exit 2, empty backup dir', async () => {
    const dir = await tempDir();
    try {
      const r = await cli([...myArgs(), '--backup-dir', dir, 'backup', 'single', 'no_such_db_xyz']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^dbbackup: error: Database "no_such_db_xyz" does not exist/m);
      expect(r.stderr).toMatch(/^hint: .*dbbackup list/m);
      expect(await listDir(dir)).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });

  it('an unreachable server: one-line error naming the endpoint, with a hint', async () => {
    const dir = await tempDir();
    try {
      const r = await cli([
        '--db-type',
        'mariadb',
        '--host',
        '127.0.0.1',
        '--port',
        '1',
        '--user',
        'root',
        '--backup-dir',
        dir,
        'backup',
        'single',
        small,
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /^dbbackup: error: Cannot connect to MariaDB at 127\.0\.0\.1:1 as "root": .*$/m,
      );
      expect(r.stderr).toMatch(/^hint: .*server running/m);
      // One error line and its hint, not a stack trace.
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(await listDir(dir)).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });

  it('mariadb-dump killed mid-stream: the backup fails and no file remains', async () => {
    const dir = await tempDir();
    try {
      const child = spawn(
        process.execPath,
        [path.join(repoRoot, 'bin/dbbackup.js'), ...myArgs(), '--backup-dir', dir, 'backup', 'single', large],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      let victim = 0;
      await waitUntil('mariadb-dump to be streaming into a temporary file', 60_000, async () => {
        const temp = (await listDir(dir)).find((n) => n.startsWith('.dbbackup-tmp-'));
        if (!temp) return false;
        const size = (await stat(path.join(dir, temp)).catch(() => undefined))?.size ?? 0;
        const [pid] = await childrenNamed(child.pid ?? 0, 'mariadb-dump');
        victim = pid ?? 0;
        return size > 0 && victim > 0;
      });
      process.kill(victim, 'SIGKILL');
      expect(await exited).toBe(1);
      expect(stderr).toMatch(/^dbbackup: error: .*mariadb-dump was killed by SIGKILL/m);
      expect(stderr).toMatch(/^hint: .*nothing was kept/m);
      expect(await listDir(dir)).toEqual([]);
      expect(await listJson(['--backup-dir', dir])).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });

  it('a flipped byte: verify fails, restore refuses before touching the target', async () => {
    const { dir, file } = await copyBackup(good);
    try {
      const fh = await open(file, 'r+');
      const size = (await fh.stat()).size;
      const buf = Buffer.alloc(1);
      await fh.read(buf, 0, 1, Math.floor(size / 2));
      buf[0] = (buf[0] ?? 0) ^ 0x01;
      await fh.write(buf, 0, 1, Math.floor(size / 2));
      await fh.close();

      const verify = await cli(['verify-backup', file]);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toMatch(/^FAIL .*corrupt: checksum mismatch/m);
      // Same size, so the quick check cannot see it; the full check is the default for a reason.
      expectExit(await cli(['verify-backup', '--quick', file]), 0);

      const target = targetName('my_flip');
      const restore = await restoreInto(file, target);
      expect(restore.code).toBe(1);
      expect(restore.stderr).toContain('Checksum mismatch');
      expect(restore.stderr).toContain('Nothing was changed');
      expect(await databaseExists(target)).toBe(false);
    } finally {
      await removeDir(dir);
    }
  });

  it('a file cut in half: verify reports the size mismatch, list shows it corrupt, restore refuses', async () => {
    const { dir, file } = await copyBackup(good);
    try {
      const data = await readFile(file);
      await writeFile(file, data.subarray(0, Math.floor(data.length / 2)));
      const verify = await cli(['verify-backup', file]);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toMatch(/^FAIL .*corrupt: size mismatch: expected \d+ bytes, found \d+/m);
      expect(await listJson(['--backup-dir', dir])).toEqual([
        expect.objectContaining({ key: path.basename(file), state: 'corrupt' }),
      ]);

      const target = targetName('my_cut');
      const restore = await restoreInto(file, target);
      expect(restore.code).toBe(1);
      expect(restore.stderr).toMatch(/^dbbackup: error: /m);
      expect(restore.stderr).toContain('Nothing was changed');
      expect(await databaseExists(target)).toBe(false);
    } finally {
      await removeDir(dir);
    }
  });

  it('a truncated dump whose sidecars match it: only --deep sees the missing trailer', async () => {
    for (const compression of [
      ['--compression', '0'],
      ['--compression-algo', 'gzip'],
    ]) {
      const dir = await tempDir();
      try {
        expectExit(
          await cli([...myArgs(), '--backup-dir', dir, ...compression, 'backup', 'single', small]),
          0,
        );
        const file = await onlyBackup(dir);
        expectExit(await cli(['verify-backup', '--deep', file]), 0);
        const gzip = file.endsWith('.gz');
        const sql = gzip ? gunzipSync(await readFile(file)) : await readFile(file);
        expect(sql.toString('utf8')).toMatch(/-- Dump completed/);
        const cut = sql.subarray(0, Math.floor(sql.length / 2));
        await writeFile(file, gzip ? gzipSync(cut) : cut);
        await resealSidecars(file);

        // Size and checksum agree with the damaged file: the cheap checks cannot tell.
        expectExit(await cli(['verify-backup', file]), 0);
        const deep = await cli(['verify-backup', '--deep', file]);
        expect(deep.code).toBe(1);
        expect(deep.stdout).toMatch(
          /^FAIL .*corrupt: the dump does not end with its completion trailer \("-- Dump completed"\): it is incomplete/m,
        );
        // The stored bytes are as they were written, so the message blames the backup, not later damage.
        expect(deep.stdout).toContain('the stored bytes match their checksum');
      } finally {
        await removeDir(dir);
      }
    }
  });

  it('a dump without metadata cut between statements: restore --force fails on the missing trailer and drops the database', async () => {
    // Nothing vouches for a dump without dbbackup metadata: the trailer is checked as it streams in,
    // through an external decompressor, the in-process one, or none.
    const cases: Array<{ args: string[]; env?: Record<string, string> }> = [
      { args: ['--compression', '0'] },
      { args: ['--compression-algo', 'gzip'] },
      { args: ['--compression-algo', 'gzip'], env: { DBBACKUP_NO_EXTERNAL_COMPRESSOR: '1' } },
    ];
    for (const { args, env } of cases) {
      const dir = await tempDir();
      try {
        expectExit(await cli([...myArgs(), '--backup-dir', dir, ...args, 'backup', 'single', small]), 0);
        const file = await onlyBackup(dir);
        const gzip = file.endsWith('.gz');
        const sql = gzip ? gunzipSync(await readFile(file)) : await readFile(file);
        // Every statement before the rows is whole, so the client itself sees nothing wrong.
        const cut = sql.subarray(0, sql.indexOf('INSERT INTO'));
        expect(cut.length).toBeGreaterThan(0);
        await writeFile(file, gzip ? gzipSync(cut) : cut);
        await rm(`${file}.meta.json`);
        await rm(`${file}.sha256`);

        const target = targetName('my_cut');
        const plan = await cli([
          ...myArgs(),
          'restore',
          'single',
          file,
          '--target',
          target,
          '--create',
          '--force',
        ]);
        expectExit(plan, 0);
        expect(plan.stdout).toContain('check that the dump ends with "-- Dump completed"');
        const r = await cli(
          [...myArgs(), 'restore', 'single', file, '--target', target, '--create', '--force', '--confirm'],
          {
            env,
          },
        );
        expect(r.code, r.stderr).toBe(1);
        expect(r.stderr).toMatch(
          /^dbbackup: error: The dump does not end with its completion trailer \("-- Dump completed"\): it is incomplete/m,
        );
        expect(r.stderr).toContain(`The partially restored database "${target}" was dropped.`);
        expect(r.stdout).not.toContain('Restore complete');
        expect(await databaseExists(target)).toBe(false);
      } finally {
        await removeDir(dir);
      }
    }
  });

  it('restore over an existing, non-empty database without --clean: refused, the table stays', async () => {
    const target = targetName('my_busy');
    await createMyDatabase(target);
    await myExec(target, 'CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (1), (2), (3)');
    const r = await cli([...myArgs(), 'restore', 'single', good, '--target', target, '--confirm']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^dbbackup: error: Target database "${target}" already exists and is not empty`, 'm'),
    );
    expect(r.stderr).toMatch(/^hint: .*--clean/m);
    expect(await myQuery(target, 'SELECT COUNT(*) AS n FROM keep_me')).toEqual([{ n: '3' }]);
    expect(
      await myQuery(
        undefined,
        'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ?',
        [target],
      ),
    ).toEqual([{ name: 'keep_me' }]);
  });

  it('restore without --confirm: prints the plan, changes nothing', async () => {
    const target = targetName('my_dry');
    const r = await cli([...myArgs(), 'restore', 'single', good, '--target', target, '--create']);
    expectExit(r, 0);
    expect(r.stdout).toContain(`database "${target}"`);
    expect(r.stdout).toContain('does not exist');
    expect(r.stdout).toMatch(/^Dry run: nothing was changed\. Add --confirm to restore\.$/m);
    expect(await databaseExists(target)).toBe(false);
  });

  it('missing metadata: incomplete, not valid; restore refuses without --force', async () => {
    const { dir, file } = await copyBackup(good);
    try {
      await rm(`${file}.meta.json`);
      const verify = await cli(['verify-backup', file]);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toMatch(/FAIL .*incomplete: no metadata/);
      const list = await cli(['--backup-dir', dir, 'list', 'backups']);
      expectExit(list, 0);
      expect(list.stdout).toMatch(/incomplete: no metadata/);
      expect(list.stdout).not.toMatch(/\svalid\s*$/m);
      expect(await listJson(['--backup-dir', dir])).toEqual([
        expect.objectContaining({ key: path.basename(file), state: 'incomplete' }),
      ]);

      const target = targetName('my_nometa');
      const refused = await restoreInto(file, target);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('has no metadata');
      expect(refused.stderr).toMatch(/^hint: .*--force/m);
      expect(await databaseExists(target)).toBe(false);
      // With --force the dump itself is fine and restores.
      expectExit(await restoreInto(file, target, '--force'), 0);
      expect(await myQuery(target, 'SELECT COUNT(*) AS n FROM t')).toEqual([{ n: '5000' }]);
    } finally {
      await removeDir(dir);
    }
  });
});
