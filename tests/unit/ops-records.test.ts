import { appendFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendAudit, auditLine, MAX_RECORD_BYTES, readHistory } from '../../src/ops/audit.js';
import { acquireLock, LockBusyError } from '../../src/ops/lock.js';
import {
  mergeSamples,
  operationSamples,
  parseTextfile as readOwn,
  renderTextfile,
  updateTextfile,
} from '../../src/ops/metrics.js';
import { parseTextfile, valueOf } from '../harness/prom.js';
import { tempDir } from './helpers.js';
import { record } from './ops-fixtures.js';

describe('audit log', () => {
  it('appends one line per record (0600, directory 0700) and reads them back newest first', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = path.join(dir, 'state', 'dbbackup', 'audit.jsonl');
      for (let i = 0; i < 5; i++)
        appendAudit(file, record({ id: `r${i}`, outcome: i % 2 ? 'failure' : 'success', exitCode: i % 2 }));
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
      expect((await readHistory(file)).records.map((r) => r.id)).toEqual(['r4', 'r3', 'r2', 'r1', 'r0']);
      expect((await readHistory(file, { limit: 2 })).records.map((r) => r.id)).toEqual(['r4', 'r3']);
      expect((await readHistory(file, { failed: true })).records.map((r) => r.id)).toEqual(['r3', 'r1']);
    } finally {
      await cleanup();
    }
  });

  it('reads across chunk boundaries and skips a torn or foreign line, counting it', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = path.join(dir, 'audit.jsonl');
      // ~3000 records of ~600 bytes: many 64 KiB chunks, lines cut anywhere; multi-byte text too.
      const lines = Array.from({ length: 3000 }, (_, i) =>
        auditLine(record({ id: `r${i}`, database: `datenbank-ä-${i}`, hint: 'ü'.repeat(200) })),
      );
      await writeFile(file, lines.join(''));
      await appendFile(file, 'not json\n{"v":1,"id":"half');
      const all = await readHistory(file);
      expect(all.skipped).toBe(2);
      expect(all.records).toHaveLength(3000);
      expect(all.records[0]?.id).toBe('r2999');
      expect(all.records[2999]).toMatchObject({ id: 'r0', database: 'datenbank-ä-0' });
    } finally {
      await cleanup();
    }
  });

  it('a record is always under PIPE_BUF: long texts are cut, identity fields never', () => {
    const big = record({
      error: 'x'.repeat(20_000),
      hint: 'y'.repeat(20_000),
      details: { stderr: 'z'.repeat(20_000) },
    });
    const line = auditLine(big);
    expect(Buffer.byteLength(line)).toBeLessThanOrEqual(MAX_RECORD_BYTES);
    expect(JSON.parse(line)).toMatchObject({
      id: 'id-1',
      outcome: 'success',
      database: 'shop',
      command: 'backup single',
    });
  });

  it('a missing audit log is an empty history', async () => {
    expect(await readHistory(path.join(os.tmpdir(), 'no-such-dbbackup-audit.jsonl'))).toEqual({
      records: [],
      skipped: 0,
    });
  });
});

