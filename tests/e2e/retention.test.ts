import { copyFile, cp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { pgServer } from '../harness/servers.js';
import {
  cli,
  expectExit,
  listDir,
  pgArgs,
  removeDir,
  sha256File,
  tempDir,
  uniqueName,
  type PlanJson,
} from './util.js';

/*
 * Retention through the real CLI. Two real backups of database A and one of database B are taken
 * with `backup single`; older backups of the same groups are fabricated by copying a real backup
 * under a new name and rewriting only startedAt/finishedAt/file (and, for one extra group, the
 * server port) in its metadata. The data is byte-identical, so sha256 and size stay valid.
 *
 * The catalog (T0 = when the real backups were taken; ages are relative to T0):
 *   group A  = postgres <server> dbA:  r2 (real, newest), r1 (real), f1 1d, f2 40d, f3 50d, f4 60d, f5 400d
 *   group A' = postgres 127.0.0.1:1 dbA (same database name, another server): p1 35d, p2 70d
 *   group B  = postgres <server> dbB:  b (real), bOld 5d
 * The real backups get an ancient file mtime and the fabricated ones a fresh one: a planner that
 * used mtimes instead of the metadata timestamps would delete the real ones first.
 *
 * Every test works on its own copy of the catalog; expected sets are computed by hand.
 */

const dbA = uniqueName('ret_a');
const dbB = uniqueName('ret_b');
const DAY = 86_400_000;

interface Meta {
  startedAt: string;
  finishedAt: string;
  file: string;
  sha256: string;
  sizeBytes: number;
  database: string;
  connection: { host: string; port: number; user: string };
  [field: string]: unknown;
}

interface ListJson {
  location: string;
  backups: Array<{ key: string; state: string; database: string | null; created: string | null }>;
}

let template: string;
const roots: string[] = [];
/** Backup keys (data file names) of the catalog, by the names used in the comment above. */
const k = { r1: '', r2: '', f1: '', f2: '', f3: '', f4: '', f5: '', p1: '', p2: '', b: '', bOld: '' };
let groupA = '';
let groupB = '';
const groupA2 = () => `postgres 127.0.0.1:1 ${dbA}`;

const isData = (name: string): boolean => !name.endsWith('.meta.json') && !name.endsWith('.sha256');
const filesOf = (...keys: string[]): string[] => keys.flatMap((x) => [x, `${x}.meta.json`, `${x}.sha256`]);

function tag(d: Date): string {
  const s = d.toISOString();
  return `${s.slice(0, 4)}${s.slice(5, 7)}${s.slice(8, 10)}_${s.slice(11, 13)}${s.slice(14, 16)}${s.slice(17, 19)}`;
}

async function readMeta(dir: string, key: string): Promise<Meta> {
  return JSON.parse(await readFile(path.join(dir, `${key}.meta.json`), 'utf8')) as Meta;
}

/** Copies backup `from` under a name for `when`, rewriting only the timestamps, the file name (and the port). */
async function fabricate(dir: string, from: string, when: Date, port?: number): Promise<string> {
  const meta = await readMeta(dir, from);
  const key = `${meta.database}_${tag(when)}.dump.zst`;
  await copyFile(path.join(dir, from), path.join(dir, key));
  const rewritten: Meta = {
    ...meta,
    startedAt: when.toISOString(),
    finishedAt: new Date(when.getTime() + 1000).toISOString(),
    file: key,
    ...(port === undefined ? {} : { connection: { ...meta.connection, port } }),
  };
  await writeFile(path.join(dir, `${key}.meta.json`), `${JSON.stringify(rewritten, null, 2)}\n`);
  await writeFile(path.join(dir, `${key}.sha256`), `${meta.sha256}  ${key}\n`);
  return key;
}

async function backupInto(dir: string, db: string, extra: string[] = []): Promise<void> {
  const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db, '--no-progress', ...extra]);
  expectExit(r, 0);
  expect(r.stdout).toContain('Backup complete:');
}

/** A fresh copy of the catalog (timestamps preserved). */
async function copyCatalog(): Promise<string> {
  const root = await tempDir('dbb-ret-run-');
  roots.push(root);
  const dir = path.join(root, 'store');
  await cp(template, dir, { recursive: true, preserveTimestamps: true });
  return dir;
}

