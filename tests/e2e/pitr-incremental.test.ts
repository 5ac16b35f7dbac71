/**
 * Incremental and differential base backups end to end on a real PostgreSQL 15 (data checksums
 * on, archiving through dbbackup): full, writes, incremental, writes, differential, writes; each
 * point restored into a new data directory, started, and every table compared (rows and an md5 of
 * their text) with the source at that moment, indexes checked with amcheck. Between the backups a
 * table is dropped, one created and one truncated. The dry run lists the chain. Then the
 * failures: a damaged page refused while reading, a corrupt parent found by verify-backup and by
 * restore (which removes what it wrote), a parent cut short refused before anything is written.
 */
import { open, readdir, readFile, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  archiveDir,
  exists,
  removePostgresDirs,
  startPitrServer,
  type PitrServer,
} from '../harness/pitr-server.js';
import { restoreChecked, runScenario, snapshot, type Scenario } from './incremental-util.js';
import { cliOk, restoreAndStart, type Restored } from './pitr-util.js';
import { cli } from './util.js';

/** The data objects of a base backup in the archive (base.tar*, delta.tar*): SHA-256 from meta.json, size on disk. */
async function storedObjects(name: string): Promise<Array<{ sha256: string; bytes: number }>> {
  const dir = path.join(archive, 'base', name);
  const meta = JSON.parse(await readFile(path.join(dir, 'meta.json'), 'utf8')) as {
    files: Array<{ key: string; sha256: string }>;
  };
  const data = (await readdir(dir)).filter((n) => /^(base|delta)\.tar/.test(n));
  expect(data.length).toBe(1);
  return Promise.all(
    data.map(async (n) => ({
      sha256: meta.files.find((f) => f.key.endsWith(`/${n}`))?.sha256 ?? 'not in meta.json',
      bytes: (await stat(path.join(dir, n))).size,
    })),
  );
}

let server: PitrServer;
let archive: string;
let scenario: Scenario;
const restored: Restored[] = [];

beforeAll(async () => {
  server = await startPitrServer([], ['--data-checksums']);
  archive = await archiveDir();
  await cliOk([...server.args(), 'pitr', 'enable', '--archive', archive]);
  await server.restart();
  scenario = await runScenario(server, []);
}, 300_000);

afterAll(async () => {
  for (const r of restored) await r.stop().catch(() => undefined);
  await server?.stop();
  await removePostgresDirs();
});

