/**
 * Catalogs for the retention fault cases: one real backup of a small PostgreSQL database, taken once
 * through the CLI, copied onto any backend and multiplied into older backups of the same group
 * (bytes unchanged, so sizes and checksums stay valid; only name and timestamps are rewritten).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { DAY, fabricateBackup, readJson, type BackupMeta } from '../harness/fabricate.js';
import type { ObjectStore } from '../harness/object-store.js';
import { createPgDatabase, pgExec } from '../harness/pg.js';
import { cli, expectExit, pgArgs, tempDir } from '../e2e/util.js';

export interface RealBackup {
  dir: string;
  key: string;
  meta: BackupMeta;
}

/** Creates `db` with a small table and backs it up once into a fresh directory. */
export async function realBackup(db: string): Promise<RealBackup> {
  await createPgDatabase(db);
  await pgExec(
    db,
    `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 2000) g;`,
  );
  const dir = await tempDir('dbb-fault-real-');
  const r = await cli([...pgArgs(), '--backup-dir', dir, 'backup', 'single', db, '--no-progress', '--json']);
  expectExit(r, 0);
  const key = (JSON.parse(r.stdout) as { metadata: { file: string } }).metadata.file;
  const meta = JSON.parse(await readFile(path.join(dir, `${key}.meta.json`), 'utf8')) as BackupMeta;
  return { dir, key, meta };
}

/**
 * Backups of the real backup's group at `times` under `prefix` ('' or 'x/') of `store`, in the
 * order of `times`; the real backup itself is not left there.
 */
export async function backupsAt(
  store: ObjectStore,
  prefix: string,
  real: RealBackup,
  times: Date[],
): Promise<string[]> {
  for (const suffix of ['', '.sha256', '.meta.json'])
    await store.write(
      `${prefix}${real.key}${suffix}`,
      await readFile(path.join(real.dir, real.key + suffix)),
    );
  const keys: string[] = [];
  for (const when of times) keys.push(await fabricateBackup(store, prefix, real.key, when));
  if (!keys.includes(real.key))
    for (const suffix of ['.meta.json', '', '.sha256']) await store.remove(`${prefix}${real.key}${suffix}`);
  const check = await readJson<BackupMeta>(store, `${prefix}${keys[0]}.meta.json`);
  expect(check.sha256).toBe(real.meta.sha256);
  return keys;
}

/** `count` backups one day apart, the newest at the real backup's time: newest first. */
export function daily(real: RealBackup, count: number): Date[] {
  const t0 = Date.parse(real.meta.startedAt);
  return Array.from({ length: count }, (_, i) => new Date(t0 - i * DAY));
}
