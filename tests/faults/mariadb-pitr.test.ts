/**
 * Faults in MariaDB binlog archiving, physical backups and point-in-time restores: a streamer killed
 * and a server restarted under it, binlogs deleted, damaged or purged before archiving, a backup
 * program that is missing, cut short or interrupted. Each case names the invariant a user relies on.
 */
import { chmod, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBinlogServer, type BinlogServer } from '../harness/binlog-server.js';
import { waitFor } from '../harness/proc.js';
import {
  archivedBinlogs,
  cliOk,
  flushAndWaitArchived,
  mysqlOwnedDir,
  seedShop,
  startStreamer,
  writeBatch,
} from '../e2e/mariadb-pitr-util.js';
import type { CliResult } from '../harness/cli.js';
import { cli, myArgs, removeDir, tempDir, uniqueName } from '../e2e/util.js';
import { treeOf } from './invariants.js';

let server: BinlogServer;
const db = uniqueName('shop');
const dirs: string[] = [];

async function dir(prefix: string): Promise<string> {
  const d = await tempDir(prefix);
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  server = await startBinlogServer(7);
  await seedShop(server, db);
}, 180_000);

afterAll(async () => {
  await server?.stop();
  for (const d of dirs) await removeDir(d);
});

/** The stored binlog `name` of a directory archive, decompressed. */
async function storedBinlog(archive: string, name: string): Promise<Buffer> {
  return zstdDecompressSync(await readFile(await storedPath(archive, name)));
}

/** The stored bytes of binlog `name` in a directory archive. */
async function storedPath(archive: string, name: string): Promise<string> {
  const key = (await readdir(path.join(archive, 'binlog'))).find(
    (n) => n.startsWith(`${name}-`) && !n.endsWith('.json'),
  );
  if (!key) throw new Error(`${name} is not in the archive`);
  return path.join(archive, 'binlog', key);
}

/** `restore pitr latest --confirm` into a new directory; returns the result and that directory's parent. */
async function restoreLatest(
  archive: string,
  extra: string[] = [],
): Promise<{ r: CliResult; parent: string }> {
  const parent = await mysqlOwnedDir();
  dirs.push(parent);
  const r = await cli(
    ['restore', 'pitr', 'latest', '--archive', archive, '--data-dir', path.join(parent, 'data'), ...extra],
    { timeoutMs: 120_000 },
  );
  return { r, parent };
}

/** An archive with a full physical backup and three closed binlogs after it. */
async function archiveWithBinlogs(): Promise<{ archive: string; binlogs: string[] }> {
  const archive = await dir('dbb-binlog-fault-');
  await cliOk([...server.args(), 'binlog', 'archive', '--archive', archive, '--flush']);
  await cliOk([...server.args(), 'backup', 'physical', '--archive', archive]);
  const binlogs: string[] = [];
  for (const tag of ['f1', 'f2', 'f3']) {
    await writeBatch(server, db, tag);
    const [cur] = await server.query<{ File: string }>('SHOW MASTER STATUS');
    binlogs.push(cur?.File ?? '');
    await cliOk([...server.args(), 'binlog', 'archive', '--archive', archive, '--flush']);
  }
  return { archive, binlogs };
}

