import type pg from 'pg';
import { ConnectionError, SafetyError } from '../errors.js';

/**
 * What PITR asks a running PostgreSQL server, in SQL. Every function takes a connected client (from
 * PostgresEngine.connect) and leaves it open.
 */

export interface ServerFacts {
  versionNum: number;
  /** e.g. `15.20` */
  version: string;
  major: number;
  systemIdentifier: string;
  walSegmentSize: number;
  dataDirectory: string;
  settings: Record<ArchiveSetting, string>;
  superuser: boolean;
  inRecovery: boolean;
}

export const ARCHIVE_SETTINGS = [
  'wal_level',
  'archive_mode',
  'archive_command',
  'archive_library',
  'archive_timeout',
] as const;
export type ArchiveSetting = (typeof ARCHIVE_SETTINGS)[number];

/**
 * The oldest servers: PITR itself (recovery.signal and non-exclusive backups held in one session,
 * which incremental and `--from-pgdata` base backups use) works from 12; a full `backup base`
 * through pg_basebackup stores and checks the server's backup_manifest, which came with 13.
 */
export const MIN_VERSION = { pitr: 120000, pgBasebackup: 130000 } as const;

/** `need`: what the caller does with the server (the default, a pg_basebackup full, needs 13). */
export async function serverFacts(
  c: pg.Client,
  need: keyof typeof MIN_VERSION = 'pgBasebackup',
): Promise<ServerFacts> {
  const v = await c.query<{ num: string; ver: string; su: string; rec: boolean }>(
    "SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS ver, current_setting('is_superuser') AS su, pg_is_in_recovery() AS rec",
  );
  const versionNum = Number(v.rows[0]?.num);
  const major = Math.floor(versionNum / 10000);
  if (versionNum < MIN_VERSION.pitr)
    throw new SafetyError(`PostgreSQL ${major} is too old for dbbackup's PITR`, {
      hint: 'PITR needs PostgreSQL 12 or newer (recovery.signal, non-exclusive base backups).',
    });
  if (versionNum < MIN_VERSION[need])
    throw new SafetyError(`PostgreSQL ${major} is too old for a base backup through pg_basebackup`, {
      hint: `dbbackup keeps and checks the server's backup_manifest, which PostgreSQL 13 brought; on the database host, "backup base --from-pgdata" reads the data directory of a PostgreSQL ${major} server instead (and --incremental/--differential build on it).`,
    });
  const names = [...ARCHIVE_SETTINGS, 'wal_segment_size', 'data_directory'];
  const s = await c.query<{ name: string; setting: string }>(
    'SELECT name, setting FROM pg_settings WHERE name = ANY($1)',
    [names],
  );
  const get = (n: string): string => s.rows.find((r) => r.name === n)?.setting ?? '';
  const settings = Object.fromEntries(ARCHIVE_SETTINGS.map((n) => [n, get(n)])) as Record<
    ArchiveSetting,
    string
  >;
  // With archive_mode off the server shows archive_command as "(disabled)": the files hold its value.
  if (settings.archive_command === '(disabled)')
    settings.archive_command = await fileSetting(c, 'archive_command');
  let systemIdentifier: string;
  try {
    const id = await c.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()');
    systemIdentifier = id.rows[0]?.id ?? '';
  } catch (err) {
    throw new ConnectionError("Cannot read the cluster's system identifier (pg_control_system())", {
      hint: 'Connect as a superuser (for example --user postgres): PITR set-up needs one.',
      cause: err,
    });
  }
  return {
    versionNum,
    version: (v.rows[0]?.ver ?? '').split(' ')[0] ?? '',
    major,
    systemIdentifier,
    walSegmentSize: Number(get('wal_segment_size')),
    dataDirectory: get('data_directory'),
    settings,
    superuser: v.rows[0]?.su === 'on',
    inRecovery: Boolean(v.rows[0]?.rec),
  };
}

/** The value the configuration files give `name` (the last one wins), or ''. */
async function fileSetting(c: pg.Client, name: string): Promise<string> {
  const r = await c.query<{ setting: string }>(
    'SELECT setting FROM pg_file_settings WHERE name = $1 AND error IS NULL ORDER BY seqno DESC LIMIT 1',
    [name],
  );
  return r.rows[0]?.setting ?? '';
}

/** Values set with ALTER SYSTEM (postgresql.auto.conf), so that `pitr disable` can put them back. */
export async function autoConfValues(
  c: pg.Client,
  names: readonly string[],
): Promise<Record<string, string | null>> {
  const r = await c.query<{ name: string; setting: string }>(
    "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' AND name = ANY($1) AND error IS NULL ORDER BY seqno",
    [names],
  );
  const out: Record<string, string | null> = Object.fromEntries(names.map((n) => [n, null]));
  for (const row of r.rows) out[row.name] = row.setting;
  return out;
}

/** ALTER SYSTEM SET / RESET, then reload; returns the settings that wait for a restart. */
export async function applySettings(c: pg.Client, values: Record<string, string | null>): Promise<string[]> {
  for (const [name, value] of Object.entries(values)) {
    if (!/^[a-z_]+$/.test(name)) throw new Error(`bad setting name ${name}`);
    if (value === null) await c.query(`ALTER SYSTEM RESET ${name}`);
    else await c.query(`ALTER SYSTEM SET ${name} = ${c.escapeLiteral(value)}`);
  }
  await c.query('SELECT pg_reload_conf()');
  return pendingRestart(c, Object.keys(values));
}

