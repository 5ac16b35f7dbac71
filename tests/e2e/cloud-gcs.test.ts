import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliOptions, CliResult } from '../harness/cli.js';
import { loadMyFidelity, loadPgFidelity } from '../harness/fixtures.js';
import { GCS_PROJECT, startGcsEmulator, type GcsEmulator } from '../harness/gcs-emulator.js';
import { createMyDatabase, dropMyDatabase } from '../harness/mysql.js';
import { mySnapshot, type MySnapshot } from '../harness/my-snapshot.js';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { cliPid, peakRss } from '../harness/peak-rss.js';
import { pgSnapshot, type PgSnapshot } from '../harness/pg-snapshot.js';
import { freePort } from '../harness/proc.js';
import { childrenNamed, waitUntil } from './proc-util.js';
import { cli, expectExit, myArgs, pgArgs, uniqueName } from './util.js';

/**
 * The GCS backend end to end: the real CLI against the firebase-tools storage emulator (started
 * without Java by scripts/start-gcs-emulator.cjs) and the throwaway database servers. The emulator
 * checks no credentials, ignores preconditions, creates buckets on the first write and keeps its
 * metadata in memory, so wrong credentials, create_bucket and restarts cannot be tested here.
 */
const BUCKET = 'dbb-gcs';
type Kind = 'gs' | 'gcs';

let emu: GcsEmulator;
const pgSource = uniqueName('pg_gcssrc');
const mySource = uniqueName('my_gcssrc');
const pgCreated: string[] = [pgSource];
const myCreated: string[] = [mySource];
let pgBefore: PgSnapshot;
let myBefore: MySnapshot;
const pgKeys = new Map<Kind, string>();

/**
 * gs:// runs find the emulator through STORAGE_EMULATOR_HOST, as the SDK documents; gcs:// runs
 * name it with ?endpoint= instead and have no variable. No real credentials may leak in.
 */
function envFor(kind: Kind, e: GcsEmulator = emu): Record<string, string | undefined> {
  return {
    STORAGE_EMULATOR_HOST: kind === 'gs' ? e.endpoint : undefined,
    GOOGLE_CLOUD_PROJECT: GCS_PROJECT,
    GOOGLE_APPLICATION_CREDENTIALS: undefined,
    DBBACKUP_CLOUD_ENDPOINT: undefined,
  };
}

function run(args: string[], kind: Kind = 'gs', opts: CliOptions = {}): Promise<CliResult> {
  return cli(args, { timeoutMs: 300_000, ...opts, env: { ...envFor(kind), ...opts.env } });
}

function query(kind: Kind, e: GcsEmulator = emu): string {
  return kind === 'gcs' ? `?endpoint=${encodeURIComponent(e.endpoint)}&project=${GCS_PROJECT}` : '';
}

function prefixUri(kind: Kind, prefix: string, bucket = BUCKET): string {
  return `${kind}://${bucket}/${prefix}/${query(kind)}`;
}

function objectUri(kind: Kind, prefix: string, key: string): string {
  return `${kind}://${BUCKET}/${prefix}/${key}${query(kind)}`;
}

async function names(prefix: string, e: GcsEmulator = emu, bucket = BUCKET): Promise<string[]> {
  const [files] = await e.client().bucket(bucket).getFiles({ prefix });
  return files.map((f) => f.name).sort();
}

/** SHA-256 of an object, streamed (the big backup is not read into memory). */
async function sha256Object(name: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of emu.client().bucket(BUCKET).file(name).createReadStream())
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

interface BackupJson {
  metadata: { file: string; sizeBytes: number; sha256: string };
}

async function cloudBackup(kind: Kind, args: string[], database: string, uri: string): Promise<string> {
  const r = await run([...args, 'backup', 'single', database, '--cloud', uri, '--json'], kind);
  expectExit(r, 0);
  return (JSON.parse(r.stdout) as BackupJson).metadata.file;
}

const sidecars = (prefix: string, key: string): string[] =>
  [key, `${key}.meta.json`, `${key}.sha256`].map((k) => `${prefix}/${k}`).sort();

