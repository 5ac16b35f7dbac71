import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DAY,
  fabricateBackup,
  fabricateCluster,
  filesOf,
  readJson,
  type BackupMeta,
  type ManifestMeta,
} from '../harness/fabricate.js';
import { createMyDatabase, dropMyDatabase, myExec } from '../harness/mysql.js';
import { dirStore, storeSnapshot } from '../harness/object-store.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import {
  cleanupJson,
  cli,
  expectExit,
  listDir,
  listJson,
  myArgs,
  pgArgs,
  removeDir,
  tempDir,
  uniqueName,
  type PlanJson,
} from './util.js';

/*
 * Retention of encrypted and of cluster backups in a directory, through the real CLI, with no key
 * anywhere in cleanup's environment. The catalog (ages relative to the newest real backup):
 *
 *   postgres <server> db          e2 (real, age recipient, newest), p1 (real, plain), e1 (real, key
 *                                 file), f1 1d and f2 3d (copies of e1 / e2: encrypted)
 *   postgres <server> (cluster)   cE (real, encrypted with the key file, newest), c0 (real, plain),
 *                                 c1 1d, c2 2d (copies of c0)
 *   postgres 127.0.0.1:1 (cluster) o1 4d (a copy of c0 "from another server")
 *   mariadb <server> (cluster)    m0 (real)
 *
 * `--keep-last 1` therefore deletes p1 e1 f1 f2 and c0 c1 c2, and keeps one backup per group.
 */

const db = uniqueName('retk');
const mydb = uniqueName('retk_my');
const KEY_ENV = { DBBACKUP_ENCRYPTION_KEY: undefined };

let root: string;
let template: string;
let keyFile = '';
let recipient = '';
const k = { e1: '', p1: '', e2: '', f1: '', f2: '' };
const c = { c0: '', cE: '', c1: '', c2: '', o1: '', m0: '' };
let singleGroup = '';
let clusterGroup = '';
let myClusterGroup = '';

const sorted = (xs: string[]): string[] => [...xs].sort();

async function backup(args: string[]): Promise<string> {
  const r = await cli([...args, '--json'], { env: KEY_ENV });
  expectExit(r, 0);
  return (JSON.parse(r.stdout) as { metadata: { file: string } }).metadata.file;
}

async function cluster(args: string[]): Promise<string> {
  const r = await cli([...args, '--json'], { env: KEY_ENV });
  expectExit(r, 0);
  return (JSON.parse(r.stdout) as { manifest: { name: string } }).manifest.name;
}

/** A fresh copy of the catalog. */
async function copyCatalog(): Promise<string> {
  const dir = await mkdtemp(path.join(root, 'run-'));
  await cp(template, dir, { recursive: true });
  return dir;
}

/** Every file of a cluster backup in `dir` (relative keys). */
async function clusterFiles(dir: string, name: string): Promise<string[]> {
  return dirStore(dir).keys(`${name}/`);
}

/** The snapshot without the files of single backups `keys` and cluster backups `clusters`. */
function without(
  snap: Record<string, string>,
  keys: string[],
  clusters: string[] = [],
): Record<string, string> {
  const drop = new Set(filesOf(...keys));
  return Object.fromEntries(
    Object.entries(snap).filter(
      ([name]) => !drop.has(name) && !clusters.some((x) => name.startsWith(`${x}/`)),
    ),
  );
}

/** chattr +i works here (root on ext4/xfs/btrfs): an immutable file cannot be deleted, even by root. */
function immutableSupported(): boolean {
  const probe = path.join(os.tmpdir(), `dbb-chattr-probe-${process.pid}`);
  spawnSync('touch', [probe]);
  const ok = spawnSync('chattr', ['+i', probe]).status === 0;
  if (ok) spawnSync('chattr', ['-i', probe]);
  spawnSync('rm', ['-f', probe]);
  return ok;
}
const canPin = immutableSupported();

