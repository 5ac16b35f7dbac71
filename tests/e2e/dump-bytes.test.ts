import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMyDatabase, dropMyDatabase, myExec } from '../harness/mysql.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { cli, expectExit, myArgs, onlyBackup, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * Metadata records the raw dump size (`dumpBytes`) whatever compresses it — before, an external
 * compressor (the default: the zstd or pigz program) left it null, and `restore --jobs` guessed
 * ten times the stored size for its temporary copy. The free-space check for that copy happens
 * before the target database is created or dropped.
 */
const pgDb = uniqueName('pg_bytes');
const myDb = uniqueName('my_bytes');

beforeAll(async () => {
  await createPgDatabase(pgDb);
  await pgExec(
    pgDb,
    `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;`,
  );
  await createMyDatabase(myDb);
  await myExec(
    myDb,
    'CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_20000;',
  );
});

afterAll(async () => {
  await dropPgDatabase(pgDb);
  await dropMyDatabase(myDb);
});

/** The stored file decompressed by the compressor's own program, counted. */
function decompressedSize(file: string): number {
  const program = file.endsWith('.gz') ? ['pigz', '-dc'] : ['zstd', '-dcq'];
  return execFileSync(program[0] ?? '', [...program.slice(1), file], { maxBuffer: 1024 * 1024 * 1024 })
    .length;
}

async function metadata(
  file: string,
): Promise<{ dumpBytes: number | null; compression: { implementation: string } }> {
  return JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as {
    dumpBytes: number | null;
    compression: { implementation: string };
  };
}

describe('metadata dumpBytes is the exact raw dump size', () => {
  // These databases are small enough to be compressed in process by default: the programs' paths
  // are forced with DBBACKUP_IN_PROCESS_MAX_BYTES=0.
  const programs = { DBBACKUP_IN_PROCESS_MAX_BYTES: '0' };
  const cases: Array<{
    name: string;
    args: () => string[];
    env: Record<string, string>;
    inProcess: boolean;
  }> = [
    {
      name: 'PostgreSQL custom format, zstd program',
      args: () => [...pgArgs(), 'backup', 'single', pgDb],
      env: programs,
      inProcess: false,
    },
    {
      name: 'PostgreSQL plain format, pigz program',
      args: () => [...pgArgs(), '--compression-algo', 'gzip', 'backup', 'single', pgDb, '--format', 'plain'],
      env: programs,
      inProcess: false,
    },
    {
      name: 'MariaDB, zstd program',
      args: () => [...myArgs(), 'backup', 'single', myDb],
      env: programs,
      inProcess: false,
    },
    {
      name: 'PostgreSQL custom format, in-process zstd',
      args: () => [...pgArgs(), 'backup', 'single', pgDb],
      env: { DBBACKUP_NO_EXTERNAL_COMPRESSOR: '1' },
      inProcess: true,
    },
    {
      name: 'PostgreSQL custom format, a small database (in process by default)',
      args: () => [...pgArgs(), 'backup', 'single', pgDb],
      env: {},
      inProcess: true,
    },
    {
      name: 'MariaDB, a small database (in process by default)',
      args: () => [...myArgs(), 'backup', 'single', myDb],
      env: {},
      inProcess: true,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const dir = await tempDir();
      try {
        expectExit(await cli(['--backup-dir', dir, ...c.args()], { env: c.env }), 0);
        const file = await onlyBackup(dir);
        const meta = await metadata(file);
        expect(meta.compression.implementation).toMatch(c.inProcess ? /^node zlib/ : /^(zstd|pigz) /);
        expect(meta.dumpBytes).toBe(decompressedSize(file));
      } finally {
        await removeDir(dir);
      }
    });
  }
});

describe('restore --jobs: the room for the temporary copy is checked before the target is touched', () => {
  it('a workdir too small → refused with the recorded size, the existing database (--clean) untouched, nothing created (--create)', async () => {
    if (process.getuid?.() !== 0)
      throw new Error('this test mounts a small tmpfs and must run as root (CI does)');
    const dir = await tempDir();
    const workdir = await tempDir('dbb-small-workdir-');
    const fresh = uniqueName('pg_bytes_new');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', workdir]);
    try {
      expectExit(await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', pgDb]), 0);
      const file = await onlyBackup(dir);
      const { dumpBytes } = await metadata(file);
      await pgExec(pgDb, 'INSERT INTO t VALUES (0, $$after the backup$$)');
      const common = ['restore', 'single', file, '--jobs', '2', '--workdir', workdir, '--confirm'];
      const clean = await cli([...pgArgs(), ...common, '--clean']);
      expect(clean.code, clean.stderr).toBe(1);
      expect(clean.stderr).toContain(`Not enough space in ${workdir} for the temporary copy --jobs needs:`);
      expect(clean.stderr).toContain(`(${dumpBytes} bytes)`);
      expect(clean.stderr).toMatch(/^hint: Nothing was changed/m);
      // Before, the database was dropped and recreated first, then the copy failed.
      expect(await pgQuery(pgDb, 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 20001 }]);
      const create = await cli([...pgArgs(), ...common, '--target', fresh, '--create']);
      expect(create.code, create.stderr).toBe(1);
      expect(await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [fresh])).toEqual([]);
    } finally {
      execFileSync('umount', [workdir]);
      await removeDir(workdir);
      await removeDir(dir);
      await dropPgDatabase(fresh);
      await pgExec(pgDb, 'DELETE FROM t WHERE id = 0');
    }
  });
});