beforeAll(async () => {
  emu = await startGcsEmulator();
  console.log(
    `GCS emulator ready in ${emu.startupMs} ms, RSS ${((await emu.memory()).rss / 1e6).toFixed(0)} MB`,
  );
  await createPgDatabase(pgSource);
  await loadPgFidelity(pgSource);
  pgBefore = await pgSnapshot(pgSource);
  await createMyDatabase(mySource);
  await loadMyFidelity(mySource);
  myBefore = await mySnapshot(mySource);
});

afterAll(async () => {
  for (const db of pgCreated) await dropPgDatabase(db);
  for (const db of myCreated) await dropMyDatabase(db);
  if (emu) {
    const m = await emu.memory();
    console.log(`GCS emulator peak RSS ${(m.peak / 1e6).toFixed(0)} MB`);
  }
  await emu?.stop();
});

describe.each<Kind>(['gs', 'gcs'])('PostgreSQL to %s:// and back', (kind) => {
  const prefix = `pg-${kind}`;

  it('backs up with sidecars and metadata, lists it valid, verifies it, restores it identically', async () => {
    const key = await cloudBackup(kind, pgArgs(), pgSource, prefixUri(kind, prefix));
    pgKeys.set(kind, key);
    expect(key).toMatch(new RegExp(`^${pgSource}_\\d{8}_\\d{6}\\.dump\\.zst$`));
    expect(await names(`${prefix}/`)).toEqual(sidecars(prefix, key));
    const [meta] = await emu.client().bucket(BUCKET).file(`${prefix}/${key}.meta.json`).download();
    const metadata = JSON.parse(meta.toString('utf8')) as { sha256: string };
    expect(await sha256Object(`${prefix}/${key}`)).toBe(metadata.sha256);
    const [md] = await emu.client().bucket(BUCKET).file(`${prefix}/${key}`).getMetadata();
    expect(md.metadata).toMatchObject({ 'dbbackup-database': pgSource, 'dbbackup-engine': 'postgres' });

    const list = await run(['list', 'backups', '--cloud', prefixUri(kind, prefix)], kind);
    expectExit(list, 0);
    expect(list.stdout).toContain(`Backups in ${kind}://${BUCKET}/${prefix}`);
    expect(list.stdout).toMatch(new RegExp(`^${key.replaceAll('.', '\\.')}\\s.*\\sunverified$`, 'm'));

    const verify = await run(['verify-backup', objectUri(kind, prefix, key)], kind);
    expectExit(verify, 0);
    expect(verify.stdout).toMatch(
      new RegExp(`^OK\\s+${kind}://${BUCKET}/${prefix}/${key.replaceAll('.', '\\.')}`, 'm'),
    );

    const target = uniqueName(`pg_${kind}_dst`);
    pgCreated.push(target);
    const restore = await run(
      [
        ...pgArgs(),
        'restore',
        'single',
        objectUri(kind, prefix, key),
        '--target',
        target,
        '--create',
        '--confirm',
      ],
      kind,
    );
    expectExit(restore, 0);
    expect(await pgSnapshot(target)).toEqual(pgBefore);
  });
});

