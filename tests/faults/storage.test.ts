/**
 * Object storage under faults (issue 21, issue 11): endpoints that never answer, interrupted
 * commands, servers that ignore conditional writes, uploads killed mid-flight. Cases are named
 * "<operation>: <fault> → <invariant>" for the fault matrix.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/cli.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { startStallServer, type StallMode } from '../harness/stall-server.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type Azurite } from '../harness/azurite.js';
import { DUMMY_CREDENTIALS, startS3Emulator, type S3Emulator } from '../harness/s3-emulator.js';
import { requestLimits, worstCaseMs } from '../../src/storage/transport.js';
import { CLEANUP_GRACE_MS } from '../../src/cli/signals.js';
import { cli, pgArgs, removeDir, tempDir, uniqueName } from '../e2e/util.js';
import { waitUntil } from '../e2e/proc-util.js';

type CloudKind = 's3' | 'azure' | 'gcs';
const KINDS: CloudKind[] = ['s3', 'azure', 'gcs'];

/** The CLI's URI for a prefix on a stalling endpoint, per backend kind (credentials are dummies). */
function stallUri(kind: CloudKind, endpoint: string): string {
  if (kind === 's3') return `s3://bucket/prefix/?endpoint=${encodeURIComponent(endpoint)}`;
  if (kind === 'azure')
    return `azure://container/prefix/?endpoint=${encodeURIComponent(`${endpoint}/${AZURITE_ACCOUNT}`)}&account=${AZURITE_ACCOUNT}&key=${encodeURIComponent(AZURITE_KEY)}`;
  return `gs://bucket/prefix/?endpoint=${encodeURIComponent(endpoint)}`;
}

const ENV: Record<string, string | undefined> = {
  AWS_ACCESS_KEY_ID: 'dbbackup-faults',
  AWS_SECRET_ACCESS_KEY: 'dbbackup-faults-secret',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_PROFILE: undefined,
  AWS_REGION: undefined,
  AZURE_STORAGE_CONNECTION_STRING: undefined,
  STORAGE_EMULATOR_HOST: undefined,
  GOOGLE_APPLICATION_CREDENTIALS: undefined,
  DBBACKUP_CLOUD_ENDPOINT: undefined,
  DBBACKUP_CLOUD_TIMEOUT: undefined,
};

/** --cloud-timeout for the stall cases: short, so the suite stays fast. */
const TIMEOUT_S = 2;
/**
 * What one request may take against a dead endpoint with that timeout (every attempt waits it out,
 * with the longest pauses), plus a generous allowance for starting Node and a loaded CI machine.
 */
const BOUND_MS = worstCaseMs(requestLimits(TIMEOUT_S)) + 20_000;

interface Spawned {
  pid: number;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  stderr(): string;
}

/** The CLI as a child process the test can signal. */
function spawnCli(args: string[], env: Record<string, string | undefined>): Spawned {
  const merged: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  }
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin/dbbackup.js'), ...args], {
    cwd: repoRoot,
    env: merged,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const killer = setTimeout(() => child.kill('SIGKILL'), 600_000);
  const done = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { pid: child.pid ?? 0, done, stderr: () => stderr };
}