/** name → sha256 of every file, to prove "untouched" byte for byte. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await listDir(dir)) out[name] = await sha256File(path.join(dir, name));
  return out;
}

/** The snapshot without the files of `keys`. */
function without(snap: Record<string, string>, keys: string[]): Record<string, string> {
  const drop = new Set(filesOf(...keys));
  return Object.fromEntries(Object.entries(snap).filter(([name]) => !drop.has(name)));
}

function cleanup(dir: string, ...args: string[]): ReturnType<typeof cli> {
  return cli(['cleanup', dir, ...args]);
}

function planOf(stdout: string): PlanJson {
  return JSON.parse(stdout) as PlanJson;
}

const sorted = (xs: string[]): string[] => [...xs].sort();

beforeAll(async () => {
  for (const db of [dbA, dbB]) {
    await createPgDatabase(db);
    await pgExec(
      db,
      `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 300) g;`,
    );
  }
  template = await tempDir('dbb-ret-template-');
  await backupInto(template, dbA);
  await backupInto(template, dbA);
  await backupInto(template, dbB);

  const real = (await listDir(template)).filter(isData);
  const metas = await Promise.all(real.map(async (key) => ({ key, meta: await readMeta(template, key) })));
  const byTime = (db: string) =>
    metas
      .filter((m) => m.meta.database === db)
      .sort((x, y) => Date.parse(x.meta.startedAt) - Date.parse(y.meta.startedAt))
      .map((m) => m.key);
  const realA = byTime(dbA);
  const realB = byTime(dbB);
  expect(realA).toHaveLength(2);
  expect(realB).toHaveLength(1);
  k.r1 = realA[0] ?? '';
  k.r2 = realA[1] ?? '';
  k.b = realB[0] ?? '';

  const r2meta = await readMeta(template, k.r2);
  expect(r2meta.file).toBe(k.r2);
  expect(r2meta.connection.port).toBe(pgServer().port);
  expect(r2meta.connection.port).not.toBe(1);
  groupA = `postgres ${r2meta.connection.host}:${r2meta.connection.port} ${dbA}`;
  groupB = `postgres ${r2meta.connection.host}:${r2meta.connection.port} ${dbB}`;

  const t0 = Date.parse(r2meta.startedAt);
  const ago = (days: number): Date => new Date(t0 - days * DAY);
  k.f1 = await fabricate(template, k.r1, ago(1));
  k.f2 = await fabricate(template, k.r1, ago(40));
  k.f3 = await fabricate(template, k.r1, ago(50));
  k.f4 = await fabricate(template, k.r1, ago(60));
  k.f5 = await fabricate(template, k.r1, ago(400));
  k.p1 = await fabricate(template, k.r1, ago(35), 1);
  k.p2 = await fabricate(template, k.r1, ago(70), 1);
  k.bOld = await fabricate(template, k.b, ago(5));

  // File times contradict the metadata: the real (newest) backups look ancient on disk.
  const ancient = new Date('2001-01-01T00:00:00Z');
  for (const name of filesOf(k.r1, k.r2, k.b)) await utimes(path.join(template, name), ancient, ancient);
  expect(await listDir(template)).toEqual(sorted(filesOf(...Object.values(k))));
});

afterAll(async () => {
  for (const db of [dbA, dbB]) await dropPgDatabase(db);
  if (template) await removeDir(template);
  for (const root of roots) await removeDir(root);
});

