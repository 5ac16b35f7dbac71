import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/cli.js';
import { waitFor } from '../harness/proc.js';
import { cli, expectExit, removeDir, tempDir, uniqueName } from '../e2e/util.js';
import { ENGINES } from '../e2e/drill-util.js';

/** A drill stopped by SIGTERM while it restores leaves no scratch database, and says so (issue 17). */

describe.each(ENGINES)('drill faults ($name)', (e) => {
  const db = uniqueName(`drillf_${e.name === 'postgres' ? 'pg' : 'my'}`);
  let work: string;

  beforeAll(async () => {
    // Big enough that the restore takes a while.
    await e.create(db, 300_000);
    work = await tempDir('dbb-drillf-');
    expectExit(
      await cli([...e.args(), '--backup-dir', work, 'backup', 'single', db], { timeoutMs: 300_000 }),
      0,
    );
  }, 300_000);
  afterAll(async () => {
    await e.drop(db);
    await removeDir(work);
  });

  it('drill: SIGTERM during the restore → exit 130, the scratch database dropped (verified), nothing left', async () => {
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, 'bin/dbbackup.js'), ...e.args(), '--backup-dir', work, 'drill', 'latest'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, PGHOST: undefined, DBBACKUP_LOCK_DIR: path.join(work, 'locks') },
      },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    const exited = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? -1)));
    let scratch = '';
    // Waits for a condition, not a time: under CI load the drill may take minutes to get there.
    await waitFor('the drill to create its scratch database', 240_000, async () => {
      scratch = /into (dbbackup_drill_\S+) on/.exec(out)?.[1] ?? '';
      return scratch !== '' && (await e.scratch()).includes(scratch);
    });
    child.kill('SIGTERM');
    const code = await exited;
    // What the drill printed goes with every failure: a flake in CI must say which step it hit.
    expect(code, out).toBe(130);
    expect(out, out).toContain('Interrupted: the drill was stopped');
    expect(out, out).toContain(`${scratch} dropped`);
    expect(await e.scratch(), out).not.toContain(scratch);
  }, 360_000);
});
