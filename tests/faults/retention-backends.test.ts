/**
 * Fault matrix: retention and pruning on every backend through the same code — a local directory,
 * S3 (fauxqs, s3rver), Azure Blob (Azurite) and GCS (the Firebase emulator). A bit-rotted newest
 * backup must not cost the good ones their place; objects dbbackup did not write (beside the
 * backups, or a sub-prefix holding a manifest.json) are left alone byte for byte; with credentials
 * that may not delete, every line says what really happened.
 */
import { spawnSync } from 'node:child_process';
import {
  AccountSASPermissions,
  generateAccountSASQueryParameters,
  SASProtocol,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allBackends, type Backend } from '../harness/backends.js';
import { storeSnapshot } from '../harness/object-store.js';
import { dropPgDatabase } from '../harness/pg.js';
import { cli, expectExit, removeDir, uniqueName, type ListedBackup, type PlanJson } from '../e2e/util.js';
import { backupsAt, daily, realBackup, type RealBackup } from './catalog.js';
import { flipByte, pick } from './invariants.js';

const db = uniqueName('fretb');
let real: RealBackup;

beforeAll(async () => {
  real = await realBackup(db);
}, 300_000);

afterAll(async () => {
  await dropPgDatabase(db);
  await removeDir(real.dir);
});

const sorted = (xs: readonly string[]): string[] => [...xs].sort();
const filesOf = (...keys: string[]): string[] => keys.flatMap((k) => [k, `${k}.meta.json`, `${k}.sha256`]);

/** Objects that look like backups, sidecars or a cluster backup, but are a user's. */
const FOREIGN: Record<string, string> = {
  'data.sql': 'INSERT INTO t VALUES (1);\n',
  'something.meta.json': '{"schema":"not ours","size":1}\n',
  'report.dump.zst': 'not zstd at all',
  'important.sql': '-- notes\n',
  'sub2/manifest.json': '{"name":"sub2"}\n',
  'sub2/important.csv': 'a,b\n1,2\n',
  'sub2/deep/x.txt': 'x\n',
};
const FOREIGN_ENTRIES = ['data.sql', 'something', 'report.dump.zst', 'important.sql', 'sub2/'];

/**
 * The URI of `prefix` with credentials that may read and list but not delete: an account SAS
 * (read + list) on Azure instead of the account key.
 */
function readOnlyAzureUri(backend: Backend, prefix: string): string {
  const uri = backend.uri(prefix);
  const q = new URLSearchParams(uri.slice(uri.indexOf('?') + 1));
  const account = q.get('account') ?? '';
  const sas = generateAccountSASQueryParameters(
    {
      permissions: AccountSASPermissions.parse('rl'),
      services: 'b',
      resourceTypes: 'sco',
      protocol: SASProtocol.HttpsAndHttp,
      expiresOn: new Date(Date.now() + 3_600_000),
    },
    new StorageSharedKeyCredential(account, q.get('key') ?? ''),
  ).toString();
  q.delete('key');
  q.set('sas', sas);
  return `${uri.slice(0, uri.indexOf('?'))}?${q.toString()}`;
}