describe('stalling endpoints', () => {
  const source = uniqueName('stall_src');
  let work: string;

  beforeAll(async () => {
    await createPgDatabase(source);
    await pgExec(
      source,
      'CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g;',
    );
    work = await tempDir('dbb-stall-');
  });
  afterAll(async () => {
    await dropPgDatabase(source);
    await removeDir(work);
  });

  describe.each(KINDS)('%s', (kind) => {
    const modes: Array<{ mode: StallMode; fault: string }> = [
      { mode: 'silent', fault: 'endpoint accepts, never answers' },
      { mode: 'headers', fault: 'endpoint stalls after the headers' },
    ];
    it.each(modes)(
      'cloud list: $fault → exit 1 within the timeout × attempts, the endpoint named',
      async ({ mode }) => {
        const server = await startStallServer(mode);
        try {
          const started = Date.now();
          const r = await cli(
            ['--cloud-timeout', String(TIMEOUT_S), 'cloud', 'list', stallUri(kind, server.endpoint)],
            {
              env: ENV,
              timeoutMs: BOUND_MS + 60_000,
            },
          );
          const elapsed = Date.now() - started;
          expect(r.code, r.stderr).toBe(1);
          expect(r.stderr).toContain(`no answer from ${server.endpoint}`);
          expect(r.stderr).toContain(`within ${TIMEOUT_S} s`);
          expect(r.stderr).toMatch(/--cloud-timeout/);
          // One line of error, one of hint: no stack, no SDK dump.
          expect(r.stderr.trim().split('\n')).toHaveLength(2);
          expect(elapsed).toBeLessThan(BOUND_MS);
          // It did try more than once (bounded retries), and the server saw each attempt.
          expect(server.requests()).toBeGreaterThanOrEqual(1);
        } finally {
          await server.stop();
        }
      },
      BOUND_MS + 90_000,
    );

    it(
      'backup single --cloud: endpoint that accepts and never answers → exit 1 within the bound, the endpoint named, nothing kept locally',
      async () => {
        const server = await startStallServer('silent');
        try {
          const started = Date.now();
          const r = await cli(
            [
              ...pgArgs(),
              '--cloud-timeout',
              String(TIMEOUT_S),
              'backup',
              'single',
              source,
              '--cloud',
              stallUri(kind, server.endpoint),
            ],
            { env: ENV, timeoutMs: BOUND_MS + 60_000, cwd: work },
          );
          expect(r.code, r.stderr).toBe(1);
          expect(r.stderr).toContain(`no answer from ${server.endpoint}`);
          expect(r.stderr).not.toMatch(/Backup complete/);
          expect(Date.now() - started).toBeLessThan(BOUND_MS + 10_000);
        } finally {
          await server.stop();
        }
      },
      BOUND_MS + 90_000,
    );

    it('backup single --cloud: one SIGTERM while the endpoint never answers → exit 130 within seconds, no second signal needed', async () => {
      const server = await startStallServer('silent');
      try {
        // A timeout far beyond the test: only the signal can end this command.
        const child = spawnCli(
          [
            ...pgArgs(),
            '--cloud-timeout',
            '600',
            'backup',
            'single',
            source,
            '--cloud',
            stallUri(kind, server.endpoint),
          ],
          ENV,
        );
        await waitUntil('the CLI to reach the endpoint', 60_000, async () => server.requests() > 0);
        const signalled = Date.now();
        process.kill(child.pid, 'SIGTERM');
        const r = await child.done;
        const elapsed = Date.now() - signalled;
        expect(r.code, r.stderr).toBe(130);
        expect(r.stderr).toContain('Received SIGTERM');
        expect(r.stderr).not.toMatch(/Backup complete/);
        // Cut at once, not after the timeout; the clean-up grace is the outer limit.
        expect(elapsed).toBeLessThan(CLEANUP_GRACE_MS);
      } finally {
        await server.stop();
      }
    }, 120_000);

    it('cloud list: SIGINT while the endpoint never answers → exit 130 within seconds', async () => {
      const server = await startStallServer('headers');
      try {
        const child = spawnCli(
          ['--cloud-timeout', '600', 'cloud', 'list', stallUri(kind, server.endpoint)],
          ENV,
        );
        await waitUntil('the CLI to reach the endpoint', 60_000, async () => server.requests() > 0);
        const signalled = Date.now();
        process.kill(child.pid, 'SIGINT');
        const r = await child.done;
        expect(r.code, r.stderr).toBe(130);
        expect(Date.now() - signalled).toBeLessThan(CLEANUP_GRACE_MS);
      } finally {
        await server.stop();
      }
    }, 120_000);
  });
});

/**
 * A backup killed with SIGKILL mid-upload (issue 21 #6, issue 11): the parts it sent stay with the
 * provider, billed, invisible to an object listing. `cloud list --all` must show them and
 * `cleanup --prune-incomplete` abort them. fauxqs cannot list multipart uploads (no
 * ListMultipartUploads), so dbbackup's own record of the upload is what finds them there.
 */
