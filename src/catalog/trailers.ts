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
export function dumpTrailer(
  engine: 'postgres' | 'mysql' | 'mariadb',
  format: 'custom' | 'plain',
): Trailer | undefined {
  if (format !== 'plain') return undefined;
  return engine === 'postgres' ? TRAILERS.postgresPlain : TRAILERS.mysqlPlain;
}
