import { access, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeScratchDir } from '../os/scratch.js';
import { giveTo, type OsUser } from '../os/user.js';
import { confValue } from './recovery.js';

/**
 * The settings that keep a server started on a restored copy to itself (the drill's scratch server,
 * `restore pitr --start`): the copy's postgresql.conf is production's, and would put the socket in
 * production's socket directory (which the server's user may not be able to write, or where a
 * client looking for production finds the copy), listen on production's addresses, write its log
 * through a logging collector into production's log directory (and keep recovery's lines from the
 * log this process follows), and wait for production's synchronous standbys on every commit.
 */
export type ServerSetting = readonly [name: string, value: string];

export interface IsolationChoice {
  /** The only socket directory: the data directory or a 0700 one of the server's user. */
  socketDir: string;
  /** The port (restore pitr --port; the drill's free port). */
  port?: number;
  /** An hba file in place of the copy's (the drill's; a restored copy without pg_hba.conf). */
  hbaFile?: string;
  identFile?: string;
  /** archive_mode off: the copy's new timeline never reaches production's archive. */
  archiveOff: boolean;
}

export function isolationSettings(c: IsolationChoice): ServerSetting[] {
  const s: ServerSetting[] = [
    // A list of directories: the double quotes keep a comma or a space in the path one entry.
    ['unix_socket_directories', `"${c.socketDir.replaceAll('"', '""')}"`],
    ['listen_addresses', '127.0.0.1'],
  ];
  if (c.port !== undefined) s.push(['port', String(c.port)]);
  if (c.hbaFile) s.push(['hba_file', c.hbaFile]);
  if (c.identFile) s.push(['ident_file', c.identFile]);
  s.push(['logging_collector', 'off'], ['log_destination', 'stderr'], ['synchronous_standby_names', '']);
  if (c.archiveOff) s.push(['archive_mode', 'off']);
  return s;
}

/** As postgresql.conf lines (the drill appends them to postgresql.auto.conf; later lines win). */
export function settingsAsConf(settings: readonly ServerSetting[]): string[] {
  return settings.map(([name, value]) => `${name} = ${confValue(value)}`);
}

/**
 * As `pg_ctl -o`'s text: pg_ctl runs the server through /bin/sh, so each argument is quoted for
 * it. Given on the command line, they hold for this start only: the copy's files stay as restored.
 */
export function settingsAsServerOptions(settings: readonly ServerSetting[]): string {
  const sh = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
  return settings.map(([name, value]) => `-c ${sh(`${name}=${value}`)}`).join(' ');
}

/**
 * Whether the server's socket fits in `dir`: a Unix socket's path (`<dir>/.s.PGSQL.<port>`) has at
 * most 107 bytes (sockaddr_un), and PostgreSQL refuses to start with a longer one.
 */
export function socketFits(dir: string, port: number): boolean {
  return Buffer.byteLength(path.join(dir, `.s.PGSQL.${port}`)) < 108;
}

/**
 * An hba file for a server whose socket only its OS user (and root) can reach: trust over that
 * socket, passwords over TCP on 127.0.0.1.
 */
export async function writeLocalHba(file: string, user: OsUser, header: string): Promise<void> {
  await writeFile(
    file,
    [`# ${header}`, 'local all all trust', 'host all all 127.0.0.1/32 scram-sha-256', ''].join('\n'),
    { mode: 0o600 },
  );
  await giveTo(file, user);
}

export async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/**
 * A data directory restored from a cluster that keeps its configuration elsewhere (Debian:
 * /etc/postgresql/…) has no postgresql.conf and PostgreSQL will not start without one: an empty one
 * (postgresql.auto.conf, written by the restore, holds what matters). True when it was written.
 */
export async function ensureServerConf(dataDir: string, user: OsUser, header: string): Promise<boolean> {
  const conf = path.join(dataDir, 'postgresql.conf');
  if (await exists(conf)) return false;
  await writeFile(conf, `# ${header}\n`, { mode: 0o600 });
  await giveTo(conf, user);
  return true;
}

export interface RestoredServerStart {
  settings: ServerSetting[];
  socketDir: string;
  /** What was written into the data directory so that the server can start at all. */
  notes: string[];
}

/**
 * `restore pitr --start`: the socket in the data directory (0700, the server user's; a new 0700
 * directory when the socket's path would be too long there), TCP on 127.0.0.1 at `port` only, the
 * log on stderr into pg_ctl's log file. On the command line, for this start: a later
 * `pg_ctl start` uses the copy's own configuration again. The copy's pg_hba.conf is kept (its
 * rules are the user's); a copy without one gets dbbackup's (trust over the private socket).
 */
export async function restoredServerStart(o: {
  dataDir: string;
  user: OsUser;
  port: number;
  keepArchiving: boolean;
}): Promise<RestoredServerStart> {
  const socketDir = socketFits(o.dataDir, o.port)
    ? o.dataDir
    : await makeScratchDir(o.user, os.tmpdir(), 'dbbackup-socket-');
  const notes: string[] = [];
  const header = 'dbbackup restore pitr: the base backup has none';
  if (await ensureServerConf(o.dataDir, o.user, header))
    notes.push(`wrote an empty postgresql.conf into ${o.dataDir}: the base backup has none`);
  const hba = path.join(o.dataDir, 'pg_hba.conf');
  if (!(await exists(hba))) {
    await writeLocalHba(hba, o.user, header);
    notes.push(`wrote ${hba} (trust over the socket, passwords over TCP): the base backup has none`);
  }
  return {
    settings: isolationSettings({ socketDir, port: o.port, archiveOff: !o.keepArchiving }),
    socketDir,
    notes,
  };
}
