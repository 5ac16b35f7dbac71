/**
 * PITR against the S3 emulator (fauxqs), the way a cloud archive is run: credentials in an env
 * file only the server's user can read, an encrypted archive (key file owned by that user), the
 * asynchronous uploader for archive_command, and a prefetching restore_command. The restored rows
 * are compared with what was committed by the target time.
 */
import { access, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allBackends, type Backend } from '../harness/backends.js';
import { postgresDir, removePostgresDirs, startPitrServer, type PitrServer } from '../harness/pitr-server.js';
import {
  cliOk,
  createTable,
  markTime,
  restoreAndStart,
  rowsCommittedBy,
  switchAndArchive,
  writeBatch,
  type Restored,
  postgresSecret,
} from './pitr-util.js';
import { cli } from './util.js';

let s3: Backend;
let server: PitrServer;
let archive: string;
let secrets: string;
let envFile: string;
let keyFile: string;
let spool: string;
let time = '';
let expected = 0;
const restored: Restored[] = [];

beforeAll(async () => {
  s3 = allBackends().find((b) => b.name === 's3-fauxqs') as Backend;
  await s3.start();
  archive = s3.uri('pitr-main');
  server = await startPitrServer(['archive_timeout = 0']);
  secrets = await postgresDir('dbb-secrets-');
  const env = s3.env();
  envFile = await postgresSecret(
    secrets,
    's3.env',
    `AWS_ACCESS_KEY_ID=${env.AWS_ACCESS_KEY_ID}\nAWS_SECRET_ACCESS_KEY=${env.AWS_SECRET_ACCESS_KEY}\n`,
  );
  keyFile = await postgresSecret(secrets, 'wal.key', `${randomBytes(32).toString('base64')}\n`);
  spool = path.join(secrets, 'spool');
  const enable = await cliOk([
    ...server.args(),
    'pitr',
    'enable',
    '--archive',
    archive,
    '--env-file',
    envFile,
    '--encryption-key-file',
    keyFile,
    '--async',
    '--spool-dir',
    spool,
  ]);
  expect(enable.stdout).toMatch(/key [0-9a-f]{16}/);
  expect(enable.stdout).toMatch(/Check: checked as postgres/);
  await server.restart();
  await createTable(server);
  await writeBatch(server, 'before');
  await cliOk([...server.args(), 'backup', 'base']);
  await writeBatch(server, 'a', 4, 500);
  time = await markTime(server);
  await writeBatch(server, 'b', 4, 500);
  expected = await rowsCommittedBy(server, time);
  await switchAndArchive(server);
}, 300_000);

/** The detached helpers (uploader, prefetcher) would idle out by themselves; a test stops them now. */
async function stopHelpers(dir: string): Promise<void> {
  for (const helper of ['uploader', 'prefetcher']) {
    const pid = Number.parseInt(await readFile(path.join(dir, `${helper}.pid`), 'utf8').catch(() => ''), 10);
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone already
      }
    }
  }
}

afterAll(async () => {
  await stopHelpers(spool).catch(() => undefined);
  await stopHelpers(path.join(secrets ?? '', 'fetch-spool')).catch(() => undefined);
  for (const r of restored) await r.stop().catch(() => undefined);
  await server?.stop();
  await s3?.stop();
  await removePostgresDirs();
});

describe('PITR into an S3 archive (encrypted, async push, prefetching fetch)', () => {
  it('stores every object encrypted, and the identity names the key, never the key itself', async () => {
    const keys = await s3.store().keys('pitr-main/');
    expect(keys.some((k) => k.startsWith('pitr-main/base/') && k.endsWith('base.tar.zst.enc'))).toBe(true);
    const segments = keys.filter((k) => /\/wal\/[0-9A-F]{16}\/[0-9A-F]{24}-[0-9a-f]{64}\.zst\.enc$/.test(k));
    expect(segments.length).toBeGreaterThan(3);
    const identity = (await s3.store().read('pitr-main/archive.json')).toString();
    expect(identity).toMatch(/"kind": "key"/);
    expect(identity).not.toMatch(/[A-Za-z0-9+/]{43}=/);
  });

  it('restore pitr to a time, fetching through the prefetcher, gives exactly the rows committed by then', async () => {
    const r = await restoreAndStart(
      [
        'latest',
        '--archive',
        archive,
        '--env-file',
        envFile,
        '--encryption-key-file',
        keyFile,
        '--target-time',
        time,
        '--prefetch',
        '3',
        '--spool-dir',
        path.join(secrets, 'fetch-spool'),
      ],
      { env: s3.env() },
    );
    restored.push(r);
    if (r.result.code !== 0) throw new Error(`${r.result.stdout}\n${r.result.stderr}`);
    expect(await r.rows()).toBe(expected);
    // The prefetcher ran beside restore_command, and the uploader archived for archive_command.
    expect(await readFile(path.join(secrets, 'fetch-spool', 'prefetcher.log'), 'utf8')).toBeDefined();
    expect(await readFile(path.join(spool, 'uploader.log'), 'utf8')).toBeDefined();
    await r.stop();
  });

  it('restore pitr without --env-file: restore_command would run without credentials → refused naming that, the data directory removed', async () => {
    // The caller has credentials (it can plan); the server would not: the probe, run as postgres
    // with a service's environment, fails while the base backup streams in, and stops it.
    const parent = await postgresDir('dbb-noenv-');
    const dataDir = path.join(parent, 'data');
    const r = await cli(
      [
        'restore',
        'pitr',
        'latest',
        '--archive',
        archive,
        '--encryption-key-file',
        keyFile,
        '--data-dir',
        dataDir,
        '--confirm',
      ],
      { env: s3.env(), timeoutMs: 180_000 },
    );
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.stderr).toContain('The restore command fails when run as postgres');
    expect(r.stderr).toContain(`${dataDir} was removed`);
    await expect(access(dataDir)).rejects.toThrow();
  });

  it('wal verify --deep decrypts every segment; without the key it cannot, and says so', async () => {
    const ok = await cliOk(
      ['wal', 'verify', '--archive', archive, '--deep', '--encryption-key-file', keyFile],
      0,
      { env: s3.env() },
    );
    expect(ok.stdout).toMatch(/Deep check: \d+ objects read, 0 damaged/);
    const noKey = await cli(['wal', 'verify', '--archive', archive, '--deep'], { env: s3.env() });
    expect(noKey.code).not.toBe(0);
    expect(noKey.stderr).toMatch(/encrypted/);
  });

  it("a push with other keys than the archive's is refused", async () => {
    const other = await postgresSecret(secrets, 'other.key', `${randomBytes(32).toString('base64')}\n`);
    const r = await cli(
      [
        'wal',
        'push',
        path.join(server.dataDir, 'pg_wal', '000000010000000000000001'),
        '--archive',
        archive,
        '--encryption-key-file',
        other,
      ],
      {
        env: s3.env(),
      },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/are not the archive's/);
  });
});
