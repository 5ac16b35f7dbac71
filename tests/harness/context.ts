/** Connection details that global-setup hands to test workers through vitest's provide/inject. */
export interface PgServerInfo {
  host: string;
  port: number;
  /** Superuser without password (trust auth). */
  user: string;
  /** Directory holding the server's Unix socket (also usable as PGHOST). */
  socketDir: string;
  /** Directory of the matching initdb/pg_dump/psql binaries. */
  binDir: string;
}

export interface MyServerInfo {
  host: string;
  port: number;
  /** `root` without password, allowed from 127.0.0.1 over TCP. */
  user: string;
  /** Unix socket path of the server. */
  socket: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgServer: PgServerInfo;
    myServer: MyServerInfo;
  }
}
