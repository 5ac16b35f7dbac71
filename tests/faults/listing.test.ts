/**
 * Fault matrix: what list backups, verify-backup, cleanup and restore say about damaged backups
 * (one verdict everywhere), a tampered cluster manifest, hostile database names, and a standard
 * output that cannot be written. The invariants: nothing looks valid unless every byte was checked;
 * one bad backup never stops the others from being listed, verified or cleaned up; no stack trace,
 * and a stored backup stays a success whatever happens to stdout.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/cli.js';
import { readJson, type BackupMeta, type ManifestMeta } from '../harness/fabricate.js';
import { dirStore, storeSnapshot } from '../harness/object-store.js';
import { dropPgDatabase, pgQuery } from '../harness/pg.js';
import {
  cli,
  expectExit,
  listDir,
  listJson,
  pgArgs,
  removeDir,
  tempDir,
  uniqueName,
  type PlanJson,
} from '../e2e/util.js';
import { backupsAt, daily, realBackup, type RealBackup } from './catalog.js';
import { flipByte } from './invariants.js';

const db = uniqueName('flist');
const targets: string[] = [];
let real: RealBackup;
let root: string;

beforeAll(async () => {
  real = await realBackup(db);
  root = await tempDir('dbb-fault-list-');
});

afterAll(async () => {
  for (const t of [db, ...targets]) await dropPgDatabase(t);
  await removeDir(real.dir);
  await removeDir(root);
});

async function catalog(count: number): Promise<{ dir: string; keys: string[] }> {
  const dir = await mkdtemp(path.join(root, 'run-'));
  return { dir, keys: await backupsAt(dirStore(dir), '', real, daily(real, count)) };
}

async function databaseExists(name: string): Promise<boolean> {
  return (await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0;
}

/** restore single <file> into a new database with --confirm: the checksum is checked before anything is created. */
async function restoreNew(file: string): Promise<{ code: number; stderr: string; target: string }> {
  const target = uniqueName('flist_t');
  targets.push(target);
  const r = await cli([
    ...pgArgs(),
    'restore',
    'single',
    file,
    '--target',
    target,
    '--create',
    '--confirm',
    '--no-progress',
  ]);
  return { code: r.code, stderr: r.stderr, target };
}

/** The CLI with its stdout closed before it writes (a reader that went away) or sent to a file descriptor. */
function cliWithStdout(
  args: string[],
  stdout: 'closed' | number,
): Promise<{ code: number | null; stderr: string }> {
  const env = { ...process.env };
  delete env.DBBACKUP_BACKUP_DIR;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin/dbbackup.js'), ...args], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', stdout === 'closed' ? 'pipe' : stdout, 'pipe'],
    });
    // Closing our end at once: the CLI's first write meets a pipe nobody reads (EPIPE).
    if (stdout === 'closed') child.stdout?.destroy();
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('list backups: what was checked', () => {
  it('list backups: the newest backup bit-rotted (same size) → "unverified" without --verify (never "valid"), "corrupt" with --verify', async () => {
    const { dir, keys } = await catalog(3);
    await flipByte(dirStore(dir), keys[0] ?? '');
    const quick = new Map((await listJson(['--backup-dir', dir])).map((b) => [b.key, b.state]));
    expect([...quick.values()]).toEqual(['unverified', 'unverified', 'unverified']);
    const text = await cli(['--backup-dir', dir, 'list', 'backups']);
    expectExit(text, 0);
    expect(text.stdout).not.toMatch(/\svalid\s*$/m);
    expect(text.stdout).toMatch(
      /^unverified: present with the size its metadata records; the data was not read/m,
    );

    const full = await cli(['--backup-dir', dir, 'list', 'backups', '--verify', '--json']);
    expectExit(full, 0);
    const parsed = JSON.parse(full.stdout) as {
      checked: string;
      backups: Array<{ key: string; state: string; detail: string }>;
    };
    expect(parsed.checked).toBe('sha256');
    expect(parsed.backups.map((b) => [b.key, b.state])).toEqual([
      [keys[0], 'corrupt'],
      [keys[1], 'valid'],
      [keys[2], 'valid'],
    ]);
    expect(parsed.backups[0]?.detail).toMatch(
      /^checksum mismatch: expected sha256 [0-9a-f]{64}, computed [0-9a-f]{64}$/,
    );
  });
});

