/**
 * The storage contract: the same cases, through the real CLI, on every backend (a local directory,
 * fauxqs and s3rver for S3, Azurite, the GCS emulator). What a user relies on must not depend on
 * where the backups live: concurrent backups get distinct names, names round-trip, nothing is
 * silently overwritten, clusters copy whole, a prefix URI means the same to every command.
 */
import { readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allBackends, type Backend } from '../harness/backends.js';
import type { CliResult } from '../harness/cli.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { cli, expectExit, pgArgs, removeDir, tempDir, uniqueName } from '../e2e/util.js';

const SLOW = 600_000;
const source = uniqueName('contract_src');
/** PostgreSQL allows any character but NUL in a name: these are the ones that broke URIs. */
const hostile = `h #%?+ñ ${Date.now().toString(36)}`;
const created: string[] = [source, hostile];
/** Two different backups under one name (as two servers' `shop` backups of one second would be). */
let first: { dir: string; key: string; sha256: string };
let second: { dir: string; key: string; sha256: string };
/** A cluster backup of `source` in a local directory. */
let cluster: { dir: string; name: string };

interface BackupJson {
  metadata: { file: string; sha256: string };
}

/** A backup of `source` into a new local directory. */
async function localBackup(): Promise<{ dir: string; key: string; sha256: string }> {
  const dir = await tempDir('dbb-contract-src-');
  const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', source, '--json'], {
    timeoutMs: SLOW,
  });
  expectExit(r, 0);
  const { metadata } = JSON.parse(r.stdout) as BackupJson;
  return { dir, key: metadata.file, sha256: metadata.sha256 };
}

/** Rename a backup (data, .sha256, .meta.json) in its directory, keeping it valid under the new name. */
async function renameBackup(dir: string, from: string, to: string): Promise<void> {
  if (from === to) return; // taken in the same second: it already has the name
  await rename(path.join(dir, from), path.join(dir, to));
  const sum = await readFile(path.join(dir, `${from}.sha256`), 'utf8');
  await writeFile(path.join(dir, `${to}.sha256`), sum.replace(from, to), { mode: 0o600 });
  const meta = JSON.parse(await readFile(path.join(dir, `${from}.meta.json`), 'utf8')) as { file: string };
  meta.file = to;
  await writeFile(path.join(dir, `${to}.meta.json`), JSON.stringify(meta, null, 2), { mode: 0o600 });
  await rm(path.join(dir, `${from}.sha256`));
  await rm(path.join(dir, `${from}.meta.json`));
}

beforeAll(async () => {
  await createPgDatabase(source);
  await createPgDatabase(hostile);
  for (const db of [source, hostile]) {
    await pgExec(
      db,
      'CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g;',
    );
  }
  first = await localBackup();
  await pgExec(source, "INSERT INTO t VALUES (100000, 'changed')");
  second = await localBackup();
  await renameBackup(second.dir, second.key, first.key);
  second.key = first.key;
  const dir = await tempDir('dbb-contract-cluster-');
  const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'cluster', '--include-database', source], {
    timeoutMs: SLOW,
  });
  expectExit(r, 0);
  const name = (await readdir(dir)).find((n) => n.startsWith('cluster_'));
  if (!name) throw new Error(`no cluster backup in ${dir}: ${r.stdout}${r.stderr}`);
  cluster = { dir, name };
}, SLOW);

afterAll(async () => {
  for (const db of created) await dropPgDatabase(db);
  for (const dir of [first?.dir, second?.dir, cluster?.dir]) if (dir) await removeDir(dir);
}, SLOW);

/** `--backup-dir DIR` or `--cloud URI`: where a backup command writes, for this backend. */
function destination(b: Backend, prefix: string): string[] {
  return b.name === 'local' ? ['--backup-dir', b.uri(prefix)] : ['--cloud', b.uri(prefix)];
}

/**
 * What a user types to use a location the CLI printed: the same text, plus (for a cloud backend)
 * the options their endpoint and credentials need — never a re-encoded name.
 */
function usable(b: Backend, printed: string): string {
  if (b.name === 'local') return printed;
  const probe = b.objectUri('x');
  const q = probe.indexOf('?');
  return q < 0 ? printed : printed + probe.slice(q);
}

