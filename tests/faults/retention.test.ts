/**
 * Fault matrix: retention and pruning in a backup directory. Bit rot that a size cannot see, files
 * that are not dbbackup's beside its backups, blank and malformed numbers, a directory that refuses
 * deletions. The invariants: nothing deleted that a rule did not choose and dbbackup did not write;
 * a bad backup counts for nothing and is never the reason another one is deleted; every line says
 * what really happened.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY } from '../harness/fabricate.js';
import { dirStore, storeSnapshot } from '../harness/object-store.js';
import { dropPgDatabase } from '../harness/pg.js';
import {
  cli,
  expectExit,
  listJson,
  pgArgs,
  removeDir,
  tempDir,
  uniqueName,
  type PlanJson,
} from '../e2e/util.js';
import { backupsAt, daily, realBackup, type RealBackup } from './catalog.js';
import { flipByte, pick } from './invariants.js';

const db = uniqueName('fret');
let real: RealBackup;
let root: string;

const sorted = (xs: readonly string[]): string[] => [...xs].sort();
const filesOf = (...keys: string[]): string[] => keys.flatMap((k) => [k, `${k}.meta.json`, `${k}.sha256`]);

beforeAll(async () => {
  real = await realBackup(db);
  root = await tempDir('dbb-fault-ret-');
});

afterAll(async () => {
  await dropPgDatabase(db);
  await removeDir(real.dir);
  await removeDir(root);
});

/** A fresh directory with backups of one group at `times` (newest first), and their keys. */
async function catalog(times: Date[]): Promise<{ dir: string; keys: string[] }> {
  const dir = await mkdtemp(path.join(root, 'run-'));
  return { dir, keys: await backupsAt(dirStore(dir), '', real, times) };
}

const snapshot = (dir: string): Promise<Record<string, string>> => storeSnapshot(dirStore(dir), '');

function without(snap: Record<string, string>, keys: string[]): Record<string, string> {
  const drop = new Set(filesOf(...keys));
  return Object.fromEntries(Object.entries(snap).filter(([k]) => !drop.has(k)));
}

async function cleanup(
  dir: string,
  ...args: string[]
): Promise<{ code: number; plan: PlanJson; stderr: string }> {
  const r = await cli(['cleanup', dir, ...args, '--json']);
  return { code: r.code, plan: JSON.parse(r.stdout) as PlanJson, stderr: r.stderr };
}

