/**
 * The PITR fault matrix: one fault injected into one operation of a real archive, and what a DBA
 * must be able to rely on afterwards. Each case works on its own copy of the archive.
 */
import { spawn } from 'node:child_process';
import { chmod, cp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/cli.js';
import { DUMMY_CREDENTIALS, startS3Emulator, type S3Emulator } from '../harness/s3-emulator.js';
import { s3Store } from '../harness/object-store.js';
import {
  archiveDir,
  exists,
  postgresDir,
  removePostgresDirs,
  startPitrServer,
  type PitrServer,
} from '../harness/pitr-server.js';
import { asUser, childrenNamed, run, waitFor } from '../harness/proc.js';
import {
  cliOk,
  createTable,
  restoreAndStart,
  rowCount,
  switchAndArchive,
  writeBatch,
} from '../e2e/pitr-util.js';
import { cli } from '../e2e/util.js';
import { waitUntil } from '../e2e/proc-util.js';
import { treeOf } from './invariants.js';

let server: PitrServer;
let archive: string;
let baseName: string;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  server = await startPitrServer();
  archive = await archiveDir();
  await cliOk([...server.args(), 'pitr', 'enable', '--archive', archive]);
  await server.restart();
  await createTable(server);
  // Enough data that a base backup and its restore take a moment (signals land mid-stream).
  await server.query(
    'CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) || md5(random()::text) AS v FROM generate_series(1, 600000) g',
  );
  await writeBatch(server, 'before');
  const base = await cliOk([...server.args(), 'backup', 'base', '--json']);
  baseName = (JSON.parse(base.stdout) as { metadata: { name: string } }).metadata.name;
  for (const b of ['a', 'b', 'c', 'd']) await writeBatch(server, b, 4, 600);
  await switchAndArchive(server);
}, 300_000);

afterAll(async () => {
  for (const c of cleanups) await c().catch(() => undefined);
  await server?.stop();
  await removePostgresDirs();
});

/** A copy of the archive (owner and modes kept), removed after the file. */
async function archiveCopy(): Promise<string> {
  const parent = await postgresDir('dbb-archive-copy-');
  const dir = path.join(parent, 'archive');
  await cp(archive, dir, { recursive: true, preserveTimestamps: true });
  const r = await run('chown', ['-R', `postgres:`, dir]);
  if (r.code !== 0) throw new Error(r.stderr);
  cleanups.push(() => rm(parent, { recursive: true, force: true }));
  return dir;
}

/** The archive's segment objects of timeline 1, in order. */
async function segmentObjects(dir: string): Promise<string[]> {
  const sub = path.join(dir, 'wal', '0000000100000000');
  return (await readdir(sub))
    .filter((n) => /^[0-9A-F]{24}-/.test(n))
    .sort()
    .map((n) => path.join(sub, n));
}

/** A segment well after the base backup's end: in the window of every target after it. */
async function segmentAfterBase(dir: string): Promise<string> {
  const meta = JSON.parse(await readFile(path.join(dir, 'base', baseName, 'meta.json'), 'utf8')) as {
    stopSegment: string;
  };
  const after = (await segmentObjects(dir)).filter((f) => path.basename(f).slice(0, 24) > meta.stopSegment);
  const pick = after[Math.floor(after.length / 2)];
  if (!pick || after.length < 3) throw new Error(`too few segments after the base backup: ${after.length}`);
  return pick;
}

/** The CLI as the server's OS user, as archive_command runs it. */
async function asPostgres(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const [file, argv] = await asUser('postgres', process.execPath, [
    path.join(repoRoot, 'bin', 'dbbackup.js'),
    ...args,
  ]);
  return run(file, argv, { cwd: '/' });
}

function holdAll(pids: number[], sig: 'SIGSTOP' | 'SIGCONT'): void {
  for (const p of pids) {
    try {
      process.kill(p, sig);
    } catch {
      // already gone
    }
  }
}

