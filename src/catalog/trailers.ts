import { engineFamily } from '../engines/family.js';
import type { DumpFormat, Engine } from '../types.js';

/** How many bytes at the end of a dump are kept to look for its trailer. */
export const TRAILER_BYTES = 4096;

/** The lines a dump tool writes last: their presence proves a dump ran to its end. */
export interface Trailer {
  pattern: RegExp;
  /** For messages: what the end of the dump should say. */
  text: string;
}

export const TRAILERS = {
  postgresPlain: {
    pattern: /-- PostgreSQL database dump complete/,
    text: '-- PostgreSQL database dump complete',
  },
  mysqlPlain: {
    pattern: /-- (?:Dump completed|MariaDB dump completed)/,
    text: '-- Dump completed',
  },
  postgresGlobals: {
    pattern: /-- PostgreSQL database cluster dump complete/,
    text: '-- PostgreSQL database cluster dump complete',
  },
  // The MySQL/MariaDB globals file is written by dbbackup itself and ends with this statement.
  mysqlGlobals: { pattern: /FLUSH PRIVILEGES;(?=\s*$)/, text: 'FLUSH PRIVILEGES;' },
} satisfies Record<string, Trailer>;

/** The trailer a dump of this engine and format must end with (custom archives have none). */
export function dumpTrailer(engine: Engine, format: DumpFormat): Trailer | undefined {
  if (format !== 'plain') return undefined;
  return TRAILERS[engineFamily(engine).plainTrailer];
}

/** Where a dump's snapshot lies in the server's binary log (mariadb-dump --master-data=2 --gtid). */
export interface DumpBinlogPosition {
  file: string | null;
  position: number | null;
  gtid: string;
}

/**
 * The snapshot's binlog position as mariadb-dump --master-data=2 --gtid writes it: the GTID state
 * in a comment near the end ("-- SET GLOBAL gtid_slave_pos='0-1-1345';"), the file and position
 * near the head (read only when the head passed through this process). Null when neither is there.
 */
export function dumpBinlogPosition(
  head: Buffer | undefined,
  tail: Buffer | undefined,
): DumpBinlogPosition | null {
  const gtid = /SET GLOBAL gtid_slave_pos='([0-9,-]*)'/.exec(tail?.toString('utf8') ?? '');
  const pos = /CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)/.exec(
    head?.toString('utf8') ?? '',
  );
  if (!gtid) return null;
  return { file: pos?.[1] ?? null, position: pos?.[2] ? Number(pos[2]) : null, gtid: gtid[1] ?? '' };
}

/** The dump options that make mariadb-dump record its snapshot's binlog position. */
export const SNAPSHOT_POSITION_ARGS = ['--master-data=2', '--gtid'];