describe('dbbackup cleanup: plan and dry run', () => {
  it('--keep-last 2 --dry-run prints the plan with reasons and deletes nothing', async () => {
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    const r = await cleanup(dir, '--keep-last', '2', '--dry-run');
    expectExit(r, 0);
    expect(r.stdout).toContain(`Retention plan for ${dir} (dry run: nothing is deleted):`);
    for (const g of [groupA, groupA2(), groupB]) expect(r.stdout).toContain(`\n  ${g}\n`);
    for (const key of [k.f1, k.f2, k.f3, k.f4, k.f5])
      expect(r.stdout).toMatch(
        new RegExp(`^ {4}DELETE {2}\\S+ \\S+ {2}${key} {2}\\(no rule keeps it\\)$`, 'm'),
      );
    // The two backups kept in place of the five deleted ones were read in full first.
    expect(r.stdout).toMatch(
      new RegExp(
        `^ {4}keep {4}\\S+ \\S+ {2}${k.r2} {2}\\(last 1, newest valid backup\\) \\[checksum verified\\]$`,
        'm',
      ),
    );
    expect(r.stdout).toMatch(
      new RegExp(`^ {4}keep {4}\\S+ \\S+ {2}${k.r1} {2}\\(last 2\\) \\[checksum verified\\]$`, 'm'),
    );
    expect(r.stdout).toMatch(
      /^Read in full before deleting what they replace: 2 backups, all match their checksums\.$/m,
    );
    for (const key of [k.p1, k.p2, k.b, k.bOld])
      expect(r.stdout).toMatch(new RegExp(`^ {4}keep .*${key}`, 'm'));
    expect(r.stdout).toMatch(/^6 kept, 5 would be deleted, .* would be freed\.$/m);
    expect(await snapshot(dir)).toEqual(before);
  });

  it('--json: the plan as JSON (shape, groups, reasons), nothing deleted', async () => {
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    const r = await cleanup(dir, '--keep-last', '2', '--dry-run', '--json');
    expectExit(r, 0);
    const plan = planOf(r.stdout);
    expect(sorted(Object.keys(plan))).toEqual(
      sorted([
        'location',
        'dryRun',
        'decisions',
        'incomplete',
        'deleted',
        'freedBytes',
        'errors',
        'leftAlone',
        'notOurs',
        'checked',
        'hints',
      ]),
    );
    expect(plan).toMatchObject({
      location: dir,
      dryRun: true,
      deleted: [],
      freedBytes: 0,
      errors: [],
      incomplete: [],
      notOurs: [],
    });
    // Only group A loses backups: only the two it keeps in their place are read (and so "valid").
    expect(sorted(plan.checked.map((c) => c.key))).toEqual(sorted([k.r1, k.r2]));
    expect(plan.decisions).toHaveLength(11);
    const size = (await readMeta(dir, k.r1)).sizeBytes;
    for (const d of plan.decisions) {
      expect(sorted(Object.keys(d))).toEqual(
        sorted([
          'key',
          'group',
          'time',
          'valid',
          'keep',
          'holdsSlot',
          'reasons',
          'sizeBytes',
          'state',
          'outcome',
          'files',
        ]),
      );
      expect(d.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(d).toMatchObject({
        valid: true,
        state: [k.r1, k.r2].includes(d.key) ? 'valid' : 'unverified',
        outcome: d.keep ? 'kept' : 'would delete',
      });
      expect(d.sizeBytes).toBeGreaterThan(0);
      expect(d.reasons.length).toBeGreaterThan(0);
    }
    const byKey = new Map(plan.decisions.map((d) => [d.key, d]));
    expect(byKey.get(k.f3)).toMatchObject({
      group: groupA,
      keep: false,
      reasons: ['no rule keeps it'],
      sizeBytes: size,
      time: (await readMeta(dir, k.f3)).startedAt,
    });
    expect(byKey.get(k.r2)).toMatchObject({
      group: groupA,
      keep: true,
      reasons: ['last 1', 'newest valid backup'],
    });
    expect(byKey.get(k.p2)).toMatchObject({ group: groupA2(), keep: true, reasons: ['last 2'] });
    expect(byKey.get(k.bOld)).toMatchObject({ group: groupB, keep: true });
    expect(sorted(plan.decisions.filter((d) => !d.keep).map((d) => d.key))).toEqual(
      sorted([k.f1, k.f2, k.f3, k.f4, k.f5]),
    );
    expect(await snapshot(dir)).toEqual(before);
  });
});

describe('dbbackup cleanup: real runs', () => {
  it('--keep-last 2 deletes exactly the planned backups with their sidecars; other groups untouched', async () => {
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    const doomed = [k.f1, k.f2, k.f3, k.f4, k.f5];
    const r = await cleanup(dir, '--keep-last', '2', '--json');
    expectExit(r, 0);
    const plan = planOf(r.stdout);
    expect(plan.dryRun).toBe(false);
    expect(sorted(plan.deleted)).toEqual(sorted(doomed));
    // The fabricated backups are copies of r1.
    expect(plan.freedBytes).toBe(5 * (await readMeta(dir, k.r1)).sizeBytes);
    expect(plan.errors).toEqual([]);
    expect(await snapshot(dir)).toEqual(without(before, doomed));
    // Running it again finds nothing more to delete.
    const again = await cleanup(dir, '--keep-last', '2');
    expectExit(again, 0);
    expect(again.stdout).toMatch(/^6 kept, 0 deleted, 0 B freed\.$/m);
    expect(await snapshot(dir)).toEqual(without(before, doomed));
  });

  it('the text output of a real run says "deleted" for each removed backup', async () => {
    const dir = await copyCatalog();
    const r = await cleanup(dir, '--keep-last', '6');
    expectExit(r, 0);
    // Group A has 7: only f5 goes.
    expect(r.stdout).not.toContain('dry run');
    expect(r.stdout).toMatch(new RegExp(`^ {4}deleted {2}.*${k.f5} {2}\\(no rule keeps it\\)$`, 'm'));
    expect(r.stdout).toMatch(/^10 kept, 1 deleted, .* freed\.$/m);
    expect(await listDir(dir)).not.toContain(k.f5);
  });

  it('--retention-days 30 --min-backups 5: only what is older than 30 days and not among the 5 newest', async () => {
    // A: younger than 30d: r2 r1 f1; 5 newest: r2 r1 f1 f2 f3 → f4, f5 go.
    // A': p1 (35d) and p2 (70d) are old but among the 5 newest of their group → kept.
    // B: both younger than 30d.
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    const r = await cleanup(dir, '--retention-days', '30', '--min-backups', '5', '--json');
    expectExit(r, 0);
    const plan = planOf(r.stdout);
    expect(sorted(plan.deleted)).toEqual(sorted([k.f4, k.f5]));
    expect(plan.decisions.find((d) => d.key === k.p1)?.reasons).toEqual([
      'min-backups 1',
      'newest valid backup',
    ]);
    expect(plan.decisions.find((d) => d.key === k.f1)?.reasons).toContain('not older than 30 days');
    expect(await snapshot(dir)).toEqual(without(before, [k.f4, k.f5]));
  });

  it('--keep-within is relative to each group’s newest backup', async () => {
    // A: within 45d of r2: r2 r1 f1 f2 → f3 f4 f5 go. A': p2 is 35d after p1 → both kept,
    // although both are older than 45d from now. B: both kept.
    const dir = await copyCatalog();
    const r = await cleanup(dir, '--keep-within', '45d', '--dry-run', '--json');
    expectExit(r, 0);
    const plan = planOf(r.stdout);
    expect(sorted(plan.decisions.filter((d) => !d.keep).map((d) => d.key))).toEqual(
      sorted([k.f3, k.f4, k.f5]),
    );
  });

  it('--pattern limits cleanup to matching names; groups still count separately', async () => {
    // dbA_* matches groups A and A' (same database name, other server): keep-last 1 in each.
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    const doomed = [k.r1, k.f1, k.f2, k.f3, k.f4, k.f5, k.p2];
    const r = await cleanup(dir, '--pattern', `${dbA}_*`, '--keep-last', '1', '--json');
    expectExit(r, 0);
    const plan = planOf(r.stdout);
    expect(sorted(plan.deleted)).toEqual(sorted(doomed));
    expect(plan.decisions.some((d) => d.group === groupB)).toBe(false);
    expect(await snapshot(dir)).toEqual(without(before, doomed));

    // A pattern for B only.
    const dir2 = await copyCatalog();
    const before2 = await snapshot(dir2);
    const r2 = await cleanup(dir2, '--pattern', `${dbB}_*`, '--keep-last', '1');
    expectExit(r2, 0);
    expect(await snapshot(dir2)).toEqual(without(before2, [k.bOld]));

    // A pattern that matches nothing deletes nothing.
    const r3 = await cleanup(dir2, '--pattern', 'nothing_*', '--keep-last', '1');
    expectExit(r3, 0);
    expect(r3.stdout).toMatch(/^0 kept, 0 deleted/m);
    expect(await snapshot(dir2)).toEqual(without(before2, [k.bOld]));
  });

  // BUG (data loss): `cleanup --database NAME` is ignored. The program defines a global
  // `--database <db>` ("database to connect to for server queries", src/cli/main.ts:35) and commander
  // gives it the option wherever it appears, so `opts.database` in src/cli/commands/cleanup.ts:236
  // is always undefined and the policy is applied to EVERY database in the directory.
  // Input: `cleanup DIR --database <dbB> --keep-last 1`. Expected: only B's older backup (bOld) is
  // deleted. Actual: r1, f1–f5 (group A), p2 (group A') and bOld are all deleted.
  it('--database limits cleanup to that database', async () => {
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    const r = await cleanup(dir, '--database', dbB, '--keep-last', '1', '--json');
    expectExit(r, 0);
    expect(planOf(r.stdout).deleted).toEqual([k.bOld]);
    expect(await snapshot(dir)).toEqual(without(before, [k.bOld]));
  });

  it('an explicit time zone and the default (local, from TZ) decide the daily buckets', async () => {
    // Only three backups of group A: x = 01-10 23:30Z (Berlin: 01-11 00:30), y = 01-10 22:30Z
    // (Berlin: 01-10 23:30), z = 01-09 12:00Z. --keep-daily 2 keeps x+z in UTC, x+y in Berlin.
    const root = await tempDir('dbb-ret-tz-');
    roots.push(root);
    const dir = path.join(root, 'store');
    await cp(template, dir, { recursive: true });
    const x = await fabricate(dir, k.r1, new Date('2026-01-10T23:30:00Z'));
    const y = await fabricate(dir, k.r1, new Date('2026-01-10T22:30:00Z'));
    const z = await fabricate(dir, k.r1, new Date('2026-01-09T12:00:00Z'));
    for (const name of await listDir(dir))
      if (![x, y, z].some((key) => name.startsWith(key))) await rm(path.join(dir, name));
    expect(await listDir(dir)).toEqual(sorted(filesOf(x, y, z)));

    const doomedWith = async (env: Record<string, string>, extra: string[]): Promise<string[]> => {
      const r = await cli(['cleanup', dir, '--keep-daily', '2', '--dry-run', '--json', ...extra], { env });
      expectExit(r, 0);
      return planOf(r.stdout)
        .decisions.filter((d) => !d.keep)
        .map((d) => d.key);
    };
    expect(await doomedWith({ TZ: 'UTC' }, [])).toEqual([y]);
    expect(await doomedWith({ TZ: 'Europe/Berlin' }, [])).toEqual([z]);
    expect(await doomedWith({ TZ: 'UTC' }, ['--time-zone', 'Europe/Berlin'])).toEqual([z]);
    expect(await doomedWith({ TZ: 'Europe/Berlin' }, ['--time-zone', 'UTC'])).toEqual([y]);
  });
});

describe('backup single with retention flags', () => {
  it('--keep-last 1 prunes only the new backup’s group, after the backup succeeded', async () => {
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    const r = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      'backup',
      'single',
      dbA,
      '--no-progress',
      '--keep-last',
      '1',
    ]);
    expectExit(r, 0);
    expect(r.stdout).toContain('Backup complete:');
    expect(r.stdout).toContain(`Retention plan for ${dir}:`);
    expect(r.stdout.indexOf('Backup complete:')).toBeLessThan(r.stdout.indexOf('Retention plan'));
    // The plan shows group A only.
    expect(r.stdout).toContain(`  ${groupA}\n`);
    expect(r.stdout).not.toContain(groupA2());
    expect(r.stdout).not.toContain(groupB);

    const after = await snapshot(dir);
    const added = Object.keys(after).filter((name) => !(name in before));
    const fresh = added.filter(isData);
    expect(fresh).toHaveLength(1);
    expect(sorted(added)).toEqual(sorted(filesOf(fresh[0] ?? '')));
    const doomed = [k.r1, k.r2, k.f1, k.f2, k.f3, k.f4, k.f5];
    const expected = { ...without(before, doomed) };
    for (const name of added) expected[name] = after[name] ?? '';
    expect(after).toEqual(expected);
  });

  // BUG (spec: "every real run prints the plan"; "--json"): with --json, `backup single` prints only
  // {paths, metadata} and skips the retention plan entirely (src/cli/commands/backup.ts:124
  // `if (!opts.json) printCleanup(...)`), so a script gets no record of the backups it just deleted.
  // Expected: the JSON output names the deleted backups. Actual: they are deleted silently.
  it('--json output of a backup with --keep-last includes the retention plan', async () => {
    const dir = await copyCatalog();
    const r = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      'backup',
      'single',
      dbB,
      '--no-progress',
      '--keep-last',
      '1',
      '--json',
    ]);
    expectExit(r, 0);
    expect(await listDir(dir)).not.toContain(k.b);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(JSON.stringify(out)).toContain(k.bOld);
    expect(JSON.stringify(out)).toContain(k.b);
  });

  it('--retention-days 30 --min-backups 2 after a backup: group A keeps its young backups', async () => {
    // New N + r2 r1 f1 are younger than 30 days; f2–f5 are older and not among the 2 newest.
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    const r = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      'backup',
      'single',
      dbA,
      '--no-progress',
      '--retention-days',
      '30',
      '--min-backups',
      '2',
    ]);
    expectExit(r, 0);
    const after = await snapshot(dir);
    const doomed = [k.f2, k.f3, k.f4, k.f5];
    for (const name of Object.keys(without(before, doomed))) expect(after[name]).toBe(before[name]);
    for (const name of filesOf(...doomed)) expect(after).not.toHaveProperty(name);
  });

  it('a failed backup (nonexistent database) deletes nothing', async () => {
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    const r = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      'backup',
      'single',
      'no_such_db_retention',
      '--keep-last',
      '1',
      '--retention-days',
      '0',
    ]);
    expect(r.code).toBe(2);
    expect(r.stdout).not.toContain('Retention plan');
    expect(await snapshot(dir)).toEqual(before);
  });

  it('a failed backup (unreachable server, port 1 = group A’s server) deletes nothing', async () => {
    // Group A' is exactly "postgres 127.0.0.1:1 dbA": a retention pass after this failure would
    // delete p2 from it.
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    const r = await cli([
      '--host',
      '127.0.0.1',
      '--port',
      '1',
      '--user',
      pgServer().user,
      '--backup-dir',
      dir,
      'backup',
      'single',
      dbA,
      '--keep-last',
      '1',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^dbbackup: error: /m);
    expect(r.stdout).not.toContain('Retention plan');
    expect(await snapshot(dir)).toEqual(before);
  });

  it('an invalid retention flag fails before the backup starts', async () => {
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    for (const bad of [
      ['--keep-last', 'abc'],
      ['--keep-daily', '-1'],
      ['--keep-within', '7x'],
      ['--time-zone', 'Mars/Olympus_Mons'],
    ]) {
      const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', dbA, ...bad]);
      expect(r.code, bad.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^hint: /m);
      expect(await snapshot(dir)).toEqual(before);
    }
  });
});