describe('incremental and differential base backups (PostgreSQL 15, data checksums)', () => {
  it('the deltas name their parents and hold only the changed pages', () => {
    expect(scenario.points.full.meta.backupType).toBe('full');
    expect(scenario.points.incr.meta).toMatchObject({
      backupType: 'incremental',
      parent: scenario.points.full.meta.name,
    });
    expect(scenario.points.diff.meta).toMatchObject({
      backupType: 'differential',
      parent: scenario.points.full.meta.name,
    });
    const d = scenario.points.incr.meta.delta;
    expect(d?.pagesVerified).toBeGreaterThan(100);
    expect(d?.blocksStored).toBeLessThan((d?.blocksScanned ?? 0) / 2);
    expect(scenario.points.incr.meta.sizeBytes).toBeLessThan(scenario.points.full.meta.sizeBytes);
  });

  for (const point of ['full', 'incr', 'diff'] as const)
    it(`restore --target-immediate of the ${point} backup gives every table as it was then`, async () => {
      const r = await restoreChecked(
        archive,
        scenario.points[point].meta.name,
        ['--target-immediate'],
        restored,
      );
      expect(await snapshot(r.query)).toEqual(scenario.points[point].snap);
      await r.stop();
    });

  it('restore of the incremental and of the differential to a time after the last writes', async () => {
    for (const point of ['incr', 'diff'] as const) {
      const r = await restoreChecked(
        archive,
        scenario.points[point].meta.name,
        ['--target-time', scenario.lastTime],
        restored,
      );
      expect(await snapshot(r.query)).toEqual(scenario.lastSnap);
      await r.stop();
    }
  });

  it('list backups shows the chain', async () => {
    const r = await cliOk(['--backup-dir', archive, 'list', 'backups']);
    expect(r.stdout).toContain(`${scenario.points.incr.meta.name}`);
    expect(r.stdout).toMatch(new RegExp(`physical incremental on ${scenario.points.full.meta.name}`));
  });

  it('the dry run of a differential lists its chain: each backup with its SHA-256 and state, and the bytes to read', async () => {
    const names = [scenario.points.full.meta.name, scenario.points.diff.meta.name];
    const stored = await Promise.all(names.map((n) => storedObjects(n)));
    const dataDir = path.join(server.dir, 'never-created');
    const args = ['restore', 'pitr', names[1] ?? '', '--archive', archive, '--data-dir', dataDir];
    const text = await cliOk([...args, '--target-immediate']);
    expect(text.stdout).toContain('Chain:     2 backups, full first');
    const lines = text.stdout.split('\n');
    names.forEach((name, n) => {
      const line = lines.find((l) => l.trim().startsWith(`${n + 1}. ${name} (`)) ?? '';
      expect(line).toContain(n === 0 ? '(full' : '(differential');
      for (const o of stored[n] ?? []) expect(line).toContain(`sha256 ${o.sha256}`);
      expect(line).toContain('present');
    });
    const json = await cliOk([...args, '--target-immediate', '--json']);
    const { plan } = JSON.parse(json.stdout) as {
      plan: {
        chain: { readBytes: number; members: Array<{ name: string; state: string; files: unknown[] }> };
      };
    };
    expect(plan.chain.members.map((m) => [m.name, m.state])).toEqual(names.map((n) => [n, 'present']));
    // What the restore reads: the full's tar and the delta, as they lie in the archive.
    const onDisk = stored.flat().reduce((n, o) => n + o.bytes, 0);
    expect(plan.chain.readBytes).toBe(onDisk);
    expect(text.stdout).toMatch(/to read from the archive/);
    expect(await exists(dataDir)).toBe(false);
  });

  it("retention keeps chains whole: the kept differential keeps its full, and the WAL from the full's start", async () => {
    const r = await cliOk(['cleanup', '--archive', archive, '--keep-last', '1', '--dry-run', '--json']);
    const plan = JSON.parse(r.stdout) as {
      decisions: Array<{ key: string; keep: boolean; reasons: string[] }>;
      cutoff: string;
      refusals: string[];
    };
    expect(plan.refusals).toEqual([]);
    const by = (name: string) => plan.decisions.find((d) => d.key === name);
    expect(by(scenario.points.diff.meta.name)?.keep).toBe(true);
    expect(by(scenario.points.full.meta.name)).toMatchObject({
      keep: true,
      reasons: [`parent of ${scenario.points.diff.meta.name}`],
    });
    expect(by(scenario.points.incr.meta.name)?.keep).toBe(false);
    expect(plan.cutoff).toBe(scenario.points.full.meta.startSegment);
  });

  it('a damaged page is refused while reading, naming the file and block', async () => {
    await server.query('CREATE TABLE damaged (id int, v text)');
    await server.query('INSERT INTO damaged SELECT g, md5(g::text) FROM generate_series(1, 2000) g');
    const [f] = await server.query<{ p: string }>("SELECT pg_relation_filepath('damaged') AS p");
    await server.query('CHECKPOINT');
    await server.restart(); // the page leaves shared buffers: the next backup reads it from disk
    const file = path.join(server.dataDir, f?.p ?? '');
    const fh = await open(file, 'r+');
    await fh.write(Buffer.from('XXXX'), 0, 4, 8192 * 3 + 4000);
    await fh.close();
    const r = await cli([...server.args(), 'backup', 'base', '--incremental']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`Data checksum failure in ${f?.p}, block 3`);
    await server.query('DROP TABLE damaged');
  });

  it('a corrupt parent (one byte changed): verify-backup names it, restore refuses naming it before anything is written', async () => {
    const fullDir = path.join(archive, 'base', scenario.points.full.meta.name);
    const data = (await readdir(fullDir)).find((n) => n.startsWith('base.tar'));
    const fh = await open(path.join(fullDir, data ?? ''), 'r+');
    const size = (await stat(path.join(fullDir, data ?? ''))).size;
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, Math.floor(size / 2));
    b[0] = (b[0] ?? 0) ^ 0xff;
    await fh.write(b, 0, 1, Math.floor(size / 2));
    await fh.close();
    const v = await cli(['verify-backup', `${archive}/base/${scenario.points.diff.meta.name}/`]);
    expect(v.code).not.toBe(0);
    expect(`${v.stdout}${v.stderr}`).toContain(`parent ${scenario.points.full.meta.name} is corrupt`);
    const r = await restoreAndStart([
      scenario.points.incr.meta.name,
      '--archive',
      archive,
      '--target-immediate',
    ]);
    restored.push(r);
    expect(r.result.code).not.toBe(0);
    expect(r.result.stderr).toContain(`parent ${scenario.points.full.meta.name} is corrupt`);
    expect(r.result.stderr).toContain('does not match its SHA-256');
    expect(r.result.stderr).toContain('Nothing was written');
    expect(await exists(r.dataDir)).toBe(false);
  });

  it('a parent cut short: the dry run marks it in the chain, restore refuses before writing anything', async () => {
    const fullDir = path.join(archive, 'base', scenario.points.full.meta.name);
    const data = (await readdir(fullDir)).find((n) => n.startsWith('base.tar')) ?? '';
    const size = (await stat(path.join(fullDir, data))).size;
    await truncate(path.join(fullDir, data), size - 1);
    const dataDir = path.join(server.dir, 'never-created');
    const dry = await cli([
      'restore',
      'pitr',
      scenario.points.incr.meta.name,
      '--archive',
      archive,
      '--data-dir',
      dataDir,
      '--target-immediate',
    ]);
    expect(dry.code).not.toBe(0);
    expect(dry.stdout).toMatch(
      new RegExp(
        `1\\. ${scenario.points.full.meta.name} \\(full.*: corrupt, .*has ${size - 1} bytes, expected ${size}`,
      ),
    );
    expect(dry.stdout).toContain(
      `REFUSED:   base backup ${scenario.points.incr.meta.name} (incremental) cannot be restored: parent ${scenario.points.full.meta.name} is corrupt`,
    );
    const r = await restoreAndStart([
      scenario.points.incr.meta.name,
      '--archive',
      archive,
      '--target-immediate',
    ]);
    restored.push(r);
    expect(r.result.code).not.toBe(0);
    expect(r.result.stderr).toContain(`parent ${scenario.points.full.meta.name} is corrupt`);
    expect(await exists(r.dataDir)).toBe(false);
    expect(await exists(dataDir)).toBe(false);
  });
});
