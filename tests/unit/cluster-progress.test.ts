import { describe, expect, it } from 'vitest';
import { textSink } from './helpers.js';
import { ByteMeter, type ProgressMode } from '../../src/pipeline/progress.js';
import { ClusterProgress } from '../../src/cli/progress.js';

function run(mode: ProgressMode): string[] {
  const out = textSink();
  const p = new ClusterProgress(mode, 'cluster backup', 'dumping', 'dumped', out.stream);
  p.begin([
    { name: 'shop', estimate: 2048 },
    { name: 'crm', estimate: null },
    { name: 'gone', estimate: 10 },
  ]);
  p.note('roles and grants dumped');
  let n = 0;
  p.start('shop', () => (n += 512));
  p.estimate('crm', 4096);
  p.start('crm', () => null);
  p.done('shop', { bytes: 3000, stored: 700 });
  p.failed('crm', 'pg_dump failed (exit code 1): permission denied\nsecond line');
  p.end();
  p.end(); // idempotent
  return out.lines();
}

describe('ClusterProgress', () => {
  it('lines mode: every database, its state changes with bytes, and a summary last', () => {
    const lines = run('lines');
    expect(lines[0]).toBe('cluster backup: 3 databases (~2.0 KiB): shop, crm, gone');
    expect(lines).toContain('cluster backup: roles and grants dumped');
    expect(lines).toContain('cluster backup: shop: dumping (~2.0 KiB)');
    expect(lines).toContain('cluster backup: crm: dumping (~4.0 KiB)');
    expect(lines.find((l) => l.startsWith('cluster backup: shop: done in '))).toMatch(
      /, 2\.9 KiB dumped, 700 B stored$/,
    );
    expect(lines).toContain('cluster backup: crm: failed: pg_dump failed (exit code 1): permission denied');
    expect(lines.at(-1)).toMatch(
      /^cluster backup: finished: 1 done, 1 failed, 1 not done; 2\.9 KiB dumped, 700 B stored in \d+s$/,
    );
  });

  it('off: writes nothing at all', () => {
    expect(run('off')).toEqual([]);
  });

  it('ByteMeter counts what passes its tap', async () => {
    const meter = new ByteMeter();
    const tap = meter.tap();
    tap.resume();
    tap.write(Buffer.alloc(1000));
    tap.end(Buffer.alloc(24));
    await new Promise((r) => tap.on('end', r));
    expect(meter.bytes).toBe(1024);
  });
});