describe('incomplete and corrupt backups', () => {
  const orphanOld = () => `${dbA}_20200101_000000.dump.zst`;
  const orphanNew = () => `${dbA}_20200102_000000.dump.zst`;
  const leftover = () => `.dbbackup-tmp-0123456789ab-${dbA}_20200103_000000.dump.zst`;

  /** The catalog plus two data files without metadata (one 3 days old on disk) and a temp leftover. */
  async function withIncomplete(): Promise<string> {
    const dir = await copyCatalog();
    for (const name of [orphanOld(), orphanNew(), leftover()])
      await copyFile(path.join(dir, k.r1), path.join(dir, name));
    const old = new Date(Date.now() - 3 * DAY);
    await utimes(path.join(dir, orphanOld()), old, old);
    return dir;
  }

  it('are reported but kept by a normal run', async () => {
    const dir = await withIncomplete();
    const before = await snapshot(dir);
    const r = await cleanup(dir, '--keep-last', '100');
    expectExit(r, 0);
    for (const name of [orphanOld(), orphanNew(), leftover()])
      expect(r.stdout).toMatch(
        new RegExp(`^ {2}report {3}${name.replaceAll('.', '\\.')}: incomplete: `, 'm'),
      );
    expect(await snapshot(dir)).toEqual(before);

    const j = planOf((await cleanup(dir, '--keep-last', '1', '--dry-run', '--json')).stdout);
    expect(sorted(j.incomplete.map((i) => i.key))).toEqual(sorted([orphanOld(), orphanNew(), leftover()]));
    for (const i of j.incomplete) expect(i).toMatchObject({ state: 'incomplete', removed: false });
    // They are not part of any group's plan (no metadata), so they never fill a slot.
    expect(j.decisions.map((d) => d.key)).not.toContain(orphanOld());
  });

  it('--prune-incomplete removes them only once older than --grace (default 24 h)', async () => {
    const dir = await withIncomplete();
    const before = await snapshot(dir);

    const dry = await cleanup(dir, '--keep-last', '100', '--prune-incomplete', '--grace', '0', '--dry-run');
    expectExit(dry, 0);
    expect(await snapshot(dir)).toEqual(before);

    const r = await cleanup(dir, '--keep-last', '100', '--prune-incomplete', '--json');
    expectExit(r, 0);
    const j = planOf(r.stdout);
    expect(j.incomplete.find((i) => i.key === orphanOld())?.removed).toBe(true);
    expect(j.incomplete.find((i) => i.key === orphanNew())?.removed).toBe(false);
    expect(j.incomplete.find((i) => i.key === leftover())?.removed).toBe(false);
    const { [orphanOld()]: _gone, ...rest } = before;
    expect(await snapshot(dir)).toEqual(rest);

    const r2 = await cleanup(dir, '--keep-last', '100', '--prune-incomplete', '--grace', '0');
    expectExit(r2, 0);
    expect(r2.stdout).toMatch(new RegExp(`^ {2}removed {2}${orphanNew().replaceAll('.', '\\.')}: `, 'm'));
    // Only the valid backups remain, untouched.
    expect(await snapshot(dir)).toEqual(without(rest, [orphanNew(), leftover()]));
    expect(await listDir(dir)).toEqual(sorted(filesOf(...Object.values(k))));
  });

  it('a crash between metadata and data deletion leaves an "incomplete", never a "valid" backup', async () => {
    // deleteBackup removes <key>.meta.json first; simulate a crash right after that step.
    const dir = await copyCatalog();
    await rm(path.join(dir, `${k.f2}.meta.json`));
    const list = await cli(['--backup-dir', dir, 'list', 'backups', '--json']);
    expectExit(list, 0);
    const entries = (JSON.parse(list.stdout) as ListJson).backups.filter((b) => b.key === k.f2);
    expect(entries).toHaveLength(1);
    expect(entries[0]?.state).toBe('incomplete');
    expect(entries[0]?.database).toBeNull();

    // Retention never counts it, never deletes it without --prune-incomplete…
    const r = await cleanup(dir, '--keep-last', '1', '--json');
    expectExit(r, 0);
    const j = planOf(r.stdout);
    expect(j.deleted).not.toContain(k.f2);
    expect(j.incomplete).toEqual([
      expect.objectContaining({ key: k.f2, state: 'incomplete', removed: false }),
    ]);
    expect(await listDir(dir)).toEqual(expect.arrayContaining([k.f2, `${k.f2}.sha256`]));
    // …and with it, data and checksum go.
    const p = await cleanup(dir, '--keep-last', '1', '--prune-incomplete', '--grace', '0');
    expectExit(p, 0);
    expect(await listDir(dir)).not.toContain(k.f2);
    expect(await listDir(dir)).not.toContain(`${k.f2}.sha256`);
  });

  it('a crash after data deletion (only .sha256 left) never lists a valid backup', async () => {
    const dir = await copyCatalog();
    await rm(path.join(dir, `${k.f3}.meta.json`));
    await rm(path.join(dir, k.f3));
    const list = await cli(['--backup-dir', dir, 'list', 'backups', '--json']);
    expectExit(list, 0);
    const listed = (JSON.parse(list.stdout) as ListJson).backups;
    expect(listed.filter((b) => b.key === k.f3 && b.state === 'valid')).toEqual([]);
  });

  // BUG (minor): the third crash point of deleteBackup (src/catalog/transfer.ts:59-63: after the data
  // file is gone, before <key>.sha256) leaves a lone .sha256 that no command ever shows or removes:
  // listing.ts only considers data files and .meta.json owners, so cleanup does not report it and
  // --prune-incomplete cannot remove it. Expected: reported as incomplete and removed with
  // --prune-incomplete --grace 0. Actual: invisible, stays forever.
  it('a lone .sha256 left by an interrupted deletion is reported and pruned', async () => {
    const dir = await copyCatalog();
    await rm(path.join(dir, `${k.f3}.meta.json`));
    await rm(path.join(dir, k.f3));
    const r = await cleanup(dir, '--keep-last', '100', '--prune-incomplete', '--grace', '0', '--json');
    expectExit(r, 0);
    expect(planOf(r.stdout).incomplete.map((i) => i.key)).toContain(k.f3);
    expect(await listDir(dir)).not.toContain(`${k.f3}.sha256`);
  });

  it('a corrupt backup (size mismatch) is reported, kept, and never fills a slot', async () => {
    // Truncate r2 (the newest of group A): it turns corrupt; keep-last 1 must then keep r1.
    const dir = await copyCatalog();
    const data = await readFile(path.join(dir, k.r2));
    await writeFile(path.join(dir, k.r2), data.subarray(0, data.length - 1));
    const r = await cleanup(dir, '--keep-last', '1', '--json');
    expectExit(r, 0);
    const j = planOf(r.stdout);
    expect(j.deleted).not.toContain(k.r2);
    expect(j.deleted).not.toContain(k.r1);
    expect(sorted(j.deleted)).toEqual(sorted([k.f1, k.f2, k.f3, k.f4, k.f5, k.p2, k.bOld]));
    expect(j.decisions.find((d) => d.key === k.r1)?.reasons).toEqual(['last 1', 'newest valid backup']);
    expect(j.incomplete).toEqual([expect.objectContaining({ key: k.r2, state: 'corrupt', removed: false })]);
    expect(await listDir(dir)).toEqual(expect.arrayContaining(filesOf(k.r1, k.r2)));
  });
});

