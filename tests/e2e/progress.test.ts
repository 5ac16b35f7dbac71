import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/cli.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { cli, expectExit, onlyBackup, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

const db = uniqueName('pg_progress');

beforeAll(async () => {
  await createPgDatabase(db);
  // ~110 MB of random text: a dump that lasts long enough (over a second) for the display to refresh.
  await pgExec(
    db,
    `CREATE TABLE t (id int, v text);
     INSERT INTO t SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 1500000) g;`,
  );
});

afterAll(async () => {
  await dropPgDatabase(db);
});

/** What `backup single` printed as its summary: the stored size, e.g. "12.3 MiB". */
function summarySize(stdout: string): string {
  const m = /Backup complete: .* \(([\d.]+ [KMG]?i?B), sha256 /.exec(stdout);
  if (!m?.[1]) throw new Error(`no summary line in:\n${stdout}`);
  return m[1];
}

const SIZE = String.raw`[\d.]+ (?:B|KiB|MiB|GiB)`;
const RUNNING = new RegExp(
  String.raw`^${db}: (?:\d+% )?(?:${SIZE}|\?) dumped, ${SIZE} stored, ${SIZE}/s, \S+ elapsed(?:, ETA \S+)?$`,
);
const FINAL = new RegExp(String.raw`^${db}: 100%, (${SIZE}) stored in \S+$`);

/** Runs the CLI with stdout and stderr on a pseudo-terminal (util-linux `script`), as a user at a shell sees it. */
function runOnTerminal(args: string[]): Promise<{ code: number; output: string }> {
  const quote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;
  const command = [process.execPath, path.join(repoRoot, 'bin/dbbackup.js'), ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, COLUMNS: '160', LINES: '40', TERM: 'xterm' },
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

describe('backup single progress', () => {
  it('is silent when stderr is not a terminal, unless asked', async () => {
    const dir = await tempDir();
    try {
      const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db]);
      expectExit(r, 0);
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain('Backup complete:');
    } finally {
      await removeDir(dir);
    }
  });

  it('--progress prints lines (bytes dumped and stored, rate, elapsed), the last one with the stored total', async () => {
    const dir = await tempDir();
    try {
      const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db, '--progress']);
      expectExit(r, 0);
      const lines = r.stderr.trim().split('\n');
      const last = lines.pop() ?? '';
      for (const line of lines) expect(line).toMatch(RUNNING);
      expect(FINAL.exec(last)?.[1], r.stderr).toBe(summarySize(r.stdout));
      expect(await onlyBackup(dir)).toMatch(/\.dump\.zst$/);
    } finally {
      await removeDir(dir);
    }
  });

  it('on a terminal: a bar with percentage against the size estimate, bytes, rate and ETA, then the summary', async () => {
    const dir = await tempDir();
    try {
      const r = await runOnTerminal([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db]);
      expect(r.code, r.output).toBe(0);
      // cli-progress redraws the line in place; each frame carries the label, percentage, bytes and ETA.
      const frames = [
        ...r.output.matchAll(
          new RegExp(
            String.raw`${db} \S+ (\d+)% \| (${SIZE}) dumped, (${SIZE}) stored \| ${SIZE}/s \| \S+ \| ETA `,
            'g',
          ),
        ),
      ];
      expect(frames.length, r.output).toBeGreaterThan(1);
      const percentages = frames.map((f) => Number(f[1]));
      // The estimate is the table data (pg_total_relation_size): part way through the dump, a real percentage shows.
      expect(Math.max(...percentages.slice(0, -1)), r.output).toBeGreaterThan(0);
      expect(Math.max(...percentages.slice(0, -1))).toBeLessThan(100);
      // The dump is smaller than the tables on disk, but a completed backup's bar ends at 100 %.
      expect(percentages.at(-1)).toBe(100);
      expect(r.output).toMatch(/Backup complete: .*\.dump\.zst/);
      expect(await onlyBackup(dir)).toMatch(/\.dump\.zst$/);
    } finally {
      await removeDir(dir);
    }
  });

  it('restore single --progress: the checksum and the restore as steps, each with its size and how it ended', async () => {
    const dir = await tempDir();
    const target = uniqueName('pg_progress_copy');
    try {
      expectExit(await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db]), 0);
      const file = await onlyBackup(dir);
      const r = await cli([
        ...pgArgs(),
        'restore',
        'single',
        file,
        '--target',
        target,
        '--create',
        '--confirm',
        '--progress',
        '--debug',
      ]);
      expectExit(r, 0);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('restore: '));
      const size = String.raw`[\d.]+ (?:B|KiB|MiB|GiB)`;
      expect(lines[0]).toMatch(new RegExp(`^restore: verifying the checksum: ${size}$`));
      expect(lines).toContainEqual(expect.stringMatching(/^restore: verifying the checksum: done in \S+$/));
      expect(lines).toContainEqual(
        expect.stringMatching(new RegExp(`^restore: restoring with pg_restore: ${size}$`)),
      );
      expect(lines.at(-1)).toMatch(/^restore: restoring with pg_restore: done in \S+$/);
      // With progress shown, pg_restore says what it is doing (--verbose: its phase shows beside the
      // bytes, see tests/unit/progress.test.ts); without, it is not asked to.
      expect(r.stderr).toMatch(/^debug: exec \S*pg_restore .*--verbose/m);
      // Without --progress and without a terminal: nothing of the kind.
      const quiet = await cli([
        ...pgArgs(),
        'restore',
        'single',
        file,
        '--target',
        target,
        '--clean',
        '--confirm',
        '--debug',
      ]);
      expectExit(quiet, 0);
      expect(quiet.stderr).not.toContain('restore: ');
      expect(quiet.stderr).toMatch(/^debug: exec \S*pg_restore /m);
      expect(quiet.stderr).not.toContain('--verbose');
    } finally {
      await removeDir(dir);
      await dropPgDatabase(target);
    }
  });
});