describe('PITR faults', () => {
  it('wal fetch: a corrupt segment in the archive → recovery stops with FATAL (exit 128), never a promoted server', async () => {
    const copy = await archiveCopy();
    const victim = await segmentAfterBase(copy);
    const bytes = await readFile(victim);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0xff;
    await writeFile(victim, bytes);
    // Straight from restore_command's point of view: damaged is not "missing".
    const dest = path.join(await postgresDir(), 'seg');
    const fetch = await cli(['wal', 'fetch', path.basename(victim).slice(0, 24), dest, '--archive', copy]);
    expect(fetch.code).toBe(128);
    expect(fetch.stderr).toMatch(/damaged|checksum/);
    expect(await exists(dest)).toBe(false);

    const r = await restoreAndStart([baseName, '--archive', copy]);
    cleanups.push(() => r.stop());
    expect(r.result.code).not.toBe(0);
    expect(r.result.stderr).toMatch(/Recovery stopped with an error: .*exit code 128/);
    const log = await readFile(`${r.dataDir}.log`, 'utf8');
    expect(log).not.toMatch(/selected new timeline ID/);
    expect(log).not.toMatch(/database system is ready to accept connections/);
    expect(await exists(path.join(r.dataDir, 'postmaster.pid'))).toBe(false);
  });

  it('wal verify: a deleted segment → exit 1 naming both ends of the gap; restore pitr past it → refused, nothing written', async () => {
    const copy = await archiveCopy();
    const victim = await segmentAfterBase(copy);
    const missing = path.basename(victim).slice(0, 24);
    await rm(victim);
    const verify = await cli(['wal', 'verify', '--archive', copy]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(
      new RegExp(`GAP: after [0-9A-F]{24}, ${missing} is missing; WAL resumes at [0-9A-F]{24}`),
    );
    const parent = await postgresDir();
    const dataDir = path.join(parent, 'data');
    const restore = await cli([
      'restore',
      'pitr',
      'latest',
      '--archive',
      copy,
      '--data-dir',
      dataDir,
      '--confirm',
    ]);
    expect(restore.code).toBe(1);
    expect(restore.stdout).toMatch(/REFUSED: +recovery to the end of the archive would stop at a gap/);
    expect(await exists(dataDir)).toBe(false);
  });

  it('wal push: the same segment again → exit 0 and one object; other content under its name → exit 1, the stored object untouched', async () => {
    const copy = await archiveCopy();
    const [first] = await segmentObjects(copy);
    if (!first) throw new Error('no segment');
    const name = path.basename(first).slice(0, 24);
    // The original segment, fetched back out of the archive.
    const work = await postgresDir();
    const segment = path.join(work, name);
    expect((await asPostgres(['wal', 'fetch', name, segment, '--archive', copy])).code).toBe(0);
    const before = await treeOf(copy);
    const again = await asPostgres(['wal', 'push', segment, '--archive', copy, '--verbose']);
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/already in the archive with identical content/);
    expect(await treeOf(copy)).toEqual(before);
    const changed = await readFile(segment);
    changed[changed.length - 100] = (changed[changed.length - 100] ?? 0) ^ 0x55;
    await writeFile(segment, changed);
    const conflict = await asPostgres(['wal', 'push', segment, '--archive', copy]);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/already holds a different/);
    expect(await treeOf(copy)).toEqual(before);
  });

  it('wal push: a segment of another cluster, or under another name → refused, nothing stored', async () => {
    const copy = await archiveCopy();
    const [first] = await segmentObjects(copy);
    const name = path.basename(first ?? '').slice(0, 24);
    const work = await postgresDir();
    const segment = path.join(work, name);
    expect((await asPostgres(['wal', 'fetch', name, segment, '--archive', copy])).code).toBe(0);
    const before = await treeOf(copy);
    // Another cluster: its system identifier (header bytes 24-31) differs.
    const foreign = await readFile(segment);
    foreign.writeBigUInt64LE(foreign.readBigUInt64LE(24) ^ 0xffffn, 24);
    const other = path.join(work, 'other', name);
    await run('mkdir', ['-p', path.dirname(other)]);
    await writeFile(other, foreign);
    const wrongCluster = await asPostgres(['wal', 'push', other, '--archive', copy]);
    expect(wrongCluster.code).toBe(1);
    expect(wrongCluster.stderr).toMatch(/belongs to the cluster with system identifier/);
    // The right cluster, the wrong name: its page address says where it belongs.
    const renamed = path.join(work, `${name.slice(0, 16)}000000FF`);
    await cp(segment, renamed);
    const wrongName = await asPostgres(['wal', 'push', renamed, '--archive', copy]);
    expect(wrongName.code).toBe(1);
    expect(wrongName.stderr).toMatch(/its name says/);
    expect(await treeOf(copy)).toEqual(before);
  });

  it('wal push as root into a local archive owned by the server user → refused, nothing created', async () => {
    const copy = await archiveCopy();
    const before = await treeOf(copy);
    const [first] = await segmentObjects(copy);
    const name = path.basename(first ?? '').slice(0, 24);
    const segment = path.join(await postgresDir(), name);
    expect((await asPostgres(['wal', 'fetch', name, segment, '--archive', copy])).code).toBe(0);
    const r = await cli(['wal', 'push', segment, '--archive', copy]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/root must not write into it/);
    expect(await treeOf(copy)).toEqual(before);
  });

  it('wal fetch: not in the archive → exit 1; a location that is no archive → exit 128', async () => {
    const dest = path.join(await postgresDir(), 'x');
    const missing = await cli(['wal', 'fetch', '0000000100000000000000FF', dest, '--archive', archive]);
    expect(missing.code).toBe(1);
    const history = await cli(['wal', 'fetch', '00000009.history', dest, '--archive', archive]);
    expect(history.code).toBe(1);
    const nowhere = await cli([
      'wal',
      'fetch',
      '000000010000000000000003',
      dest,
      '--archive',
      path.join(archive, 'nothing-here'),
    ]);
    expect(nowhere.code).toBe(128);
    expect(nowhere.stderr).toMatch(/not a WAL archive/);
  });

  it('backup base: SIGTERM mid-stream → pg_basebackup stopped, nothing stored, exit 130', async () => {
    const before = await treeOf(path.join(archive, 'base'));
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, 'bin', 'dbbackup.js'), ...server.args(), 'backup', 'base'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    let exited = false;
    const exit = new Promise<number | null>((r) =>
      child.on('close', (code) => {
        exited = true;
        r(code);
      }),
    );
    const pid = child.pid ?? 0;
    await waitUntil(
      'pg_basebackup to run',
      30_000,
      async () => exited || (await childrenNamed(pid, 'pg_basebackup')).length > 0,
    );
    if (exited) throw new Error(`backup base ended before its pg_basebackup was seen: ${stderr}`);
    const tools = [...(await childrenNamed(pid, 'pg_basebackup')), ...(await childrenNamed(pid, 'zstd'))];
    // Held mid-stream (SIGSTOP) so the signal surely lands before the backup ends.
    holdAll(tools, 'SIGSTOP');
    child.kill('SIGTERM');
    await waitUntil('dbbackup to stop its children', 10_000, async () => stderr.includes('Received SIGTERM'));
    holdAll(tools, 'SIGCONT');
    expect(await exit).toBe(130);
    expect(stderr).toMatch(/Interrupted; nothing was kept/);
    for (const p of tools) expect(await exists(`/proc/${p}`)).toBe(false);
    expect(await treeOf(path.join(archive, 'base'))).toEqual(before);
  });

  it('restore pitr --confirm: SIGTERM during extraction → tar and zstd stopped, the data directory removed, exit 130', async () => {
    const parent = await postgresDir();
    const dataDir = path.join(parent, 'data');
    // A tar that holds the extraction open (it says when it starts), so the signal surely lands mid-way.
    const bin = await postgresDir('dbb-slow-tar-');
    const started = path.join(bin, 'started');
    await writeFile(path.join(bin, 'tar'), `#!/bin/sh\necho $$ > ${started}\nexec sleep 120\n`, {
      mode: 0o755,
    });
    await run('chown', ['postgres:', path.join(bin, 'tar')]);
    const child = spawn(
      process.execPath,
      [
        path.join(repoRoot, 'bin', 'dbbackup.js'),
        'restore',
        'pitr',
        baseName,
        '--archive',
        archive,
        '--data-dir',
        dataDir,
        '--confirm',
        '--target-immediate',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
      },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    let exited = false;
    const exit = new Promise<number | null>((r) =>
      child.on('close', (code) => {
        exited = true;
        r(code);
      }),
    );
    await waitUntil('the extraction to start', 60_000, async () => exited || (await exists(started)));
    if (exited) throw new Error(`restore ended before the extraction started: ${stderr}`);
    const pid = child.pid ?? 0;
    const tools = [Number((await readFile(started, 'utf8')).trim()), ...(await childrenNamed(pid, 'zstd'))];
    child.kill('SIGTERM');
    expect(await exit).toBe(130);
    expect(stderr).toMatch(/Interrupted; .* was removed/);
    for (const p of tools) expect(await exists(`/proc/${p}`)).toBe(false);
    expect(await exists(dataDir)).toBe(false);
  });

  it("pitr status: archiving into a store that refuses writes → failing with the push's own error, exit 1 (status and preflight warn); once fixed, OK", async () => {
    const walDir = path.join(archive, 'wal', '0000000100000000');
    const mode = (await stat(walDir)).mode & 0o777;
    await chmod(walDir, 0o500);
    try {
      await writeBatch(server, 'refused', 2, 300);
      await server.query('SELECT pg_switch_wal()');
      await waitFor('a failed archive attempt', 60_000, async () => {
        const [a] = await server.query<{ n: string }>('SELECT failed_count AS n FROM pg_stat_archiver');
        return Number(a?.n) > 0;
      });
      const status = await cli([...server.args(), 'pitr', 'status']);
      expect(status.code).toBe(1);
      expect(status.stdout).toMatch(
        /PROBLEM: +archiving is failing: \d+ failures, the last at .*(permission denied|EACCES)/i,
      );
      expect(status.stdout).toMatch(/Last error: .*(permission denied|EACCES)/i);
      // status and preflight warn too.
      const plain = await cli([...server.args(), 'status']);
      expect(plain.stdout).toMatch(/WAL archive: +WARNING: archiving is failing/);
      const pre = await cli([...server.args(), '--backup-dir', await postgresDir(), 'preflight']);
      expect(pre.stdout).toMatch(/wal archiving +WARN +archiving is failing/);
      // Nothing was acknowledged: the segment waits in pg_wal.
      const [ready] = await server.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
      );
      expect(Number(ready?.n)).toBeGreaterThan(0);
    } finally {
      await chmod(walDir, mode);
    }
    await switchAndArchive(server);
    const ok = await cli([...server.args(), 'pitr', 'status']);
    expect(ok.code).toBe(0);
    expect((await cli([...server.args(), 'status'])).stdout).toMatch(/WAL archive: +ok: archiving into/);
    expect(await rowCount(server)).toBeGreaterThan(0);
  });
});

