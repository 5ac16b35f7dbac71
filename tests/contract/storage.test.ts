/**
 * The storage contract: the same cases on every backend (a local directory, fauxqs and s3rver for
 * S3, Azurite, the GCS emulator), once through the Storage interface itself and once through the
 * real CLI. What a user relies on must not depend on where the backups live: writes are atomic and
 * ranged reads exact, a missing object is named, nothing is silently overwritten, an upstream
 * failure passes through and leaves nothing, concurrent backups get distinct names, names
 * round-trip, a corrupt object is caught, clusters copy whole, a prefix URI means the same to every
 * command. What is truly one backend's (credential forms, SAS, multipart and block specifics, page
 * sizes, emulators killed mid-upload) stays in tests/e2e/cloud-*.test.ts and the unit tests.
 */
import { randomBytes } from 'node:crypto';
import { readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError, ToolError } from '../../src/errors.js';
import { isRecordKey } from '../../src/storage/s3/upload-record.js';
import { putBuffer, readAll, type Storage } from '../../src/storage/storage.js';
import { openStore } from '../../src/storage/uri.js';
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

/** Sets `vars` in this process (the SDKs read credentials and emulator hosts from it); returns the undo. */
function useEnv(vars: Record<string, string | undefined>): () => void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (v: Record<string, string | undefined>): void => {
    for (const [k, value] of Object.entries(v)) {
      if (value === undefined) delete process.env[k];
      else process.env[k] = value;
    }
  };
  apply(vars);
  return () => apply(saved);
}

async function bytesOf(stream: Readable): Promise<Buffer> {
  return Buffer.concat((await stream.toArray()) as Buffer[]);
}

async function keysOf(s: Storage, prefix?: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of s.list(prefix)) out.push(o.key);
  return out.sort();
}

const MiB = 1024 * 1024;

async function count(db: string): Promise<number> {
  const rows = await pgQuery<{ n: string }>(db, 'SELECT count(*)::text AS n FROM t');
  return Number(rows[0]?.n);
}

