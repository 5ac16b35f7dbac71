import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliResult } from '../harness/cli.js';
import { s3Store, type ObjectStore } from '../harness/object-store.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { freePort } from '../harness/proc.js';
import { S3RVER_CREDENTIALS, startS3rver, type S3rver } from '../harness/s3rver.js';
import { cli, expectExit, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * Wrong credentials, end to end. S3: s3rver, the one npm S3 emulator that checks the access key id
 * (fauxqs accepts anything); it does not check V4 signatures, so a wrong secret cannot be tested.
 * GCS: the emulator ignores credentials altogether, so what is tested is the CLI's own check of a
 * ?credentials= file before any request, against an endpoint where nothing listens (a CLI that
 * skipped the check would fail there with a different, network error).
 */
const BUCKET = 'dbb-creds';
const db = uniqueName('pg_creds');
let s3: S3rver;
let store: ObjectStore;
let scratch: string;

/** Unusual on purpose: no output may ever contain it. */
const WRONG_SECRET = 'wrong-Secret-9f3b2c1d/never+printed';
const WRONG_KEY = 'AKIADBBACKUPWRONGKEY';

/** Only these credentials: nothing from the caller's AWS configuration may leak in. */
function awsEnv(accessKeyId: string, secretAccessKey: string): Record<string, string | undefined> {
  return {
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secretAccessKey,
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    AWS_REGION: undefined,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL: undefined,
    AWS_ENDPOINT_URL_S3: undefined,
    DBBACKUP_CLOUD_ENDPOINT: undefined,
    DBBACKUP_CLOUD_ACCESS_KEY: undefined,
    DBBACKUP_CLOUD_SECRET_KEY: undefined,
    DBBACKUP_S3_CHECKSUMS: undefined,
  };
}

const uri = (prefix: string): string =>
  `minio://${BUCKET}/${prefix}/?endpoint=${encodeURIComponent(s3.endpoint)}`;

/** The error lines of a failed command: exactly one `dbbackup: error:` line and one `hint:` line. */
function oneError(r: CliResult): { error: string; hint: string } {
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('dbbackup: error:'));
  const hints = r.stderr.split('\n').filter((l) => l.startsWith('hint:'));
  expect(errors, r.stderr).toHaveLength(1);
  expect(hints, r.stderr).toHaveLength(1);
  // No stack trace, no SDK dump of the request.
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toContain('$metadata');
  return { error: errors[0] ?? '', hint: hints[0] ?? '' };
}

beforeAll(async () => {
  s3 = await startS3rver();
  await s3.bucket(BUCKET);
  store = s3Store(s3.client(), BUCKET);
  await createPgDatabase(db);
  await pgExec(
    db,
    `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g;`,
  );
  scratch = await tempDir('dbb-creds-');
});

afterAll(async () => {
  await dropPgDatabase(db);
  await s3?.stop();
  if (scratch) await removeDir(scratch);
});

describe('S3 (s3rver): the access key is checked', () => {
  it('with the right access key the same backup works (the emulator and the URI are fine)', async () => {
    const r = await cli([...pgArgs(), 'backup', 'single', db, '--cloud', uri('ok'), '--json'], {
      env: awsEnv(S3RVER_CREDENTIALS.accessKeyId, S3RVER_CREDENTIALS.secretAccessKey),
    });
    expectExit(r, 0);
    const meta = (JSON.parse(r.stdout) as { metadata: { file: string; sha256: string } }).metadata;
    const key = meta.file;
    expect(await store.keys('ok/')).toEqual([`ok/${key}`, `ok/${key}.meta.json`, `ok/${key}.sha256`]);
    expect(
      createHash('sha256')
        .update(await store.read(`ok/${key}`))
        .digest('hex'),
    ).toBe(meta.sha256);
  });

  it('a wrong access key (environment): exit 1, one error saying access denied, the credentials hint, nothing stored, no secret shown', async () => {
    const r = await cli([...pgArgs(), 'backup', 'single', db, '--cloud', uri('wrong-env')], {
      env: awsEnv(WRONG_KEY, WRONG_SECRET),
    });
    expect(r.code).toBe(1);
    const { error, hint } = oneError(r);
    // The first request is a HEAD (is the name free?), whose 403 has no body to name the cause.
    expect(error).toMatch(
      new RegExp(
        `^dbbackup: error: Could not stat minio://${BUCKET}/wrong-env/${db}_\\d{8}_\\d{6}\\.dump\\.zst: access denied \\(HTTP 403\\)$`,
      ),
    );
    expect(hint).toMatch(/^hint: Check the credentials: AWS_ACCESS_KEY_ID \/ AWS_SECRET_ACCESS_KEY/);
    expect(r.stdout + r.stderr).not.toContain(WRONG_SECRET);
    expect(r.stdout).not.toContain('Backup complete');
    expect(await store.keys('wrong-env/')).toEqual([]);
  });

  it('a wrong access key (--cloud-access-key/--cloud-secret-key): the same, and the flag secret is not shown', async () => {
    const r = await cli(
      [
        ...pgArgs(),
        '--cloud-access-key',
        WRONG_KEY,
        '--cloud-secret-key',
        WRONG_SECRET,
        'backup',
        'single',
        db,
        '--cloud',
        uri('wrong-flags'),
      ],
      // The environment's own (valid) credentials must not win over the flags.
      { env: awsEnv(S3RVER_CREDENTIALS.accessKeyId, S3RVER_CREDENTIALS.secretAccessKey) },
    );
    expect(r.code).toBe(1);
    const { error, hint } = oneError(r);
    expect(error).toContain('access denied (HTTP 403)');
    expect(hint).toMatch(/^hint: Check the credentials/);
    expect(r.stdout + r.stderr).not.toContain(WRONG_SECRET);
    expect(await store.keys('wrong-flags/')).toEqual([]);
  });

  it('cleanup and list with a wrong access key fail the same way and delete nothing', async () => {
    const before = await store.keys('ok/');
    expect(before).toHaveLength(3);
    for (const args of [
      [
        'cleanup',
        uri('ok'),
        '--retention-days',
        '0',
        '--min-backups',
        '0',
        '--prune-incomplete',
        '--grace',
        '0',
      ],
      ['list', 'backups', '--cloud', uri('ok')],
    ]) {
      const r = await cli(args, { env: awsEnv(WRONG_KEY, WRONG_SECRET) });
      expect(r.code, args.join(' ')).toBe(1);
      const { error, hint } = oneError(r);
      expect(error).toContain('InvalidAccessKeyId');
      expect(hint).toMatch(/^hint: Check the credentials/);
      expect(r.stdout + r.stderr).not.toContain(WRONG_SECRET);
    }
    expect(await store.keys('ok/')).toEqual(before);
  });
});