describe('uploads killed with SIGKILL', () => {
  const big = uniqueName('killed_upload');

  beforeAll(async () => {
    await createPgDatabase(big);
    // Random text that zstd cannot shrink much: about 50 MB stored, ten 5 MiB parts.
    await pgExec(
      big,
      'CREATE TABLE big AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 1500000) g',
    );
  }, 300_000);
  afterAll(() => dropPgDatabase(big), 120_000);

  interface Target {
    uri: string;
    env: Record<string, string | undefined>;
    /** Bytes in parts/blocks the server holds for an unfinished upload under the prefix (0: none). */
    pendingBytes(): Promise<number>;
    stop(): Promise<void>;
  }

  const targets: Record<'s3-fauxqs' | 'azure', () => Promise<Target>> = {
    's3-fauxqs': async () => {
      const emu: S3Emulator = await startS3Emulator();
      await emu.bucket('killed');
      const multipart = path.join(emu.dir, '_multipart');
      return {
        uri: `s3://killed/p/?endpoint=${encodeURIComponent(emu.endpoint)}`,
        env: {
          ...ENV,
          AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey,
        },
        async pendingBytes() {
          // What the server holds: fauxqs keeps open uploads' parts as files.
          const uploads = await readdir(multipart).catch(() => [] as string[]);
          if (!uploads.length) return 0;
          // The size dbbackup recorded is what the test waits for (a finished part).
          const page = await emu.client().send(new ListObjectsV2Command({ Bucket: 'killed', Prefix: 'p/' }));
          let bytes = 0;
          for (const o of page.Contents ?? []) {
            if (!o.Key?.includes('.dbbackup-upload-')) continue;
            const body = await emu.client().send(new GetObjectCommand({ Bucket: 'killed', Key: o.Key }));
            bytes +=
              (JSON.parse((await body.Body?.transformToString()) ?? '{}') as { bytes?: number }).bytes ?? 0;
          }
          return Math.max(bytes, 1);
        },
        stop: () => emu.stop(),
      };
    },
    azure: async () => {
      const emu: Azurite = await startAzurite();
      await emu.createContainer('killed');
      const container = emu.service.getContainerClient('killed');
      return {
        uri: `azure://killed/p/?endpoint=${encodeURIComponent(emu.endpoint)}&account=${emu.account}&key=${encodeURIComponent(emu.key)}`,
        env: ENV,
        async pendingBytes() {
          let bytes = 0;
          for await (const item of container.listBlobsFlat({ prefix: 'p/', includeUncommitedBlobs: true })) {
            const list = await container
              .getBlockBlobClient(item.name)
              .getBlockList('uncommitted')
              .catch(() => undefined);
            for (const b of list?.uncommittedBlocks ?? []) bytes += b.size;
          }
          return bytes;
        },
        stop: () => emu.stop(),
      };
    },
  };

  describe.each(Object.keys(targets) as Array<keyof typeof targets>)('%s', (kind) => {
    it('backup single --cloud: kill -9 mid-upload → cloud list --all shows the incomplete upload (age, size); cleanup --prune-incomplete aborts it; the parts are gone', async () => {
      const t = await targets[kind]();
      try {
        const child = spawnCli(
          [...pgArgs(), '--cloud-part-size', '5', 'backup', 'single', big, '--cloud', t.uri, '--no-progress'],
          t.env,
        );
        await waitUntil(
          'a finished part of the upload',
          240_000,
          async () => (await t.pendingBytes()) >= 5 * 1024 * 1024,
        );
        process.kill(child.pid, 'SIGKILL');
        await child.done;
        const held = await t.pendingBytes();
        expect(held).toBeGreaterThan(0);

        const listed = await cli(['cloud', 'list', t.uri, '--all'], { env: t.env, timeoutMs: 120_000 });
        expect(listed.code, listed.stderr).toBe(0);
        const m = /^incomplete upload {2}(\S+\.dump\.zst) {2}started (.+) ago, ([\d.]+) (B|KiB|MiB)$/m.exec(
          listed.stdout,
        );
        expect(m, listed.stdout).not.toBeNull();
        expect(Number(m?.[3])).toBeGreaterThan(0);

        const pruned = await cli(
          ['cleanup', t.uri, '--prune-incomplete', '--grace', '0', '--keep-last', '100'],
          {
            env: t.env,
            timeoutMs: 120_000,
          },
        );
        expect(pruned.code, pruned.stderr + pruned.stdout).toBe(0);
        expect(pruned.stdout).toContain(`aborted  incomplete upload ${m?.[1]}`);
        expect(await t.pendingBytes()).toBe(0);
        const after = await cli(['cloud', 'list', t.uri, '--all'], { env: t.env, timeoutMs: 120_000 });
        expect(after.code, after.stderr).toBe(0);
        expect(after.stdout).not.toMatch(/incomplete upload/);
      } finally {
        await t.stop();
      }
    }, 600_000);
  });
});

describe('URIs that are not URIs', () => {
  it('backup single --cloud s3:/bucket/x (one slash): a malformed URI → exit 2 with a hint, nothing written under ./s3:', async () => {
    const cwd = await tempDir('dbb-oneslash-');
    try {
      for (const uri of ['s3:/bucket/x', 'gs:bucket/x', 'sftp://host/x']) {
        const r = await cli([...pgArgs(), 'backup', 'single', 'postgres', '--cloud', uri], {
          env: ENV,
          cwd,
          timeoutMs: 120_000,
        });
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toMatch(/(Malformed storage URI|Unknown storage scheme)/);
        expect(r.stderr).toMatch(/^hint: /m);
      }
      const r = await cli([...pgArgs(), '--backup-dir', 's3:/bucket/x', 'backup', 'single', 'postgres'], {
        env: ENV,
        cwd,
        timeoutMs: 120_000,
      });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('Write s3://bucket/x');
      expect(await readdir(cwd)).toEqual([]);
    } finally {
      await removeDir(cwd);
    }
  }, 300_000);
});
