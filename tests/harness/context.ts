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
  /**
   * The CA certificate that signed the server's SSL certificate (CN/SAN 127.0.0.1, SAN localhost);
   * SSL is on for every connection that asks for it, and required only for role dbb_ssl.
   */
  caFile: string;
}

export interface MyServerInfo {
  host: string;
  port: number;
  /** `root` without password, allowed from 127.0.0.1 over TCP. */
  user: string;
  /** Unix socket path of the server. */
  socket: string;
  /**
   * The CA certificate that signed the server's SSL certificate (CN/SAN 127.0.0.1, SAN localhost);
   * SSL is available to every client, and required only for users created with REQUIRE SSL.
   */
  caFile: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgServer: PgServerInfo;
    myServer: MyServerInfo;
  }
}
