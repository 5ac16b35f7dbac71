import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockPgGlobals, unlockPgGlobals } from '../harness/cluster-lock.js';
import type { CliResult } from '../harness/cli.js';
import { DAY, fabricateCluster, readJson, type ManifestMeta } from '../harness/fabricate.js';
import { loadPgFidelity } from '../harness/fixtures.js';
import { copyPrefix, s3Store, storeSnapshot, type ObjectStore } from '../harness/object-store.js';
import { dropPgDatabase, pgExec, pgIdent, pgQuery } from '../harness/pg.js';
import { pgSnapshot, type PgSnapshot } from '../harness/pg-snapshot.js';
import { DUMMY_CREDENTIALS, startS3Emulator, type S3Emulator } from '../harness/s3-emulator.js';
import { cleanupJson, cli, expectExit, listJson, pgArgs, uniqueName } from './util.js';

/**
 * A PostgreSQL cluster backup through the S3 emulator (fauxqs): backup cluster --cloud, list,
 * verify, restore cluster onto a server without the databases and the role, --clean-cluster over
 * existing ones; then retention of cluster backups in the bucket (one group per server, every
 * member deleted, a cluster without manifest incomplete). Everything this file creates starts
 * with one unique prefix and every cluster command is limited to it with --include-database.
 */
const BUCKET = 'dbb-cl';
const PREFIX = 'clusters';
const P = uniqueName('ccl');
const db = { app: `${P}_app`, plain: `${P}_plain` };
const role = `${P}_owner`;
const include = ['--include-database', `${P}*`];
const I = pgIdent;

let emu: S3Emulator;
let store: ObjectStore;
let before: Record<string, PgSnapshot>;
/** The cluster backup's name, `cluster_<YYYYMMDD_HHMMSS>`. */
let cluster = '';

const ENV: Record<string, string | undefined> = {
  AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_PROFILE: undefined,
  AWS_REGION: undefined,
  AWS_ENDPOINT_URL: undefined,
  AWS_ENDPOINT_URL_S3: undefined,
  DBBACKUP_CLOUD_ENDPOINT: undefined,
  DBBACKUP_S3_CHECKSUMS: undefined,
};

function run(args: string[]): Promise<CliResult> {
  return cli(args, { env: ENV, timeoutMs: 300_000 });
}

/** `s3://bucket/<path>/?endpoint=…` */
const uri = (p: string): string => `s3://${BUCKET}/${p}/?endpoint=${encodeURIComponent(emu.endpoint)}`;

/** `restore cluster` from the bucket, the endpoint raw in the query (its slashes must not split the URI). */
const restoreArgs = (...extra: string[]): string[] => [
  ...pgArgs(),
  'restore',
  'cluster',
  `s3://${BUCKET}/${PREFIX}/${cluster}/?endpoint=${emu.endpoint}`,
  ...extra,
  ...include,
];

async function snapshots(): Promise<Record<string, PgSnapshot>> {
  return { [db.app]: await pgSnapshot(db.app), [db.plain]: await pgSnapshot(db.plain) };
}

async function databaseOwners(): Promise<Array<{ datname: string; owner: string }>> {
  return pgQuery<{ datname: string; owner: string }>(
    'postgres',
    `SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database
      WHERE left(datname, length($1)) = $1 ORDER BY datname`,
    [P],
  );
}

async function roleState(): Promise<
  Array<{ rolname: string; rolcanlogin: boolean; rolpassword: string | null }>
> {
  return pgQuery<{ rolname: string; rolcanlogin: boolean; rolpassword: string | null }>(
    'postgres',
    'SELECT rolname, rolcanlogin, rolpassword FROM pg_authid WHERE rolname = $1',
    [role],
  );
}

async function dropAll(): Promise<void> {
  for (const name of Object.values(db)) await dropPgDatabase(name);
  await pgExec('postgres', `DROP ROLE IF EXISTS ${I(role)}`);
}

let ownersBefore: Array<{ datname: string; owner: string }>;
let roleBefore: Array<{ rolname: string; rolcanlogin: boolean; rolpassword: string | null }>;

// Other files restore PostgreSQL globals on this server too: take turns (see cluster-lock.ts).
beforeAll(() => lockPgGlobals(), 900_000);

