import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropMyDatabase, myConnect, myExec, myIdent, myQuery } from '../harness/mysql.js';
import { dropPgDatabase, pgExec, pgIdent } from '../harness/pg.js';
import { childrenNamed, isAlive, waitFor } from '../harness/proc.js';
import { cli, expectExit, myArgs, pgArgs, removeDir, tempDir, uniqueName } from '../e2e/util.js';
import { holdPgExtension, pgDumpWaiting, start, treeOf } from './invariants.js';

/**
 * Faults injected into `backup cluster`. Each case holds the dump of the first database (in name
 * order, one at a time) at a known point with a lock, injects its fault while the backup waits
 * there, then lets it go on:
 * - PostgreSQL: a transaction in that database holds pg_extension exclusively; pg_dump reads it
 *   early, and so does the session recording facts for restore drills: both wait (a failed or
 *   interrupted run must not wait for its facts);
 * - MariaDB: LOCK TABLES … WRITE on its table, which the backup's first read of it waits for.
 */

interface ManifestJson {
  status: string;
  databases: Array<{ database: string; status: string }>;
  dropped?: Array<{ database: string; reason: string }>;
}

async function manifestOf(dir: string): Promise<{ name: string; manifest: ManifestJson }> {
  const clusters = (await readdir(dir)).filter((e) => e.startsWith('cluster_'));
  expect(clusters).toHaveLength(1);
  const name = clusters[0] ?? '';
  return {
    name,
    manifest: JSON.parse(await readFile(path.join(dir, name, 'manifest.json'), 'utf8')) as ManifestJson,
  };
}