describe('MariaDB PITR faults', () => {
  it('binlog stream: a server restart under it, then SIGKILL → every binlog archived once closed, byte-identical; the open one only as a prefix', async () => {
    const archive = await dir('dbb-binlog-stream-');
    const spool = await dir('dbb-binlog-spool-');
    const first = startStreamer(server, archive, ['--spool-dir', spool]);
    try {
      await writeBatch(server, db, 's1');
      await waitFor(
        'a first binlog prefix',
        60_000,
        async () => (await archivedBinlogs(archive)).partial.length > 0,
      );
      await server.restart();
      await writeBatch(server, db, 's2');
      await waitFor('the streamer to reconnect after the restart', 90_000, async () =>
        /reading binlogs from .*\n(?:.*\n)*.*reading binlogs from/.test(first.output()),
      );
      await writeBatch(server, db, 's3');
    } finally {
      await first.kill();
    }
    await writeBatch(server, db, 's4');
    const second = startStreamer(server, archive, ['--spool-dir', spool]);
    try {
      await flushAndWaitArchived(server, archive);
      await writeBatch(server, db, 's5');
      await waitFor('the new open binlog as a prefix', 60_000, async () => {
        const logs = await server.query<{ Log_name: string }>('SHOW BINARY LOGS');
        return (await archivedBinlogs(archive)).partial.includes(logs.at(-1)?.Log_name ?? '');
      });
    } finally {
      expect(await second.stop()).toBe(0);
    }
    const logs = (await server.query<{ Log_name: string }>('SHOW BINARY LOGS')).map((l) => l.Log_name);
    const { closed, partial } = await archivedBinlogs(archive);
    const open = logs.at(-1) ?? '';
    const expectedClosed = logs.slice(0, -1);
    // Nothing lost: every file the server closed is archived closed, exactly as the server has it.
    expect(closed).toEqual(expectedClosed);
    for (const name of closed)
      expect(
        (await storedBinlog(archive, name)).equals(await readFile(path.join(server.dataDir, name))),
        name,
      ).toBe(true);
    // The open file is stored only as a prefix (never as if it were closed), and only one.
    expect(partial).toEqual([open]);
    expect(second.output()).toMatch(/stopped: \d+ binlog\(s\) stored closed/);
    // A clean stop leaves its spool empty.
    expect(await readdir(spool)).toEqual([]);
  });

  it('restore pitr: a binlog deleted from the archive → refused, naming it; no data directory created', async () => {
    const { archive, binlogs } = await archiveWithBinlogs();
    // The middle one: the archive holds binlogs on both sides of it.
    const victim = binlogs[1] ?? '';
    await rm(await storedPath(archive, victim));
    const { r, parent } = await restoreLatest(archive, ['--confirm']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`Restore refused: binlog ${victim.replace('.', '\\.')} is missing from the archive`),
    );
    expect(r.stdout).toMatch(new RegExp(`REFUSED: +binlog ${victim.replace('.', '\\.')} is missing`));
    expect(await readdir(parent)).toEqual([]);
  });

  it('restore pitr: a damaged binlog → refused before anything is changed (no data directory)', async () => {
    const { archive, binlogs } = await archiveWithBinlogs();
    const victim = binlogs[1] ?? '';
    const file = await storedPath(archive, victim);
    const bytes = await readFile(file);
    const at = Math.floor(bytes.length / 2);
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0xff, at);
    await writeFile(file, bytes);
    const { r, parent } = await restoreLatest(archive, ['--confirm']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`Binlog ${victim.replace('.', '\\.')} .* cannot be used: checksum mismatch`),
    );
    expect(await readdir(parent)).toEqual([]);
  });

  it('restore pitr: a target after the end of the archive → refused, saying where the archive ends', async () => {
    const { archive } = await archiveWithBinlogs();
    const { r, parent } = await restoreLatest(archive, ['--target-time', '2099-01-01 00:00:00+00']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /Restore refused: the archive ends before 2099-01-01 00:00:00\+00:00: its newest binlog event is at /,
    );
    expect(await readdir(parent)).toEqual([]);
  });

  it('binlog archive: binlogs purged by the server before they were archived → exit 1 naming them; the rest stored', async () => {
    const archive = await dir('dbb-binlog-purged-');
    await cliOk([...server.args(), 'binlog', 'archive', '--archive', archive, '--flush']);
    const before = (await archivedBinlogs(archive)).closed;
    const [lost] = await server.query<{ File: string }>('SHOW MASTER STATUS');
    await writeBatch(server, db, 'p1');
    await server.query('FLUSH BINARY LOGS');
    await writeBatch(server, db, 'p2');
    // The server purges a file only once InnoDB no longer needs it (its binlog checkpoint).
    let kept = '';
    await waitFor(`${lost?.File ?? '?'} to be purged`, 60_000, async () => {
      await server.query('FLUSH BINARY LOGS');
      const [cur] = await server.query<{ File: string }>('SHOW MASTER STATUS');
      kept = cur?.File ?? '';
      await server.query(`PURGE BINARY LOGS TO '${kept}'`);
      const logs = await server.query<{ Log_name: string }>('SHOW BINARY LOGS');
      return (logs[0]?.Log_name ?? '') > (lost?.File ?? '');
    });
    const r = await cli([...server.args(), 'binlog', 'archive', '--archive', archive, '--flush']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/The server purged mysql-bin\.\d+ … mysql-bin\.\d+ before they were archived/);
    expect(r.stderr).toContain(lost?.File ?? 'x');
    const after = (await archivedBinlogs(archive)).closed;
    expect(after).not.toContain(lost?.File);
    expect(after).toContain(kept);
    expect(after.length).toBeGreaterThan(before.length);
    const status = await cli([...server.args(), 'binlog', 'status', '--archive', archive]);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/PROBLEM: +gap: mysql-bin\.\d+ is missing; the archive resumes at/);
  });

  it('backup physical: mariadb-backup not installed → exit 1 naming the package; nothing stored', async () => {
    const archive = await dir('dbb-binlog-notool-');
    const bin = await dir('dbb-path-');
    for (const tool of ['zstd', 'mariadb', 'mariadb-dump', 'mariadb-binlog'])
      await symlink(`/usr/bin/${tool}`, path.join(bin, tool)).catch(() => undefined);
    const r = await cli([...server.args(), 'backup', 'physical', '--archive', archive], {
      env: { PATH: bin },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/mariadb-backup or mariabackup was not found/);
    expect(r.stderr).toMatch(/apt-get install mariadb-backup/);
    expect(await treeOf(archive)).toEqual([]);
  });

  it('backup physical: the stream cut short while mariadb-backup says nothing wrong → exit 1; nothing that looks like a backup', async () => {
    const archive = await dir('dbb-binlog-cut-');
    const bin = await fakeBackupTool('/usr/bin/mariadb-backup "$@" | head -c 3000000');
    const r = await cli([...server.args(), 'backup', 'physical', '--archive', archive], {
      env: { PATH: `${bin}:${process.env.PATH ?? ''}` },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/mariadb-backup|xbstream|incomplete/);
    expect((await treeOf(archive)).filter((f) => f.startsWith('physical/') && !f.endsWith('/'))).toEqual([]);
    const list = await cli(['list', 'backups', '--backup-dir', archive]);
    expect(list.stdout).not.toMatch(/\bvalid\b/);
  });

  it('backup physical: SIGTERM while it streams → exit 130; nothing kept', async () => {
    const archive = await dir('dbb-binlog-term-');
    // The program streams a part of the backup, then stalls: the interrupt lands mid-stream.
    const bin = await fakeBackupTool(
      'trap \'kill $! 2>/dev/null; exit 143\' TERM\n/usr/bin/mariadb-backup "$@" | head -c 2000000\nsleep 120 &\nwait $!',
    );
    const { spawn } = await import('node:child_process');
    const { repoRoot } = await import('../harness/cli.js');
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, 'bin/dbbackup.js'), ...server.args(), 'backup', 'physical', '--archive', archive],
      {
        env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let err = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    await waitFor('the backup to be streaming', 60_000, async () =>
      (await treeOf(archive)).some((f) => f.startsWith('physical/') && f.endsWith('/') && f !== 'physical/'),
    );
    child.kill('SIGTERM');
    expect(await exited).toBe(130);
    expect(err).toMatch(/Interrupted; nothing was kept/);
    expect((await treeOf(archive)).filter((f) => f.startsWith('physical/') && !f.endsWith('/'))).toEqual([]);
  });
  it("backup physical into another server's archive → refused naming both server ids (judged while mariadb-backup already runs); nothing stored, archive.json unchanged", async () => {
    const archive = await dir('dbb-binlog-other-');
    await cliOk([...server.args(), 'binlog', 'archive', '--archive', archive]);
    const file = path.join(archive, 'archive.json');
    const identity = JSON.parse(await readFile(file, 'utf8')) as { server: { serverId: number } };
    identity.server.serverId = 4242;
    const text = `${JSON.stringify(identity, null, 2)}\n`;
    await writeFile(file, text);
    const before = await treeOf(archive);
    const r = await cli([...server.args(), 'backup', 'physical', '--archive', archive]);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBe(130);
    expect(r.stderr).toMatch(/\(server_id 7, binlogs .*\) is not the one archived in .* \(server_id 4242,/);
    expect(await readFile(file, 'utf8')).toBe(text);
    expect(await treeOf(archive)).toEqual(before);
  });

  it('preflight --pitr: a user without BINLOG MONITOR and REPLICATION SLAVE → exit 1, FAIL naming them with the GRANT', async () => {
    await server.query(
      "CREATE USER IF NOT EXISTS 'pitr_lim'@'127.0.0.1'; GRANT SELECT, RELOAD, PROCESS, LOCK TABLES ON *.* TO 'pitr_lim'@'127.0.0.1'",
    );
    const args = server.args().map((a) => (a === 'root' ? 'pitr_lim' : a));
    const r = await cli([...args, 'preflight', '--pitr', '--backup-dir', await dir('dbb-pf-')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /pitr: privileges +FAIL +BINLOG MONITOR \(for .*\); REPLICATION SLAVE \(for binlog archive/,
    );
    expect(r.stdout).toMatch(/GRANT BINLOG MONITOR, REPLICATION SLAVE ON \*\.\* TO pitr_lim/);
    expect(r.stdout).toMatch(/pitr: log_bin +ok +ON/);
  });

  it('preflight --pitr: binary logging off → exit 1, FAIL on log_bin', async () => {
    const r = await cli([...myArgs(), 'preflight', '--pitr', '--backup-dir', await dir('dbb-pf-')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/pitr: log_bin +FAIL +OFF: no binary log/);
  });
});

/** A directory whose `mariadb-backup` is a shell script around the real one. */
async function fakeBackupTool(body: string): Promise<string> {
  const bin = await dir('dbb-fake-bin-');
  const file = path.join(bin, 'mariadb-backup');
  // The version check runs the real program: only backups go through `body`.
  await writeFile(
    file,
    `#!/bin/sh\ncase "$1" in --version) exec /usr/bin/mariadb-backup "$@";; esac\n${body}\n`,
  );
  await chmod(file, 0o755);
  await mkdir(bin, { recursive: true });
  await stat(file);
  return bin;
}
