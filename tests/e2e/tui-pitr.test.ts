/**
 * The point-in-time restore screen in a real terminal (tmux, 80×24) against a real WAL archive: a
 * PostgreSQL archiving through `dbbackup wal push`, a base backup, writes with known commit times.
 * The plan the screen shows is the CLI's dry run (base backup, timeline, coverage of the target),
 * a target the archive does not reach is refused there, and nothing is written before enter.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  archiveDir,
  exists,
  removePostgresDirs,
  startPitrServer,
  type PitrServer,
} from '../harness/pitr-server.js';
import { cliOk, createTable, markTime, switchAndArchive, writeBatch } from './pitr-util.js';
import { Terminal } from './tui-util.js';
import { removeDir, tempDir } from './util.js';

let server: PitrServer;
let archive: string;
let base = '';
let time = '';
let terminal: Terminal | undefined;
const dirs: string[] = [];

beforeAll(async () => {
  server = await startPitrServer();
  archive = await archiveDir();
  await cliOk([...server.args(), 'pitr', 'enable', '--archive', archive]);
  await server.restart();
  await createTable(server);
  await writeBatch(server, 'before-base');
  const b = await cliOk([...server.args(), 'backup', 'base', '--json']);
  base = (JSON.parse(b.stdout) as { metadata: { name: string } }).metadata.name;
  await writeBatch(server, 'a');
  time = await markTime(server);
  await writeBatch(server, 'b');
  await switchAndArchive(server);
}, 240_000);

afterEach(async () => {
  await terminal?.close();
  terminal = undefined;
});

afterAll(async () => {
  await server?.stop();
  await removePostgresDirs();
  for (const d of dirs) await removeDir(d);
});

describe('point-in-time restore screen in a terminal', () => {
  it('shows the dry-run plan for a time the archive covers, refuses one it does not, and writes nothing', async () => {
    const home = await tempDir('dbb-tui-pitr-');
    dirs.push(home);
    const dataDir = path.join(home, 'restored');
    terminal = await Terminal.open([...server.args(), 'tui', '--archive', archive], {
      XDG_CONFIG_HOME: path.join(home, 'config'),
      XDG_STATE_HOME: path.join(home, 'state'),
    });
    const t = terminal;
    await t.until('Point-in-time restore');
    await t.keys(...Array<string>(5).fill('Down'), 'Enter');
    const form = await t.until('WAL archive');
    expect(form).toContain(archive);
    await t.keys('Enter');
    await t.until(base);
    expect(t.screen()).toMatch(new RegExp(`${base}.*valid`));
    await t.keys('Down', 'Enter');
    await t.until('Recover to');
    await t.keys('Down');
    await t.type(time);
    await t.keys('Down');
    await t.type(dataDir);
    await t.keys('Enter');
    const plan = await t.until(/now\?|Refused/);
    const flat = plan.replace(/\s+/g, ' ');
    expect(flat).toContain(`Base: ${base}`);
    expect(flat).toContain(`Target: time ${time.slice(0, 19)}`);
    expect(flat).toMatch(/Coverage: covered/);
    expect(flat).toContain(`Restore into ${dataDir} now?`);
    expect(await exists(dataDir)).toBe(false);

    // A time after the newest archived WAL: the archive does not cover it, the plan says so and refuses.
    await t.keys('Escape');
    await t.until('Recover to');
    await t.keys('Down', ...Array<string>(time.length).fill('BSpace'));
    await t.type('2099-01-01 00:00:00+00');
    await t.keys('Enter');
    const refused = await t.until('Refused:');
    expect(refused.replace(/\s+/g, ' ')).toContain('REFUSED: the archive ends before');
    await t.keys('Enter');
    expect(await exists(dataDir)).toBe(false);
    await t.keys('Escape', 'Escape', 'Escape', 'Escape', 'q');
    expect(await t.exitCode()).toBe(0);
  });
});