describe('cleanup: bit rot that a size cannot see', () => {
  it('cleanup --keep-last 1: the newest backup bit-rotted (one byte, same size) → it counts for nothing, the newest good one is kept, no good backup is lost', async () => {
    const { dir, keys } = await catalog(daily(real, 10));
    await flipByte(dirStore(dir), keys[0] ?? '');
    const before = await snapshot(dir);

    // The dry run shows the plan the real run carries out.
    const dry = await cleanup(dir, '--keep-last', '1', '--dry-run');
    expect(dry.code).toBe(0);
    const doomed = keys.slice(2);
    expect(sorted(dry.plan.decisions.filter((d) => !d.keep).map((d) => d.key))).toEqual(sorted(doomed));
    expect(await snapshot(dir)).toEqual(before);

    const { code, plan } = await cleanup(dir, '--keep-last', '1');
    expect(code).toBe(0);
    expect(sorted(plan.deleted)).toEqual(sorted(doomed));
    const byKey = new Map(plan.decisions.map((d) => [d.key, d]));
    expect(byKey.get(keys[1] ?? '')).toMatchObject({
      keep: true,
      state: 'valid',
      reasons: ['last 1', 'newest valid backup'],
    });
    expect(byKey.get(keys[0] ?? '')).toMatchObject({ keep: true, valid: false, state: 'corrupt' });
    expect(plan.incomplete).toEqual([
      expect.objectContaining({
        key: keys[0],
        state: 'corrupt',
        detail: expect.stringMatching(
          /^checksum mismatch: expected sha256 [0-9a-f]{64}, computed [0-9a-f]{64}$/,
        ) as unknown,
        removed: false,
      }),
    ]);
    // The rotten backup is reported, not deleted; the good one that replaces it is intact.
    expect(await snapshot(dir)).toEqual(without(before, doomed));
    const verify = await cli(['verify-backup', path.join(dir, keys[1] ?? '')]);
    expectExit(verify, 0);
  });

  it('cleanup --keep-last 2: the two newest bit-rotted → the plan is made again until two good backups hold the slots', async () => {
    const { dir, keys } = await catalog(daily(real, 6));
    await flipByte(dirStore(dir), keys[0] ?? '');
    await flipByte(dirStore(dir), keys[1] ?? '');
    const before = await snapshot(dir);
    const { code, plan } = await cleanup(dir, '--keep-last', '2');
    expect(code).toBe(0);
    expect(sorted(plan.deleted)).toEqual(sorted(keys.slice(4)));
    expect(plan.decisions.filter((d) => d.keep && d.valid).map((d) => d.key)).toEqual([keys[2], keys[3]]);
    expect(sorted(plan.incomplete.map((i) => i.key))).toEqual(sorted([keys[0] ?? '', keys[1] ?? '']));
    expect(await snapshot(dir)).toEqual(without(before, keys.slice(4)));
  });

  it('cleanup --keep-daily 3: the newest backup of one day bit-rotted → that day’s other backup takes its slot instead of being deleted', async () => {
    // Two backups a day (12:00 and 06:00 UTC) on three days; the 12:00 of the middle day rots.
    const noon = Date.UTC(2026, 2, 10, 12);
    const times = [0, 1, 2].flatMap((d) => [
      new Date(noon - d * DAY),
      new Date(noon - d * DAY - 6 * 3_600_000),
    ]);
    const { dir, keys } = await catalog(times);
    const [d0noon, d0six, d1noon, d1six, d2noon, d2six] = keys;
    await flipByte(dirStore(dir), d1noon ?? '');
    const before = await snapshot(dir);
    const { code, plan } = await cleanup(dir, '--keep-daily', '3', '--time-zone', 'UTC');
    expect(code).toBe(0);
    expect(sorted(plan.deleted)).toEqual(sorted([d0six ?? '', d2six ?? '']));
    const kept = new Map(plan.decisions.filter((d) => d.keep).map((d) => [d.key, d]));
    expect(kept.get(d1six ?? '')).toMatchObject({ state: 'valid', reasons: ['daily 2026-03-09'] });
    expect(kept.get(d1noon ?? '')).toMatchObject({ state: 'corrupt', valid: false });
    for (const key of [d0noon, d2noon]) expect(kept.get(key ?? '')?.state).toBe('valid');
    expect(await snapshot(dir)).toEqual(without(before, [d0six ?? '', d2six ?? '']));
  });

  it('cleanup: a group that loses nothing is not read; one kept only by its age holds no slot and is not read either', async () => {
    const { dir, keys } = await catalog(daily(real, 4));
    // Rot in a backup that --keep-within keeps for its age alone: no deletion relies on it.
    await flipByte(dirStore(dir), keys[1] ?? '');
    const { code, plan } = await cleanup(dir, '--keep-within', '2d', '--min-backups', '1', '--dry-run');
    expect(code).toBe(0);
    // Deleted: the 3-day-old backup. Kept: the newest (min-backups 1, read), two by age (not read).
    expect(plan.decisions.filter((d) => !d.keep).map((d) => d.key)).toEqual([keys[3]]);
    expect(plan.checked.map((c) => c.key)).toEqual([keys[0]]);
    expect(plan.decisions.find((d) => d.key === keys[1])).toMatchObject({ keep: true, holdsSlot: false });
    // Nothing is deleted anywhere: nothing is read.
    const none = await cleanup(dir, '--keep-last', '10', '--dry-run');
    expect(none.plan.checked).toEqual([]);
  });
});

