import { copyFile, mkdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMyFidelity, loadPgFidelity } from '../harness/fixtures.js';
import { createMyDatabase, dropMyDatabase } from '../harness/mysql.js';
import { mySnapshot, type MySnapshot } from '../harness/my-snapshot.js';
import { createPgDatabase, dropPgDatabase, pgQuery } from '../harness/pg.js';
import { pgSnapshot, type PgSnapshot } from '../harness/pg-snapshot.js';
import { referenceMySingle, referencePgSingle } from '../harness/reference-tool.js';
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
  type ListedBackup,
} from './util.js';

/**
 * The reference tool's single backups — PostgreSQL `db_<db>_<ts>.dump` (pg_dump --format=custom
 * --compress=6 --blobs) and MySQL/MariaDB `db_<db>_<ts>.sql.gz` (mysqldump | gzip -6), each with its
 * `.sha256` and its own `.meta.json` — made with the real tools, restored by `restore single`.
 */
const pgSource = uniqueName('pgref_single');
const mySource = uniqueName('myref_single');
const pgCreated: string[] = [pgSource];
const myCreated: string[] = [mySource];
let dir: string;
let pgBefore: PgSnapshot;
let myBefore: MySnapshot;
let pgFile: string;
let myFile: string;

async function pgExists(name: string): Promise<boolean> {
  return (await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0;
}

beforeAll(async () => {
  dir = await tempDir('dbb-refsingle-');
  await createPgDatabase(pgSource);
  await loadPgFidelity(pgSource);
  pgBefore = await pgSnapshot(pgSource);
  await createMyDatabase(mySource);
  await loadMyFidelity(mySource);
  myBefore = await mySnapshot(mySource);
  pgFile = await referencePgSingle(dir, pgSource);
  myFile = await referenceMySingle(dir, mySource);
});

afterAll(async () => {
  for (const name of pgCreated) await dropPgDatabase(name);
  for (const name of myCreated) await dropMyDatabase(name);
  if (dir) await removeDir(dir);
});

describe('restore single of the reference tool’s backups', () => {
  it('PostgreSQL db_<db>_<ts>.dump: its own metadata is used to verify the checksum, no --force needed', async () => {
    const target = `${pgSource}_copy`;
    pgCreated.push(target);
    const dry = await cli([...pgArgs(), 'restore', 'single', pgFile, '--target', target, '--create']);
    expectExit(dry, 0);
    expect(dry.stdout).toContain(
      `verify the SHA-256 of the whole backup against the reference tool's metadata (${path.basename(pgFile)}.meta.json)`,
    );
    expect(dry.stdout).toContain('PostgreSQL custom-format archive');
    expect(await pgExists(target)).toBe(false);

    const r = await cli([
      ...pgArgs(),
      'restore',
      'single',
      pgFile,
      '--target',
      target,
      '--create',
      '--confirm',
    ]);
    expectExit(r, 0);
    expect(r.stdout).toContain(`Restore complete: "${target}"`);
    expect(await pgSnapshot(target)).toEqual(pgBefore);
  });

  it('PostgreSQL: a dump whose reference metadata does not match is refused, and nothing is created', async () => {
    const bad = path.join(dir, 'tampered');
    await mkdir(bad);
    const file = path.join(bad, path.basename(pgFile));
    await copyFile(pgFile, file);
    const meta = JSON.parse(await readFile(`${pgFile}.meta.json`, 'utf8')) as { sha256: string };
    meta.sha256 = 'f'.repeat(64);
    await writeFile(`${file}.meta.json`, JSON.stringify(meta));
    const target = `${pgSource}_tampered`;
    pgCreated.push(target);
    const r = await cli([
      ...pgArgs(),
      'restore',
      'single',
      file,
      '--target',
      target,
      '--create',
      '--confirm',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Checksum mismatch for ${path.basename(file)}`);
    expect(await pgExists(target)).toBe(false);
  });

  it('PostgreSQL: the bare dump (no sidecars) needs --force, then restores identically', async () => {
    const bare = path.join(dir, 'bare');
    await mkdir(bare);
    const file = path.join(bare, path.basename(pgFile));
    await copyFile(pgFile, file);
    const target = `${pgSource}_bare`;
    pgCreated.push(target);
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
    expect(await pgExists(target)).toBe(false);
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
    expectExit(r, 0);
    expect(await pgSnapshot(target)).toEqual(pgBefore);
  });

  it('MariaDB db_<db>_<ts>.sql.gz (mysqldump | gzip): detected from content, restored with its metadata or with --force', async () => {
    const target = `${mySource}_copy`;
    myCreated.push(target);
    // No --db-type: the engine comes from the dump's content.
    const r = await cli([
      ...myArgs().slice(2),
      'restore',
      'single',
      myFile,
      '--target',
      target,
      '--create',
      '--confirm',
    ]);
    expectExit(r, 0);
    expect(r.stderr).toContain("against the reference tool's metadata");
    expect(await mySnapshot(target)).toEqual(myBefore);

    const bare = path.join(dir, 'my-bare');
    await mkdir(bare);
    const file = path.join(bare, path.basename(myFile));
    await copyFile(myFile, file);
    const forced = `${mySource}_forced`;
    myCreated.push(forced);
    const f = await cli([
      ...myArgs(),
      'restore',
      'single',
      file,
      '--target',
      forced,
      '--create',
      '--confirm',
      '--force',
    ]);
    expectExit(f, 0);
    expect(await mySnapshot(forced)).toEqual(myBefore);
  });
});

/** `list backups --json` entries, with the fields this file checks. */
type Entry = ListedBackup & {
  engine: string | null;
  sizeBytes: number | null;
  producer: string | null;
  kind: string | null;
};

/** Copies a reference backup into `to`, with the sidecars named (`.meta.json`, `.sha256`), under `name`. */
async function copyBackup(
  file: string,
  to: string,
  sidecars: string[] = ['.meta.json', '.sha256'],
  name = path.basename(file),
): Promise<string> {
  await mkdir(to, { recursive: true });
  const copy = path.join(to, name);
  await copyFile(file, copy);
  for (const s of sidecars) await copyFile(`${file}${s}`, `${copy}${s}`);
  return copy;
}

async function entries(where: string): Promise<Map<string, Entry>> {
  return new Map(((await listJson(['--backup-dir', where])) as Entry[]).map((e) => [e.key, e]));
}

describe('list backups, verify-backup and cleanup of the reference tool’s single backups', () => {
  it('list backups (and restore list) shows them (unverified: sizes only), with database, engine, size, time, marked as the reference’s', async () => {
    const cat = path.join(dir, 'catalog');
    const pg = await copyBackup(pgFile, cat);
    const my = await copyBackup(myFile, cat);
    const listed = await entries(cat);
    expect([...listed.keys()].sort()).toEqual([path.basename(pg), path.basename(my)].sort());
    expect(listed.get(path.basename(pg))).toMatchObject({
      state: 'unverified',
      database: pgSource,
      engine: 'postgres',
      sizeBytes: (await stat(pg)).size,
      producer: 'reference',
      kind: 'single',
    });
    expect(listed.get(path.basename(my))).toMatchObject({
      state: 'unverified',
      database: mySource,
      engine: 'mariadb',
      sizeBytes: (await stat(my)).size,
      producer: 'reference',
    });
    const created = Date.parse(listed.get(path.basename(pg))?.created ?? '');
    expect(Math.abs(Date.now() - created)).toBeLessThan(3_600_000);

    for (const args of [
      ['list', 'backups'],
      ['restore', 'list'],
    ]) {
      const text = await cli(['--backup-dir', cat, ...args]);
      expectExit(text, 0);
      expect(text.stdout).toMatch(
        new RegExp(`^${path.basename(pg)} \\[ref\\]\\s+${pgSource}\\s+postgres\\s`, 'm'),
      );
      expect(text.stdout).toContain('[ref] made by the reference tool');
    }
  });

  it('verify-backup checks them against their own metadata: SHA-256, sizes with --quick, content with --deep', async () => {
    const cat = path.join(dir, 'verify');
    const pg = await copyBackup(pgFile, cat);
    const my = await copyBackup(myFile, cat);
    const full = await cli(['verify-backup', cat]);
    expectExit(full, 0);
    for (const f of [pg, my])
      expect(full.stdout).toMatch(
        new RegExp(
          `^OK {4}${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\[ref\\] .*matches the reference tool's metadata$`,
          'm',
        ),
      );
    expect(full.stdout).toContain('All 2 backups verified.');

    const quick = await cli(['verify-backup', cat, '--quick']);
    expectExit(quick, 0);
    expect(quick.stdout).toContain('size matches (quick check)');

    const deep = await cli(['verify-backup', `${cat}/db_*`, '--deep']);
    expectExit(deep, 0);
    expect(deep.stdout).toMatch(/dump complete: pg_restore read the data of \d+ tables/);
    expect(deep.stdout).toMatch(/dump complete: it ends with "-- Dump completed/);
  });

  it('a flipped byte fails verification (exit 1), a truncated dump is corrupt, a dump without its sidecar incomplete', async () => {
    const bad = path.join(dir, 'damaged');
    const flipped = await copyBackup(pgFile, bad);
    const bytes = await readFile(flipped);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] ?? 0) ^ 0xff;
    await writeFile(flipped, bytes);
    const r = await cli(['verify-backup', flipped]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /^FAIL .* \[ref\] .*: corrupt: checksum mismatch: expected sha256 [0-9a-f]{64}, computed/m,
    );
    expect(r.stderr).toContain('1 of 1 backup failed verification');
    // The size is unchanged: list (sizes only) cannot see it, --deep does.
    const deep = await cli(['verify-backup', flipped, '--deep']);
    expect(deep.code).toBe(1);
    expect(deep.stdout).toMatch(/^FAIL .*corrupt: /m);

    const short = await copyBackup(myFile, bad);
    const size = (await stat(short)).size;
    await truncate(short, size - 100);
    const bare = await copyBackup(pgFile, bad, [], path.basename(pgFile).replace(/\.dump$/, '_bare.dump'));

    const listed = await entries(bad);
    expect(listed.get(path.basename(flipped))).toMatchObject({ state: 'unverified', producer: 'reference' });
    expect(listed.get(path.basename(short))).toMatchObject({
      state: 'corrupt',
      detail: `size mismatch: expected ${size} bytes, found ${size - 100}`,
      producer: 'reference',
      database: mySource,
    });
    expect(listed.get(path.basename(bare))).toMatchObject({
      state: 'incomplete',
      // Renamed (`…_bare.dump`): named neither as dbbackup nor as the reference tool names backups.
      detail: expect.stringMatching(/^no metadata \(\.meta\.json\), and not named as dbbackup/) as unknown,
    });
    const all = await cli(['verify-backup', bad]);
    expect(all.code).toBe(1);
    expect(all.stderr).toContain('3 of 3 backups failed verification');
  });

  it('cleanup applies its rules to dbbackup’s backups only and leaves the reference’s alone', async () => {
    const mixed = path.join(dir, 'cleanup');
    const recent = await copyBackup(pgFile, mixed);
    const old = await referencePgSingle(mixed, pgSource, '20240101_000000');
    for (let i = 0; i < 2; i++)
      expectExit(
        await cli([...pgArgs(), '--backup-dir', mixed, 'backup', 'single', pgSource, '--no-progress']),
        0,
      );
    const ours = (await entries(mixed)).values();
    const own = [...ours].filter((e) => e.producer === 'dbbackup').map((e) => e.key);
    expect(own).toHaveLength(2);
    const reference = [recent, old].flatMap((f) =>
      ['', '.sha256', '.meta.json'].map((s) => `${path.basename(f)}${s}`),
    );

    const dry = await cleanupJson(mixed, ['--keep-last', '1', '--dry-run']);
    expect(dry.decisions.map((d) => d.key).sort()).toEqual([...own].sort());
    expect(dry.leftAlone.sort()).toEqual([recent, old].map((f) => path.basename(f)).sort());
    const plan = await cleanupJson(mixed, ['--keep-last', '1', '--prune-incomplete', '--grace', '0']);
    expect(plan.deleted).toHaveLength(1);
    expect(own).toContain(plan.deleted[0]);
    expect(plan.incomplete).toEqual([]);
    const left = await listDir(mixed);
    for (const f of reference) expect(left).toContain(f);
    expect([...(await entries(mixed)).values()].filter((e) => e.producer === 'reference')).toHaveLength(2);
  });
});