beforeAll(async () => {
  emu = await startS3Emulator();
  await emu.bucket(BUCKET);
  store = s3Store(emu.client(), BUCKET);
  await pgExec('postgres', `CREATE ROLE ${I(role)} LOGIN PASSWORD 'cloud-Cluster-pw-1'`);
  await pgExec(
    'postgres',
    `CREATE DATABASE ${I(db.app)} OWNER ${I(role)} TEMPLATE template0 ENCODING 'UTF8'`,
  );
  await pgExec('postgres', `CREATE DATABASE ${I(db.plain)} TEMPLATE template0 ENCODING 'UTF8'`);
  await loadPgFidelity(db.app);
  await pgExec(
    db.plain,
    `CREATE TABLE kv (k text PRIMARY KEY, v jsonb);
     INSERT INTO kv SELECT 'key' || g, jsonb_build_object('n', g) FROM generate_series(1, 300) g;`,
  );
  before = await snapshots();
  ownersBefore = await databaseOwners();
  roleBefore = await roleState();
  expect(ownersBefore).toEqual([
    { datname: db.app, owner: role },
    { datname: db.plain, owner: 'postgres' },
  ]);
  expect(roleBefore[0]?.rolpassword).toBeTruthy();
});

afterAll(async () => {
  try {
    await dropAll();
    await emu?.stop();
  } finally {
    await unlockPgGlobals();
  }
});