describe('metrics textfile', () => {
  it('after a success: attempt, success, status 1, duration and bytes per kind, database and server', () => {
    const text = renderTextfile(mergeSamples(new Map(), operationSamples(record())));
    const series = parseTextfile(text);
    const labels = { kind: 'backup_single', database: 'shop', server: 'db1:5432' };
    expect(valueOf(series, 'dbbackup_last_success_timestamp_seconds', labels)).toBe(
      Date.parse('2026-01-02T03:04:05Z') / 1000,
    );
    expect(valueOf(series, 'dbbackup_last_attempt_timestamp_seconds', labels)).toBe(
      Date.parse('2026-01-02T03:04:05Z') / 1000,
    );
    expect(valueOf(series, 'dbbackup_last_status', labels)).toBe(1);
    expect(valueOf(series, 'dbbackup_last_duration_seconds', labels)).toBe(5);
    expect(valueOf(series, 'dbbackup_last_success_bytes', labels)).toBe(1234);
  });

  it('a failure updates the attempt and status but keeps the last success', () => {
    const first = mergeSamples(new Map(), operationSamples(record()));
    const failed = record({
      time: '2026-01-03T03:04:05.000Z',
      outcome: 'failure',
      exitCode: 1,
      bytes: undefined,
    });
    const series = parseTextfile(
      renderTextfile(mergeSamples(readOwn(renderTextfile(first)), operationSamples(failed))),
    );
    const labels = { kind: 'backup_single', database: 'shop' };
    expect(valueOf(series, 'dbbackup_last_status', labels)).toBe(0);
    expect(valueOf(series, 'dbbackup_last_exit_code', labels)).toBe(1);
    expect(valueOf(series, 'dbbackup_last_attempt_timestamp_seconds', labels)).toBe(
      Date.parse('2026-01-03T03:04:05Z') / 1000,
    );
    expect(valueOf(series, 'dbbackup_last_success_timestamp_seconds', labels)).toBe(
      Date.parse('2026-01-02T03:04:05Z') / 1000,
    );
  });

  it('label values with quotes, backslashes and newlines survive a round trip', () => {
    const name = 'we"ird\\db\nname';
    const text = renderTextfile(mergeSamples(new Map(), operationSamples(record({ database: name }))));
    const series = parseTextfile(text);
    expect(valueOf(series, 'dbbackup_last_status', { database: name })).toBe(1);
    // And our own reader (used to merge) gets the same back.
    const again = renderTextfile(readOwn(text));
    expect(again).toBe(text);
  });

  it('updates merge: several databases and kinds share one file, each run replaces only its own series', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = path.join(dir, 'textfile', 'dbbackup.prom');
      await updateTextfile(file, operationSamples(record({ database: 'a' })));
      await updateTextfile(
        file,
        operationSamples(record({ database: 'b', outcome: 'failure', exitCode: 1 })),
      );
      await updateTextfile(
        file,
        operationSamples(record({ database: '*', kind: 'backup_cluster', command: 'backup cluster' })),
      );
      await updateTextfile(file, operationSamples(record({ database: 'a', durationSeconds: 9 })));
      const series = parseTextfile(await readFile(file, 'utf8'));
      expect(
        valueOf(series, 'dbbackup_last_duration_seconds', { database: 'a', kind: 'backup_single' }),
      ).toBe(9);
      expect(valueOf(series, 'dbbackup_last_status', { database: 'b' })).toBe(0);
      expect(valueOf(series, 'dbbackup_last_status', { kind: 'backup_cluster', database: '*' })).toBe(1);
      expect((await stat(file)).mode & 0o777).toBe(0o644);
      // Nothing half-written is left beside it for the collector to trip over.
      expect(await readdir(path.dirname(file))).toEqual(['dbbackup.prom']);
    } finally {
      await cleanup();
    }
  });
});

describe('lock file', () => {
  it('a live holder makes the next one wait, bounded, then fail naming it', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = path.join(dir, 'x.lock');
      const release = await acquireLock(file, { waitMs: 0 });
      const started = Date.now();
      const err = await acquireLock(file, { waitMs: 200 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockBusyError);
      expect((err as LockBusyError).message).toContain(`process ${process.pid}`);
      expect(Date.now() - started).toBeLessThan(5000);
      await release();
      await (
        await acquireLock(file, { waitMs: 0 })
      )();
    } finally {
      await cleanup();
    }
  });

  it('a lock left by a process that is gone is taken over, with a warning', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const file = path.join(dir, 'x.lock');
      // A pid above the kernel's maximum never exists.
      await writeFile(file, `4194305\n${os.hostname()}\n2026-01-01T00:00:00.000Z\n`);
      const stale: number[] = [];
      const release = await acquireLock(file, { waitMs: 0, onStale: (h) => stale.push(h.pid) });
      expect(stale).toEqual([4194305]);
      expect((await readFile(file, 'utf8')).split('\n')[0]).toBe(String(process.pid));
      await release();
    } finally {
      await cleanup();
    }
  });
});
