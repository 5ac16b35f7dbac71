import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import './context.js'; // the ProvidedContext augmentation for project.provide
import { MY_PREFIX, stopMyDir, startMy } from './my-server.js';
import { PG_PREFIX, startPg, stopPgDir } from './pg-server.js';
import { isAlive } from './proc.js';

/**
 * Servers of a run that died without teardown (SIGKILL, OOM) would live on; the next run
 * removes them, but only when the vitest process that owned them is gone.
 */
async function reapStale(): Promise<void> {
  const root = tmpdir();
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const isPg = name.startsWith(PG_PREFIX);
    if (!isPg && !name.startsWith(MY_PREFIX)) continue;
    const dir = path.join(root, name);
    const owner = Number.parseInt(await readFile(path.join(dir, 'owner.pid'), 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && isAlive(owner)) continue;
    await (isPg ? stopPgDir(null, dir) : stopMyDir(dir, null));
  }
}

/**
 * Every dbbackup the tests start (through runCli or spawned directly) keeps its configuration and
 * state (config.toml, the audit log) in a directory of this run, never in the user's home: workers
 * and their children inherit these variables.
 */
async function privateXdg(): Promise<() => Promise<void>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dbbackup-test-xdg-'));
  // The CLI also runs as the server's OS user (PITR: archive_command, the restore probe) with these
  // variables inherited: it must be able to see that no configuration file is there (ENOENT), not be
  // refused at the door (EACCES). Nothing in the directory is readable by others.
  await chmod(dir, 0o711);
  process.env.XDG_CONFIG_HOME = path.join(dir, 'config');
  process.env.XDG_STATE_HOME = path.join(dir, 'state');
  for (const name of ['DBBACKUP_CONFIG', 'DBBACKUP_PROFILE']) delete process.env[name];
  return () => rm(dir, { recursive: true, force: true });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const removeXdg = await privateXdg();
  await reapStale();
  // Started side by side to save a few seconds; if one fails, the other must not be left behind.
  const [pg, my] = await Promise.allSettled([startPg(), startMy()]);
  if (pg.status === 'rejected' || my.status === 'rejected') {
    const started = [pg, my].flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    await Promise.all(started.map((s) => s.stop()));
    await removeXdg();
    const errors = [pg, my].flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    throw new Error(`test database servers failed to start:\n${errors.join('\n\n')}`);
  }
  project.provide('pgServer', pg.value.info);
  project.provide('myServer', my.value.info);
  const servers = [pg.value, my.value];
  // Teardown does not run when vitest is killed or crashes; a synchronous kill still can.
  const onExit = () => servers.forEach((s) => s.killSync());
  process.on('exit', onExit);
  return async () => {
    process.off('exit', onExit);
    await Promise.all(servers.map((s) => s.stop()));
    await removeXdg();
  };
}