function chattr(flag: '+i' | '-i', file: string): void {
  const r = spawnSync('chattr', [flag, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`chattr ${flag} ${file}: ${r.stderr}`);
}

describe.each(allBackends())('$name', (backend) => {
  let n = 0;
  /** A fresh prefix with `count` backups one day apart (newest first). */
  async function catalog(count: number): Promise<{ prefix: string; keys: string[] }> {
    const prefix = `t${++n}-${Date.now().toString(36)}`;
    return { prefix, keys: await backupsAt(backend.store(), `${prefix}/`, real, daily(real, count)) };
  }
  const snapshot = (prefix: string): Promise<Record<string, string>> =>
    storeSnapshot(backend.store(), `${prefix}/`);
  const run = (args: string[]) => cli(args, { env: backend.env(), timeoutMs: 300_000 });
  async function cleanup(
    uri: string,
    ...args: string[]
  ): Promise<{ code: number; plan: PlanJson; stderr: string }> {
    const r = await run(['cleanup', uri, ...args, '--json']);
    return { code: r.code, plan: JSON.parse(r.stdout) as PlanJson, stderr: r.stderr };
  }
  async function listed(prefix: string, ...extra: string[]): Promise<ListedBackup[]> {
    const r = await run(['list', 'backups', '--cloud', backend.uri(prefix), ...extra, '--json']);
    expectExit(r, 0);
    return (JSON.parse(r.stdout) as { backups: ListedBackup[] }).backups;
  }

  beforeAll(() => backend.start(), 300_000);
  afterAll(() => backend.stop(), 120_000);

  it('cleanup --keep-last 1: the newest backup bit-rotted (one byte, same size) → it counts for nothing, the newest good one is kept, no good backup lost', async () => {
    const { prefix, keys } = await catalog(6);
    await flipByte(backend.store(), `${prefix}/${keys[0]}`);
    const before = await snapshot(prefix);

    // The listing does not call it valid on the word of its size; --verify finds it.
    expect((await listed(prefix)).map((b) => b.state)).toEqual(keys.map(() => 'unverified'));
    expect((await listed(prefix, '--verify')).map((b) => [b.key, b.state])).toEqual(
      keys.map((k, i) => [k, i === 0 ? 'corrupt' : 'valid']),
    );

    const { code, plan } = await cleanup(backend.uri(prefix), '--keep-last', '1');
    expect(code).toBe(0);
    const doomed = keys.slice(2);
    expect(sorted(plan.deleted)).toEqual(sorted(doomed));
    expect(plan.decisions.find((d) => d.key === keys[1])).toMatchObject({
      keep: true,
      state: 'valid',
      reasons: ['last 1', 'newest valid backup'],
    });
    expect(plan.incomplete).toEqual([
      expect.objectContaining({ key: keys[0], state: 'corrupt', removed: false }),
    ]);
    const drop = new Set(filesOf(...doomed));
    expect(await snapshot(prefix)).toEqual(
      Object.fromEntries(Object.entries(before).filter(([k]) => !drop.has(k))),
    );
  });

  it('cleanup --keep-last 1 --prune-incomplete --grace 0: objects dbbackup did not write (beside the backups, a sub-prefix with a manifest.json) → left alone byte for byte, listed as not ours; its own leftover removed', async () => {
    const { prefix, keys } = await catalog(2);
    const store = backend.store();
    for (const [key, text] of Object.entries(FOREIGN)) await store.write(`${prefix}/${key}`, text);
    const orphan = `${db}_20200101_000000.dump.zst`;
    await store.write(`${prefix}/${orphan}`, await store.read(`${prefix}/${keys[0]}`));
    const before = await snapshot(prefix);

    const { code, plan } = await cleanup(
      backend.uri(prefix),
      '--keep-last',
      '1',
      '--prune-incomplete',
      '--grace',
      '0',
    );
    expect(code).toBe(0);
    expect(await snapshot(prefix)).toEqual({
      ...pick(before, Object.keys(FOREIGN)),
      ...pick(before, filesOf(keys[0] ?? '')),
    });
    expect(plan.deleted).toEqual([keys[1]]);
    expect(plan.incomplete).toEqual([
      expect.objectContaining({ key: orphan, action: 'removed', removed: true }),
    ]);
    expect(sorted(plan.notOurs.map((x) => x.key))).toEqual(sorted(FOREIGN_ENTRIES));
  });

  if (backend.name === 'azure' || backend.name === 'local')
    it(`cleanup --keep-last 1 with ${backend.name === 'azure' ? 'read-only credentials (a SAS for read and list)' : 'an immutable directory (chattr +i)'} → exit 1; every deletion is reported as not done, with the refusal; nothing said "deleted"; nothing gone`, async () => {
      const { prefix, keys } = await catalog(3);
      const before = await snapshot(prefix);
      const uri = backend.name === 'azure' ? readOnlyAzureUri(backend, prefix) : backend.uri(prefix);
      if (backend.name === 'local') chattr('+i', uri);
      try {
        // Reading is allowed: the plan is made and the kept backup is proven.
        const text = await run(['cleanup', uri, '--keep-last', '1']);
        expect(text.code).toBe(1);
        for (const key of keys.slice(1))
          expect(text.stdout).toMatch(
            new RegExp(
              `^ {4}FAILED {2}.* ${key.replaceAll('.', '\\.')} {2}\\(no rule keeps it\\): .*${key.replaceAll('.', '\\.')}\\.meta\\.json`,
              'm',
            ),
          );
        expect(text.stdout).not.toMatch(/^ {4}deleted /m);
        expect(text.stdout).toMatch(/^1 kept, 0 deleted, 2 not deleted, 0 B freed\.$/m);
        expect(text.stderr).toMatch(/^dbbackup: error: cleanup did not finish: 2 problems$/m);
        const { code, plan } = await cleanup(uri, '--keep-last', '1');
        expect(code).toBe(1);
        expect(plan.deleted).toEqual([]);
        expect(plan.freedBytes).toBe(0);
        expect(plan.decisions.filter((d) => !d.keep).map((d) => [d.key, d.outcome, d.files])).toEqual(
          keys.slice(1).map((k) => [k, 'not deleted', []]),
        );
        expect(plan.decisions.find((d) => d.key === keys[0])).toMatchObject({ keep: true, state: 'valid' });
      } finally {
        if (backend.name === 'local') chattr('-i', uri);
      }
      expect(await snapshot(prefix)).toEqual(before);
    });
});