describe('cleanup --prune-incomplete: files that are not dbbackup’s', () => {
  /** A user's files beside the backups: each looks like a backup, a sidecar or a cluster folder. */
  const FOREIGN: Record<string, string> = {
    'important.sql': '-- my hand-written notes\nSELECT 1;\n',
    'shop.dump': 'PGDMP my own pg_dump -Fc output',
    package: 'a package',
    'package.meta.json': '{"name":"package","version":"1.0.0"}\n',
    report: 'quarterly report',
    'report.sha256': `${'ab'.repeat(32)}  report\n`,
    'myapp/manifest.json': '{"name":"myapp","version":"2.0"}\n',
    'myapp/index.js': 'console.log(1);\n',
    'cluster_photos/cat.jpg': 'JPEG',
    'something.meta.json': '{"schema":"not ours"}\n',
    'data.sql': 'INSERT INTO t VALUES (1);\n',
    'report.dump.zst': 'zstd bytes',
    'sub2/manifest.json': '{"schema":"dbbackup.cluster"}\n',
    'sub2/important.csv': 'a,b\n1,2\n',
    'sub2/deep/x.txt': 'x\n',
  };
  /** How each shows in the listing: the entry cleanup considers, and must leave alone. */
  const FOREIGN_ENTRIES = [
    'important.sql',
    'shop.dump',
    'package',
    'report',
    'myapp/',
    'cluster_photos/',
    'something',
    'data.sql',
    'report.dump.zst',
    'sub2/',
  ];

  /** dbbackup's own leftovers: a data file without metadata, a temporary file, a lone checksum, a cluster folder without manifest. */
  async function leftovers(dir: string, data: Buffer): Promise<string[]> {
    const orphan = `${db}_20200101_000000.dump.zst`;
    const temp = `.dbbackup-tmp-0123456789ab-${db}_20200102_000000.dump.zst`;
    const lone = `${db}_20200103_000000.dump.zst`;
    const cluster = 'cluster_20200104_000000';
    await writeFile(path.join(dir, orphan), data);
    await writeFile(path.join(dir, temp), data);
    await writeFile(path.join(dir, `${lone}.sha256`), `${'cd'.repeat(32)}  ${lone}\n`);
    await mkdir(path.join(dir, cluster));
    await writeFile(path.join(dir, cluster, 'globals.sql.zst'), data);
    await writeFile(path.join(dir, cluster, `${db}.dump.zst`), data);
    return [orphan, temp, lone, `${cluster}/`];
  }

  async function withForeignFiles(): Promise<{ dir: string; keys: string[]; ours: string[] }> {
    const { dir, keys } = await catalog(daily(real, 3));
    for (const [key, text] of Object.entries(FOREIGN)) await dirStore(dir).write(key, text);
    const ours = await leftovers(dir, await dirStore(dir).read(keys[0] ?? ''));
    return { dir, keys, ours };
  }

  it('cleanup --keep-last 1 --prune-incomplete --grace 0: a user’s files beside the backups → left alone byte for byte and listed as not ours; dbbackup’s own leftovers removed', async () => {
    const { dir, keys } = await withForeignFiles();
    const before = await snapshot(dir);
    const { code, plan } = await cleanup(dir, '--keep-last', '1', '--prune-incomplete', '--grace', '0');
    expect(code).toBe(0);
    const after = await snapshot(dir);
    // Every foreign file is still there, byte for byte; of dbbackup's, only the newest backup is left.
    expect(after).toEqual({ ...pick(before, Object.keys(FOREIGN)), ...pick(before, filesOf(keys[0] ?? '')) });
    expect(sorted(plan.deleted)).toEqual(sorted(keys.slice(1)));
    expect(sorted(plan.notOurs.map((n) => n.key))).toEqual(sorted(FOREIGN_ENTRIES));
    expect(plan.incomplete.every((i) => i.removed)).toBe(true);
  });

  it('cleanup --prune-incomplete --dry-run: dbbackup’s leftovers → each listed with the files it would remove; nothing removed; foreign files listed as not ours', async () => {
    const { dir, ours } = await withForeignFiles();
    const before = await snapshot(dir);
    const r = await cli([
      'cleanup',
      dir,
      '--keep-last',
      '10',
      '--prune-incomplete',
      '--grace',
      '0',
      '--dry-run',
    ]);
    expectExit(r, 0);
    const [orphan, temp, lone, cluster] = ours;
    expect(r.stdout).toContain(`  REMOVE   ${orphan}: incomplete: `);
    expect(r.stdout).toContain(`(would remove ${orphan})`);
    expect(r.stdout).toContain(`(would remove ${temp})`);
    expect(r.stdout).toContain(`(would remove ${lone}.sha256)`);
    expect(r.stdout).toMatch(
      new RegExp(
        `REMOVE {3}${cluster}: incomplete: .*\\(would remove ${cluster}\\S+, ${cluster}\\S+\\)$`,
        'm',
      ),
    );
    expect(r.stdout).toMatch(/^Incomplete or corrupt: 4 would be removed\.$/m);
    expect(r.stdout).toContain('Not ours, left alone (dbbackup removes only what it wrote itself):');
    for (const key of FOREIGN_ENTRIES)
      expect(r.stdout).toMatch(new RegExp(`^  ${key.replaceAll('.', '\\.')}: `, 'm'));
    expect(await snapshot(dir)).toEqual(before);
  });

  it('cleanup --keep-last 1 (no --prune-incomplete): files that are not dbbackup’s → never deleted by a rule, reported as not ours', async () => {
    const { dir, keys } = await withForeignFiles();
    const before = await snapshot(dir);
    const { code, plan } = await cleanup(dir, '--keep-last', '1');
    expect(code).toBe(0);
    expect(pick(await snapshot(dir), Object.keys(FOREIGN))).toEqual(pick(before, Object.keys(FOREIGN)));
    expect(sorted(plan.deleted)).toEqual(sorted(keys.slice(1)));
    expect(sorted(plan.notOurs.map((n) => n.key))).toEqual(sorted(FOREIGN_ENTRIES));
  });
});