describe('more backups in the bucket', () => {
  it('MariaDB to gs:// and back, snapshot-identical', async () => {
    const key = await cloudBackup('gs', myArgs(), mySource, prefixUri('gs', 'my'));
    expect(key).toMatch(/\.sql\.zst$/);
    expect(await names('my/')).toEqual(sidecars('my', key));
    const list = await run(['list', 'backups', '--cloud', prefixUri('gs', 'my'), '--json']);
    expectExit(list, 0);
    const entries = (JSON.parse(list.stdout) as { backups: Array<{ key: string; state: string }> }).backups;
    expect(entries.map((e) => [e.key, e.state])).toEqual([[key, 'unverified']]);
    const target = uniqueName('my_gcs_dst');
    myCreated.push(target);
    const restore = await run([
      ...myArgs(),
      'restore',
      'single',
      objectUri('gs', 'my', key),
      '--target',
      target,
      '--create',
      '--confirm',
    ]);
    expectExit(restore, 0);
    expect(await mySnapshot(target)).toEqual(myBefore);
  });

  it("verify-backup with a glob: 'gs://bucket/prefix/*' and '*.dump.zst'", async () => {
    const all = await run(['verify-backup', `gs://${BUCKET}/pg-gs/*`, `gs://${BUCKET}/pg-gcs/*.dump.zst`]);
    expectExit(all, 0);
    expect(all.stdout.match(/^OK\s/gm)).toHaveLength(2);
    expect(all.stdout).toContain('All 2 backups verified.');
    const none = await run(['verify-backup', `gs://${BUCKET}/pg-gs/*.sql.gz`]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('No backups match');
  });

  it('cleanup --keep-last 1 keeps the newest backup of the group and removes the older ones', async () => {
    const keys: string[] = [];
    for (let i = 0; i < 3; i++)
      keys.push(await cloudBackup('gs', pgArgs(), pgSource, prefixUri('gs', 'keep')));
    // A second group under the same prefix is not touched by the first group's policy.
    const other = await cloudBackup('gs', myArgs(), mySource, prefixUri('gs', 'keep'));
    expect(await names('keep/')).toHaveLength(12);
    const r = await run(['cleanup', prefixUri('gs', 'keep'), '--keep-last', '1']);
    expectExit(r, 0);
    const newest = keys[2] ?? '';
    expect(await names('keep/')).toEqual([...sidecars('keep', newest), ...sidecars('keep', other)].sort());
  });
});

/**
 * Wait until the CLI has written `bytes` more to its sockets (/proc/<pid>/io wchar): the upload is
 * well under way. The emulator shows nothing on disk until a request ends (it buffers the body).
 */
async function waitForUpload(bytes: number): Promise<number> {
  let pid = 0;
  let base = -1;
  await waitUntil(`the CLI to upload ${bytes} bytes`, 180_000, async () => {
    await new Promise((r) => setTimeout(r, 100));
    pid ||= await cliPid();
    const io = pid ? await readFile(`/proc/${pid}/io`, 'utf8').catch(() => '') : '';
    const written = Number(/^wchar:\s+(\d+)/m.exec(io)?.[1] ?? -1);
    if (written < 0) return false;
    if (base < 0) base = written;
    return written - base > bytes;
  });
  return pid;
}

describe('a 300+ MB backup', () => {
  const big = uniqueName('pg_gcsbig');
  pgCreated.push(big);

  beforeAll(async () => {
    await createPgDatabase(big);
    // ~300 bytes a row of hex text, generated server-side; --compression 0 keeps the dump this big.
    await pgExec(
      big,
      `CREATE TABLE big (id int, t text);
       INSERT INTO big SELECT g, repeat(md5(g::text), 9) FROM generate_series(1, 1100000) g;`,
    );
  }, 300_000);

  it('streams in one resumable request with bounded memory, and the object matches its SHA-256', async () => {
    const [{ bytes } = { bytes: '0' }] = await pgQuery<{ bytes: string }>(
      big,
      `SELECT pg_relation_size('big')::text AS bytes`,
    );
    expect(Number(bytes)).toBeGreaterThan(300 * 1024 * 1024);
    const pending = run(
      [
        ...pgArgs(),
        '--compression',
        '0',
        'backup',
        'single',
        big,
        '--cloud',
        prefixUri('gs', 'big'),
        '--json',
      ],
      'gs',
      {
        timeoutMs: 600_000,
      },
    );
    const peak = await peakRss(pending);
    const r = await pending;
    expectExit(r, 0);
    const meta = (JSON.parse(r.stdout) as BackupJson).metadata;
    expect(meta.sizeBytes).toBeGreaterThan(300 * 1024 * 1024);
    expect(await sha256Object(`big/${meta.file}`)).toBe(meta.sha256);
    // One streamed request: only stream buffers (a few MiB) are in flight, on top of Node + the GCS
    // SDK (~100-150 MB). 250 MB is below the 300+ MB object, so it cannot have been buffered whole.
    console.log(
      `peak RSS of the CLI for a ${meta.sizeBytes}-byte upload: ${(peak.bytes / 1e6).toFixed(0)} MB`,
    );
    expect(peak.samples).toBeGreaterThan(5);
    expect(peak.bytes).toBeLessThan(250 * 1000 * 1000);
    expectExit(await run(['cloud', 'delete', objectUri('gs', 'big', meta.file), '--confirm']), 0);
  }, 600_000);

  it('the dump killed mid-upload: exit 1 with the dump error, and nothing under the final name', async () => {
    const pending = run([
      ...pgArgs(),
      '--compression',
      '0',
      'backup',
      'single',
      big,
      '--cloud',
      prefixUri('gs', 'dumpfail'),
    ]);
    const pid = await waitForUpload(64 * 1024 * 1024);
    const [dump] = await childrenNamed(pid, 'pg_dump');
    expect(dump).toBeGreaterThan(0);
    // Uploading, and nothing visible yet but the run's claim on the name (src/backup/claim.ts): the
    // object appears only when the upload finalizes.
    expect((await names('dumpfail/')).filter((n) => !n.includes('.dbbackup-tmp-'))).toEqual([]);
    process.kill(dump ?? 0, 'SIGKILL');
    const r = await pending;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('pg_dump was killed by SIGKILL');
    expect(await names('dumpfail/')).toEqual([]);
  }, 300_000);

  it('the emulator killed mid-upload: non-zero exit naming the object, the cause and the endpoint', async () => {
    const crash = await startGcsEmulator();
    try {
      const uri = `gs://crash/p/`;
      const pending = run(
        [...pgArgs(), '--compression', '0', 'backup', 'single', big, '--cloud', uri],
        'gs',
        {
          env: envFor('gs', crash),
        },
      );
      await waitForUpload(64 * 1024 * 1024);
      expect((await names('p/', crash, 'crash')).filter((n) => !n.includes('.dbbackup-tmp-'))).toEqual([]);
      crash.kill();
      const r = await pending;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(
        /dbbackup: error: Could not upload gs:\/\/crash\/p\/pg_gcsbig_\S+\.dump: .*(ECONNREFUSED|ECONNRESET|socket hang up|EPIPE)/,
      );
      expect(r.stderr).toContain(`hint: Could not reach the GCS endpoint ${crash.endpoint}`);
      // The session URI is a credential for the upload: it must not be printed.
      expect(r.stderr).not.toContain('upload_id');
    } finally {
      await crash.stop();
    }
  }, 300_000);

  afterAll(async () => {
    await dropPgDatabase(big);
  });
});

describe('failures', () => {
  it('an unreachable endpoint: the error names the object, the cause and the endpoint', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const uri = `gcs://${BUCKET}/x/?endpoint=${encodeURIComponent(dead)}`;
    const r = await run([...pgArgs(), 'backup', 'single', pgSource, '--cloud', uri], 'gcs');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`dbbackup: error: Could not \\w+ gcs://${BUCKET}/x/.*ECONNREFUSED`));
    expect(r.stderr).toContain(`hint: Could not reach the GCS endpoint ${dead}`);
  });

  it('a valid service-account key in ?credentials= is used quietly (no SDK deprecation warnings)', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'dbb-gcs-key-'));
    const file = path.join(dir, 'sa.json');
    await writeFile(
      file,
      JSON.stringify({
        type: 'service_account',
        project_id: GCS_PROJECT,
        private_key_id: 'k1',
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        client_email: `backup@${GCS_PROJECT}.iam.gserviceaccount.com`,
      }),
      { mode: 0o600 },
    );
    try {
      const uri = `${prefixUri('gcs', 'p')}&credentials=${encodeURIComponent(file)}`;
      const r = await run(['cloud', 'list', uri], 'gcs');
      expectExit(r, 0);
      expect(r.stderr).not.toMatch(/deprecated/i);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('STORAGE_EMULATOR_HOST without http:// is a usage error, not a TLS failure', async () => {
    const r = await run(['list', 'backups', '--cloud', `gs://${BUCKET}/x/`], 'gs', {
      env: { STORAGE_EMULATOR_HOST: emu.endpoint.replace('http://', '') },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('has no scheme');
  });
});