describe('PITR faults with an S3 archive', () => {
  const BUCKET = 'dbb-pitr-faults';
  let emulator: S3Emulator;
  let emuDir: string;
  let pg: PitrServer;
  let envFile: string;
  const uri = (prefix: string): string => `s3://${BUCKET}/${prefix}/?endpoint=${emulator.endpoint}`;
  const env = {
    AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
  };
  const store = () => s3Store(emulator.client(), BUCKET);

  /** The emulator's process, found by its command line (the harness does not hand it out). */
  async function emulatorPid(): Promise<number> {
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const cmd = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
      if (cmd.includes('startFauxqs') && cmd.includes(process.execPath)) {
        const env_ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
        if (env_.includes(`EMU_DIR=${emuDir}`)) return Number(entry);
      }
    }
    throw new Error('emulator process not found');
  }

  beforeAll(async () => {
    emuDir = await postgresDir('dbb-fauxqs-');
    emulator = await startS3Emulator({ dir: emuDir });
    await emulator.bucket(BUCKET);
    pg = await startPitrServer();
    const secrets = await postgresDir('dbb-secrets-');
    envFile = path.join(secrets, 's3.env');
    await writeFile(
      envFile,
      `AWS_ACCESS_KEY_ID=${env.AWS_ACCESS_KEY_ID}\nAWS_SECRET_ACCESS_KEY=${env.AWS_SECRET_ACCESS_KEY}\n`,
      { mode: 0o600 },
    );
    await run('chown', ['postgres:', envFile]);
    await cliOk([...pg.args(), 'pitr', 'enable', '--archive', uri('faults'), '--env-file', envFile]);
    await pg.restart();
    await createTable(pg);
    await writeBatch(pg, 'x');
    // Archive and credentials come from the archive_command pitr enable wrote.
    await cliOk([...pg.args(), 'backup', 'base']);
    await switchAndArchive(pg);
  }, 300_000);

  afterAll(async () => {
    await pg?.stop();
    await emulator?.stop();
    await rm(emuDir, { recursive: true, force: true });
  });

  it("wal push to an S3 store that does not answer → PostgreSQL keeps the segment (.ready); pitr status reports the failure with the push's error, exit 1", async () => {
    const port = emulator.port;
    emulator.kill();
    try {
      await writeBatch(pg, 'unreachable', 2, 300);
      await pg.query('SELECT pg_switch_wal()');
      await waitFor('a failed archive attempt', 60_000, async () => {
        const [a] = await pg.query<{ n: string }>('SELECT failed_count AS n FROM pg_stat_archiver');
        return Number(a?.n) > 0;
      });
      const status = await cli([...pg.args(), 'pitr', 'status', '--env-file', envFile]);
      expect(status.code).toBe(1);
      expect(status.stdout).toMatch(/PROBLEM: +archiving is failing: \d+ failures/);
      expect(status.stdout).toMatch(/Last error: .*(ECONNREFUSED|connect|reach)/i);
      expect(status.stdout).toMatch(/Archive: .* NOT USABLE/);
      const [ready] = await pg.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
      );
      expect(Number(ready?.n)).toBeGreaterThan(0);
    } finally {
      emulator = await startS3Emulator({ dir: emuDir, port });
    }
    // Back: the archiver catches up by itself.
    await switchAndArchive(pg);
    const healed = await cli([...pg.args(), 'pitr', 'status', '--env-file', envFile]);
    if (healed.code !== 0) throw new Error(healed.stdout);
  });

  it('wal push: a segment of a real other cluster into the first archive → refused, nothing stored', async () => {
    const before = await treeOf(archive);
    const [current] = await pg.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f');
    const name = (await readdir(path.join(pg.dataDir, 'pg_wal')))
      .filter((n) => /^[0-9A-F]{24}$/.test(n) && n < (current?.f ?? ''))
      .sort()
      .at(-1);
    const r = await asPostgres([
      'wal',
      'push',
      path.join(pg.dataDir, 'pg_wal', name ?? ''),
      '--archive',
      archive,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/belongs to the cluster with system identifier \d+, the archive to \d+/);
    expect(await treeOf(archive)).toEqual(before);
  });

  it('async uploader: SIGTERM while the store hangs → it leaves within seconds, lock released, nothing half-stored', async () => {
    const prefix = 'uploader-sigterm';
    await store().write(`${prefix}/archive.json`, await store().read('faults/archive.json'));
    // A pg_wal holding two segments of this cluster; marked ready once the store hangs.
    const work = await postgresDir('dbb-uploader-');
    const pgWal = path.join(work, 'pg_wal');
    await run('mkdir', ['-p', path.join(pgWal, 'archive_status')]);
    const [current] = await pg.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f');
    const names = (await readdir(path.join(pg.dataDir, 'pg_wal')))
      .filter((n) => /^[0-9A-F]{24}$/.test(n) && n < (current?.f ?? ''))
      .sort()
      .slice(-2);
    for (const n of names) await cp(path.join(pg.dataDir, 'pg_wal', n), path.join(pgWal, n));
    const spool = path.join(work, 'spool');
    const child = spawn(
      process.execPath,
      [
        path.join(repoRoot, 'bin', 'dbbackup.js'),
        'wal',
        'uploader',
        '--archive',
        uri(prefix),
        '--env-file',
        envFile,
        '--spool-dir',
        spool,
        '--pg-wal',
        pgWal,
      ],
      { stdio: 'ignore' },
    );
    const exit = new Promise<void>((r) => child.on('close', () => r()));
    await waitUntil('the uploader to take its lock', 30_000, () => exists(path.join(spool, 'uploader.pid')));
    const emuPid = await emulatorPid();
    process.kill(emuPid, 'SIGSTOP');
    try {
      for (const n of names) await writeFile(path.join(pgWal, 'archive_status', `${n}.ready`), '');
      await new Promise((r) => setTimeout(r, 1000));
      const t0 = Date.now();
      child.kill('SIGTERM');
      await exit;
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(await exists(path.join(spool, 'uploader.pid'))).toBe(false);
    } finally {
      process.kill(emuPid, 'SIGCONT');
    }
    // Nothing, or whole objects only: never a partial one under a segment's name.
    for (const k of (await store().keys(`${prefix}/`)).filter((x) => x.includes('/wal/'))) {
      const name = /([0-9A-F]{24})-[0-9a-f]{64}\.zst$/.exec(k)?.[1] ?? '';
      expect(names).toContain(name);
      await cliOk(['wal', 'fetch', name, path.join(work, `check-${name}`), '--archive', uri(prefix)], 0, {
        env,
      });
    }
  });
});
