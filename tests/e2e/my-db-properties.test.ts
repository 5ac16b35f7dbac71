import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropMyDatabase, myExec, myIdent, myQuery, withMy } from '../harness/mysql.js';
import { cli, copyBackup, expectExit, myArgs, onlyBackup, removeDir, tempDir, uniqueName } from './util.js';

/**
 * Issue 12 on MariaDB: a database's default character set and collation come back with it, and
 * are in place before the dump is loaded, so its routines and triggers keep their database
 * collation. The throwaway server's default is utf8mb4_general_ci; the databases here differ.
 */
const P = uniqueName('mydbp');
const I = myIdent;
const source = `${P}_src`;
let dir: string;
let backup: string;
let original: DbState;

interface DbState {
  charset: string;
  collation: string;
  /** Every routine and trigger with the database collation it was created under. */
  objects: string[];
  rows: number;
}

async function dbState(name: string): Promise<DbState> {
  const [schema] = await myQuery<{ charset: string; collation: string }>(
    undefined,
    `SELECT default_character_set_name AS charset, default_collation_name AS collation
       FROM information_schema.schemata WHERE schema_name = ?`,
    [name],
  );
  if (!schema) throw new Error(`database ${name} does not exist`);
  const objects = await myQuery<{ o: string }>(
    undefined,
    `SELECT CONCAT('routine ', routine_name, ': ', database_collation) AS o FROM information_schema.routines
      WHERE routine_schema = ?
     UNION ALL
     SELECT CONCAT('trigger ', trigger_name, ': ', database_collation) FROM information_schema.triggers
      WHERE trigger_schema = ?
     ORDER BY 1`,
    [name, name],
  );
  const [count] = await myQuery<{ n: string }>(name, 'SELECT COUNT(*) AS n FROM items');
  return { ...schema, objects: objects.map((r) => r.o), rows: Number(count?.n) };
}

async function exists(name: string): Promise<boolean> {
  const rows = await myQuery(undefined, 'SELECT 1 FROM information_schema.schemata WHERE schema_name = ?', [
    name,
  ]);
  return rows.length > 0;
}

function restore(file: string, target: string, ...extra: string[]): ReturnType<typeof cli> {
  return cli([...myArgs(), 'restore', 'single', file, '--target', target, ...extra]);
}

