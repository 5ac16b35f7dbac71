import type pg from 'pg';
import { IntegrityError } from '../../errors.js';
import { parseLsn } from '../wal-names.js';

/**
 * A non-exclusive backup held in one session: pg_backup_start/pg_backup_stop on 15+, the older
 * names (with exclusive => false) before. The session must stay open between the two: the server
 * aborts the backup when it closes.
 */
export interface BackupSession {
  startLsn: bigint;
  /**
   * Ends the backup without the server's wait for the archive (it polls once a second): the
   * caller waits for the stop segment in the archive itself, which is the proof that counts.
   */
  stop(): Promise<{ lsn: bigint; label: string; tablespaceMap: string }>;
  /** Ends the backup after a failure, ignoring errors (closing the session does it too). */
  abort(): Promise<void>;
}

export async function startBackup(
  client: pg.Client,
  versionNum: number,
  label: string,
): Promise<BackupSession> {
  const modern = versionNum >= 150000;
  const start = await client.query<{ lsn: string }>(
    modern
      ? 'SELECT pg_backup_start($1, true)::text AS lsn'
      : 'SELECT pg_start_backup($1, true, false)::text AS lsn',
    [label],
  );
  const startLsn = parseLsn(start.rows[0]?.lsn ?? '');
  if (startLsn === undefined) throw new IntegrityError('pg_backup_start returned no LSN');
  let stopped = false;
  const stopSql = modern
    ? 'SELECT lsn::text AS lsn, labelfile, spcmapfile FROM pg_backup_stop(false)'
    : 'SELECT lsn::text AS lsn, labelfile, spcmapfile FROM pg_stop_backup(false, false)';
  return {
    startLsn,
    async stop() {
      stopped = true;
      const r = await client.query<{ lsn: string; labelfile: string; spcmapfile: string | null }>(stopSql);
      const row = r.rows[0];
      const lsn = parseLsn(row?.lsn ?? '');
      if (!row || lsn === undefined) throw new IntegrityError('pg_backup_stop returned no LSN');
      return { lsn, label: row.labelfile, tablespaceMap: row.spcmapfile ?? '' };
    },
    async abort() {
      if (stopped) return;
      stopped = true;
      await client.query(stopSql).catch(() => undefined);
    },
  };
}