describe('a tampered cluster manifest', () => {
  it('list backups / verify-backup <dir> / cleanup: one cluster manifest names a file outside its directory → that backup is corrupt, the others are listed, verified and cleaned up as usual', async () => {
    const { dir, keys } = await catalog(3);
    const b = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      'backup',
      'cluster',
      '--include-database',
      db,
      '--no-progress',
      '--json',
    ]);
    expectExit(b, 0);
    const name = (JSON.parse(b.stdout) as { manifest: { name: string } }).manifest.name;
    const manifest = await readJson<ManifestMeta>(dirStore(dir), `${name}/manifest.json`);
    // The member now points at a single backup beside the cluster (and could point anywhere).
    const tampered = {
      ...manifest,
      databases: manifest.databases.map((d) => ({ ...d, file: `${name}/../${keys[2]}` })),
    };
    await writeFile(path.join(dir, name, 'manifest.json'), JSON.stringify(tampered, null, 2));
    const before = await storeSnapshot(dirStore(dir), '');

    const listed = new Map((await listJson(['--backup-dir', dir])).map((e) => [e.key, e]));
    expect(listed.get(`${name}/`)).toMatchObject({
      state: 'corrupt',
      detail: `Manifest ${name}/manifest.json is invalid: the member "${name}/../${keys[2]}" is not a file inside ${name}/`,
    });
    for (const key of keys) expect(listed.get(key)?.state).toBe('unverified');

    const verify = await cli(['verify-backup', dir]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(
      new RegExp(`^FAIL  .*/${name}/: corrupt: Manifest ${name}/manifest\\.json is invalid`, 'm'),
    );
    for (const key of keys)
      expect(verify.stdout).toMatch(new RegExp(`^OK  .*${key.replaceAll('.', '\\.')}`, 'm'));
    expect(verify.stderr).toMatch(/^dbbackup: error: 1 of 4 backups failed verification$/m);
    const one = await cli(['verify-backup', path.join(dir, name)]);
    expect(one.code).toBe(1);
    expect(one.stdout).toMatch(/^FAIL .*: corrupt: Manifest .* is invalid: the member /m);

    const r = await cli(['cleanup', dir, '--keep-last', '1', '--prune-incomplete', '--grace', '0', '--json']);
    expectExit(r, 0);
    const plan = JSON.parse(r.stdout) as PlanJson;
    expect(plan.deleted.sort()).toEqual([keys[1], keys[2]].sort());
    expect(plan.notOurs).toEqual([
      { key: `${name}/`, reason: 'its manifest.json is not a valid dbbackup cluster manifest' },
    ]);
    // The tampered cluster is left for a human; the file it pointed at went only because a rule chose it.
    const after = await storeSnapshot(dirStore(dir), '');
    for (const [key, hash] of Object.entries(before))
      if (key.startsWith(`${name}/`) || key.startsWith(keys[0] ?? '')) expect(after[key], key).toBe(hash);
  });
});

