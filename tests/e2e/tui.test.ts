import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPgDatabase, dropPgDatabase, pgExec, pgQuery } from '../harness/pg.js';
import { pgServer } from '../harness/servers.js';
import { cli, expectExit, listDir, onlyBackup, pgArgs, removeDir, tempDir, uniqueName } from './util.js';
import { Terminal } from './tui-util.js';

/**
 * The interactive UI as a person uses it: the built binary in a real terminal (tmux, 80×24), driven
 * by keystrokes only, against the throwaway PostgreSQL server.
 */

const source = uniqueName('tui_src');
const created: string[] = [source];
const dirs: string[] = [];
let terminal: Terminal | undefined;

beforeAll(async () => {
  await createPgDatabase(source);
  await pgExec(
    source,
    `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
     INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;`,
  );
});

afterEach(async () => {
  await terminal?.close();
  terminal = undefined;
});

afterAll(async () => {
  for (const db of created) await dropPgDatabase(db);
  for (const d of dirs) await removeDir(d);
});

async function dir(): Promise<string> {
  const d = await tempDir('dbb-tui-');
  dirs.push(d);
  return d;
}

/** A home of its own: configuration, audit log and backups in temporary directories. */
async function home(): Promise<{ backups: string; env: Record<string, string> }> {
  const backups = await dir();
  const base = await dir();
  return {
    backups,
    env: { XDG_CONFIG_HOME: path.join(base, 'config'), XDG_STATE_HOME: path.join(base, 'state') },
  };
}

async function open(args: string[], env: Record<string, string>): Promise<Terminal> {
  terminal = await Terminal.open(args, env);
  return terminal;
}

const rows = (db: string): Promise<unknown[]> => pgQuery(db, 'SELECT id, name FROM items ORDER BY id');

