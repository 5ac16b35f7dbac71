/**
 * An incremental base backup in an encrypted S3 archive (the fauxqs emulator): stored encrypted
 * like every other object, and restored — full and delta decrypted and streamed from the bucket —
 * to exactly the tables at its moment.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allBackends, type Backend } from '../harness/backends.js';
import { postgresDir, removePostgresDirs, startPitrServer, type PitrServer } from '../harness/pitr-server.js';
import { backup, snapshot, type Meta, type Snapshot } from './incremental-util.js';
import { cliOk, postgresSecret, restoreAndStart, switchAndArchive, type Restored } from './pitr-util.js';

let s3: Backend;
let server: PitrServer;
let archive: string;
let envFile: string;
let keyFile: string;
let incr: Meta;
let atIncr: Snapshot;
const restored: Restored[] = [];

beforeAll(async () => {
  s3 = allBackends().find((b) => b.name === 's3-fauxqs') as Backend;
  await s3.start();
  archive = s3.uri('pitr-incr');
  server = await startPitrServer([], ['--data-checksums']);
  const secrets = await postgresDir('dbb-secrets-');
  const env = s3.env();
  envFile = await postgresSecret(
    secrets,
    's3.env',
    `AWS_ACCESS_KEY_ID=${env.AWS_ACCESS_KEY_ID}\nAWS_SECRET_ACCESS_KEY=${env.AWS_SECRET_ACCESS_KEY}\n`,
  );
  keyFile = await postgresSecret(secrets, 'wal.key', `${randomBytes(32).toString('base64')}\n`);
  await cliOk([
    ...server.args(),
    'pitr',
    'enable',
    '--archive',
    archive,
    '--env-file',
    envFile,
    '--encryption-key-file',
    keyFile,
  ]);
  await server.restart();
  await server.query('CREATE TABLE t (id int PRIMARY KEY, v text)');
  await server.query('INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g');
  await backup(server, [], { env: s3.env() });
  await server.query("UPDATE t SET v = 'changed' WHERE id % 97 = 0");
  await server.query('CREATE TABLE u AS SELECT g AS id FROM generate_series(1, 1000) g');
  incr = await backup(server, ['--incremental'], { env: s3.env() });
  atIncr = await snapshot((sql) => server.query(sql));
  await server.query('DELETE FROM t WHERE id < 100');
  await switchAndArchive(server);
}, 300_000);

afterAll(async () => {
  for (const r of restored) await r.stop().catch(() => undefined);
  await server?.stop();
  await s3?.stop();
  await removePostgresDirs();
});

describe('incremental base backup in an encrypted S3 archive', () => {
  it('is stored encrypted and restores to exactly its moment', async () => {
    const keys = await s3.store().keys(`pitr-incr/base/${incr.name}/`);
    expect(keys.some((k) => k.endsWith('delta.tar.zst.enc'))).toBe(true);
    const r = await restoreAndStart(
      [
        incr.name,
        '--archive',
        archive,
        '--env-file',
        envFile,
        '--encryption-key-file',
        keyFile,
        '--target-immediate',
      ],
      { env: s3.env() },
    );
    restored.push(r);
    if (r.result.code !== 0) throw new Error(`${r.result.stdout}\n${r.result.stderr}`);
    expect(await snapshot(r.query)).toEqual(atIncr);
    await r.stop();
  });
});
