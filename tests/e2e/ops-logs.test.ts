import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDatabase, dropPgDatabase, pgExec } from '../harness/pg.js';
import { startWebhookServer, type WebhookServer } from '../harness/webhook-server.js';
import { cli, expectExit, pgArgs, removeDir, tempDir, uniqueName } from './util.js';

/** --log-format json, --log-file, -q/-v, and secrets kept out of every log, record and message. */

interface Record_ {
  time: string;
  level: string;
  command?: string;
  operationId?: string;
  database?: string;
  event: string;
  message: string;
  [k: string]: unknown;
}

const db = uniqueName('ops_logs');
let work: string;
let hooks: WebhookServer;

beforeAll(async () => {
  await createPgDatabase(db);
  await pgExec(db, 'CREATE TABLE t (id int); INSERT INTO t VALUES (1);');
  work = await tempDir('dbb-logs-');
  hooks = await startWebhookServer();
});

afterAll(async () => {
  await hooks.close();
  await dropPgDatabase(db);
  await removeDir(work);
});

function jsonLines(text: string): Record_[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record_);
}

describe('structured logs', () => {
  it('--log-format json: every stderr line is a JSON record; start and finish share the operation id', async () => {
    const logFile = path.join(work, 'log', 'dbbackup.jsonl');
    const r = await cli([
      ...pgArgs(),
      '--log-format',
      'json',
      '--log-file',
      logFile,
      '--backup-dir',
      work,
      'backup',
      'single',
      db,
      '--keep-last',
      '5',
    ]);
    expectExit(r, 0);
    const records = jsonLines(r.stderr);
    const start = records.find((x) => x.event === 'start');
    const finish = records.find((x) => x.event === 'finish');
    expect(start).toMatchObject({ level: 'info', command: 'backup single', database: db });
    expect(finish).toMatchObject({
      level: 'info',
      command: 'backup single',
      database: db,
      operationId: start?.operationId,
      outcome: 'success',
      exitCode: 0,
    });
    expect(finish?.bytes).toEqual(expect.any(Number));
    expect(String(finish?.backup)).toMatch(new RegExp(`^${db}_\\d{8}_\\d{6}\\.dump\\.zst$`));
    for (const x of records) expect(Number.isNaN(Date.parse(x.time))).toBe(false);
    // The log file holds the same records.
    const inFile = jsonLines(await readFile(logFile, 'utf8'));
    expect(inFile.map((x) => x.event)).toEqual(records.map((x) => x.event));
    // Results stay on stdout, for people.
    expect(r.stdout).toContain('Backup complete:');
  });

  it('a failure is a JSON error record with message, hint and exit code, then the finish record', async () => {
    const r = await cli([...pgArgs(), '--log-format', 'json', 'backup', 'single', `${db}_missing`]);
    expect(r.code).not.toBe(0);
    const records = jsonLines(r.stderr);
    const error = records.find((x) => x.event === 'error');
    expect(error).toMatchObject({ level: 'error', exitCode: r.code, database: `${db}_missing` });
    expect(error?.message).toContain('does not exist');
    expect(error?.hint).toEqual(expect.any(String));
    expect(records.find((x) => x.event === 'finish')).toMatchObject({ outcome: 'failure', exitCode: r.code });
  });

  it('a usage error the parser finds (unknown option, missing value) is a JSON error record too, exit 2', async () => {
    for (const args of [
      ['backup', 'single', '--bogus'],
      ['backup', 'single', db, '--keep-last'],
    ]) {
      const r = await cli(['--log-format', 'json', ...args]);
      expect(r.code).toBe(2);
      const records = r.stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(records).toHaveLength(1);
      expect(records[0]).toMatchObject({ level: 'error', event: 'usage', exitCode: 2 });
      expect(String(records[0]?.message)).toMatch(/unknown option '--bogus'|argument missing/);
    }
  });

  it('text --log-file lines carry the command, operation and fields; -v shows the configuration sources', async () => {
    const logFile = path.join(work, 'text.log');
    const r = await cli([
      ...pgArgs(),
      '-v',
      '--log-file',
      logFile,
      '--backup-dir',
      work,
      'backup',
      'single',
      db,
    ]);
    expectExit(r, 0);
    expect(r.stderr).toMatch(/setting: connection\.host from flag --host/);
    const text = await readFile(logFile, 'utf8');
    expect(text).toMatch(
      new RegExp(
        `INFO  \\[backup single [0-9a-f]{8}\\] finish: backup single: success database=${db} .*outcome=success`,
      ),
    );
  });

  it('secrets never reach stderr, the log file, the audit record or a webhook warning', async () => {
    const logFile = path.join(work, 'secret.jsonl');
    const audit = path.join(work, 'secret-audit.jsonl');
    const password = 'hunter2-Secret-pw';
    const token = 'TOKEN-abc123-secret';
    const r = await cli([
      ...pgArgs(),
      '--password',
      password,
      '--log-format',
      'json',
      '--log-file',
      logFile,
      '--audit-log',
      audit,
      '--notify',
      hooks.url(`/status/500/${token}`),
      '--notify-timeout',
      '3',
      'backup',
      'single',
      `${db}_nope_${password}`,
    ]);
    expect(r.code).not.toBe(0);
    const everything = [
      r.stdout,
      r.stderr,
      await readFile(logFile, 'utf8'),
      await readFile(audit, 'utf8'),
    ].join('\n');
    expect(everything).toContain('****');
    expect(everything).not.toContain(password);
    expect(everything).not.toContain(token);
    expect(r.stderr).toContain(
      `notification to http://127.0.0.1:${new URL(hooks.url('/')).port}/… (generic) failed`,
    );
  });

  it('-q prints nothing on success; a failure still says what went wrong', async () => {
    const ok = await cli([...pgArgs(), '-q', '--backup-dir', work, 'backup', 'single', db]);
    expectExit(ok, 0);
    expect(ok.stdout).toBe('');
    expect(ok.stderr).toBe('');
    const bad = await cli([...pgArgs(), '-q', 'backup', 'single', `${db}_missing`]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('dbbackup: error:');
  });
});
