import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { afterEach, describe, expect, it } from 'vitest';
import type { ByteMeter } from '../../src/pipeline/progress.js';
import { withReadProgress, type ReadStep } from '../../src/pitr/read-progress.js';
import type { StepReporter } from '../../src/restore/single.js';
import { putBuffer, type Storage } from '../../src/storage/storage.js';
import { openStore } from '../../src/storage/uri.js';

/**
 * Byte progress of a point-in-time restore: the steps are told apart by the objects read (binlogs
 * checked, the backup extracted, the binlogs replayed: the same objects a second time), each ends
 * once its objects were read to their end, and other reads (metadata) are not counted.
 */

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function recorder(): { reporter: StepReporter; events: string[] } {
  const events: string[] = [];
  let meter: ByteMeter | undefined;
  return {
    events,
    reporter: {
      begin(step, m, total) {
        meter = m;
        events.push(`begin ${step} of ${total}`);
      },
      end(outcome) {
        events.push(`end ${outcome} at ${meter?.bytes ?? '?'}`);
      },
    },
  };
}

async function archive(): Promise<Storage> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dbb-read-progress-'));
  dirs.push(dir);
  const s = await openStore(dir);
  await putBuffer(s, 'binlog/a', 'a'.repeat(1000));
  await putBuffer(s, 'binlog/b', 'b'.repeat(500));
  await putBuffer(s, 'physical/x/data.xb', 'x'.repeat(4000));
  await putBuffer(s, 'physical/x/meta.json', '{}');
  return s;
}

const STEPS: ReadStep[] = [
  { name: 'checking 2 binlog(s)', keys: new Set(['binlog/a', 'binlog/b']), total: 1500 },
  { name: 'extracting x', keys: new Set(['physical/x/data.xb']), total: 4000 },
  { name: 'replaying 2 binlog(s)', keys: new Set(['binlog/a', 'binlog/b']), total: 1500 },
];

describe('restore pitr byte progress', () => {
  it('check, extract, replay: each step begins with its first object and ends with its last', async () => {
    const storage = await archive();
    const { reporter, events } = recorder();
    await withReadProgress(storage, STEPS, reporter, undefined, async (s) => {
      for (const key of [
        'binlog/a',
        'binlog/b',
        'physical/x/meta.json',
        'physical/x/data.xb',
        'binlog/a',
        'binlog/b',
      ])
        await text(await s.get(key));
    });
    expect(events).toEqual([
      'begin checking 2 binlog(s) of 1500',
      'end done at 1500',
      'begin extracting x of 4000',
      'end done at 4000',
      'begin replaying 2 binlog(s) of 1500',
      'end done at 1500',
    ]);
  });

  it('a failure ends the open step as failed; another reporter step in between closes the open one', async () => {
    const storage = await archive();
    const { reporter, events } = recorder();
    await expect(
      withReadProgress(storage, STEPS, reporter, undefined, async (s, r) => {
        await text(await s.get('binlog/a'));
        // A dump's restore reports its own step while the binlog check is still open.
        r?.begin('restoring shop', { bytes: 0 } as ByteMeter, 10);
        await text(await s.get('physical/x/data.xb'));
        throw new Error('mbstream failed');
      }),
    ).rejects.toThrow('mbstream failed');
    expect(events).toEqual([
      'begin checking 2 binlog(s) of 1500',
      'end done at 1000',
      'begin restoring shop of 10',
      'end done at 0',
      'begin extracting x of 4000',
      'end done at 4000',
    ]);
  });

  it('without a reporter the storage is the one given', async () => {
    const storage = await archive();
    await withReadProgress(storage, STEPS, undefined, undefined, async (s) => {
      expect(s).toBe(storage);
    });
  });
});
