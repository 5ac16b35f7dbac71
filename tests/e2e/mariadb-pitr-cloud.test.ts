/**
 * MariaDB point-in-time recovery from a bucket (the fauxqs S3 emulator), encrypted with a key file:
 * physical backup and binlogs stored encrypted, a restore without the key refused before anything
 * is created, and one with it equal, table by table, to the source at the chosen second.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allBackends, type Backend } from '../harness/backends.js';
import { startBinlogServer, tableStates, type BinlogServer } from '../harness/binlog-server.js';
import {
  cliOk,
  markSecond,
  mysqlOwnedDir,
  restoreAndStart,
  seedShop,
  writeBatch,
  type Restored,
} from './mariadb-pitr-util.js';
import { cli, removeDir, tempDir, uniqueName } from './util.js';

let server: BinlogServer;
let backend: Backend;
let keys: string;
let keyFile: string;
let archive: string;
const db = uniqueName('shop');
let target = '';
let expected: Awaited<ReturnType<typeof tableStates>> = {};
const restored: Restored[] = [];

beforeAll(async () => {
  backend = allBackends().find((b) => b.name === 's3-fauxqs') as Backend;
  await backend.start();
  server = await startBinlogServer(5);
  keys = await tempDir('dbb-mdb-keys-');
  keyFile = path.join(keys, 'archive.key');
  await cliOk(['keygen', '--symmetric', '--output', keyFile]);
  archive = backend.uri(uniqueName('mdb-archive'));
  const env = { env: backend.env() };
  const enc = ['--encryption-key-file', keyFile];
  await seedShop(server, db);
  await cliOk([...server.args(), 'backup', 'physical', '--archive', archive, ...enc], env);
  await writeBatch(server, db, 'c1');
  target = await markSecond(server);
  expected = await tableStates(server.query, db);
  await writeBatch(server, db, 'c2');
  await cliOk([...server.args(), 'binlog', 'archive', '--archive', archive, '--flush', ...enc], env);
}, 240_000);

afterAll(async () => {
  for (const r of restored) await r.stop().catch(() => undefined);
  await server?.stop();
  await backend?.stop();
  await removeDir(keys);
});

describe('MariaDB PITR from an encrypted S3 archive', () => {
  it('everything in the bucket is encrypted; binlogs and the backup carry .enc', async () => {
    const keysInBucket = await backend.store().keys('');
    const data = keysInBucket.filter((k) => /\/(binlog|physical)\//.test(k) && !k.endsWith('.json'));
    expect(data.length).toBeGreaterThan(1);
    expect(data.every((k) => k.endsWith('.zst.enc'))).toBe(true);
  });

  it('restore pitr without the key → refused before anything is created', async () => {
    const parent = await mysqlOwnedDir();
    const r = await cli(
      [
        'restore',
        'pitr',
        'latest',
        '--archive',
        archive,
        '--target-time',
        target,
        '--data-dir',
        path.join(parent, 'data'),
        '--confirm',
      ],
      { env: backend.env(), timeoutMs: 120_000 },
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/encrypt|key/i);
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(parent)).toEqual([]);
    await removeDir(parent);
  });

  it('restore pitr with the key: every table equals the source at that second', async () => {
    const r = await restoreAndStart(
      ['latest', '--archive', archive, '--target-time', target, '--encryption-key-file', keyFile],
      { env: backend.env() },
    );
    restored.push(r);
    if (r.result.code !== 0) throw new Error(`${r.result.stdout}\n${r.result.stderr}`);
    expect(await tableStates(r.query, db)).toEqual(expected);
  });
});
