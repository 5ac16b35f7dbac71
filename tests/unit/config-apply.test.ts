import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { parseWith, writeConfig, type Doc } from './config-program.js';

/** Settings chosen as one (groups), options a command refuses, and how the profile is picked. */

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'dbbackup-apply-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  HOME: os.homedir(),
  XDG_CONFIG_HOME: path.join(dir, 'none'),
  ...extra,
});

let n = 0;
async function run(doc: Doc, argv: string[], extraEnv: Record<string, string> = {}) {
  const work = await mkdtemp(path.join(dir, `c${n++}-`));
  const file = await writeConfig(work, doc);
  return parseWith(['--config', file, ...argv], env(extraEnv), work);
}

const profile = (settings: Doc): Doc => ({ default_profile: 'p', profiles: { p: settings } });

describe('groups: a flag or variable for any member replaces the files’ values for all of them', () => {
  it('--backup-dir on the command line: the profile’s cloud URI is not added as a second destination', async () => {
    const r = await run(profile({ storage: { cloud: 's3://bucket/prod/' } }), [
      '--backup-dir',
      '/tmp/x',
      'backup',
      'single',
      'shop',
    ]);
    expect(r.options.backupDir).toBe('/tmp/x');
    expect(r.options.cloud).toBeUndefined();
  });

  it('DBBACKUP_BACKUP_DIR in the environment does the same', async () => {
    const r = await run(profile({ storage: { cloud: 's3://bucket/prod/' } }), ['backup', 'single', 'shop'], {
      DBBACKUP_BACKUP_DIR: '/tmp/env',
    });
    expect(r.options.cloud).toBeUndefined();
    expect(r.applied.resolved.get('storage.backup_dir')?.source).toMatchObject({
      tier: 'env',
      name: 'DBBACKUP_BACKUP_DIR',
    });
  });

  it('a profile’s destination replaces the top level’s (not one more)', async () => {
    const r = await run(
      { ...profile({ storage: { backup_dir: '/srv/prod' } }), storage: { cloud: 's3://bucket/shared/' } },
      ['backup', 'single', 'shop'],
    );
    expect(r.options.backupDir).toBe('/srv/prod');
    expect(r.options.cloud).toBeUndefined();
  });

  it('PGPASSWORD beats the profile’s password_file (the file is not read)', async () => {
    const r = await run(
      profile({ connection: { password_file: '/nonexistent/pw' } }),
      ['backup', 'single', 'shop'],
      {
        PGPASSWORD: 'from-env',
      },
    );
    expect(r.options.passwordFile).toBeUndefined();
    expect(r.options.password).toBeUndefined();
  });

  it('--password on the command line beats the profile’s password_file', async () => {
    const r = await run(profile({ connection: { password_file: '/nonexistent/pw' } }), [
      '--password',
      'typed',
      'backup',
      'single',
      'shop',
    ]);
    expect(r.options.passwordFile).toBeUndefined();
    expect(r.options.password).toBe('typed');
  });

  it('--recipient on the command line: the profile’s key file is not added', async () => {
    const r = await run(profile({ encryption: { key_file: '/etc/k' } }), [
      'backup',
      'single',
      'shop',
      '--recipient',
      'age1xyz',
    ]);
    expect(r.options.recipient).toEqual(['age1xyz']);
    expect(r.options.encryptionKeyFile).toBeUndefined();
  });

  it('--keep-last on the command line replaces the profile’s whole policy; its time zone stays', async () => {
    const r = await run(profile({ retention: { keep_daily: 7, keep_weekly: 4, time_zone: 'UTC' } }), [
      'cleanup',
      '/x',
      '--keep-last',
      '2',
    ]);
    expect(r.options).toMatchObject({ keepLast: '2', timeZone: 'UTC' });
    expect(r.options.keepDaily).toBeUndefined();
    expect(r.options.keepWeekly).toBeUndefined();
  });

  it('without a flag, the whole policy of the profile applies', async () => {
    const r = await run(profile({ retention: { keep_daily: 7, keep_weekly: 4 } }), ['cleanup', '/x']);
    expect(r.options).toMatchObject({ keepDaily: '7', keepWeekly: '4' });
  });
});

describe('options a command gives another meaning, or refuses', () => {
  it('identity_file decrypts restores but is never handed to a backup (which refuses it)', async () => {
    const doc = profile({ encryption: { identity_file: ['/root/id.txt'] } });
    expect((await run(doc, ['backup', 'single', 'shop'])).options.identityFile).toBeUndefined();
    expect((await run(doc, ['restore', 'single', 'x.dump'])).options.identityFile).toEqual(['/root/id.txt']);
  });

  it('connection.database is the maintenance database, never cleanup’s filter or a cluster member', async () => {
    const doc = profile({ connection: { database: 'postgres' } });
    expect((await run(doc, ['backup', 'single', 'shop'])).options.database).toBe('postgres');
    expect((await run(doc, ['cleanup', '/x', '--keep-last', '1'])).options.database).toBeUndefined();
    expect((await run(doc, ['restore', 'single', 'x.dump'])).options.database).toBeUndefined();
  });

  it('a global flag typed after the command still counts as a flag', async () => {
    const r = await run(profile({ connection: { host: 'db-profile' } }), [
      'backup',
      'single',
      'shop',
      '--host',
      'db-flag',
    ]);
    expect(r.options.host).toBe('db-flag');
    expect(r.applied.resolved.get('connection.host')?.source.tier).toBe('flag');
  });

  it('-q and -v are flags for the log level: they beat DBBACKUP_LOG_LEVEL and the profile', async () => {
    const doc = profile({ log: { level: 'debug' } });
    const quiet = await run(doc, ['-q', 'backup', 'single', 'shop'], { DBBACKUP_LOG_LEVEL: 'info' });
    expect(quiet.applied.resolved.get('log.level')).toMatchObject({
      value: 'warn',
      source: { tier: 'flag' },
    });
    expect(quiet.options.logLevel).toBeUndefined();
  });
});

describe('which profile', () => {
  const doc: Doc = {
    default_profile: 'a',
    profiles: { a: { connection: { host: 'host-a' } }, b: { connection: { host: 'host-b' } } },
  };

  it('default_profile without --profile; --profile over DBBACKUP_PROFILE over default_profile', async () => {
    expect((await run(doc, ['backup', 'single', 'x'])).options.host).toBe('host-a');
    expect((await run(doc, ['backup', 'single', 'x'], { DBBACKUP_PROFILE: 'b' })).options.host).toBe(
      'host-b',
    );
    expect(
      (await run(doc, ['--profile', 'a', 'backup', 'single', 'x'], { DBBACKUP_PROFILE: 'b' })).options.host,
    ).toBe('host-a');
  });

  it('an unknown profile is a usage error naming the ones there are', async () => {
    const err = await run(doc, ['--profile', 'prdo', 'backup', 'single', 'x']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).message).toContain('prdo');
    expect((err as UsageError).hint).toContain('a, b');
  });

  it('--profile without any configuration file is a usage error', async () => {
    const err = await parseWith(['--profile', 'prod', 'backup', 'single', 'x'], env(), dir).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).message).toMatch(/no configuration file/);
  });

  it('--no-config reads neither the file nor ./.dbbackup.conf', async () => {
    const r = await run(doc, ['--no-config', 'backup', 'single', 'x']);
    expect(r.options.host).toBeUndefined();
    expect(r.applied.config).toBeUndefined();
  });
});