describe.each(allBackends())('$name', (b) => {
  const env = (): Record<string, string | undefined> => b.env();
  const run = (args: string[]): Promise<CliResult> => cli(args, { env: env(), timeoutMs: SLOW });

  let restoreEnv: (() => void) | undefined;
  beforeAll(async () => {
    await b.start();
    restoreEnv = useEnv(b.env());
  }, SLOW);
  afterAll(async () => {
    restoreEnv?.();
    await b.stop();
  }, SLOW);

  /** The store the CLI would open for `prefix`, in this process. */
  const open = (prefix: string): Promise<Storage> => openStore(b.uri(prefix));

  describe('the Storage interface', () => {
    it(
      'put (streamed, with metadata) → stat → whole and ranged get → list → delete, twice',
      async () => {
        const prefix = `api-rw-${b.name}`;
        const s = await open(prefix);
        expect(s.location.replace(/\/$/, '')).toBe(b.display(prefix));
        const data = randomBytes(3 * MiB + 17);
        const metadata = { 'dbbackup-database': 'bücher 100% ✓' };
        const info = await s.put('x/obj.bin', Readable.from([data.subarray(0, 1000), data.subarray(1000)]), {
          metadata,
        });
        expect(info).toMatchObject({ key: 'x/obj.bin', size: data.length });
        const stat = await s.stat('x/obj.bin');
        expect(stat).toMatchObject({ key: 'x/obj.bin', size: data.length });
        // A directory keeps no metadata (Storage.ts says so); every cloud backend round-trips it.
        if (b.name !== 'local') expect(stat?.metadata).toMatchObject(metadata);
        expect((await readAll(s, 'x/obj.bin', 8 * MiB)).equals(data)).toBe(true);
        expect(
          (await bytesOf(await s.get('x/obj.bin', { start: 5, end: 9 }))).equals(data.subarray(5, 10)),
        ).toBe(true);
        expect(
          (await bytesOf(await s.get('x/obj.bin', { start: data.length - 3 }))).equals(data.subarray(-3)),
        ).toBe(true);
        // A range past the end is cut to what exists, as when sniffing a small file.
        expect(
          (
            await bytesOf(await s.get('x/obj.bin', { start: data.length - 2, end: data.length + MiB }))
          ).equals(data.subarray(-2)),
        ).toBe(true);
        expect(await keysOf(s)).toEqual(['x/obj.bin']);
        await s.delete('x/obj.bin');
        await s.delete('x/obj.bin');
        expect(await s.stat('x/obj.bin')).toBeUndefined();
        expect(await keysOf(s)).toEqual([]);
      },
      SLOW,
    );

    it(
      'a missing object: stat is undefined, delete is fine, get is a StorageError naming it with a hint',
      async () => {
        const s = await open(`api-missing-${b.name}`);
        expect(await s.stat('nope.dump')).toBeUndefined();
        await expect(s.delete('nope.dump')).resolves.toBeUndefined();
        const err = await s.get('nope.dump').catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StorageError);
        expect((err as StorageError).message).toContain(s.location.replace(/\/$/, ''));
        expect((err as StorageError).message).toContain('nope.dump');
        expect((err as StorageError).hint).toBeTruthy();
      },
      SLOW,
    );

    it(
      'an empty object: size 0, and a range from byte 0 of it is no bytes',
      async () => {
        const s = await open(`api-empty-${b.name}`);
        expect((await putBuffer(s, 'empty', '')).size).toBe(0);
        expect(await bytesOf(await s.get('empty'))).toHaveLength(0);
        // s3rver drops the connection on any range of an empty object (real S3 answers 416, which
        // S3Storage turns into no bytes: fauxqs covers that path).
        if (b.name !== 's3-s3rver')
          expect(await bytesOf(await s.get('empty', { start: 0, end: 99 }))).toHaveLength(0);
      },
      SLOW,
    );

    it(
      'noOverwrite refuses an existing name ("already exists") and keeps its bytes; without it, replaces',
      async () => {
        const s = await open(`api-overwrite-${b.name}`);
        await putBuffer(s, 'k', 'first', { noOverwrite: true });
        const err = await putBuffer(s, 'k', 'second', { noOverwrite: true }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StorageError);
        expect((err as StorageError).message).toMatch(/k already exists$/);
        expect((err as StorageError).hint).toBe('Choose another name or remove it first.');
        expect((await readAll(s, 'k')).toString()).toBe('first');
        await putBuffer(s, 'k', 'third');
        expect((await readAll(s, 'k')).toString()).toBe('third');
        expect(await keysOf(s)).toEqual(['k']);
      },
      SLOW,
    );

    it(
      'a body that fails mid-upload: the upstream error passes through unchanged, nothing is left under the prefix',
      async () => {
        const s = await open(`api-failed-${b.name}`);
        const body = new PassThrough();
        const pending = s.put('failed.bin', body);
        // More than one S3 part or Azure block, so the multipart and block paths fail too.
        body.write(randomBytes(10 * MiB));
        const cause = new ToolError('pg_dump was killed by SIGKILL');
        setTimeout(() => body.destroy(cause), 300);
        await expect(pending).rejects.toBe(cause);
        expect(await s.stat('failed.bin')).toBeUndefined();
        // A plain error becomes a StorageError naming the object.
        const other = new PassThrough();
        const p2 = s.put('failed2.bin', other);
        other.write('x');
        setTimeout(() => other.destroy(new Error('boom')), 100);
        const err = await p2.catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StorageError);
        expect((err as StorageError).message).toMatch(/failed2\.bin: boom$/);
        expect(await s.stat('failed2.bin')).toBeUndefined();
        // No temporary file, no partial object. (An S3 server that cannot abort a multipart upload,
        // s3rver, keeps dbbackup's record of it by design: `cleanup --prune-incomplete` finds the parts.)
        expect((await keysOf(s)).filter((k) => !isRecordKey(k))).toEqual([]);
      },
      SLOW,
    );

    it(
      'list: keys relative to the store, with sizes; a prefix is a string prefix, also inside a name',
      async () => {
        const s = await open(`api-list-${b.name}`);
        const keys = ['a.dump', 'x/b.dump', 'x/y/c.dump', 'x/yz.dump', 'xy/d.dump', 'x/y/z/e.sql'];
        for (const key of keys) await putBuffer(s, key, key);
        expect(await keysOf(s)).toEqual([...keys].sort());
        expect(await keysOf(s, 'x/')).toEqual(['x/b.dump', 'x/y/c.dump', 'x/y/z/e.sql', 'x/yz.dump']);
        expect(await keysOf(s, 'x/y')).toEqual(['x/y/c.dump', 'x/y/z/e.sql', 'x/yz.dump']);
        expect(await keysOf(s, 'x/y/')).toEqual(['x/y/c.dump', 'x/y/z/e.sql']);
        expect(await keysOf(s, 'x')).toEqual([
          'x/b.dump',
          'x/y/c.dump',
          'x/y/z/e.sql',
          'x/yz.dump',
          'xy/d.dump',
        ]);
        expect(await keysOf(s, 'x/y/z/e')).toEqual(['x/y/z/e.sql']);
        expect(await keysOf(s, 'nope/')).toEqual([]);
        expect(await keysOf(s, 'a.dump.meta')).toEqual([]);
        for await (const info of s.list('x/y/c')) expect(info.size).toBe('x/y/c.dump'.length);
        // Another store's prefix is not this one's.
        expect(await keysOf(await open(`api-list-${b.name}-other`))).toEqual([]);
      },
      SLOW,
    );
  });

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
    'a corrupted object: verify-backup reports the checksum mismatch (exit 1); restore refuses and creates nothing',
    async () => {
      const prefix = `corrupt-${b.name}`;
      const r = await run([...pgArgs(), 'backup', 'single', source, ...destination(b, prefix), '--json']);
      expectExit(r, 0);
      const key = (JSON.parse(r.stdout) as BackupJson).metadata.file;
      const bytes = await b.store().read(`${prefix}/${key}`);
      const at = Math.floor(bytes.length / 2);
      bytes[at] = (bytes[at] ?? 0) ^ 0xff;
      await b.store().write(`${prefix}/${key}`, bytes);
      const where = usable(b, `${b.display(prefix)}/${key}`);
      const verify = await run(['verify-backup', where]);
      expectExit(verify, 1);
      expect(verify.stdout).toMatch(/^FAIL\s.*corrupt: checksum mismatch/m);
      const target = uniqueName('contract_corrupt');
      created.push(target);
      const restore = await run([
        ...pgArgs(),
        'restore',
        'single',
        where,
        '--target',
        target,
        '--create',
        '--confirm',
      ]);
      expectExit(restore, 1);
      expect(restore.stderr).toMatch(/Checksum mismatch for .*: the backup is corrupt/);
      const [exists] = await pgQuery<{ n: string }>(
        'postgres',
        'SELECT count(*)::text AS n FROM pg_database WHERE datname = $1',
        [target],
      );
      expect(exists?.n).toBe('0');
    },
    SLOW,
  );

  // Cloud-only commands: not registered for the local directory (nothing shows as skipped).
  if (b.name !== 'local')
    it(
      'cloud delete: without --confirm a dry run that deletes nothing; with it the backup and both sidecars are gone',
      async () => {
        const prefix = `delete-${b.name}`;
        const r = await run([...pgArgs(), 'backup', 'single', source, ...destination(b, prefix), '--json']);
        expectExit(r, 0);
        const key = (JSON.parse(r.stdout) as BackupJson).metadata.file;
        const where = usable(b, `${b.display(prefix)}/${key}`);
        const dry = await run(['cloud', 'delete', where]);
        expectExit(dry, 0);
        expect(dry.stdout).toMatch(/Dry run: nothing was deleted/);
        expect(await b.store().keys(`${prefix}/`)).toHaveLength(3);
        expectExit(await run(['cloud', 'delete', where, '--confirm']), 0);
        expect(await b.store().keys(`${prefix}/`)).toEqual([]);
      },
      SLOW,
    );

  // Cloud-only commands: not registered for the local directory (nothing shows as skipped).
  if (b.name !== 'local')
    it(
      'backup --cloud with --backup-dir: the same backup, byte for byte, in both places',
      async () => {
        const prefix = `both-${b.name}`;
        const dir = await tempDir('dbb-contract-both-');
        try {
          const r = await run([
            ...pgArgs(),
            '--backup-dir',
            dir,
            'backup',
            'single',
            source,
            '--cloud',
            b.uri(prefix),
            '--json',
          ]);
          expectExit(r, 0);
          const key = (JSON.parse(r.stdout) as BackupJson).metadata.file;
          const names = [key, `${key}.meta.json`, `${key}.sha256`].sort();
          expect((await readdir(dir)).sort()).toEqual(names);
          expect((await b.store().keys(`${prefix}/`)).sort()).toEqual(names.map((n) => `${prefix}/${n}`));
          const local = await readFile(path.join(dir, key));
          expect((await b.store().read(`${prefix}/${key}`)).equals(local)).toBe(true);
        } finally {
          await removeDir(dir);
        }
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
