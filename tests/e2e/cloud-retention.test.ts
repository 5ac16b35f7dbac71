import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type Azurite } from '../harness/azurite.js';
import type { CliResult } from '../harness/cli.js';
import {
  DAY,
  fabricateBackup,
  fabricateCluster,
  filesOf,
  readJson,
  type BackupMeta,
} from '../harness/fabricate.js';
import { azureStore, copyPrefix, s3Store, storeSnapshot, type ObjectStore } from '../harness/object-store.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { DUMMY_CREDENTIALS, startS3Emulator, type S3Emulator } from '../harness/s3-emulator.js';
import {
  cleanupJson,
  cli,
  expectExit,
  listJson,
  pgArgs,
  removeDir,
  tempDir,
  uniqueName,
  type PlanJson,
} from './util.js';

/*
 * Retention on object stores, through the real CLI: fauxqs (S3) reached through s3:// (raw
 * ?endpoint=) minio:// and b2:// (encoded ?endpoint=; the plan and real-run tests only, the rest is the same
 * S3 code), and Azurite (Azure Blob), where a blob lease also stops a deletion half way so the
 * order of deletion can be checked. In each emulator, real backups are taken into a template
 * prefix (through the first URI kind) and older ones fabricated from them through the SDK (bytes
 * copied, only timestamps/name/port rewritten in the metadata); every test works on its own copy.
 *
 *   group A  = postgres <server> dbA:  r2 (real, newest), r1 (real, ENCRYPTED), f1 1d, f2 40d, f3 50d
 *              (f1-f3 are copies of r1, so encrypted too)
 *   group A' = postgres 127.0.0.1:1 dbA (same database, another server): p1 35d
 *   group B  = postgres <server> dbB:  b (real), bOld 5d
 *
 * No key is ever given to cleanup or list: encrypted backups are grouped and pruned without one.
 */

const BUCKET = 'dbb-ret';
const dbA = uniqueName('cret_a');
const dbB = uniqueName('cret_b');

let s3: S3Emulator;
let az: Azurite;
let scratch: string;
let keyFile: string;

/** Only the dummy S3 credentials and no encryption key reach the CLI. */
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
  AZURE_STORAGE_CONNECTION_STRING: undefined,
  DBBACKUP_ENCRYPTION_KEY: undefined,
};

interface Target {
  name: 's3' | 'minio' | 'b2' | 'azure';
  /** Targets on the same emulator share one template catalog (taken through the first one's URI). */
  emulator: 'fauxqs' | 'azurite';
  /** Every test, or only the plan and the real run (minio:// and b2:// are the s3:// code path with another URI). */
  full: boolean;
  /** URI of a prefix (`<prefix>/`), with the emulator's endpoint and credentials. */
  uri(prefix: string): string;
  /** How the CLI names the prefix in messages (secrets masked). */
  display(prefix: string): string;
  store(): ObjectStore;
}

const TARGETS: Target[] = [
  {
    name: 's3',
    emulator: 'fauxqs',
    full: true,
    uri: (p) => `s3://${BUCKET}/${p}/?endpoint=${s3.endpoint}`,
    display: (p) => `s3://${BUCKET}/${p}`,
    store: () => s3Store(s3.client(), BUCKET),
  },
  {
    name: 'minio',
    emulator: 'fauxqs',
    full: false,
    uri: (p) => `minio://${BUCKET}/${p}/?endpoint=${encodeURIComponent(s3.endpoint)}`,
    display: (p) => `minio://${BUCKET}/${p}`,
    store: () => s3Store(s3.client(), BUCKET),
  },
  {
    name: 'b2',
    emulator: 'fauxqs',
    full: false,
    uri: (p) => `b2://${BUCKET}/${p}/?endpoint=${encodeURIComponent(s3.endpoint)}`,
    display: (p) => `b2://${BUCKET}/${p}`,
    store: () => s3Store(s3.client(), BUCKET),
  },
  {
    name: 'azure',
    emulator: 'azurite',
    full: true,
    uri: (p) =>
      `azure://${BUCKET}/${p}/?endpoint=${encodeURIComponent(az.endpoint)}&account=${az.account}&key=${encodeURIComponent(az.key)}`,
    display: (p) => `azure://${BUCKET}/${p}`,
    store: () => azureStore(az.service, BUCKET),
  },
];

function run(args: string[]): Promise<CliResult> {
  return cli(args, { env: ENV, timeoutMs: 300_000 });
}