describe('metadata with an unreadable timestamp', () => {
  // BUG (data loss), see the unit test "unreadable timestamps": startedAt is not validated as a date
  // (src/catalog/metadata.ts:65 `startedAt: z.string()`), the listing turns it into an Invalid Date and
  // the planner sorts that backup first. Input: the catalog plus a copy of r1 whose startedAt is
  // "yesterday"; `cleanup --keep-last 2`. Expected: r2 and r1 (the two newest real backups) are kept
  // and the unreadable one (intact data) is not deleted. Actual: with this name it sorts last and is
  // deleted; with a name that sorts after the others, the real newest is deleted instead (unit test).
  it('never costs the newest real backups their place', async () => {
    const dir = await copyCatalog();
    const bad = `${dbA}_20200105_000000.dump.zst`;
    await copyFile(path.join(dir, k.r1), path.join(dir, bad));
    const meta = await readMeta(dir, k.r1);
    await writeFile(
      path.join(dir, `${bad}.meta.json`),
      JSON.stringify({ ...meta, file: bad, startedAt: 'yesterday', finishedAt: 'yesterday' }),
    );
    const r = await cleanup(dir, '--keep-last', '2', '--json');
    expectExit(r, 0);
    const deleted = planOf(r.stdout).deleted;
    expect(deleted).not.toContain(k.r2);
    expect(deleted).not.toContain(k.r1);
    expect(deleted).not.toContain(bad);
  });
});