describe('GCS: a bad ?credentials= file is reported before any request', () => {
  let dead = '';
  beforeAll(async () => {
    dead = encodeURIComponent(`http://127.0.0.1:${await freePort()}`);
  });

  /** `cloud list` on an endpoint where nothing listens, with only this credentials file. */
  function listWith(file: string): Promise<CliResult> {
    return cli(
      ['cloud', 'list', `gcs://bucket/p/?endpoint=${dead}&credentials=${encodeURIComponent(file)}`],
      {
        env: { GOOGLE_APPLICATION_CREDENTIALS: undefined, STORAGE_EMULATOR_HOST: undefined },
      },
    );
  }

  async function credentialsFile(name: string, content: string): Promise<string> {
    const file = path.join(scratch, name);
    await writeFile(file, content, { mode: 0o600 });
    return file;
  }

  it('a missing file: exit 2, one line naming it, with the hint', async () => {
    const r = await listWith('/nonexistent/dbbackup-sa.json');
    expect(r.code).toBe(2);
    const { error, hint } = oneError(r);
    expect(error).toBe('dbbackup: error: GCS credentials file not found: /nonexistent/dbbackup-sa.json');
    expect(hint).toMatch(/^hint: Give the path of a service-account JSON key in \?credentials=/);
  });

  it('a file that is not JSON: exit 2, named, and its content is not quoted', async () => {
    const secretish = 'PRIVATE-not-json-content-7731';
    const file = await credentialsFile('broken.json', `{ ${secretish}`);
    const r = await listWith(file);
    expect(r.code).toBe(2);
    const { error, hint } = oneError(r);
    expect(error).toBe(`dbbackup: error: The GCS credentials file ${file} is not valid JSON`);
    expect(hint).toMatch(/^hint: Give the path of a service-account JSON key/);
    expect(r.stdout + r.stderr).not.toContain(secretish);
  });

  it('JSON that is not a credentials file: exit 2 with the hint', async () => {
    const file = await credentialsFile('other.json', '{"hello": "world"}');
    const r = await listWith(file);
    expect(r.code).toBe(2);
    expect(oneError(r).error).toBe(
      `dbbackup: error: The GCS credentials file ${file} is not a credentials file (it has no "type" field)`,
    );
  });

  it('a service-account key whose private key is damaged: exit 2, naming the account, the key never printed', async () => {
    const damaged = '-----BEGIN PRIVATE KEY-----\nMIIEdGFtYWdlZA==\n-----END PRIVATE KEY-----\n';
    const file = await credentialsFile(
      'damaged.json',
      JSON.stringify({
        type: 'service_account',
        project_id: 'demo',
        private_key_id: '0123',
        private_key: damaged,
        client_email: 'backup@demo.iam.gserviceaccount.com',
      }),
    );
    const r = await listWith(file);
    expect(r.code).toBe(2);
    const { error, hint } = oneError(r);
    expect(error).toBe(
      `dbbackup: error: The private key in the service-account key ${file} cannot be read (damaged or edited file)`,
    );
    expect(hint).toContain('Download a new key for backup@demo.iam.gserviceaccount.com');
    expect(r.stdout + r.stderr).not.toContain('MIIEdGFtYWdlZA');
  });
});
