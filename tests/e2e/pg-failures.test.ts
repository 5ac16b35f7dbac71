import { execFileSync, spawn } from 'node:child_process';
import { open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/cli.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { childrenNamed, waitUntil } from './proc-util.js';
import {
  copyBackup,
  cli,
  expectExit,
  listDir,
  onlyBackup,
  pgArgs,
  removeDir,
  tempDir,
  uniqueName,
} from './util.js';

const small = uniqueName('pg_small');
const large = uniqueName('pg_large');
const created = [small, large];
let goodDir: string;
let good: string;

beforeAll(async () => {
  await createPgDatabase(small);
  await pgExec(
    small,
    `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g;`,
  );
  await createPgDatabase(large);
  // Random text compresses poorly: ~60 MB of dump, enough to interrupt mid-stream and to overflow a small disk.
  await pgExec(
    large,
    `CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 800000) g;`,
  );
  goodDir = await tempDir();
  expectExit(await cli([...pgArgs(), '--backup-dir', goodDir, 'backup', 'single', small]), 0);
  good = await onlyBackup(goodDir);
});

afterAll(async () => {
  for (const db of created) await dropPgDatabase(db);
  await removeDir(goodDir);
});

async function databaseExists(name: string): Promise<boolean> {
  return (await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0;
}

describe('PostgreSQL failures leave nothing that looks like a backup', () => {
  it('a nonexistent database: clear error, exit 2, empty backup dir', async () => {
    const dir = await tempDir();
    try {
      const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', 'no_such_db_xyz']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^dbbackup: error: Database "no_such_db_xyz" does not exist/m);
      expect(r.stderr).toMatch(/^hint: /m);
      expect(await listDir(dir)).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });

  it('an unreachable server: one-line error naming the endpoint, with a hint', async () => {
    const dir = await tempDir();
    try {
      const r = await cli([
        '--host',
        '127.0.0.1',
        '--port',
        '1',
        '--user',
        'postgres',
        '--backup-dir',
        dir,
        'backup',
        'single',
        small,
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('Cannot connect to PostgreSQL at 127.0.0.1:1');
      expect(r.stderr).toMatch(/^hint: .*server running/m);
      expect(await listDir(dir)).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });

  it('the dump process killed mid-stream: the backup fails and no file remains', async () => {
    const dir = await tempDir();
    try {
      const child = spawn(
        process.execPath,
        [path.join(repoRoot, 'bin/dbbackup.js'), ...pgArgs(), '--backup-dir', dir, 'backup', 'single', large],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      let victim = 0;
      await waitUntil('pg_dump to be streaming into a temporary file', 60_000, async () => {
        const names = await listDir(dir);
        const temp = names.find((n) => n.startsWith('.dbbackup-tmp-'));
        if (!temp) return false;
        const size = (await stat(path.join(dir, temp)).catch(() => undefined))?.size ?? 0;
        const [pid] = await childrenNamed(child.pid ?? 0, 'pg_dump');
        victim = pid ?? 0;
        return size > 0 && victim > 0;
      });
      process.kill(victim, 'SIGKILL');
      expect(await exited).toBe(1);
      expect(stderr).toContain('pg_dump was killed by SIGKILL');
      expect(await listDir(dir)).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });

  it('Ctrl-C (SIGINT) mid-stream: exit 130, children stopped, nothing kept', async () => {
    const dir = await tempDir();
    try {
      const child = spawn(
        process.execPath,
        [path.join(repoRoot, 'bin/dbbackup.js'), ...pgArgs(), '--backup-dir', dir, 'backup', 'single', large],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
      await waitUntil('a temporary file with data', 60_000, async () => {
        const temp = (await listDir(dir)).find((n) => n.startsWith('.dbbackup-tmp-'));
        return temp ? ((await stat(path.join(dir, temp)).catch(() => undefined))?.size ?? 0) > 0 : false;
      });
      child.kill('SIGINT');
      expect(await exited).toBe(130);
      expect(await listDir(dir)).toEqual([]);
      expect(await childrenNamed(child.pid ?? 0, 'pg_dump')).toEqual([]);
    } finally {
      await removeDir(dir);
    }
  });

  it('a full disk: the error says so and no partial file is left', async () => {
    if (process.getuid?.() !== 0)
      throw new Error('this test mounts a small tmpfs and must run as root (CI does)');
    const dir = await tempDir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', dir]);
    try {
      const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', large]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ENOSPC|no space left/i);
      expect(r.stderr).toMatch(/^hint: The disk is full/m);
      expect(await listDir(dir)).toEqual([]);
    } finally {
      execFileSync('umount', [dir]);
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
      expect(verify.stdout).toMatch(/^FAIL .*checksum mismatch/m);
      // Same size, so the quick check cannot see it; the full check is the default for a reason.
      expectExit(await cli(['verify-backup', '--quick', file]), 0);

      const target = uniqueName('pg_flip');
      created.push(target);
      const restore = await cli([
        ...pgArgs(),
        'restore',
        'single',
        file,
        '--target',
        target,
        '--create',
        '--confirm',
      ]);
      expect(restore.code).toBe(1);
      expect(restore.stderr).toContain('Checksum mismatch');
      expect(restore.stderr).toContain('Nothing was changed');
      expect(await databaseExists(target)).toBe(false);
    } finally {
      await removeDir(dir);
    }
  });

  it('verify-backup with a quoted glob: one line per match, exit 1 naming the damaged one; --json; no match is exit 2', async () => {
    const { dir, file } = await copyBackup(good);
    try {
      expectExit(
        await cli([
          ...pgArgs(),
          '--backup-dir',
          dir,
          '--compression-algo',
          'gzip',
          'backup',
          'single',
          small,
        ]),
        0,
      );
      const bytes = await readFile(file);
      bytes[100] = (bytes[100] ?? 0) ^ 0xff;
      await writeFile(file, bytes);

      // dbbackup expands the pattern itself (quoted, the shell does not): only data files, no sidecars.
      const r = await cli(['verify-backup', path.join(dir, `${small}_*`)]);
      expect(r.code).toBe(1);
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines).toContainEqual(
        expect.stringMatching(new RegExp(`^FAIL .*${path.basename(file)}.*checksum mismatch`)),
      );
      expect(lines).toContainEqual(expect.stringMatching(/^OK .*\.dump\.gz .*matches$/));
      expect(r.stderr).toContain('1 of 2 backups failed verification');

      const json = await cli(['verify-backup', path.join(dir, '*.gz'), '--json']);
      expectExit(json, 0);
      const parsed = JSON.parse(json.stdout) as { results: Array<{ state: string; key: string }> };
      expect(parsed.results.map((x) => x.state)).toEqual(['valid']);

      const none = await cli(['verify-backup', path.join(dir, 'nothing*')]);
      expect(none.code).toBe(2);
      expect(none.stderr).toContain('No backups match');
      expect(none.stderr).toMatch(/^hint: .*quote globs/m);

      // A path with nothing there (not even a sidecar) is a typo, not an "incomplete" backup.
      const typo = await cli(['verify-backup', path.join(dir, 'shop_2026.dump.zst')]);
      expect(typo.code).toBe(2);
      expect(typo.stderr).toMatch(/^dbbackup: error: No backup at .*shop_2026\.dump\.zst$/m);
    } finally {
      await removeDir(dir);
    }
  });

  it('a truncated file: verify reports the size mismatch, list shows it corrupt', async () => {
    const { dir, file } = await copyBackup(good);
    try {
      const data = await readFile(file);
      await writeFile(file, data.subarray(0, data.length - 100));
      const verify = await cli(['verify-backup', '--quick', file]);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain('size mismatch');
      const list = await cli(['--backup-dir', dir, 'list', 'backups', '--json']);
      expectExit(list, 0);
      const entries = (JSON.parse(list.stdout) as { backups: Array<{ key: string; state: string }> }).backups;
      expect(entries).toEqual([expect.objectContaining({ key: path.basename(file), state: 'corrupt' })]);
    } finally {
      await removeDir(dir);
    }
  });

  it('missing metadata: incomplete, not valid; restore refuses without --force', async () => {
    const { dir, file } = await copyBackup(good);
    try {
      await rm(`${file}.meta.json`);
      const verify = await cli(['verify-backup', file]);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toMatch(/FAIL .*incomplete: no metadata/);
      const list = await cli(['--backup-dir', dir, 'list', 'backups']);
      expect(list.stdout).toMatch(/incomplete: no metadata/);
      expect(list.stdout).not.toMatch(/\svalid\s*$/m);

      const target = uniqueName('pg_nometa');
      created.push(target);
      const refused = await cli([
        ...pgArgs(),
        'restore',
        'single',
        file,
        '--target',
        target,
        '--create',
        '--confirm',
      ]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('has no metadata');
      expect(refused.stderr).toContain('--force');
      expect(await databaseExists(target)).toBe(false);
      // With --force the dump itself is fine and restores.
      expectExit(
        await cli([
          ...pgArgs(),
          'restore',
          'single',
          file,
          '--target',
          target,
          '--create',
          '--confirm',
          '--force',
        ]),
        0,
      );
      expect(await pgQuery(target, 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 5000 }]);
    } finally {
      await removeDir(dir);
    }
  });

  it('an archive from a newer pg_dump: the error names both versions before anything changes', async () => {
    const dir = await tempDir();
    try {
      expectExit(
        await cli([...pgArgs(), '--backup-dir', dir, '--compression', '0', 'backup', 'single', small]),
        0,
      );
      const file = await onlyBackup(dir);
      const data = await readFile(file);
      // The header ends with the server's and pg_dump's version strings ("15.20 (Debian …)"); make pg_dump's 99.
      const header = data.subarray(0, 300).toString('latin1');
      const starts = [...header.matchAll(/(\d+)\.\d+ \(/g)].map((x) => x.index);
      const last = starts[starts.length - 1];
      if (starts.length < 2 || last === undefined)
        throw new Error(`unexpected header: ${JSON.stringify(header)}`);
      data.write('99', last, 'latin1');
      await writeFile(file, data);
      const target = uniqueName('pg_newer');
      created.push(target);
      const r = await cli([
        ...pgArgs(),
        'restore',
        'single',
        file,
        '--target',
        target,
        '--create',
        '--confirm',
        '--force',
      ]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/written by pg_dump 99\.\d+, but the local pg_restore is \d+\.\d+/);
      expect(await databaseExists(target)).toBe(false);
    } finally {
      await removeDir(dir);
    }
  });
});