describe('cleanup: blank and malformed numbers', () => {
  const RULES = [
    '--keep-last',
    '--keep-hourly',
    '--keep-daily',
    '--keep-weekly',
    '--keep-monthly',
    '--keep-yearly',
    '--retention-days',
  ];
  const BAD = ['', ' ', '0x5', '0b11', '+3', '-1', '1e1', '2.5', ' 3'];

  it.each(RULES)(
    'cleanup %s with a blank or malformed value (a cron line with an unset variable) → exit 2, nothing deleted',
    async (flag) => {
      const { dir } = await catalog(daily(real, 3));
      const before = await snapshot(dir);
      for (const value of BAD) {
        const r = await cli(['cleanup', dir, flag, value]);
        expect(r.code, `${flag} ${JSON.stringify(value)}`).toBe(2);
        expect(r.stderr).toContain(
          `dbbackup: error: Invalid ${flag}: ${value === '' ? 'an empty value' : `"${value}"`}`,
        );
        expect(r.stderr).toMatch(/^hint: Use a whole number from 0 to \d+, written in decimal digits\.$/m);
        expect(r.stdout).toBe('');
      }
      expect(await snapshot(dir)).toEqual(before);
    },
  );

  it('cleanup --min-backups alone or with a blank or malformed value, --grace "" → exit 2, nothing deleted', async () => {
    const { dir } = await catalog(daily(real, 3));
    const before = await snapshot(dir);
    const alone = await cli(['cleanup', dir, '--min-backups', '1']);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain(
      'dbbackup: error: --min-backups needs an age rule (--retention-days or --keep-within)',
    );
    expect(alone.stderr).toMatch(/^hint: .*--keep-last M/m);
    for (const args of [
      ['--retention-days', '30', '--min-backups', ''],
      ['--retention-days', '30', '--min-backups', '0x5'],
      ['--keep-last', '1', '--grace', ''],
      ['--keep-last', '1', '--grace', '1.5'],
    ]) {
      const r = await cli(['cleanup', dir, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^dbbackup: error: Invalid --(min-backups|grace): /m);
    }
    expect(await snapshot(dir)).toEqual(before);
  });

  it('every other numeric option, blank or malformed → exit 2 naming the option, before anything is written', async () => {
    const dir = await mkdtemp(path.join(root, 'numbers-'));
    const cases: Array<[string[], string]> = [
      [['--port', '', 'backup', 'single', db], '--port'],
      [['--port', '0x1F90', 'backup', 'single', db], '--port'],
      [['--compression', '+3', 'backup', 'single', db], '--compression'],
      [['--compression', '', 'backup', 'single', db], '--compression'],
      [
        [
          '--cloud-part-size',
          '0b11',
          'backup',
          'single',
          db,
          '--cloud',
          's3://b/x/?endpoint=http://127.0.0.1:1',
        ],
        '--cloud-part-size',
      ],
      [
        [
          '--cloud-concurrency',
          '',
          'backup',
          'single',
          db,
          '--cloud',
          's3://b/x/?endpoint=http://127.0.0.1:1',
        ],
        '--cloud-concurrency',
      ],
      [['backup', 'cluster', '--cluster-parallelism', '1e1'], '--cluster-parallelism'],
      [['backup', 'single', db, '--keep-last', ''], '--keep-last'],
      [['restore', 'single', path.join(real.dir, real.key), '--jobs', ''], '--jobs'],
      [['restore', 'single', path.join(real.dir, real.key), '--jobs', '0x2'], '--jobs'],
      [['restore', 'cluster', 'cluster_20200101_000000', '--jobs', '+2'], '--jobs'],
      [['backup', 'sample', db, '--sample-count', '0x5'], '--sample-count'],
      [['backup', 'sample', db, '--sample-percent', '1e1'], '--sample-percent'],
    ];
    for (const [args, flag] of cases) {
      // A later --port overrides pgArgs()' one.
      const r = await cli([...pgArgs(), '--backup-dir', dir, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(new RegExp(`^dbbackup: error: Invalid ${flag}`, 'm'));
      expect(r.stderr).not.toMatch(/bug in dbbackup|\n\s+at /);
    }
    expect(await dirStore(dir).keys('')).toEqual([]);
  });
});

describe('cleanup: a directory that refuses deletions', () => {
  function chattr(flag: '+i' | '-i', file: string): void {
    const r = spawnSync('chattr', [flag, file], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`chattr ${flag} ${file}: ${r.stderr}`);
  }

  it('cleanup --keep-last 1: an immutable directory (chattr +i) → exit 1, each backup says it was not deleted and why (read-only/immutable, with a hint), nothing said "deleted", nothing gone', async () => {
    const { dir, keys } = await catalog(daily(real, 3));
    const before = await snapshot(dir);
    chattr('+i', dir);
    try {
      const r = await cli(['cleanup', dir, '--keep-last', '1']);
      expect(r.code).toBe(1);
      for (const key of keys.slice(1))
        expect(r.stdout).toMatch(
          new RegExp(
            `^ {4}FAILED {2}.* ${key.replaceAll('.', '\\.')} {2}\\(no rule keeps it\\): Could not delete ${key.replaceAll('.', '\\.')}\\.meta\\.json: the operation is not permitted in ${dir}, which is read-only to dbbackup \\(an immutable or append-only directory or file\\?\\)$`,
            'm',
          ),
        );
      expect(r.stdout).not.toMatch(/^ {4}deleted /m);
      expect(r.stdout).toMatch(/^1 kept, 0 deleted, 2 not deleted, 0 B freed\.$/m);
      expect(r.stderr).toContain('dbbackup: error: cleanup did not finish: 2 problems');
      expect(r.stderr).toMatch(new RegExp(`^hint: Check with: lsattr -d ${dir}; ls -ld ${dir}\\.`, 'm'));
      expect(r.stderr).not.toContain('EPERM: operation not permitted, unlink');
      const json = await cleanup(dir, '--keep-last', '1');
      expect(json.code).toBe(1);
      expect(json.plan.deleted).toEqual([]);
      for (const d of json.plan.decisions.filter((x) => !x.keep))
        expect(d).toMatchObject({ outcome: 'not deleted', files: [] });
      expect(await snapshot(dir)).toEqual(before);

      // A backup into it: the same words and a hint, not a raw EPERM.
      const b = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db, '--no-progress']);
      expect(b.code).toBe(1);
      expect(b.stderr).toMatch(
        new RegExp(
          `^dbbackup: error: Could not write .*: the operation is not permitted in ${dir}, which is read-only to dbbackup`,
          'm',
        ),
      );
      expect(b.stderr).toMatch(
        new RegExp(
          `^hint: Check with: lsattr -d ${dir}; ls -ld ${dir}\\. Remove the flag \\(chattr -i / chattr -a\\)`,
          'm',
        ),
      );
    } finally {
      chattr('-i', dir);
    }
    expect(await snapshot(dir)).toEqual(before);
    expect((await listJson(['--backup-dir', dir])).map((b) => b.state)).toEqual([
      'unverified',
      'unverified',
      'unverified',
    ]);
  });
});

describe('cleanup: a directory that is gone', () => {
  it('list backups / restore list of a directory that does not exist → exit 2 with a hint, not "No backups"', async () => {
    const missing = path.join(root, 'no-such-dir');
    await rm(missing, { recursive: true, force: true });
    for (const args of [
      ['--backup-dir', missing, 'list', 'backups'],
      ['--backup-dir', missing, 'restore', 'list'],
    ]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(`dbbackup: error: ${missing} is not a directory`);
      expect(r.stderr).toMatch(/^hint: Check the path of the backup directory\.$/m);
      expect(r.stdout).toBe('');
    }
  });
});
