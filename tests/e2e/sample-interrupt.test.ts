import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/cli.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { listDir, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/**
 * A sample is stored through the shared commit protocol: stopped while its rows stream into the
 * backup directory, nothing of it stays there (no data, no sidecar, no claim), and it says so.
 */
const source = uniqueName('sample_int');

async function waitUntil(
  what: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
  ended: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    const output = ended();
    if (output !== undefined) throw new Error(`the command ended before ${what}:\n${output}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}:\n${ended() ?? ''}`);
}

describe('backup sample: interrupted', () => {
  beforeAll(async () => {
    await createPgDatabase(source);
    await pgExec(
      source,
      `CREATE TABLE big (id int PRIMARY KEY, payload text NOT NULL);
       INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 1000000) g;`,
    );
  }, 120_000);
  afterAll(async () => {
    await dropPgDatabase(source);
  });

  it.each(['none', 'zstd'])(
    'SIGINT while the sampled rows stream into storage (compression %s) → exit 130, "nothing was kept", the directory empty',
    async (algo) => {
      const dir = await tempDir();
      try {
        const child = spawn(
          process.execPath,
          [
            path.join(repoRoot, 'bin/dbbackup.js'),
            ...pgArgs(),
            '--backup-dir',
            dir,
            '--compression-algo',
            algo,
            'backup',
            'sample',
            source,
            '--sample-ratio',
            '2',
          ],
          {
            stdio: ['ignore', 'pipe', 'pipe'],
            env: { ...process.env, PGHOST: undefined, PGPORT: undefined },
          },
        );
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
        const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
        let ended = false;
        void exited.then(() => (ended = true));
        const probe = async (): Promise<boolean> => {
          const names = await listDir(dir);
          for (const n of names.filter((x) => x.startsWith('.dbbackup-tmp-') && !x.endsWith('.claim'))) {
            if (((await stat(path.join(dir, n)).catch(() => undefined))?.size ?? 0) > 64 * 1024) return true;
          }
          return false;
        };
        await waitUntil('the sample to be streaming into a temporary file', 60_000, probe, () =>
          ended ? stderr : undefined,
        );
        child.kill('SIGINT');
        expect(await exited, stderr).toBe(130);
        expect(stderr).toMatch(/Interrupted; nothing was kept/);
        expect(await listDir(dir)).toEqual([]);
      } finally {
        await removeDir(dir);
      }
    },
    120_000,
  );
});