/** The location a successful `backup single` printed. */
function printedLocation(r: CliResult): string {
  const m = /^Backup complete: (.+?) \([\d.]+ \S+, sha256 [0-9a-f]{64}/m.exec(r.stdout);
  if (!m?.[1]) throw new Error(`no "Backup complete" line in:\n${r.stdout}\n${r.stderr}`);
  return m[1];
}

async function count(db: string): Promise<number> {
  const rows = await pgQuery<{ n: string }>(db, 'SELECT count(*)::text AS n FROM t');
  return Number(rows[0]?.n);
}

describe.each(allBackends())('$name', (b) => {
  const env = (): Record<string, string | undefined> => b.env();
  const run = (args: string[]): Promise<CliResult> => cli(args, { env: env(), timeoutMs: SLOW });

  beforeAll(() => b.start(), SLOW);
  afterAll(() => b.stop(), SLOW);

  it(
    'backup single ×5 at once, one database, one prefix → five distinct valid backups, every "Backup complete" true, no claim left',
    async () => {
      const prefix = `concurrent-${b.name}`;
      // Each with its own lock directory, as five hosts would: on one host the run lock (issue 17)
      // lets one backup of a database into a place run at a time; across hosts the claims must hold.
      const runs = await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          cli([...pgArgs(), 'backup', 'single', source, ...destination(b, prefix)], {
            env: {
              ...env(),
              DBBACKUP_LOCK_DIR: path.join(os.tmpdir(), `dbb-contract-locks-${process.pid}-${i}`),
            },
            timeoutMs: SLOW,
          }),
        ),
      );
      for (let i = 0; i < 5; i++)
        await removeDir(path.join(os.tmpdir(), `dbb-contract-locks-${process.pid}-${i}`));
      for (const r of runs) expectExit(r, 0);
      const locations = runs.map(printedLocation);
      expect(new Set(locations).size).toBe(5);
      // Each printed location is a complete, valid backup: its own bytes, its own metadata.
      for (const location of locations) {
        const v = await run(['verify-backup', usable(b, location)]);
        expectExit(v, 0);
        expect(v.stdout).toMatch(/^OK\s/);
      }
      const listed = await run(['list', 'backups', '--verify', ...destination(b, prefix), '--json']);
      expectExit(listed, 0);
      const backups = (JSON.parse(listed.stdout) as { backups: Array<{ key: string; state: string }> })
        .backups;
      expect(backups.filter((e) => e.state === 'valid')).toHaveLength(5);
      expect(backups).toHaveLength(5);
      const keys = await b.store().keys(`${prefix}/`);
      expect(keys.filter((k) => k.includes('.dbbackup-tmp-'))).toEqual([]);
      expect(keys).toHaveLength(15);
    },
    SLOW,
  );

  it(
    'hostile names: a database called "h #%?+ñ …" under a prefix with a space, "#", "%", "+" and "ñ" → backup → printed location → list → verify → restore',
    async () => {
      const prefix = `hostile pre#fix%25+ñ-${b.name}`;
      const r = await run([...pgArgs(), 'backup', 'single', hostile, ...destination(b, prefix)]);
      expectExit(r, 0);
      const printed = printedLocation(r);
      // Printed as stored: the object's real name, which is what every command accepts.
      const listed = await run(['list', 'backups', '--verify', ...destination(b, prefix), '--json']);
      expectExit(listed, 0);
      const backups = (
        JSON.parse(listed.stdout) as { backups: Array<{ key: string; state: string; database: string }> }
      ).backups;
      expect(backups).toHaveLength(1);
      expect(backups[0]?.state).toBe('valid');
      expect(backups[0]?.database).toBe(hostile);
      expect(printed.endsWith(`/${backups[0]?.key}`)).toBe(true);
      const v = await run(['verify-backup', usable(b, printed)]);
      expectExit(v, 0);
      expect(v.stdout).toMatch(/^OK\s/);
      const target = uniqueName('contract_hostile_copy');
      created.push(target);
      const restored = await run([
        ...pgArgs(),
        'restore',
        'single',
        usable(b, printed),
        '--target',
        target,
        '--create',
        '--confirm',
      ]);
      expectExit(restored, 0);
      expect(await count(target)).toBe(await count(hostile));
    },
    SLOW,
  );

  it(
    'cloud copy: onto a different backup of the same name → refused (exit 1), the existing one intact; the same backup → skipped, said so; --overwrite → replaced',
    async () => {
      const prefix = `copies-${b.name}`;
      const dest = b.uri(prefix);
      const at = usable(b, `${b.display(prefix)}/${first.key}`);
      const copied = await run(['cloud', 'copy', path.join(first.dir, first.key), dest]);
      expectExit(copied, 0);
      expect(copied.stdout).toMatch(/^Copied /);

      const refused = await run(['cloud', 'copy', path.join(second.dir, second.key), dest]);
      expectExit(refused, 1);
      expect(refused.stderr).toContain(`${first.key} already exists and is a different backup`);
      expect(refused.stderr).toMatch(/--overwrite/);
      const still = await run(['verify-backup', at, '--json']);
      expectExit(still, 0);
      expect(still.stdout).toContain(first.sha256);

      const again = await run(['cloud', 'copy', path.join(first.dir, first.key), dest]);
      expectExit(again, 0);
      expect(again.stdout).toMatch(/^Skipped .*already holds this backup/);

      const forced = await run(['cloud', 'copy', path.join(second.dir, second.key), dest, '--overwrite']);
      expectExit(forced, 0);
      const replaced = await run(['verify-backup', at, '--json']);
      expectExit(replaced, 0);
      expect(replaced.stdout).toContain(second.sha256);
      expect(replaced.stdout).not.toContain(first.sha256);
    },
    SLOW,
  );

  it(
    'cloud copy: a cluster backup → copied as one unit (members, then the manifest), verifiable at the destination; again → skipped',
    async () => {
      const prefix = `clusters-${b.name}`;
      const from = path.join(cluster.dir, cluster.name);
      const copied = await run(['cloud', 'copy', from, b.uri(prefix)]);
      expectExit(copied, 0);
      expect(copied.stdout).toMatch(/^Copied cluster .*manifest written last/);
      const v = await run(['verify-backup', usable(b, `${b.display(prefix)}/${cluster.name}/`)]);
      expectExit(v, 0);
      expect(v.stdout).toMatch(/^OK\s/);
      const local = (await readdir(from)).sort();
      const stored = (await b.store().keys(`${prefix}/${cluster.name}/`)).map((k) =>
        k.slice(k.lastIndexOf('/') + 1),
      );
      expect(stored.sort()).toEqual(local);
      const again = await run(['cloud', 'copy', `${from}/`, b.uri(prefix)]);
      expectExit(again, 0);
      expect(again.stdout).toMatch(/^Skipped /);
    },
    SLOW,
  );

  it(
    'a prefix URI, with or without options after its "/" → cloud verify and verify-backup name the same backups and agree',
    async () => {
      const prefix = `agree-${b.name}`;
      const r = await run([...pgArgs(), 'backup', 'single', source, ...destination(b, prefix)]);
      expectExit(r, 0);
      const where = b.uri(prefix);
      const plain = await run(['verify-backup', where]);
      expectExit(plain, 0);
      expect(plain.stdout).toMatch(/^OK\s/);
      if (b.name === 'local') {
        // A directory with or without its trailing '/' is the same directory.
        const slashed = await run(['verify-backup', `${where}/`]);
        expectExit(slashed, 0);
        expect(slashed.stdout.trim().split('\n')).toHaveLength(plain.stdout.trim().split('\n').length);
        expect(slashed.stdout).toMatch(/^OK\s/);
        return;
      }
      const cloudVerify = await run(['cloud', 'verify', where]);
      expectExit(cloudVerify, 0);
      // The same verdict lines for the same backups (verify-backup adds a summary line).
      const verdicts = (out: string): string[] => out.split('\n').filter((l) => /^[A-Z]+ {2,}/.test(l));
      expect(verdicts(cloudVerify.stdout)).toEqual(verdicts(plain.stdout));
      expect(verdicts(plain.stdout)).toHaveLength(1);
    },
    SLOW,
  );
});
