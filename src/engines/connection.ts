import type { Engine } from '../types.js';

/** What the user told us about the server, before engine-specific defaults are applied. */
export interface ConnectionOptions {
  engine: Engine;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  sslMode?: string;
  /** CA certificate file for verifying the server (`--ssl-ca`). */
  sslCa?: string;
  /** Database the driver connects to for server-level queries (`--database`). */
  database?: string;
  /**
   * How long the statements a restore issues (CREATE/DROP DATABASE, the restore tool's) wait for a
   * lock another session holds before giving up; 0 or absent: the server's own limit.
   */
  lockTimeoutSeconds?: number;
}

// Lives with the remembered secrets (errors.ts), so the logger at the bottom of the imports can use it.
export { maskSecrets } from '../secrets.js';