describe('interactive UI in a terminal', () => {
  it('opens on "dbbackup" with no arguments on a terminal, and quits with q', async () => {
    const { env } = await home();
    const s = pgServer();
    const t = await open([], { ...env, PGHOST: s.host, PGPORT: String(s.port), PGUSER: s.user });
    const menu = await t.until('Switch engine');
    expect(menu).toContain('↑/↓ move · enter choose · q quit');
    await t.keys('q');
    expect(await t.exitCode()).toBe(0);
    // Without a terminal, no arguments still print the help and exit 2; the command says why it cannot open.
    const r = await cli([]);
    expectExit(r, 2);
    expect(r.stderr).toContain('Usage: dbbackup');
    const piped = await cli(['interactive']);
    expectExit(piped, 2);
    expect(piped.stderr).toContain('The interactive UI needs a terminal');
  });

  it('backs up and restores a database by keystrokes; the data is the same', async () => {
    const { backups, env } = await home();
    const t = await open([...pgArgs(), '--backup-dir', backups, 'tui'], env);
    await t.until('Backup a database');
    await t.keys('Enter');
    await t.until('filter:');
    await t.type(source);
    await t.until(new RegExp(`› ${source}`));
    await t.keys('Enter');
    await t.until('Compression');
    await t.keys('Enter');
    const confirm = await t.until('This will run:');
    expect(confirm.replace(/\s*\n\s*/g, ' ')).toContain(`backup single ${source}`);
    await t.keys('Enter');
    const done = await t.until('Backup complete');
    const file = await onlyBackup(backups);
    expect(done).toContain(path.basename(file).slice(0, 30));
    const meta = JSON.parse(await readFile(`${file}.meta.json`, 'utf8')) as { sha256: string };
    expect(done.replace(/\s/g, '')).toContain(meta.sha256);

    await t.keys('Enter');
    await t.until('Restore a database');
    await t.keys('Down', 'Down', 'Down', 'Enter');
    await t.until('filter:');
    await t.type(source);
    await t.until(new RegExp(`› ${source}`));
    await t.keys('Enter');
    await t.until('Target database');
    const target = uniqueName('tui_copy');
    created.push(target);
    await t.type(target);
    await t.keys('Enter');
    const preview = await t.until('now?');
    expect(preview).toContain('Checksum:');
    // Nothing is changed before the confirmation on the preview.
    expect(await pgQuery('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [target])).toEqual([]);
    await t.keys('Enter');
    await t.until('Restore complete');
    expect(await rows(target)).toEqual(await rows(source));

    // Both are in the audit log, as the CLI's would be; the history screen shows them.
    await t.keys('Enter');
    await t.until('History');
    await t.keys(...Array<string>(9).fill('Down'), 'Enter');
    const history = await t.until('restore single');
    expect(history).toContain('backup single');
    await t.keys('q');
    expect(await t.exitCode()).toBe(0);
  });

  it('backs up the cluster by keystrokes: the chosen databases and the roles, as one verified unit', async () => {
    const { backups, env } = await home();
    const t = await open([...pgArgs(), '--backup-dir', backups, 'tui'], env);
    await t.until('Backup the cluster');
    await t.keys('Down', 'Enter');
    await t.until('Only databases');
    await t.keys('Down', 'Down');
    await t.type(source);
    await t.keys('Enter');
    const confirm = await t.until('This will run:');
    expect(confirm.replace(/\s*\n\s*/g, ' ')).toContain(`--include-database ${source}`);
    await t.keys('Enter');
    const done = await t.until('Cluster backup complete');
    expect(done).toMatch(/Databases:\s+1 of 1/);
    const [cluster] = await listDir(backups);
    expect(cluster).toMatch(/^cluster_/);
    const manifest = JSON.parse(
      await readFile(path.join(backups, cluster ?? '', 'manifest.json'), 'utf8'),
    ) as {
      databases: Array<{ database: string; status: string }>;
    };
    expect(manifest.databases.map((d) => [d.database, d.status])).toEqual([[source, 'ok']]);
    expectExit(await cli(['verify-backup', path.join(backups, cluster ?? '')]), 0);
    await t.keys('Enter');
    await t.until('Backup a database');
    await t.keys('q');
    expect(await t.exitCode()).toBe(0);
  });

  it('restores a cluster backup by keystrokes, dropping and replacing the database; the data is as backed up', async () => {
    const { backups, env } = await home();
    const db = uniqueName('tui_cl');
    created.push(db);
    await createPgDatabase(db);
    await pgExec(
      db,
      `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
       INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 300) g;`,
    );
    expectExit(
      await cli([...pgArgs(), '--backup-dir', backups, 'backup', 'cluster', '--include-database', db]),
      0,
    );
    const before = await rows(db);
    // Changed after the backup: the restore must bring back what was backed up.
    await pgExec(db, "DELETE FROM items WHERE id > 100; UPDATE items SET name = 'changed' WHERE id = 1;");
    const changed = await rows(db);
    const t = await open([...pgArgs(), '--backup-dir', backups, 'tui'], env);
    await t.until('Restore a cluster backup');
    await t.keys('Down', 'Down', 'Down', 'Down', 'Enter');
    await t.until('› cluster_');
    await t.keys('Enter');
    await t.until('Drop and replace existing');
    await t.keys('Down', 'Right', 'Enter');
    const plan = await t.until('now?');
    expect(plan).toContain(`Restore 1 database (replacing ${db}) now?`);
    expect(plan.replace(/\s*\n\s*/g, ' ')).toContain(`drop ${db}`);
    // Nothing is changed before the confirmation on the plan.
    expect(await rows(db)).toEqual(changed);
    await t.keys('Enter');
    const done = await t.until(/Cluster restore (complete|failed)|restore cluster: failed/);
    expect(done).toContain('Cluster restore complete');
    expect(await rows(db)).toEqual(before);
    // The history shows it under the CLI's name.
    await t.keys('Enter');
    await t.until('History');
    await t.keys(...Array<string>(9).fill('Down'), 'Enter');
    await t.until('restore cluster');
    await t.keys('q');
    expect(await t.exitCode()).toBe(0);
  });

  it('shows a damaged backup as corrupt when verified in the archive manager', async () => {
    const { backups, env } = await home();
    expectExit(await cli([...pgArgs(), '--backup-dir', backups, 'backup', 'single', source]), 0);
    const file = await onlyBackup(backups);
    const bytes = await readFile(file);
    const mid = Math.floor(bytes.length / 2);
    bytes[mid] = (bytes[mid] ?? 0) ^ 0xff;
    await writeFile(file, bytes);
    const t = await open([...pgArgs(), '--backup-dir', backups, 'tui'], env);
    await t.until('Archive manager');
    await t.keys(...Array<string>(6).fill('Down'), 'Enter');
    await t.until(path.basename(file).slice(0, 30));
    await t.keys('v');
    const s = await t.until('1 verified: 0 valid, 1 not valid');
    expect(s).toMatch(/corrupt/);
    await t.keys('q');
    expect(await t.exitCode()).toBe(0);
  });

  it('saves a settings change to the configuration file', async () => {
    const { backups, env } = await home();
    const t = await open([...pgArgs(), 'tui'], env);
    await t.until('Settings');
    await t.keys(...Array<string>(8).fill('Down'), 'Enter');
    const settings = await t.until('config.toml');
    const file = path.join(env.XDG_CONFIG_HOME ?? '', 'dbbackup', 'config.toml');
    expect(settings.replace(/\s*\n\s*/g, '')).toContain(file.replace(/\s/g, ''));
    await t.keys(...Array<string>(9).fill('Down'));
    await t.until(/› storage\.backup_dir/);
    await t.keys('Enter');
    await t.until('storage.backup_dir:');
    await t.type(backups);
    await t.keys('Enter');
    await t.until('storage.backup_dir saved to');
    expect(await readFile(file, 'utf8')).toContain(`backup_dir = "${backups}"`);
    // It takes effect at once: the menu says where backups go now.
    await t.keys('Escape');
    await t.until(`Backups go to ${backups}`);
    await t.keys('q');
    expect(await t.exitCode()).toBe(0);
  });

  it('quit during a backup stops it and leaves no partial backup', async () => {
    const { backups, env } = await home();
    // A session holding an exclusive lock keeps pg_dump waiting: the backup is surely still running.
    const s = pgServer();
    const blocker = new pg.Client({ host: s.host, port: s.port, user: s.user, database: source });
    await blocker.connect();
    try {
      await blocker.query('BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE');
      const t = await open([...pgArgs(), '--backup-dir', backups, 'tui'], env);
      await t.until('Backup a database');
      await t.keys('Enter');
      await t.until('filter:');
      await t.type(source);
      await t.until(new RegExp(`› ${source}`));
      await t.keys('Enter');
      await t.until('Compression');
      await t.keys('Enter');
      await t.until('This will run:');
      await t.keys('Enter');
      await t.until('dumped');
      await t.keys('q');
      await t.until('Stop it and quit? (y/n)');
      await t.keys('y');
      expect(await t.exitCode()).toBe(130);
      expect(await t.stderr()).toContain('it was stopped and cleaned up');
      expect(await listDir(backups)).toEqual([]);
      // No pg_dump of this database left running on this machine either.
      const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
      expect(ps.split('\n').filter((l) => l.includes('pg_dump') && l.includes(source))).toEqual([]);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end();
    }
  });
});
