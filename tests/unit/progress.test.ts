import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { textSink } from './helpers.js';
import { EtaEstimator, TerminalProgress as Progress, StepProgress } from '../../src/cli/progress.js';
import { PgRestorePhases, phaseOf } from '../../src/restore/phase.js';

const MB = 1024 * 1024;

describe('EtaEstimator: no ETA until the rate has settled', () => {
  it('the first second says nothing (a few bytes of gigabytes once made 86,586 hours)', () => {
    const eta = new EtaEstimator();
    eta.sample(0.2, 4096);
    eta.sample(0.9, 64 * 1024);
    expect(eta.remaining(300 * 1024 * MB)).toBeNull();
  });

  it('a steady rate gives the time left at that rate', () => {
    const eta = new EtaEstimator();
    for (let t = 1; t <= 12; t++) eta.sample(t, t * 10 * MB);
    // 120 MB of 1000 MB at 10 MB/s: 88 s left.
    expect(eta.remaining(1000 * MB)).toBeCloseTo(88, 5);
  });

  it('too early, under 1 %, a burst or a stall: nothing', () => {
    const early = new EtaEstimator();
    for (const t of [0.5, 1, 1.5, 2]) early.sample(t, t * 100 * MB);
    expect(early.remaining(1000 * MB)).toBeNull(); // under 3 s

    const tiny = new EtaEstimator();
    for (let t = 1; t <= 10; t++) tiny.sample(t, t * MB);
    expect(tiny.remaining(10_000 * MB)).toBeNull(); // 0.1 % done

    const burst = new EtaEstimator();
    for (let t = 1; t <= 30; t++) burst.sample(t, t <= 25 ? t * MB : 25 * MB + (t - 25) * 100 * MB);
    expect(burst.remaining(10_000 * MB)).toBeNull(); // last 10 s far above the average

    const stalled = new EtaEstimator();
    for (let t = 1; t <= 30; t++) stalled.sample(t, Math.min(t, 10) * 10 * MB);
    expect(stalled.remaining(1000 * MB)).toBeNull(); // nothing moved for 10 s
  });

  it('no total, or all of it done: nothing to estimate', () => {
    const eta = new EtaEstimator();
    for (let t = 1; t <= 10; t++) eta.sample(t, t * MB);
    expect(eta.remaining(null)).toBeNull();
    expect(eta.remaining(10 * MB)).toBeNull();
  });
});

describe('PgRestorePhases: what pg_restore --verbose says it is doing', () => {
  it('one job: schema, then data, then indexes and constraints', () => {
    const p = new PgRestorePhases();
    const seen: Array<string | undefined> = [];
    for (const line of [
      'pg_restore: connecting to database for restore',
      'pg_restore: creating TABLE "public.t"',
      'pg_restore: processing data for table "public.t"',
      'pg_restore: creating CONSTRAINT "public.t t_pkey"',
      'pg_restore: creating INDEX "public.t_v_idx"',
      'pg_restore: creating FK CONSTRAINT "public.u u_id_fkey"',
    ]) {
      p.line(line);
      seen.push(p.current());
    }
    expect(seen).toEqual([
      undefined,
      'creating the schema (pre-data)',
      'loading data',
      'building indexes and constraints (post-data)',
      'building indexes and constraints (post-data)',
      'building indexes and constraints (post-data)',
    ]);
  });

  it('--jobs: the items in flight decide, data and indexes at once included', () => {
    const p = new PgRestorePhases();
    p.line('pg_restore: creating TABLE "public.t"');
    p.line('pg_restore: launching item 3346 TABLE DATA t');
    p.line('pg_restore: launching item 3202 INDEX u_v_idx');
    expect(p.current()).toBe('loading data and building indexes and constraints (post-data)');
    p.line('pg_restore: finished item 3346 TABLE DATA t');
    expect(p.current()).toBe('building indexes and constraints (post-data)');
    p.line('pg_restore: finished item 3202 INDEX u_v_idx');
    p.line('pg_restore: launching item 3203 FK CONSTRAINT u u_id_fkey');
    expect(p.current()).toBe('building indexes and constraints (post-data)');
  });

  it('item types', () => {
    expect(phaseOf('TABLE DATA public t')).toBe('data');
    expect(phaseOf('SEQUENCE SET s')).toBe('data');
    expect(phaseOf('MATERIALIZED VIEW DATA mv')).toBe('data');
    expect(phaseOf('INDEX ATTACH x')).toBe('post-data');
    expect(phaseOf('TRIGGER t trg')).toBe('post-data');
    expect(phaseOf('TABLE t')).toBe('schema');
    expect(phaseOf('FUNCTION f()')).toBe('schema');
  });
});

describe('progress lines', () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') }));
  afterEach(() => vi.useRealTimers());

  it('a restore step that has read everything shows what the tool is still doing, and no ETA', () => {
    const out = textSink();
    let bytes = 0;
    const tool: { phase?: string } = {};
    const step = new StepProgress(
      'lines',
      'restore: restoring with pg_restore',
      () => bytes,
      100 * MB,
      out.stream,
      () => tool.phase,
    );
    step.start();
    for (let s = 1; s <= 6; s++) {
      bytes = Math.min(100 * MB, s * 20 * MB);
      vi.advanceTimersByTime(2000);
    }
    tool.phase = 'building indexes and constraints (post-data)';
    vi.advanceTimersByTime(2000);
    step.stop('done');
    const lines = out.lines();
    expect(lines[0]).toBe('restore: restoring with pg_restore: 100.0 MiB');
    expect(lines).toContain(
      'restore: restoring with pg_restore: 100% (100.0 MiB of 100.0 MiB), 7.1 MiB/s; building indexes and constraints (post-data)',
    );
    expect(lines.at(-1)).toBe('restore: restoring with pg_restore: done in 14s');
    // Settled after a few seconds: an ETA while bytes still came, none once they were all read.
    expect(lines.some((l) => / 40% .*, ETA \d+s$/.test(l))).toBe(true);
    expect(lines.filter((l) => l.includes(' 100% ')).every((l) => !l.includes('ETA'))).toBe(true);
  });

  it('a backup that completes ends its lines at 100 %, whatever the size estimate said', () => {
    const written: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      written.push(String(chunk));
      return true;
    });
    try {
      let produced = 0;
      // The estimate is the tables' size on disk; this dump comes to 75 % of it.
      const p = new Progress(
        'lines',
        'shop',
        { stored: () => produced / 4, produced: () => produced },
        () => 400 * MB,
      );
      p.start();
      for (let s = 1; s <= 3; s++) {
        produced = s * 100 * MB;
        vi.advanceTimersByTime(2000);
      }
      p.stop(true);
      expect(written.at(-2)).toMatch(/^shop: 75% 300\.0 MiB dumped, 75\.0 MiB stored, /);
      expect(written.at(-1)).toBe('shop: 100%, 75.0 MiB stored in 6s\n');

      written.length = 0;
      const failed = new Progress('lines', 'crm', { stored: () => 10, produced: () => 40 }, () => null);
      failed.start();
      vi.advanceTimersByTime(2000);
      failed.stop(false);
      expect(written.at(-1)).toBe('crm: stopped after 2s, 10 B stored (not kept)\n');
    } finally {
      spy.mockRestore();
    }
  });
});
