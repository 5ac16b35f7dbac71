import { inject } from 'vitest';
import type { MyServerInfo, PgServerInfo } from './context.js';

export type { MyServerInfo, PgServerInfo } from './context.js';

/** The throwaway PostgreSQL started by global-setup (superuser, trust auth, TCP 127.0.0.1). */
export function pgServer(): PgServerInfo {
  return inject('pgServer');
}

/** The throwaway MariaDB started by global-setup (root without password, TCP 127.0.0.1). */
export function myServer(): MyServerInfo {
  return inject('myServer');
}

/** `postgres://postgres@127.0.0.1:<port>/<db>` for the throwaway server. */
export function pgUrl(db = 'postgres'): string {
  const s = pgServer();
  return `postgres://${s.user}@${s.host}:${s.port}/${encodeURIComponent(db)}`;
}

/** `mysql://root@127.0.0.1:<port>/<db>` for the throwaway server. */
export function myUrl(db = ''): string {
  const s = myServer();
  return `mysql://${s.user}@${s.host}:${s.port}/${encodeURIComponent(db)}`;
}
