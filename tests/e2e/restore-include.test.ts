import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDatabase, dropPgDatabase } from '../harness/pg.js';
import { cli, expectExit, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * `restore cluster --include-database` took several values and so swallowed a backup named after
 * it (`--include-database 'db_*' cluster_x`: "missing required argument 'backup'"). It now takes
 * one glob per use (repeatable, or comma-separated); after the backup, the old multi-value spelling
 * still works. Dry runs on the shared server: nothing is changed.
 */
const P = uniqueName('incl');
const dbs = [`${P}_a`, `${P}_b`, `${P}_c`];
let dir: string;
let cluster: string;

beforeAll(async () => {
  for (const db of dbs) await createPgDatabase(db);
  dir = await tempDir();
  expectExit(
    await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'cluster', '--include-database', `${P}_*`]),
    0,
  );
  cluster = (await readdir(dir)).find((n) => n.startsWith('cluster_')) ?? '';
});

afterAll(async () => {
  for (const db of dbs) await dropPgDatabase(db);
  await removeDir(dir);
});

/** The databases a dry run's plan would restore. */
async function planned(args: string[]): Promise<{ databases: string[]; stderr: string }> {
  const r = await cli([
    ...pgArgs(),
    '--backup-dir',
    dir,
    'restore',
    'cluster',
    ...args,
    '--clean-cluster',
    '--json',
  ]);
  expectExit(r, 0);
  return { databases: (JSON.parse(r.stdout) as { databases: string[] }).databases.sort(), stderr: r.stderr };
}

describe('restore cluster --include-database', () => {
  it('a glob before the backup argument no longer swallows it', async () => {
    expect((await planned(['--include-database', `${P}_a*`, cluster])).databases).toEqual([dbs[0]]);
  });

  it('repeated, or comma-separated (commas inside braces belong to the glob)', async () => {
    const both = [dbs[0], dbs[1]];
    expect(
      (await planned([cluster, '--include-database', dbs[0] ?? '', '--include-database', dbs[1] ?? '']))
        .databases,
    ).toEqual(both);
    expect((await planned(['--include-database', `${dbs[0]},${dbs[1]}`, cluster])).databases).toEqual(both);
    expect((await planned([cluster, '--include-database', `${P}_{a,c}`])).databases).toEqual([
      dbs[0],
      dbs[2],
    ]);
  });

  it('the old multi-value spelling after the backup still works, with a note', async () => {
    const r = await planned([cluster, '--include-database', dbs[0] ?? '', dbs[2] ?? '']);
    expect(r.databases).toEqual([dbs[0], dbs[2]]);
    expect(r.stderr).toContain(`note: "${dbs[2]}" taken as --include-database too`);
  });

  it('a second argument without --include-database, or an empty name, is a usage error', async () => {
    const extra = await cli([...pgArgs(), '--backup-dir', dir, 'restore', 'cluster', cluster, 'other']);
    expect(extra.code).toBe(2);
    expect(extra.stderr).toContain('Unexpected argument: other');
    const empty = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      'restore',
      'cluster',
      cluster,
      '--include-database',
      `${dbs[0]},`,
    ]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('Empty database name in --include-database');
  });
});