function chattr(flag: '+i' | '-i', file: string): void {
  const r = spawnSync('chattr', [flag, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`chattr ${flag} ${file}: ${r.stderr}`);
}

beforeAll(async () => {
  root = await tempDir('dbb-retk-');
  template = path.join(root, 'template');
  await createPgDatabase(db);
  await pgExec(
    db,
    `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 300) g;`,
  );
  await createMyDatabase(mydb);
  await myExec(mydb, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');`);

  keyFile = path.join(root, 'backup.key');
  expectExit(await cli(['keygen', '--symmetric', '--output', keyFile]), 0);
  const id = await cli(['keygen', '--output', path.join(root, 'identity.txt'), '--json']);
  expectExit(id, 0);
  recipient = (JSON.parse(id.stdout) as { recipient: string }).recipient;

  const single = [...pgArgs(), '--backup-dir', template, 'backup', 'single', db, '--no-progress'];
  k.e1 = await backup([...single, '--encryption-key-file', keyFile]);
  k.p1 = await backup(single);
  k.e2 = await backup([...single, '--recipient', recipient]);
  const pgCluster = [...pgArgs(), '--backup-dir', template, 'backup', 'cluster', '--include-database', db];
  c.c0 = await cluster(pgCluster);
  c.cE = await cluster([...pgCluster, '--encryption-key-file', keyFile]);
  c.m0 = await cluster([
    ...myArgs(),
    '--backup-dir',
    template,
    'backup',
    'cluster',
    '--include-database',
    mydb,
  ]);
  expect(c.cE).not.toBe(c.c0);

  const store = dirStore(template);
  const e2meta = await readJson<BackupMeta>(store, `${k.e2}.meta.json`);
  expect(e2meta.encryption).toBeTruthy();
  const t0 = Date.parse(e2meta.startedAt);
  const ago = (days: number) => new Date(t0 - days * DAY);
  k.f1 = await fabricateBackup(store, '', k.e1, ago(1));
  k.f2 = await fabricateBackup(store, '', k.e2, ago(3));
  c.c1 = await fabricateCluster(store, '', c.c0, ago(1));
  c.c2 = await fabricateCluster(store, '', c.c0, ago(2));
  c.o1 = await fabricateCluster(store, '', c.c0, ago(4), { port: 1 });

  const conn = e2meta.connection;
  singleGroup = `postgres ${conn.host}:${conn.port} ${db}`;
  clusterGroup = `postgres ${conn.host}:${conn.port} (cluster)`;
  const my = (await readJson<ManifestMeta>(store, `${c.m0}/manifest.json`)).connection;
  myClusterGroup = `mariadb ${my.host}:${my.port} (cluster)`;
  expect(k.e1).toMatch(/\.dump\.zst\.enc$/);
  expect(k.f2).toMatch(/\.dump\.zst\.enc$/);
});

afterAll(async () => {
  await dropPgDatabase(db);
  await dropMyDatabase(mydb);
  if (root) await removeDir(root);
});

describe('encrypted and cluster backups: the plan', () => {
  it('--keep-last 1 --dry-run groups them (one cluster group per server) and needs no key', async () => {
    const dir = await copyCatalog();
    const before = await storeSnapshot(dirStore(dir), '');
    const plan = await cleanupJson(dir, ['--keep-last', '1', '--dry-run'], KEY_ENV);
    expect(plan.dryRun).toBe(true);
    expect(plan.errors).toEqual([]);
    expect(plan.incomplete).toEqual([]);
    const byKey = new Map(plan.decisions.map((d) => [d.key, d]));
    expect(sorted([...byKey.keys()])).toEqual(
      sorted([...Object.values(k), ...Object.values(c).map((x) => `${x}/`)]),
    );
    const groupOf = (key: string) => byKey.get(key)?.group;
    for (const key of Object.values(k)) expect(groupOf(key), key).toBe(singleGroup);
    for (const x of [c.c0, c.cE, c.c1, c.c2]) expect(groupOf(`${x}/`), x).toBe(clusterGroup);
    expect(groupOf(`${c.o1}/`)).toBe('postgres 127.0.0.1:1 (cluster)');
    expect(groupOf(`${c.m0}/`)).toBe(myClusterGroup);
    // Only the backups kept in place of deleted ones were read in full (no key needed for that).
    for (const d of plan.decisions)
      expect(d).toMatchObject({
        valid: true,
        state: [k.e2, `${c.cE}/`].includes(d.key) ? 'valid' : 'unverified',
      });
    expect(byKey.get(k.e2)?.reasons).toEqual(['last 1', 'newest valid backup']);
    expect(byKey.get(`${c.cE}/`)?.reasons).toEqual(['last 1', 'newest valid backup']);
    expect(sorted(plan.decisions.filter((d) => !d.keep).map((d) => d.key))).toEqual(
      sorted([k.p1, k.e1, k.f1, k.f2, `${c.c0}/`, `${c.c1}/`, `${c.c2}/`]),
    );

    const text = await cli(['cleanup', dir, '--keep-last', '1', '--dry-run'], { env: KEY_ENV });
    expectExit(text, 0);
    for (const g of [singleGroup, clusterGroup, myClusterGroup]) expect(text.stdout).toContain(`\n  ${g}\n`);
    expect(text.stdout).toMatch(
      new RegExp(`^ {4}DELETE {2}\\S+ \\S+ {2}${c.c1}/ {2}\\(no rule keeps it\\)$`, 'm'),
    );
    expect(text.stdout).toMatch(
      new RegExp(
        `^ {4}keep {4}\\S+ \\S+ {2}${c.cE}/ {2}\\(last 1, newest valid backup\\) \\[checksum verified\\]$`,
        'm',
      ),
    );
    expect(text.stdout).toMatch(
      new RegExp(`^ {4}DELETE {2}\\S+ \\S+ {2}${k.f2.replaceAll('.', '\\.')} {2}`, 'm'),
    );
    expect(text.stdout).toMatch(/^4 kept, 7 would be deleted, .* would be freed\.$/m);
    expect(await storeSnapshot(dirStore(dir), '')).toEqual(before);
  });
});

describe('encrypted and cluster backups: real runs', () => {
  it('deletes exactly the planned backups: sidecars, every cluster member and the cluster directory', async () => {
    const dir = await copyCatalog();
    const before = await storeSnapshot(dirStore(dir), '');
    const doomedSingles = [k.p1, k.e1, k.f1, k.f2];
    const doomedClusters = [c.c0, c.c1, c.c2];
    const plan = await cleanupJson(dir, ['--keep-last', '1'], KEY_ENV);
    expect(plan.errors).toEqual([]);
    expect(sorted(plan.deleted)).toEqual(sorted([...doomedSingles, ...doomedClusters.map((x) => `${x}/`)]));
    expect(await storeSnapshot(dirStore(dir), '')).toEqual(without(before, doomedSingles, doomedClusters));
    // The cluster directories themselves are gone, not left empty.
    const top = await listDir(dir);
    for (const x of doomedClusters) expect(top).not.toContain(x);
    expect(top).toEqual(expect.arrayContaining([c.cE, c.o1, c.m0]));
    // What is left verifies without a key: the encrypted single backup and the encrypted cluster.
    const verify = await cli(['verify-backup', path.join(dir, k.e2), path.join(dir, c.cE)], { env: KEY_ENV });
    expectExit(verify, 0);
    expect(verify.stdout.match(/^OK\s/gm)).toHaveLength(2);
  });

  it('a cluster backup whose manifest is gone is incomplete: reported, never counted, pruned only after --grace', async () => {
    const dir = await copyCatalog();
    await rm(path.join(dir, c.c1, 'manifest.json'));
    const members = await clusterFiles(dir, c.c1);
    expect(members.length).toBeGreaterThanOrEqual(2);

    const listed = (await listJson(['--backup-dir', dir])).filter((b) => b.key === `${c.c1}/`);
    expect(listed).toEqual([expect.objectContaining({ key: `${c.c1}/`, state: 'incomplete' })]);
    const text = await cli(['--backup-dir', dir, 'list', 'backups']);
    expectExit(text, 0);
    expect(text.stdout).toMatch(new RegExp(`^${c.c1}/\\s.*\\sincomplete`, 'm'));

    // Not part of the plan, reported; its members were written just now, so the default grace keeps them.
    const plan = await cleanupJson(dir, ['--keep-last', '1', '--prune-incomplete'], KEY_ENV);
    expect(plan.decisions.map((d) => d.key)).not.toContain(`${c.c1}/`);
    expect(plan.incomplete).toEqual([
      expect.objectContaining({ key: `${c.c1}/`, state: 'incomplete', removed: false }),
    ]);
    expect(await clusterFiles(dir, c.c1)).toEqual(members);

    const pruned = await cleanupJson(
      dir,
      ['--keep-last', '1', '--prune-incomplete', '--grace', '0'],
      KEY_ENV,
    );
    expect(pruned.incomplete).toEqual([expect.objectContaining({ key: `${c.c1}/`, removed: true })]);
    expect(await listDir(dir)).not.toContain(c.c1);
  });

  it('a deletion that fails half way leaves "incomplete", never "valid": manifest and metadata go first', async () => {
    // Run as root on ext4/xfs/btrfs, as CI does; anywhere else this must fail, not pass unseen.
    expect(canPin, 'chattr +i is needed to stop a deletion half way (run as root on ext4/xfs/btrfs)').toBe(
      true,
    );
    // An immutable file cannot be deleted: this stops each deletion at one member / the data file.
    const dir = await copyCatalog();
    const before = await storeSnapshot(dirStore(dir), '');
    const manifest = await readJson<ManifestMeta>(dirStore(dir), `${c.c2}/manifest.json`);
    const member = manifest.databases[0]?.file ?? '';
    expect(member.startsWith(`${c.c2}/`)).toBe(true);
    const pinned = [path.join(dir, ...member.split('/')), path.join(dir, k.f1)];
    for (const file of pinned) chattr('+i', file);
    try {
      const r = await cli(['cleanup', dir, '--keep-last', '1', '--json'], { env: KEY_ENV });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('dbbackup: error: cleanup did not finish: 2 problems');
      // Each failure names the file that could not go, why, and what went before it.
      expect(r.stderr).toContain(
        `  ${c.c2}/: Could not delete ${member}: the operation is not permitted in ${path.join(dir, c.c2)}`,
      );
      expect(r.stderr).toContain(`(removed before that: ${c.c2}/manifest.json`);
      const plan = JSON.parse(r.stdout) as PlanJson;
      expect(sorted(plan.deleted)).toEqual(sorted([k.p1, k.e1, k.f2, `${c.c0}/`, `${c.c1}/`]));
      expect(plan.errors).toHaveLength(2);

      // The cluster: its manifest went first, so the member left behind is not a valid backup.
      const left = await clusterFiles(dir, c.c2);
      expect(left).toContain(member);
      expect(left).not.toContain(`${c.c2}/manifest.json`);
      // The single backup: metadata first, then data (which failed), so data and checksum remain.
      const files = await listDir(dir);
      expect(files).toContain(k.f1);
      expect(files).toContain(`${k.f1}.sha256`);
      expect(files).not.toContain(`${k.f1}.meta.json`);

      const states = new Map((await listJson(['--backup-dir', dir])).map((b) => [b.key, b.state]));
      expect(states.get(`${c.c2}/`)).toBe('incomplete');
      expect(states.get(k.f1)).toBe('incomplete');
    } finally {
      for (const file of pinned) chattr('-i', file);
    }
    // Once the files can be deleted, the next run finishes the job.
    const again = await cleanupJson(dir, ['--keep-last', '1', '--prune-incomplete', '--grace', '0'], KEY_ENV);
    expect(again.errors).toEqual([]);
    expect(await storeSnapshot(dirStore(dir), '')).toEqual(
      without(before, [k.p1, k.e1, k.f1, k.f2], [c.c0, c.c1, c.c2]),
    );
    expect(await listDir(dir)).not.toContain(c.c2);
  });
});

describe('encrypted backups are not special', () => {
  it('an encrypted backup without metadata is incomplete and pruned like any other', async () => {
    const dir = await copyCatalog();
    // The data of an interrupted encrypted backup: no sidecars.
    const orphan = `${db}_20200101_000000.dump.zst.enc`;
    await cp(path.join(dir, k.e1), path.join(dir, orphan));
    const plan = await cleanupJson(
      dir,
      ['--keep-last', '100', '--prune-incomplete', '--grace', '0'],
      KEY_ENV,
    );
    expect(plan.incomplete).toEqual([
      expect.objectContaining({ key: orphan, state: 'incomplete', removed: true }),
    ]);
    expect(plan.deleted).toEqual([]);
    expect(await listDir(dir)).not.toContain(orphan);
    // A stray file that is not a backup is never touched.
    await writeFile(path.join(dir, 'notes.txt'), 'keep me\n');
    await cleanupJson(dir, ['--keep-last', '1', '--prune-incomplete', '--grace', '0'], KEY_ENV);
    expect(await readdir(dir)).toContain('notes.txt');
  });
});