async function cloudBackup(uri: string, db: string, extra: string[] = []): Promise<string> {
  const r = await run([...pgArgs(), 'backup', 'single', db, '--cloud', uri, '--json', ...extra]);
  expectExit(r, 0);
  return (JSON.parse(r.stdout) as { metadata: { file: string } }).metadata.file;
}

const sorted = (xs: string[]): string[] => [...xs].sort();

/** The snapshot without the objects of `keys` (and of cluster backups `clusters`). */
function without(
  snap: Record<string, string>,
  keys: string[],
  clusters: string[] = [],
): Record<string, string> {
  const drop = new Set(filesOf(...keys));
  return Object.fromEntries(
    Object.entries(snap).filter(([k]) => !drop.has(k) && !clusters.some((c) => k.startsWith(`${c}/`))),
  );
}

beforeAll(async () => {
  [s3, az] = await Promise.all([startS3Emulator(), startAzurite()]);
  await s3.bucket(BUCKET);
  await az.createContainer(BUCKET);
  for (const db of [dbA, dbB]) {
    await createPgDatabase(db);
    await pgExec(
      db,
      `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 300) g;`,
    );
  }
  scratch = await tempDir('dbb-cret-');
  keyFile = path.join(scratch, 'backup.key');
  expectExit(await cli(['keygen', '--symmetric', '--output', keyFile]), 0);
});

afterAll(async () => {
  for (const db of [dbA, dbB]) await dropPgDatabase(db);
  await Promise.all([s3?.stop(), az?.stop()]);
  if (scratch) await removeDir(scratch);
});

type Keys = Record<'r1' | 'r2' | 'f1' | 'f2' | 'f3' | 'p1' | 'b' | 'bOld', string>;
interface Catalog {
  /** The template prefix (no '/'). */
  tpl: string;
  k: Keys;
  groupA: string;
  groupB: string;
}
const catalogs = new Map<Target['emulator'], Promise<Catalog>>();

/** Real backups through `t`'s URI, then the fabricated ones; once per emulator. */
function catalogFor(t: Target): Promise<Catalog> {
  let made = catalogs.get(t.emulator);
  if (!made) {
    made = buildCatalog(t);
    catalogs.set(t.emulator, made);
  }
  return made;
}

async function buildCatalog(t: Target): Promise<Catalog> {
  const tpl = `${t.emulator}-tpl`;
  const k: Keys = { r1: '', r2: '', f1: '', f2: '', f3: '', p1: '', b: '', bOld: '' };
  k.r1 = await cloudBackup(t.uri(tpl), dbA, ['--encryption-key-file', keyFile]);
  k.r2 = await cloudBackup(t.uri(tpl), dbA);
  k.b = await cloudBackup(t.uri(tpl), dbB);
  expect(k.r1).toMatch(/\.dump\.zst\.enc$/);
  const store = t.store();
  const r2 = await readJson<BackupMeta>(store, `${tpl}/${k.r2}.meta.json`);
  const t0 = Date.parse(r2.startedAt);
  const ago = (days: number) => new Date(t0 - days * DAY);
  k.f1 = await fabricateBackup(store, `${tpl}/`, k.r1, ago(1));
  k.f2 = await fabricateBackup(store, `${tpl}/`, k.r1, ago(40));
  k.f3 = await fabricateBackup(store, `${tpl}/`, k.r1, ago(50));
  k.p1 = await fabricateBackup(store, `${tpl}/`, k.r2, ago(35), { port: 1 });
  k.bOld = await fabricateBackup(store, `${tpl}/`, k.b, ago(5));
  expect(await store.keys(`${tpl}/`)).toEqual(sorted(filesOf(...Object.values(k)).map((x) => `${tpl}/${x}`)));
  const server = `postgres ${r2.connection.host}:${r2.connection.port}`;
  return { tpl, k, groupA: `${server} ${dbA}`, groupB: `${server} ${dbB}` };
}