describe('usage errors', () => {
  it('cleanup without a rule: exit 2 with a hint, nothing deleted', async () => {
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    for (const extra of [[], ['--dry-run'], ['--time-zone', 'UTC'], ['--prune-incomplete']]) {
      const r = await cleanup(dir, ...extra);
      expect(r.code, extra.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^dbbackup: error: No retention rule given$/m);
      expect(r.stderr).toMatch(/^hint: .*--keep-last/m);
      expect(r.stdout).toBe('');
    }
    expect(await snapshot(dir)).toEqual(before);
  });

  it('invalid values: exit 2 with a hint, nothing deleted', async () => {
    const dir = await copyCatalog();
    const before = await snapshot(dir);
    for (const bad of [
      ['--keep-last', '1.5'],
      ['--keep-within', '2 weeks'],
      ['--retention-days', 'thirty'],
      ['--keep-last', '1', '--grace', 'soon'],
      ['--keep-last', '1', '--time-zone', 'Nowhere/Special'],
    ]) {
      const r = await cleanup(dir, ...bad);
      expect(r.code, bad.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^hint: /m);
    }
    expect(await snapshot(dir)).toEqual(before);
  });

  it('a directory that does not exist (a typo in a cron line) is an error, not "0 kept, 0 deleted"', async () => {
    const dir = await copyCatalog();
    const r = await cleanup(`${dir}-typo`, '--keep-last', '1');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^dbbackup: error: .*-typo is not a directory$/m);
    expect(r.stderr).toMatch(/^hint: Check the path/m);
    expect(r.stdout).toBe('');
  });
});