describe('one verdict for verify-backup, list backups and restore', () => {
  it('verify-backup / restore: the metadata’s size edited (checksum unchanged) → "size mismatch: expected N bytes, found M" everywhere, never a checksum mismatch with two identical hashes; nothing restored', async () => {
    const { dir, keys } = await catalog(1);
    const file = path.join(dir, keys[0] ?? '');
    const meta = JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as BackupMeta;
    await writeFile(`${file}.meta.json`, JSON.stringify({ ...meta, sizeBytes: meta.sizeBytes + 1 }));
    const words = `size mismatch: expected ${meta.sizeBytes + 1} bytes, found ${meta.sizeBytes}`;

    const verify = await cli(['verify-backup', file]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`corrupt: ${words}`);
    const listed = await listJson(['--backup-dir', dir]);
    expect(listed[0]).toMatchObject({ state: 'corrupt', detail: words });
    const restore = await restoreNew(file);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toContain(
      `dbbackup: error: Size mismatch for ${keys[0]}: the backup is corrupt (expected ${meta.sizeBytes + 1} bytes, found ${meta.sizeBytes})`,
    );
    expect(restore.stderr).not.toMatch(/checksum mismatch/i);
    expect(await databaseExists(restore.target)).toBe(false);
  });

  it('verify-backup / list backups / restore: an edited .sha256 (data and metadata intact) → corrupt for all three, in the same words; restore changes nothing', async () => {
    const { dir, keys } = await catalog(1);
    const file = path.join(dir, keys[0] ?? '');
    await writeFile(`${file}.sha256`, `${'0'.repeat(64)}  ${keys[0]}\n`);
    const words = `the .sha256 file disagrees with the metadata: it says ${'0'.repeat(64)}, the metadata sha256 ${real.meta.sha256}`;

    const verify = await cli(['verify-backup', file]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`corrupt: ${words}`);
    expect((await listJson(['--backup-dir', dir]))[0]).toMatchObject({ state: 'corrupt', detail: words });
    const restore = await restoreNew(file);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toContain(
      `dbbackup: error: The .sha256 file disagrees with the metadata for ${keys[0]}: the backup is corrupt (it says ${'0'.repeat(64)}, the metadata sha256 ${real.meta.sha256})`,
    );
    expect(restore.stderr).toMatch(/^hint: Nothing was changed\. .*--force/m);
    expect(await databaseExists(restore.target)).toBe(false);
  });

  it('list backups / verify-backup / cleanup: a metadata file too large to be metadata (65 MiB) → that backup is corrupt, named, "not valid metadata"; never "a bug in dbbackup"; the others unaffected', async () => {
    const { dir, keys } = await catalog(2);
    const huge = `${keys[1]}.meta.json`;
    await writeFile(path.join(dir, huge), '');
    await truncate(path.join(dir, huge), 65 * 1024 * 1024);
    const words = `${path.join(dir, huge)} is not valid metadata: it is larger than 64.0 MiB`;

    const list = await cli(['--backup-dir', dir, 'list', 'backups', '--json']);
    expectExit(list, 0);
    const entries = (
      JSON.parse(list.stdout) as { backups: Array<{ key: string; state: string; detail: string }> }
    ).backups;
    expect(entries.find((e) => e.key === keys[1])).toMatchObject({ state: 'corrupt', detail: words });
    expect(entries.find((e) => e.key === keys[0])?.state).toBe('unverified');
    const verify = await cli(['verify-backup', path.join(dir, keys[1] ?? '')]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`corrupt: ${words}`);
    const r = await cli(['cleanup', dir, '--keep-last', '1', '--prune-incomplete', '--grace', '0']);
    expectExit(r, 0);
    // Not provably dbbackup's: reported, left alone.
    expect(r.stdout).toContain(`  ${keys[1]}: ${keys[1]}.meta.json is not dbbackup's metadata`);
    for (const out of [list.stderr, verify.stderr, r.stderr]) expect(out).not.toMatch(/bug in dbbackup/);
    expect(await listDir(dir)).toContain(huge);
  });

  it('list backups: a newline and an escape sequence in a database name → escaped in the table, one row per backup', async () => {
    const { dir, keys } = await catalog(2);
    const evil = 'shop\nFAKE ROW\u001b[2J';
    const metaFile = path.join(dir, `${keys[1]}.meta.json`);
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as BackupMeta;
    await writeFile(metaFile, JSON.stringify({ ...meta, database: evil }));
    const r = await cli(['--backup-dir', dir, 'list', 'backups']);
    expectExit(r, 0);
    const lines = r.stdout.trimEnd().split('\n');
    // Title, header, rule, two rows, the note on "unverified".
    expect(lines).toHaveLength(6);
    expect(r.stdout).toContain('shop\\nFAKE ROW\\u001b[2J');
    expect(r.stdout).not.toContain('\u001b');
    expect(lines.filter((l) => l.startsWith(keys[1] ?? ''))).toHaveLength(1);
    // JSON keeps the real name.
    const json = await listJson(['--backup-dir', dir]);
    expect(json.find((b) => b.key === keys[1])?.database).toBe(evil);
  });
});

describe('a standard output that cannot be written', () => {
  it('list backups: stdout closed by its reader (| head -1) → no stack trace, exit 0', async () => {
    const { dir } = await catalog(3);
    const r = await cliWithStdout(['--backup-dir', dir, 'list', 'backups'], 'closed');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('list backups: stdout on a full disk (/dev/full) → one-line error, exit 1, no stack trace', async () => {
    const { dir } = await catalog(3);
    const full = openSync('/dev/full', 'w');
    try {
      const r = await cliWithStdout(['--backup-dir', dir, 'list', 'backups'], full);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        'dbbackup: error: standard output could not be written (ENOSPC): what list backups printed there is lost\n',
      );
    } finally {
      closeSync(full);
    }
  });

  it('backup single: stdout on a full disk (/dev/full) → the backup is stored and verified, exit 0, a warning, no stack trace', async () => {
    const dir = await mkdtemp(path.join(root, 'full-'));
    const full = openSync('/dev/full', 'w');
    let r: { code: number | null; stderr: string };
    try {
      r = await cliWithStdout(
        [...pgArgs(), '--backup-dir', dir, 'backup', 'single', db, '--no-progress'],
        full,
      );
    } finally {
      closeSync(full);
    }
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      'dbbackup: warning: standard output could not be written (ENOSPC): what backup single printed there is lost; its exit status is its own\n',
    );
    const listed = await listJson(['--backup-dir', dir]);
    expect(listed).toHaveLength(1);
    const verify = await cli(['verify-backup', dir]);
    expectExit(verify, 0);
  });
});