describe.each(TARGETS)('cleanup on $name', (t) => {
  const k: Keys = { r1: '', r2: '', f1: '', f2: '', f3: '', p1: '', b: '', bOld: '' };
  let tpl = '';
  let groupA = '';
  let groupB = '';
  const groupA2 = () => `postgres 127.0.0.1:1 ${dbA}`;
  let copies = 0;

  /** A fresh copy of the template catalog under its own prefix; returns the prefix (no '/'). */
  async function copyCatalog(): Promise<string> {
    const prefix = `${t.name}-${++copies}`;
    await copyPrefix(t.store(), `${tpl}/`, `${prefix}/`);
    return prefix;
  }

  const snapshot = (prefix: string) => storeSnapshot(t.store(), `${prefix}/`);

  beforeAll(async () => {
    const catalog = await catalogFor(t);
    Object.assign(k, catalog.k);
    ({ tpl, groupA, groupB } = catalog);
  });

  it('--keep-last 2 --dry-run prints the plan (text and --json) and deletes nothing', async () => {
    const prefix = await copyCatalog();
    const before = await snapshot(prefix);
    const text = await run(['cleanup', t.uri(prefix), '--keep-last', '2', '--dry-run']);
    expectExit(text, 0);
    expect(text.stdout).toContain(`Retention plan for ${t.display(prefix)}`);
    expect(text.stdout).toContain('(dry run: nothing is deleted):');
    for (const g of [groupA, groupA2(), groupB]) expect(text.stdout).toContain(`\n  ${g}\n`);
    for (const key of [k.f1, k.f2, k.f3])
      expect(text.stdout).toMatch(
        new RegExp(
          `^ {4}DELETE {2}\\S+ \\S+ {2}${key.replaceAll('.', '\\.')} {2}\\(no rule keeps it\\)$`,
          'm',
        ),
      );
    // The two kept in place of the deleted ones are read in full first.
    expect(text.stdout).toMatch(
      new RegExp(
        `^ {4}keep {4}\\S+ \\S+ {2}${k.r2} {2}\\(last 1, newest valid backup\\) \\[checksum verified\\]$`,
        'm',
      ),
    );
    expect(text.stdout).toMatch(
      new RegExp(
        `^ {4}keep {4}\\S+ \\S+ {2}${k.r1.replaceAll('.', '\\.')} {2}\\(last 2\\) \\[checksum verified\\]$`,
        'm',
      ),
    );
    expect(text.stdout).toMatch(/^5 kept, 3 would be deleted, .* would be freed\.$/m);

    const plan = await cleanupJson(t.uri(prefix), ['--keep-last', '2', '--dry-run'], ENV);
    expect(plan).toMatchObject({ dryRun: true, deleted: [], freedBytes: 0, errors: [], incomplete: [] });
    expect(plan.location).toContain(t.display(prefix));
    expect(plan.location).not.toContain(az.key);
    expect(plan.decisions).toHaveLength(8);
    const byKey = new Map(plan.decisions.map((d) => [d.key, d]));
    for (const key of [k.r1, k.r2, k.f1, k.f2, k.f3]) expect(byKey.get(key)?.group, key).toBe(groupA);
    expect(byKey.get(k.p1)).toMatchObject({
      group: groupA2(),
      keep: true,
      reasons: ['last 1', 'newest valid backup'],
    });
    expect(byKey.get(k.bOld)).toMatchObject({ group: groupB, keep: true, reasons: ['last 2'] });
    const f2meta = await readJson<BackupMeta>(t.store(), `${prefix}/${k.f2}.meta.json`);
    expect(byKey.get(k.f2)).toMatchObject({
      keep: false,
      reasons: ['no rule keeps it'],
      time: f2meta.startedAt,
      sizeBytes: f2meta.sizeBytes,
      valid: true,
      state: 'unverified',
    });
    expect(sorted(plan.checked.map((c) => c.key))).toEqual(sorted([k.r1, k.r2]));
    expect(sorted(plan.decisions.filter((d) => !d.keep).map((d) => d.key))).toEqual(
      sorted([k.f1, k.f2, k.f3]),
    );
    expect(await snapshot(prefix)).toEqual(before);
  });

  it('a real run deletes exactly the planned backups with all their sidecars; the newest of a group never goes', async () => {
    const prefix = await copyCatalog();
    const before = await snapshot(prefix);
    const planned = await cleanupJson(t.uri(prefix), ['--keep-last', '2', '--dry-run'], ENV);
    const first = await cleanupJson(t.uri(prefix), ['--keep-last', '2'], ENV);
    expect(first.dryRun).toBe(false);
    expect(first.errors).toEqual([]);
    expect(sorted(first.deleted)).toEqual(sorted(planned.decisions.filter((d) => !d.keep).map((d) => d.key)));
    expect(sorted(first.deleted)).toEqual(sorted([k.f1, k.f2, k.f3]));
    const r1meta = await readJson<BackupMeta>(t.store(), `${prefix}/${k.r1}.meta.json`);
    expect(first.freedBytes).toBe(3 * r1meta.sizeBytes);
    expect(await snapshot(prefix)).toEqual(without(before, [k.f1, k.f2, k.f3]));

    // Keep nothing: each group still keeps its newest valid backup (the encrypted r1 goes, keyless).
    const second = await cleanupJson(t.uri(prefix), ['--keep-last', '0'], ENV);
    expect(sorted(second.deleted)).toEqual(sorted([k.r1, k.bOld]));
    const kept = second.decisions.filter((d) => d.keep);
    expect(sorted(kept.map((d) => d.key))).toEqual(sorted([k.r2, k.p1, k.b]));
    for (const d of kept) expect(d.reasons).toEqual(['newest valid backup']);
    expect(await snapshot(prefix)).toEqual(without(before, [k.f1, k.f2, k.f3, k.r1, k.bOld]));
  });

  if (t.full)
    it('--prune-incomplete: an object without metadata is reported, kept within --grace, removed after', async () => {
      const prefix = await copyCatalog();
      const orphan = `${dbA}_20200101_000000.dump.zst`;
      await t.store().write(`${prefix}/${orphan}`, await t.store().read(`${prefix}/${k.r2}`));
      const before = await snapshot(prefix);

      const kept = await cleanupJson(t.uri(prefix), ['--keep-last', '100', '--prune-incomplete'], ENV);
      expect(kept.incomplete).toEqual([
        expect.objectContaining({ key: orphan, state: 'incomplete', removed: false }),
      ]);
      expect(kept.decisions.map((d) => d.key)).not.toContain(orphan);
      expect(await snapshot(prefix)).toEqual(before);

      const dry = await run([
        'cleanup',
        t.uri(prefix),
        '--keep-last',
        '100',
        '--prune-incomplete',
        '--grace',
        '0',
        '--dry-run',
      ]);
      expectExit(dry, 0);
      // The dry run names what it would remove.
      expect(dry.stdout).toMatch(
        new RegExp(
          `^ {2}REMOVE {3}${orphan.replaceAll('.', '\\.')}: incomplete: .*\\(would remove ${orphan.replaceAll('.', '\\.')}\\)$`,
          'm',
        ),
      );
      expect(await snapshot(prefix)).toEqual(before);

      const r = await run([
        'cleanup',
        t.uri(prefix),
        '--keep-last',
        '100',
        '--prune-incomplete',
        '--grace',
        '0',
      ]);
      expectExit(r, 0);
      expect(r.stdout).toMatch(
        new RegExp(`^ {2}removed {2}${orphan.replaceAll('.', '\\.')}: incomplete: `, 'm'),
      );
      const { [orphan]: _gone, ...rest } = before;
      expect(await snapshot(prefix)).toEqual(rest);
    });

  if (t.full)
    it('metadata deleted but data left (a crash mid-deletion): "incomplete", never "valid", and prunable', async () => {
      const prefix = await copyCatalog();
      await t.store().remove(`${prefix}/${k.f2}.meta.json`);
      const entries = (await listJson(['--cloud', t.uri(prefix)], ENV)).filter((b) => b.key === k.f2);
      expect(entries).toEqual([expect.objectContaining({ state: 'incomplete', database: null })]);
      const text = await run(['list', 'backups', '--cloud', t.uri(prefix)]);
      expectExit(text, 0);
      expect(text.stdout).toMatch(
        new RegExp(`^${k.f2.replaceAll('.', '\\.')}\\s.*\\sincomplete: no metadata`, 'm'),
      );

      // Never counted by a rule, never deleted without --prune-incomplete…
      const plan = await cleanupJson(t.uri(prefix), ['--keep-last', '1'], ENV);
      expect(plan.deleted).not.toContain(k.f2);
      expect(plan.incomplete).toEqual([
        expect.objectContaining({ key: k.f2, state: 'incomplete', removed: false }),
      ]);
      const left = await t.store().keys(`${prefix}/${k.f2}`);
      expect(left).toEqual([`${prefix}/${k.f2}`, `${prefix}/${k.f2}.sha256`]);
      // …and with it, data and checksum go.
      await cleanupJson(t.uri(prefix), ['--keep-last', '1', '--prune-incomplete', '--grace', '0'], ENV);
      expect(await t.store().keys(`${prefix}/${k.f2}`)).toEqual([]);
    });

  // An Azure blob under an active lease cannot be deleted: a deletion stops exactly where it meets it.
  if (t.name === 'azure')
    it('a deletion stopped at the data blob leaves the metadata deleted first: "incomplete", never "valid"', async () => {
      const prefix = await copyCatalog();
      const before = await snapshot(prefix);
      const blob = az.service.getContainerClient(BUCKET).getBlockBlobClient(`${prefix}/${k.f3}`);
      const lease = blob.getBlobLeaseClient();
      await lease.acquireLease(-1);
      try {
        const r = await run(['cleanup', t.uri(prefix), '--keep-last', '2', '--json']);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('dbbackup: error: cleanup did not finish: 1 problem');
        const plan = JSON.parse(r.stdout) as PlanJson;
        expect(sorted(plan.deleted)).toEqual(sorted([k.f1, k.f2]));
        expect(plan.errors).toEqual([expect.stringContaining(k.f3)]);
        // Metadata first: gone. Data: held by the lease. Checksum: after the data, so still there.
        expect(await t.store().keys(`${prefix}/${k.f3}`)).toEqual([
          `${prefix}/${k.f3}`,
          `${prefix}/${k.f3}.sha256`,
        ]);
        const states = new Map(
          (await listJson(['--cloud', t.uri(prefix)], ENV)).map((b) => [b.key, b.state]),
        );
        expect(states.get(k.f3)).toBe('incomplete');
      } finally {
        await lease.releaseLease();
      }
      await cleanupJson(t.uri(prefix), ['--keep-last', '2', '--prune-incomplete', '--grace', '0'], ENV);
      expect(await snapshot(prefix)).toEqual(without(before, [k.f1, k.f2, k.f3]));
    });

  if (t.name === 'azure')
    it('cluster backups: one group, older ones deleted manifest first (a stopped deletion leaves "incomplete")', async () => {
      const prefix = `${t.name}-cluster`;
      const r = await run([
        ...pgArgs(),
        'backup',
        'cluster',
        '--cloud',
        t.uri(prefix),
        '--include-database',
        dbA,
        '--json',
      ]);
      expectExit(r, 0);
      const real = (JSON.parse(r.stdout) as { manifest: { name: string; startedAt: string } }).manifest;
      const store = t.store();
      const t0 = Date.parse(real.startedAt);
      const old1 = await fabricateCluster(store, `${prefix}/`, real.name, new Date(t0 - DAY));
      const old2 = await fabricateCluster(store, `${prefix}/`, real.name, new Date(t0 - 2 * DAY));
      const before = await snapshot(prefix);
      const members = Object.keys(before).filter(
        (x) => x.startsWith(`${old1}/`) && !x.endsWith('manifest.json'),
      );
      expect(members.length).toBeGreaterThanOrEqual(2);
      const pinned = members.find((x) => x.endsWith('.dump.zst')) ?? '';
      expect(pinned).not.toBe('');

      const dry = await cleanupJson(t.uri(prefix), ['--keep-last', '1', '--dry-run'], ENV);
      expect(new Set(dry.decisions.map((d) => d.group)).size).toBe(1);
      expect(dry.decisions.map((d) => [d.key, d.keep])).toEqual([
        [`${real.name}/`, true],
        [`${old1}/`, false],
        [`${old2}/`, false],
      ]);

      const lease = az.service
        .getContainerClient(BUCKET)
        .getBlockBlobClient(`${prefix}/${pinned}`)
        .getBlobLeaseClient();
      await lease.acquireLease(-1);
      try {
        const stopped = await run(['cleanup', t.uri(prefix), '--keep-last', '1', '--json']);
        expect(stopped.code).toBe(1);
        const plan = JSON.parse(stopped.stdout) as PlanJson;
        expect(plan.deleted).toEqual([`${old2}/`]);
        expect(plan.errors).toEqual([expect.stringContaining(`${old1}/`)]);
        const left = (await store.keys(`${prefix}/${old1}/`)).map((x) => x.slice(prefix.length + 1));
        expect(left).toContain(pinned);
        expect(left).not.toContain(`${old1}/manifest.json`);
        const listed = (await listJson(['--cloud', t.uri(prefix)], ENV)).find((b) => b.key === `${old1}/`);
        expect(listed).toMatchObject({
          state: 'incomplete',
          detail: expect.stringMatching(/no manifest/) as unknown,
        });
      } finally {
        await lease.releaseLease();
      }
      const again = await cleanupJson(
        t.uri(prefix),
        ['--keep-last', '1', '--prune-incomplete', '--grace', '0'],
        ENV,
      );
      expect(again.incomplete).toEqual([expect.objectContaining({ key: `${old1}/`, removed: true })]);
      expect(await snapshot(prefix)).toEqual(without(before, [], [old1, old2]));
    });
});
