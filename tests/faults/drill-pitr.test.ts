/**
 * Point-in-time drills interrupted (issue 17): a drill of a PostgreSQL base backup or of a MariaDB
 * physical backup stopped by SIGTERM while it restores exits 130, and leaves neither its scratch
 * directory nor a scratch server running on it.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBinlogServer, type BinlogServer } from '../harness/binlog-server.js';
import { repoRoot } from '../harness/cli.js';
import { archiveDir, removePostgresDirs, startPitrServer, type PitrServer } from '../harness/pitr-server.js';
import { waitFor } from '../harness/proc.js';
import { leftovers, scratchParent } from '../e2e/drill-pitr-util.js';
import { cliOk as myCliOk, seedShop, writeBatch as myWriteBatch } from '../e2e/mariadb-pitr-util.js';
import { cliOk, createTable, switchAndArchive, writeBatch } from '../e2e/pitr-util.js';
import { removeDir, tempDir, uniqueName } from '../e2e/util.js';

type Moment = 'restore' | 'server';
const MOMENTS: Array<{ at: Moment; when: string }> = [
  { at: 'restore', when: 'during the restore' },
  { at: 'server', when: 'while the scratch server runs' },
];

/**
 * `drill latest --archive` stopped by SIGTERM once its data directory is being written (`restore`),
 * or once a server runs on it (`server`: recovery, the replay or the checks).
 */
async function interruptDrill(
  archive: string,
  tmp: string,
  work: string,
  at: Moment,
): Promise<{ code: number; out: string }> {
  const child = spawn(
    process.execPath,
    [path.join(repoRoot, 'bin/dbbackup.js'), 'drill', 'latest', '--archive', archive],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TMPDIR: tmp, DBBACKUP_LOCK_DIR: path.join(work, 'locks') },
    },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exited = new Promise<number>((resolve) => child.once('close', (code) => resolve(code ?? -1)));
  if (at === 'server')
    await waitFor(
      'a scratch server to run',
      120_000,
      async () => (await leftovers(tmp)).processes.length > 0,
    );
  else
    await waitFor('the drill to write its scratch data directory', 120_000, async () => {
      for (const d of await readdir(tmp).catch(() => [] as string[]))
        if (d.startsWith('dbbackup-drill-') && (await readdir(path.join(tmp, d)).catch(() => [])).length)
          return /restoring /.test(out);
      return false;
    });
  child.kill('SIGTERM');
  return { code: await exited, out };
}

describe('drill of a PostgreSQL base backup, interrupted', () => {
  let server: PitrServer;
  let archive: string;
  let work: string;
  let tmp: string;

  beforeAll(async () => {
    server = await startPitrServer();
    archive = await archiveDir();
    work = await tempDir('dbb-drillf-pitr-');
    tmp = await scratchParent();
    await cliOk([...server.args(), 'pitr', 'enable', '--archive', archive]);
    await server.restart();
    await createTable(server);
    // Enough data and WAL that restoring and replaying take a moment.
    await writeBatch(server, 'before', 20, 2000);
    await cliOk([...server.args(), 'backup', 'base']);
    await writeBatch(server, 'after', 20, 2000);
    await switchAndArchive(server);
  }, 300_000);
  afterAll(async () => {
    await server?.stop();
    await removePostgresDirs();
    await removeDir(work);
    await removeDir(tmp);
  });

  it.each(MOMENTS)(
    'drill --archive (base backup): SIGTERM $when → exit 130, the scratch server stopped, the scratch directory removed, no process left',
    async ({ at }) => {
      const r = await interruptDrill(archive, tmp, work, at);
      expect(r.code, r.out).toBe(130);
      expect(r.out).toMatch(/Interrupted: the drill was stopped; .*dbbackup-drill-\S+ removed/);
      expect(await leftovers(tmp)).toEqual({ entries: [], processes: [] });
    },
  );
});

describe('drill of a MariaDB physical backup, interrupted', () => {
  let server: BinlogServer;
  let archive: string;
  let work: string;
  let tmp: string;
  const db = uniqueName('drillf');

  beforeAll(async () => {
    server = await startBinlogServer(12);
    archive = await tempDir('dbb-drillf-binlog-');
    work = await tempDir('dbb-drillf-mdb-');
    tmp = await scratchParent();
    await seedShop(server, db);
    await myCliOk([...server.args(), 'binlog', 'archive', '--archive', archive, '--flush']);
    await myCliOk([...server.args(), 'backup', 'physical', '--archive', archive]);
    await myWriteBatch(server, db, 'w1');
    await myCliOk([...server.args(), 'binlog', 'archive', '--archive', archive, '--flush']);
  }, 300_000);
  afterAll(async () => {
    await server?.stop();
    await removeDir(archive);
    await removeDir(work);
    await removeDir(tmp);
  });

  it.each(MOMENTS)(
    'drill --archive (physical backup): SIGTERM $when → exit 130, the scratch server stopped, the scratch directory removed, no process left',
    async ({ at }) => {
      const r = await interruptDrill(archive, tmp, work, at);
      expect(r.code, r.out).toBe(130);
      expect(r.out).toMatch(/Interrupted: the drill was stopped; .*dbbackup-drill-\S+ removed/);
      expect(await leftovers(tmp)).toEqual({ entries: [], processes: [] });
    },
  );
});
