import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { createMyDatabase, dropMyDatabase, myExec, myQuery } from '../harness/mysql.js';
import { myArgs, pgArgs, sha256File } from './util.js';

/** One engine as the drill tests use it: its CLI options and how to make and change a database. */
export interface DrillEngine {
  name: string;
  args: () => string[];
  /** Table `t` (id primary key, v text) with `rows` rows, a view, a function and a sequence-like id. */
  create: (db: string, rows: number) => Promise<void>;
  drop: (db: string) => Promise<void>;
  exec: (db: string, sql: string) => Promise<void>;
  /** The scratch databases that exist now. */
  scratch: () => Promise<string[]>;
  /** The name of table t in difference messages. */
  table: string;
}

export const ENGINES: DrillEngine[] = [
  {
    name: 'postgres',
    args: pgArgs,
    create: async (db, rows) => {
      await createPgDatabase(db);
      await pgExec(
        db,
        `CREATE TABLE t (id serial PRIMARY KEY, v text);
         INSERT INTO t (v) SELECT repeat(md5(g::text), 4) FROM generate_series(1, ${rows}) g;
         CREATE TABLE other (k text PRIMARY KEY); INSERT INTO other VALUES ('a'), ('b');
         CREATE VIEW tv AS SELECT id FROM t;
         CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42';`,
      );
    },
    drop: dropPgDatabase,
    exec: pgExec,
    scratch: async () =>
      (
        await pgQuery<{ n: string }>(
          'postgres',
          "SELECT datname AS n FROM pg_database WHERE datname LIKE 'dbbackup\\_drill\\_%'",
        )
      ).map((r) => r.n),
    table: 'public.t',
  },
  {
    name: 'mariadb',
    args: myArgs,
    create: async (db, rows) => {
      await createMyDatabase(db);
      await myExec(
        db,
        `CREATE TABLE t (id int AUTO_INCREMENT PRIMARY KEY, v text);
         INSERT INTO t (v) SELECT REPEAT(MD5(seq), 4) FROM seq_1_to_${rows};
         CREATE TABLE other (k varchar(10) PRIMARY KEY); INSERT INTO other VALUES ('a'), ('b');
         CREATE VIEW tv AS SELECT id FROM t;
         CREATE FUNCTION answer() RETURNS int DETERMINISTIC RETURN 42;`,
      );
    },
    drop: dropMyDatabase,
    exec: myExec,
    scratch: async () =>
      (
        await myQuery<{ n: string }>(
          undefined,
          "SELECT schema_name AS n FROM information_schema.schemata WHERE schema_name LIKE 'dbbackup\\_drill\\_%'",
        )
      ).map((r) => r.n),
    table: 't',
  },
];

/**
 * Tampering that a checksum cannot see: `from`'s bytes put in place of `into`'s data file, with
 * `into`'s metadata (size and SHA-256) and `.sha256` rewritten to match — the facts stay those
 * recorded for `into`. What a restore drill must catch.
 */
export async function replaceSingle(into: string, from: string): Promise<void> {
  await copyFile(from, into);
  const sha = await sha256File(into);
  const size = (await readFile(into)).length;
  const metaFile = `${into}.meta.json`;
  const meta = JSON.parse(await readFile(metaFile, 'utf8')) as { sha256: string; sizeBytes: number };
  meta.sha256 = sha;
  meta.sizeBytes = size;
  await writeFile(metaFile, JSON.stringify(meta, null, 2));
  await writeFile(`${into}.sha256`, `${sha}  ${path.basename(into)}\n`);
}

/** The same for one member of a cluster backup: its file replaced, the manifest's size and checksum rewritten. */
export async function replaceMember(
  intoCluster: string,
  fromCluster: string,
  database: string,
): Promise<void> {
  const manifestFile = path.join(intoCluster, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as {
    databases: Array<{ database: string; file: string; sha256: string; sizeBytes: number }>;
  };
  const member = manifest.databases.find((m) => m.database === database);
  if (!member) throw new Error(`${database} is not in ${intoCluster}`);
  const target = path.join(path.dirname(intoCluster), member.file);
  await copyFile(
    path.join(path.dirname(fromCluster), member.file.replace(/^[^/]+/, path.basename(fromCluster))),
    target,
  );
  member.sha256 = await sha256File(target);
  member.sizeBytes = (await readFile(target)).length;
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2));
}
