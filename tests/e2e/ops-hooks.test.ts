import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { cli, expectExit, listDir, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/** --on-success / --on-failure: run without a shell, with the result in DBBACKUP_RESULT_* variables. */

const db = uniqueName('ops_hook');
let work: string;

beforeAll(async () => {
  await createPgDatabase(db);
  await pgExec(db, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);');
  work = await tempDir('dbb-hooks-');
});

afterAll(async () => {
  await dropPgDatabase(db);
  await removeDir(work);
});

describe('hooks receive the result', () => {
  it('backup single: --on-success and --on-failure get the outcome, database, backup and error in DBBACKUP_RESULT_*', async () => {
    const out = path.join(work, 'hook-env');
    const script = path.join(work, 'hook.cjs');
    await writeFile(
      script,
      `require('fs').writeFileSync(process.argv[2] + '.' + process.env.DBBACKUP_RESULT_OUTCOME, JSON.stringify(process.env));`,
    );
    const hook = `${process.execPath} ${script} ${out}`;
    const dir = path.join(work, 'backups');
    await mkdir(dir);
    const r = await cli([
      ...pgArgs(),
      '--backup-dir',
      dir,
      '--on-success',
      hook,
      '--on-failure',
      hook,
      'backup',
      'single',
      db,
    ]);
    expectExit(r, 0);
    const ok = JSON.parse(await readFile(`${out}.success`, 'utf8')) as Record<string, string>;
    const [data] = (await listDir(dir)).filter((f) => f.endsWith('.zst'));
    expect(ok).toMatchObject({
      DBBACKUP_RESULT_OUTCOME: 'success',
      DBBACKUP_RESULT_EXIT_CODE: '0',
      DBBACKUP_RESULT_COMMAND: 'backup single',
      DBBACKUP_RESULT_DATABASE: db,
      DBBACKUP_RESULT_BACKUP: data,
      DBBACKUP_RESULT_DESTINATION: path.join(dir, data ?? ''),
      DBBACKUP_RESULT_ERROR: '',
    });
    expect(Number(ok.DBBACKUP_RESULT_BYTES)).toBeGreaterThan(0);

    const bad = await cli([
      ...pgArgs(),
      '--on-success',
      hook,
      '--on-failure',
      hook,
      'backup',
      'single',
      `${db}_missing`,
    ]);
    expectExit(bad, 2);
    const failed = JSON.parse(await readFile(`${out}.failure`, 'utf8')) as Record<string, string>;
    expect(failed).toMatchObject({
      DBBACKUP_RESULT_OUTCOME: 'failure',
      DBBACKUP_RESULT_EXIT_CODE: '2',
      DBBACKUP_RESULT_DATABASE: `${db}_missing`,
    });
    expect(failed.DBBACKUP_RESULT_ERROR).toContain('does not exist');
    expect(failed.DBBACKUP_RESULT_HINT).toContain('dbbackup list');
  });
});