describe('cluster round trip through S3', () => {
  it('backup cluster --cloud: manifest, globals and one dump per database under one prefix; listed and verified as one backup', async () => {
    const r = await run([
      ...pgArgs(),
      'backup',
      'cluster',
      '--cloud',
      uri(PREFIX),
      '--cluster-parallelism',
      '2',
      ...include,
    ]);
    expectExit(r, 0);
    const m =
      /^Cluster backup complete: s3:\/\/dbb-cl\/clusters\/(cluster_\d{8}_\d{6}) \(2 of 2 databases, /m.exec(
        r.stdout,
      );
    expect(m, r.stdout).not.toBeNull();
    cluster = m?.[1] ?? '';

    const manifest = await readJson<
      ManifestMeta & {
        status: string;
        databases: Array<{ sha256: string; sizeBytes: number; status: string }>;
      }
    >(store, `${PREFIX}/${cluster}/manifest.json`);
    expect(manifest).toMatchObject({ name: cluster, status: 'complete' });
    expect(manifest.databases.map((d) => [d.database, d.status])).toEqual([
      [db.app, 'ok'],
      [db.plain, 'ok'],
    ]);
    // Exactly the members the manifest names, plus the manifest; each matches its recorded SHA-256.
    const members = [manifest.globals.file, ...manifest.databases.map((d) => d.file ?? '')];
    expect(await store.keys(`${PREFIX}/`)).toEqual(
      [...members, `${cluster}/manifest.json`].map((k) => `${PREFIX}/${k}`).sort(),
    );
    expect(members).toEqual([
      `${cluster}/globals.sql.zst`,
      `${cluster}/${db.app}.dump.zst`,
      `${cluster}/${db.plain}.dump.zst`,
    ]);
    for (const d of manifest.databases) {
      const bytes = await store.read(`${PREFIX}/${d.file ?? ''}`);
      expect(bytes.length).toBe(d.sizeBytes);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(d.sha256);
    }

    const list = await run(['list', 'backups', '--cloud', uri(PREFIX)]);
    expectExit(list, 0);
    const rows = list.stdout.split('\n').filter((l) => l.includes('cluster_'));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatch(
      new RegExp(`^${cluster}/\\s+\\(cluster: 2 databases\\)\\s+postgres\\s.*\\sunverified$`),
    );

    const verify = await run(['verify-backup', uri(`${PREFIX}/${cluster}`)]);
    expectExit(verify, 0);
    expect(verify.stdout).toMatch(
      new RegExp(
        `^OK\\s+s3://${BUCKET}/${PREFIX}/${cluster}/.*2 databases and globals match their checksums`,
        'm',
      ),
    );
  });

  it('restore cluster from the bucket onto a server without the databases and the role: identical', async () => {
    expect(cluster).not.toBe('');
    await dropAll();
    expect(await databaseOwners()).toEqual([]);

    const dry = await run(restoreArgs());
    expectExit(dry, 0);
    expect(dry.stdout).toContain('Dry run: nothing was changed');
    expect(await databaseOwners()).toEqual([]);
    expect(await roleState()).toEqual([]);

    const r = await run(restoreArgs('--confirm'));
    expectExit(r, 0);
    expect(r.stdout).toMatch(/^Cluster restore complete: 2 databases/m);
    expect(await roleState()).toEqual(roleBefore);
    expect(await databaseOwners()).toEqual(ownersBefore);
    expect(await snapshots()).toEqual(before);
  });

  it('--clean-cluster replaces databases that exist with the backup', async () => {
    await pgExec(
      db.plain,
      'CREATE TABLE marker_after_backup (id int); INSERT INTO marker_after_backup VALUES (1)',
    );
    expect(await snapshots()).not.toEqual(before);
    const refused = await run(restoreArgs('--confirm'));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('--clean-cluster');
    const r = await run(restoreArgs('--clean-cluster', '--confirm'));
    expectExit(r, 0);
    expect(await snapshots()).toEqual(before);
  });
});

describe('retention of cluster backups in the bucket', () => {
  const RET = 'ret';
  const c = { c1: '', c2: '', c3: '', o1: '' };
  let single = '';
  let group = '';

  beforeAll(async () => {
    expect(cluster).not.toBe('');
    await copyPrefix(store, `${PREFIX}/`, `${RET}/`);
    const manifest = await readJson<ManifestMeta>(store, `${RET}/${cluster}/manifest.json`);
    const t0 = Date.parse(manifest.startedAt);
    c.c1 = await fabricateCluster(store, `${RET}/`, cluster, new Date(t0 - DAY));
    c.c2 = await fabricateCluster(store, `${RET}/`, cluster, new Date(t0 - 2 * DAY));
    c.c3 = await fabricateCluster(store, `${RET}/`, cluster, new Date(t0 - 3 * DAY));
    c.o1 = await fabricateCluster(store, `${RET}/`, cluster, new Date(t0 - 4 * DAY), { port: 1 });
    group = `postgres ${manifest.connection.host}:${manifest.connection.port} (cluster)`;
    // A single backup of a member database: a group of its own, not mixed with the clusters.
    const r = await run([...pgArgs(), 'backup', 'single', db.plain, '--cloud', uri(RET), '--json']);
    expectExit(r, 0);
    single = (JSON.parse(r.stdout) as { metadata: { file: string } }).metadata.file;
  });

  it('--keep-last 1: one group per server; the older clusters go with every member, the rest is untouched', async () => {
    const before = await storeSnapshot(store, `${RET}/`);
    const dry = await cleanupJson(uri(RET), ['--keep-last', '1', '--dry-run'], ENV);
    const byKey = new Map(dry.decisions.map((d) => [d.key, d]));
    expect([...byKey.keys()].sort()).toEqual(
      [cluster, c.c1, c.c2, c.c3, c.o1]
        .map((x) => `${x}/`)
        .concat(single)
        .sort(),
    );
    expect(byKey.get(`${cluster}/`)).toMatchObject({
      group,
      keep: true,
      reasons: ['last 1', 'newest valid backup'],
    });
    for (const x of [c.c1, c.c2, c.c3]) expect(byKey.get(`${x}/`)).toMatchObject({ group, keep: false });
    expect(byKey.get(`${c.o1}/`)).toMatchObject({ group: 'postgres 127.0.0.1:1 (cluster)', keep: true });
    expect(byKey.get(single)?.group).not.toContain('(cluster)');
    expect(byKey.get(single)?.keep).toBe(true);
    expect(await storeSnapshot(store, `${RET}/`)).toEqual(before);

    // The manifest of c3 is lost (a crash in the middle of deleting it): incomplete, not counted.
    await store.remove(`${RET}/${c.c3}/manifest.json`);
    const listed = (await listJson(['--cloud', uri(RET)], ENV)).find((b) => b.key === `${c.c3}/`);
    expect(listed).toMatchObject({
      state: 'incomplete',
      detail: expect.stringMatching(/no manifest/) as unknown,
    });

    const real = await cleanupJson(uri(RET), ['--keep-last', '1'], ENV);
    expect(real.errors).toEqual([]);
    expect([...real.deleted].sort()).toEqual([`${c.c1}/`, `${c.c2}/`].sort());
    expect(real.incomplete).toEqual([expect.objectContaining({ key: `${c.c3}/`, removed: false })]);
    const dropped = (k: string) =>
      [c.c1, c.c2].some((x) => k.startsWith(`${x}/`)) || k === `${c.c3}/manifest.json`;
    expect(await storeSnapshot(store, `${RET}/`)).toEqual(
      Object.fromEntries(Object.entries(before).filter(([k]) => !dropped(k))),
    );

    // --prune-incomplete removes every member of the cluster backup without a manifest.
    const pruned = await cleanupJson(
      uri(RET),
      ['--keep-last', '1', '--prune-incomplete', '--grace', '0'],
      ENV,
    );
    expect(pruned.incomplete).toEqual([expect.objectContaining({ key: `${c.c3}/`, removed: true })]);
    expect(await store.keys(`${RET}/${c.c3}/`)).toEqual([]);
    const left = new Set((await store.keys(`${RET}/`)).map((k) => k.slice(RET.length + 1).split('/')[0]));
    expect([...left].sort()).toEqual(
      [cluster, c.o1, single, `${single}.meta.json`, `${single}.sha256`].sort(),
    );
  });
});
