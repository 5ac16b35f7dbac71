import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256Line, writeMetadata } from '../../src/catalog/metadata.js';
import { configureRunLocks, lockFileName } from '../../src/locks/run-lock.js';
import { cleanupTarget } from '../../src/locks/targets.js';
import { processStart } from '../../src/ops/lock.js';
import { LocalStorage } from '../../src/storage/local/local.js';
import { putBuffer } from '../../src/storage/storage.js';
import type { TuiConfig } from '../../src/tui/config.js';
import { LiveServices } from '../../src/tui/live.js';
import { waitFor } from '../harness/proc.js';
import { metadataFor, tempDir } from './helpers.js';
import { KEY, start } from './tui-fake.js';

/**
 * Prune by policy on the real services: real backup files (data, .sha256, metadata, as `backup`
 * leaves them) in a temporary directory, the retention rule from a real config file, runCleanup
 * deleting, the cleanup run lock and the audit record. No database server is needed.
 */

let work: string;
let removeWork: () => Promise<void>;
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  ({ dir: work, cleanup: removeWork } = await tempDir());
  configureRunLocks({ dir: path.join(work, 'locks'), waitMs: 0, command: 'tui' });
});
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
afterAll(() => removeWork());

const DAYS = ['01', '02', '03', '04'];
const keyOf = (day: string): string => `shop_202612${day}_050000.dump`;

/** A directory of four finished backups of one database, a day apart, and a config keeping 2. */
async function setUp(name: string): Promise<{ dir: string; services: LiveServices; config: TuiConfig }> {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  const storage = new LocalStorage(dir);
  for (const day of DAYS) {
    const key = keyOf(day);
    const data = Buffer.from(`backup of day ${day}\n`.repeat(100));
    const meta = metadataFor(key, data, {
      startedAt: `2026-12-${day}T05:00:00.000Z`,
      finishedAt: `2026-12-${day}T05:00:02.000Z`,
    });
    await putBuffer(storage, key, data);
    await putBuffer(storage, `${key}.sha256`, sha256Line(meta.sha256, key));
    await writeMetadata(storage, key, meta);
  }
  const configFile = path.join(work, `${name}.toml`);
  await writeFile(configFile, '[retention]\nkeep_last = 2\n');
  const config: TuiConfig = {
    engine: 'postgres',
    connection: (engine) => ({ engine, host: '127.0.0.1', port: 5432, user: 'postgres' }),
    backupDir: dir,
    cloudSettings: {},
    compression: { algorithm: 'zstd', level: 3 },
    configFile,
    outputs: {
      auditFile: path.join(work, `${name}-audit.jsonl`),
      notify: { urls: [], format: 'auto', on: 'failure', timeoutMs: 1000 },
      hooks: {},
    },
    noColor: true,
  };
  return { dir, config, services: new LiveServices({ config, reload: async () => config }) };
}

function app(services: LiveServices) {
  const t = start(services);
  cleanups.push(() => t.ui.unmount());
  return t;
}

/** Archive manager → p → the configured rules (keep last 2) → the preview. */
async function toPreview(t: ReturnType<typeof app>): Promise<string> {
  await t.until('Quit');
  await t.press(...Array<string>(6).fill(KEY.down), KEY.enter);
  await t.until(keyOf('01'));
  await t.press('p');
  await t.until('Keep last');
  await t.press(KEY.enter);
  return t.until('Nothing deleted yet', 20_000);
}

describe('prune by policy on the real services', () => {
  it('previews keep-last 2 from the config file, deletes only after "prune", the two oldest with their sidecars', async () => {
    const { dir, services, config } = await setUp('prune');
    const t = app(services);
    const preview = await toPreview(t);
    expect(preview).toMatch(new RegExp(`keep\\s+2026-12-04 05:00 ${keyOf('04')} \\(last 1`));
    expect(preview).toMatch(new RegExp(`keep\\s+2026-12-03 05:00 ${keyOf('03')} \\(last 2`));
    expect(preview).toMatch(new RegExp(`DELETE 2026-12-02 05:00 ${keyOf('02')} \\(no rule keeps it`));
    expect(preview).toMatch(new RegExp(`DELETE 2026-12-01 05:00 ${keyOf('01')} \\(no rule keeps it`));
    expect(preview).toContain('2 kept, 2 would be deleted');
    // The highlighted backup's whole line, where the list cuts it at the screen's width.
    expect(preview).toContain(`${keyOf('04')} (last 1, newest valid backup)`);
    expect((await readdir(dir)).length).toBe(12);
    await t.press(KEY.enter);
    await t.until('Type prune to confirm');
    await t.type('prune');
    await t.press(KEY.enter);
    const done = await t.until('prune by policy: done', 20_000);
    expect(done).toContain('Pruned: 2 kept, 2 deleted');
    expect((await readdir(dir)).sort()).toEqual(
      ['03', '04'].flatMap((d) => [keyOf(d), `${keyOf(d)}.meta.json`, `${keyOf(d)}.sha256`]).sort(),
    );
    const audit = (await readFile(config.outputs.auditFile, 'utf8')).trim().split('\n');
    const record = JSON.parse(audit.at(-1) ?? '{}') as Record<string, unknown>;
    expect(record).toMatchObject({ command: 'cleanup' });
    expect(JSON.stringify(record)).toContain(dir);
  });

  it('a cleanup another run holds the lock of is refused in place; nothing is deleted', async () => {
    const { dir, services } = await setUp('locked');
    const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    cleanups.push(() => sleeper.kill('SIGKILL'));
    await waitFor('sleep to start', 10_000, async () => processStart(sleeper.pid ?? 0) !== undefined);
    const pid = sleeper.pid ?? 0;
    const target = cleanupTarget(path.resolve(dir));
    await mkdir(path.join(work, 'locks'), { recursive: true });
    await writeFile(
      path.join(work, 'locks', lockFileName(target)),
      `${pid}\n${os.hostname()}\n${new Date().toISOString()}\nstart=${processStart(pid)}\ncommand=cleanup\ntarget=${target.description}\n`,
    );
    const t = app(services);
    await toPreview(t);
    await t.press(KEY.enter);
    await t.until('Type prune to confirm');
    await t.type('prune');
    await t.press(KEY.enter);
    const refused = await t.until('holds the lock', 20_000);
    expect(refused).toContain('"cleanup"');
    expect((await readdir(dir)).length).toBe(12);
  });

  it('a rule the CLI would refuse is refused with its words, and nothing is planned or deleted', async () => {
    const { dir, services } = await setUp('strict');
    const t = app(services);
    await t.until('Quit');
    await t.press(...Array<string>(6).fill(KEY.down), KEY.enter);
    await t.until(keyOf('01'));
    await t.press('p');
    await t.until('Keep last');
    // keep last "2" → "2x"; min backups without an age rule, as `cleanup --min-backups 3` alone.
    await t.type('x');
    await t.press(KEY.enter);
    await t.until('--keep-last');
    await t.press(KEY.backspace);
    for (let i = 0; i < 8; i++) await t.press(KEY.down);
    await t.type('3');
    await t.press(KEY.enter);
    await t.until('--min-backups needs an age rule');
    expect((await readdir(dir)).length).toBe(12);
  });
});