beforeAll(async () => {
  dir = await tempDir('dbb-my-dbprops-');
  await myExec(
    undefined,
    `CREATE DATABASE ${I(source)} DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
  );
  await withMy(source, async (c) => {
    await c.query('CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), touched INT DEFAULT 0)');
    await c.query("INSERT INTO items SELECT seq, CONCAT('Item ', seq), 0 FROM seq_1_to_150");
    await c.query('CREATE FUNCTION shout(s VARCHAR(40)) RETURNS VARCHAR(40) DETERMINISTIC RETURN UPPER(s)');
    await c.query('CREATE PROCEDURE touch_all() UPDATE items SET touched = touched + 1');
    await c.query(
      'CREATE TRIGGER items_bi BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name)',
    );
  });
  original = await dbState(source);
  const r = await cli([...myArgs(), '--backup-dir', dir, 'backup', 'single', source]);
  expectExit(r, 0);
  backup = await onlyBackup(dir);
});

afterAll(async () => {
  const names = await myQuery<{ n: string }>(
    undefined,
    'SELECT schema_name AS n FROM information_schema.schemata WHERE schema_name LIKE ?',
    [`${P}%`],
  );
  for (const { n } of names) await dropMyDatabase(n);
  if (dir) await removeDir(dir);
});

describe('MariaDB restore single: the database keeps its character set and collation', () => {
  it('the fixture differs from the server default, and so do its routines and triggers', () => {
    expect(original).toEqual({
      charset: 'utf8mb4',
      collation: 'utf8mb4_unicode_ci',
      objects: [
        'routine shout: utf8mb4_unicode_ci',
        'routine touch_all: utf8mb4_unicode_ci',
        'trigger items_bi: utf8mb4_unicode_ci',
      ],
      rows: 150,
    });
  });

  it('records them in the metadata; the dry run lists them and changes nothing', async () => {
    const meta = JSON.parse(await readFile(`${backup}.meta.json`, 'utf8')) as { databaseProperties: unknown };
    expect(meta.databaseProperties).toEqual({ charset: 'utf8mb4', collation: 'utf8mb4_unicode_ci' });
    const target = `${P}_dry`;
    const r = await restore(backup, target, '--create');
    expectExit(r, 0);
    expect(r.stdout).toContain(
      'apply: when creating the database: character set utf8mb4, collation utf8mb4_unicode_ci',
    );
    expect(await exists(target)).toBe(false);
  });

  it('--create: the database, its routines and its triggers have the original collation', async () => {
    const target = `${P}_create`;
    const r = await restore(backup, target, '--create', '--confirm');
    expectExit(r, 0);
    expect(await dbState(target)).toEqual(original);
  });

  it('--clean over a database with another character set: replaced by the original one', async () => {
    const target = `${P}_clean`;
    await myExec(undefined, `CREATE DATABASE ${I(target)} CHARACTER SET latin1 COLLATE latin1_swedish_ci`);
    await myExec(target, 'CREATE TABLE leftover (id INT)');
    const r = await restore(backup, target, '--clean', '--confirm');
    expectExit(r, 0);
    expect(await dbState(target)).toEqual(original);
  });

  it("--no-db-properties: the server's default collation, for the database and what it holds", async () => {
    const target = `${P}_defaults`;
    const r = await restore(backup, target, '--create', '--no-db-properties', '--confirm');
    expectExit(r, 0);
    expect(r.stderr).toContain('leave: character set, collation (--no-db-properties)');
    const state = await dbState(target);
    expect(state).toMatchObject({ charset: 'utf8mb4', collation: 'utf8mb4_general_ci', rows: 150 });
    expect(state.objects.every((o) => o.endsWith(': utf8mb4_general_ci'))).toBe(true);
  });

  it('a collation the server does not have (MySQL 8 → MariaDB): refused before anything changes', async () => {
    const copy = await copyBackup(backup);
    try {
      const metaFile = `${copy.file}.meta.json`;
      const meta = JSON.parse(await readFile(metaFile, 'utf8')) as {
        databaseProperties: Record<string, string>;
      };
      meta.databaseProperties.collation = 'utf8mb4_0900_ai_ci';
      await writeFile(metaFile, JSON.stringify(meta));
      const target = `${P}_nocoll`;
      const r = await restore(copy.file, target, '--create', '--confirm');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('collation utf8mb4_0900_ai_ci is unknown to this server');
      expect(r.stderr).toMatch(/^hint: Nothing was changed\. Add --no-db-properties/m);
      expect(await exists(target)).toBe(false);
    } finally {
      await removeDir(copy.dir);
    }
  });

  it('restore single --from-cluster creates the member database with its recorded collation', async () => {
    const clusterDir = await tempDir('dbb-my-dbprops-cluster-');
    try {
      const r = await cli([
        ...myArgs(),
        '--backup-dir',
        clusterDir,
        'backup',
        'cluster',
        '--include-database',
        source,
      ]);
      expectExit(r, 0);
      const cluster = (await readdir(clusterDir)).find((e) => e.startsWith('cluster_')) ?? '';
      const manifest = JSON.parse(
        await readFile(path.join(clusterDir, cluster, 'manifest.json'), 'utf8'),
      ) as {
        databases: Array<{ properties: unknown; databaseProperties: unknown }>;
      };
      const recorded = { charset: 'utf8mb4', collation: 'utf8mb4_unicode_ci' };
      expect(manifest.databases[0]).toMatchObject({ properties: recorded, databaseProperties: recorded });
      const target = `${P}_member`;
      const restored = await cli([
        ...myArgs(),
        '--backup-dir',
        clusterDir,
        'restore',
        'single',
        '--from-cluster',
        cluster,
        '--database',
        source,
        '--target',
        target,
        '--create',
        '--confirm',
      ]);
      expectExit(restored, 0);
      expect(await dbState(target)).toEqual(original);
    } finally {
      await removeDir(clusterDir);
    }
  });
});
