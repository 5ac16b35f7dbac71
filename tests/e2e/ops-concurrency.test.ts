import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/cli.js';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { parseTextfile, valueOf } from '../harness/prom.js';
import { cli, expectExit, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/** Runs that overlap (cron, a person, a drill) share one audit log and one metrics file safely. */

const dbs = [uniqueName('ops_c1'), uniqueName('ops_c2'), uniqueName('ops_c3')];
let work: string;

beforeAll(async () => {
  for (const db of dbs) {
    await createPgDatabase(db);
    await pgExec(db, 'CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 50);');
  }
  work = await tempDir('dbb-conc-');
});

afterAll(async () => {
  for (const db of dbs) await dropPgDatabase(db);
  await removeDir(work);
});

/** `node -e script` with the built modules importable; resolves with its exit code. */
function node(script: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: repoRoot,
      stdio: 'inherit',
    });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
}

describe('concurrent runs', () => {
  it('backups of several databases at once (one fails): one audit record each, one metrics file with every series', async () => {
    const audit = path.join(work, 'runs', 'audit.jsonl');
    const metrics = path.join(work, 'runs', 'dbbackup.prom');
    const common = [...pgArgs(), '--audit-log', audit, '--metrics-file', metrics, '--backup-dir', work];
    const runs = await Promise.all([
      ...dbs.map((db) => cli([...common, 'backup', 'single', db], { timeoutMs: 300_000 })),
      cli([...common, 'backup', 'single', `${dbs[0]}_missing`]),
      cli([...common, 'backup', 'cluster', '--include-database', dbs[1] ?? ''], { timeoutMs: 300_000 }),
    ]);
    runs.forEach((r, i) => {
      if (i !== 3) expectExit(r, 0);
    });
    expect(runs[3]?.code).not.toBe(0);

    const lines = (await readFile(audit, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(5);
    const records = lines.map(
      (l) => JSON.parse(l) as { id: string; database: string; outcome: string; command: string },
    );
    expect(new Set(records.map((r) => r.id)).size).toBe(5);
    expect(records.filter((r) => r.outcome === 'failure').map((r) => r.database)).toEqual([
      `${dbs[0]}_missing`,
    ]);

    const series = parseTextfile(await readFile(metrics, 'utf8'));
    for (const db of dbs)
      expect(valueOf(series, 'dbbackup_last_status', { kind: 'backup_single', database: db })).toBe(1);
    expect(
      valueOf(series, 'dbbackup_last_status', { kind: 'backup_single', database: `${dbs[0]}_missing` }),
    ).toBe(0);
    expect(valueOf(series, 'dbbackup_last_status', { kind: 'backup_cluster', database: '*' })).toBe(1);
  });

  it('processes appending large records at once never interleave them', async () => {
    const audit = path.join(work, 'stress', 'audit.jsonl');
    const writers = 6;
    const each = 150;
    const script = (w: number): string => `
      import { appendAudit } from './dist/ops/audit.js';
      for (let i = 0; i < ${each}; i++) {
        appendAudit(${JSON.stringify(audit)}, {
          v: 1, id: 'w${w}-' + i, time: new Date().toISOString(), started: new Date().toISOString(),
          durationSeconds: 1, command: 'backup single', kind: 'backup_single', outcome: 'success', exitCode: 0,
          dryRun: false, user: 'u', host: 'h', pid: process.pid, version: 't',
          error: '${String.fromCharCode(97 + w)}'.repeat(3500),
        });
      }`;
    const codes = await Promise.all(Array.from({ length: writers }, (_, w) => node(script(w))));
    expect(codes).toEqual(Array(writers).fill(0));
    const lines = (await readFile(audit, 'utf8')).split('\n').filter(Boolean);
    expect(lines).toHaveLength(writers * each);
    const ids = new Set<string>();
    for (const line of lines) {
      const r = JSON.parse(line) as { id: string; error: string };
      // A record's text is all one writer's letter: nothing of another record inside it.
      expect(new Set(r.error.replace('…', '')).size).toBe(1);
      ids.add(r.id);
    }
    expect(ids.size).toBe(writers * each);
  });

  it('processes updating one metrics file at once keep every database’s series', async () => {
    const file = path.join(work, 'stress', 'dbbackup.prom');
    const writers = 6;
    const script = (w: number): string => `
      import { updateTextfile } from './dist/ops/metrics.js';
      for (let i = 0; i < 15; i++)
        await updateTextfile(${JSON.stringify(file)}, [
          { name: 'dbbackup_last_status', help: 'h', labels: { kind: 'backup_single', database: 'db${w}', server: 's' }, value: i },
        ]);`;
    const codes = await Promise.all(Array.from({ length: writers }, (_, w) => node(script(w))));
    expect(codes).toEqual(Array(writers).fill(0));
    const series = parseTextfile(await readFile(file, 'utf8'));
    for (let w = 0; w < writers; w++)
      expect(valueOf(series, 'dbbackup_last_status', { database: `db${w}` })).toBe(14);
  });
});