/** Settings among `names` whose new value takes effect only after a restart. */
export async function pendingRestart(c: pg.Client, names: readonly string[]): Promise<string[]> {
  let rows: Array<{ name: string; pending: boolean; agrees: boolean }> = [];
  // pg_reload_conf() only signals the postmaster: this backend sees the new state a moment later,
  // once the running value of each setting agrees with the files or the setting is marked pending.
  for (let i = 0; i < 100; i++) {
    const r = await c.query<{ name: string; pending: boolean; agrees: boolean }>(
      // pg_file_settings is read from the files when queried; a restart-only setting that differs from
      // the running value carries the error "setting could not be applied" there at once, while this
      // backend's pending_restart only turns true once it has processed the reload (a race: filtering
      // such rows out once made a pending archive_mode look applied). A setting RESET has no file row:
      // it agrees only once its running value no longer comes from a file (a backend that has not yet
      // processed the reload still shows the old file value, and `pitr disable --restart` then skipped
      // the restart: seen under load in pitr-local.test.ts).
      `SELECT s.name, (s.pending_restart OR f.error IS NOT NULL) AS pending,
              (CASE WHEN f.setting IS NOT NULL THEN f.setting = s.setting
                    WHEN s.source = 'configuration file' THEN false
                    ELSE true END OR s.setting = '(disabled)') AS agrees
         FROM pg_settings s
         LEFT JOIN LATERAL (SELECT setting, error FROM pg_file_settings f
                             WHERE f.name = s.name ORDER BY seqno DESC LIMIT 1) f ON true
        WHERE s.name = ANY($1)`,
      [names],
    );
    rows = r.rows;
    if (rows.every((row) => row.pending || row.agrees))
      return rows.filter((row) => row.pending).map((row) => row.name);
    await new Promise((res) => setTimeout(res, 100));
  }
  // Never "no restart needed" unless the server said so: what has not taken effect may need one.
  return rows.filter((row) => row.pending || !row.agrees).map((row) => row.name);
}

export interface ArchiverStats {
  archivedCount: number;
  lastArchivedWal: string | null;
  lastArchivedTime: Date | null;
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedTime: Date | null;
  statsReset: Date | null;
}

export async function archiverStats(c: pg.Client): Promise<ArchiverStats> {
  const r = await c.query<{
    archived_count: string;
    last_archived_wal: string | null;
    last_archived_time: Date | null;
    failed_count: string;
    last_failed_wal: string | null;
    last_failed_time: Date | null;
    stats_reset: Date | null;
  }>('SELECT * FROM pg_stat_archiver');
  const row = r.rows[0];
  return {
    archivedCount: Number(row?.archived_count ?? 0),
    lastArchivedWal: row?.last_archived_wal ?? null,
    lastArchivedTime: row?.last_archived_time ?? null,
    failedCount: Number(row?.failed_count ?? 0),
    lastFailedWal: row?.last_failed_wal ?? null,
    lastFailedTime: row?.last_failed_time ?? null,
    statsReset: row?.stats_reset ?? null,
  };
}

export interface ReadyBacklog {
  count: number;
  bytes: number;
  oldest: string | null;
}

/** WAL files waiting for archive_command (`.ready`); null without the privilege to look (pg_monitor). */
export async function readyBacklog(c: pg.Client): Promise<ReadyBacklog | null> {
  try {
    const r = await c.query<{ n: string; bytes: string | null; oldest: string | null }>(
      `SELECT count(*) AS n, sum(w.size) AS bytes, min(replace(s.name, '.ready', '')) AS oldest
         FROM pg_ls_archive_statusdir() s LEFT JOIN pg_ls_waldir() w ON w.name = replace(s.name, '.ready', '')
        WHERE s.name LIKE '%.ready'`,
    );
    const row = r.rows[0];
    return { count: Number(row?.n ?? 0), bytes: Number(row?.bytes ?? 0), oldest: row?.oldest ?? null };
  } catch {
    return null;
  }
}

/** The push status file dbbackup keeps in pg_wal (see wal-status.ts), read through SQL; null if unreadable. */
export async function readServerFile(c: pg.Client, relative: string): Promise<string | null> {
  try {
    // (path, offset, length, missing_ok): the two-argument form is PostgreSQL 16+.
    const r = await c.query<{ t: string | null }>('SELECT pg_read_file($1, 0, 65536, true) AS t', [relative]);
    return r.rows[0]?.t ?? null;
  } catch {
    return null;
  }
}

/** The current WAL file and whether the server writes WAL at all (not during recovery). */
export async function currentWalFile(c: pg.Client): Promise<string | null> {
  try {
    const r = await c.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f');
    return r.rows[0]?.f ?? null;
  } catch {
    return null;
  }
}

/** Forces a segment switch (so the current WAL is archived now) and returns the file it closed. */
export async function switchWal(c: pg.Client): Promise<string> {
  const r = await c.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f');
  return r.rows[0]?.f ?? '';
}