describe('backup cluster (PostgreSQL)', () => {
  const P = uniqueName('fcb');
  const db = { a: `${P}_a`, b: `${P}_b`, c: `${P}_c` };
  const include = ['--include-database', `${P}_*`, '--cluster-parallelism', '1'];

  beforeAll(async () => {
    for (const name of Object.values(db)) {
      await pgExec('postgres', `CREATE DATABASE ${pgIdent(name)} TEMPLATE template0`);
      await pgExec(name, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)');
    }
  });

  afterAll(async () => {
    for (const name of Object.values(db)) await dropPgDatabase(name);
  });

  it('backup cluster: a database dropped after the listing → backup succeeds, manifest records it as dropped during backup', async () => {
    const dir = await tempDir('dbb-fault-cluster-');
    const victim = `${P}_c_dropped`;
    await pgExec('postgres', `CREATE DATABASE ${pgIdent(victim)} TEMPLATE template0`);
    const lock = await holdPgExtension(db.a);
    try {
      const run = start([...pgArgs(), '--backup-dir', dir, 'backup', 'cluster', ...include, '--progress']);
      await pgDumpWaiting(db.a);
      // The backup listed every database already; the last one goes before its turn comes.
      await dropPgDatabase(victim);
      await lock.release();
      const code = await run.exited;
      const { stdout, stderr } = run.output();
      expectExit({ code, stdout, stderr }, 0);
      expect(stderr).toContain(
        `warning: database "${victim}" was dropped during backup: it is not in this backup`,
      );
      expect(stderr).toContain(`cluster backup: ${victim}: skipped: dropped during backup`);
      expect(stdout).toMatch(/^Cluster backup complete: .* \(3 of 3 databases; 1 dropped during backup, /m);
      const { name, manifest } = await manifestOf(dir);
      expect(manifest.status).toBe('complete');
      expect(manifest.databases.map((m) => [m.database, m.status])).toEqual(
        Object.values(db).map((d) => [d, 'ok']),
      );
      expect(manifest.dropped).toEqual([{ database: victim, reason: 'dropped during backup' }]);
      const verify = await cli(['verify-backup', path.join(dir, name)]);
      expectExit(verify, 0);
      // Restores say it is not there, instead of a bare "not in the backup".
      const plan = await cli([
        ...pgArgs(),
        'restore',
        'cluster',
        path.join(dir, name),
        '--clean-cluster',
        ...include.slice(0, 2),
      ]);
      expectExit(plan, 0);
      expect(plan.stdout).toContain(
        `Warning: ${victim} was dropped while the backup ran: not in this backup`,
      );
      const single = await cli([
        ...pgArgs(),
        'restore',
        'single',
        '--from-cluster',
        path.join(dir, name),
        '--database',
        victim,
        '--target',
        `${victim}_copy`,
        '--create',
      ]);
      expect(single.code).toBe(2);
      expect(single.stderr).toContain(
        `Database "${victim}" is not in ${name} (it was dropped while the backup ran)`,
      );
    } finally {
      await lock.release();
      await dropPgDatabase(victim);
      await removeDir(dir);
    }
  });

  it("backup cluster: a member's pg_dump killed → exit 1 naming the database, no cluster_ directory left", async () => {
    const dir = await tempDir('dbb-fault-cluster-');
    const lock = await holdPgExtension(db.a);
    try {
      const run = start([...pgArgs(), '--backup-dir', dir, 'backup', 'cluster', ...include]);
      await pgDumpWaiting(db.a);
      const [dump] = await childrenNamed(run.child.pid ?? 0, 'pg_dump');
      expect(dump).toBeGreaterThan(0);
      process.kill(dump ?? 0, 'SIGKILL');
      const code = await run.exited;
      const { stderr } = run.output();
      // The database still exists: a real failure, which fails the whole backup as before.
      expect(code).toBe(1);
      expect(stderr).toContain(`database "${db.a}" could not be dumped`);
      expect(stderr).not.toMatch(/dropped during backup/);
      expect(await treeOf(dir)).toEqual([]);
    } finally {
      await lock.release();
      await removeDir(dir);
    }
  });

  it('backup cluster: SIGTERM mid-dump → exit 130, pg_dump and compressor stopped, no cluster_ directory left', async () => {
    const dir = await tempDir('dbb-fault-cluster-');
    const lock = await holdPgExtension(db.a);
    try {
      const run = start([...pgArgs(), '--backup-dir', dir, 'backup', 'cluster', ...include]);
      await pgDumpWaiting(db.a);
      const pid = run.child.pid ?? 0;
      const children = [...(await childrenNamed(pid, 'pg_dump')), ...(await childrenNamed(pid, 'zstd'))];
      expect(children.length).toBeGreaterThan(0);
      expect((await readdir(dir)).filter((e) => e.startsWith('cluster_'))).toHaveLength(1);
      run.child.kill('SIGTERM');
      const code = await run.exited;
      expect(code).toBe(130);
      expect(run.output().stderr).toMatch(/Interrupted; nothing was kept/);
      for (const child of children)
        await waitFor(`child ${child} to be gone`, 30_000, async () => !isAlive(child));
      expect(await treeOf(dir)).toEqual([]);
    } finally {
      await lock.release();
      await removeDir(dir);
    }
  });
});

describe('backup cluster (MariaDB)', () => {
  const P = uniqueName('fcbm');
  const db = { a: `${P}_a`, b: `${P}_b`, c: `${P}_c` };

  beforeAll(async () => {
    for (const name of Object.values(db)) {
      await myExec(undefined, `CREATE DATABASE ${myIdent(name)}`);
      await myExec(name, 'CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_100');
    }
  });

  afterAll(async () => {
    for (const name of Object.values(db)) await dropMyDatabase(name);
  });

  it('backup cluster: a database dropped after the listing → backup succeeds, manifest records it as dropped during backup', async () => {
    const dir = await tempDir('dbb-fault-cluster-my-');
    const lock: mysql.Connection = await myConnect(db.a);
    try {
      await lock.query('LOCK TABLES t WRITE');
      const run = start([
        ...myArgs(),
        '--backup-dir',
        dir,
        'backup',
        'cluster',
        '--include-database',
        `${P}_*`,
        '--cluster-parallelism',
        '1',
      ]);
      await waitFor(`the backup to wait for ${db.a}.t`, 60_000, async () => {
        const rows = await myQuery(
          undefined,
          `SELECT 1 FROM information_schema.PROCESSLIST WHERE STATE LIKE 'Waiting for table metadata lock' AND INFO LIKE ?`,
          [`%${db.a}%`],
        );
        return rows.length > 0;
      });
      await dropMyDatabase(db.c);
      await lock.query('UNLOCK TABLES');
      const code = await run.exited;
      const { stdout, stderr } = run.output();
      expectExit({ code, stdout, stderr }, 0);
      expect(stderr).toContain(
        `warning: database "${db.c}" was dropped during backup: it is not in this backup`,
      );
      const { manifest } = await manifestOf(dir);
      expect(manifest.status).toBe('complete');
      expect(manifest.databases.map((m) => m.database)).toEqual([db.a, db.b]);
      expect(manifest.dropped).toEqual([{ database: db.c, reason: 'dropped during backup' }]);
    } finally {
      await lock.end().catch(() => undefined);
      await removeDir(dir);
    }
  });
});
