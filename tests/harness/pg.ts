import pg from 'pg';
import { pgServer } from './servers.js';

export type PgRow = Record<string, unknown>;

/** `"name"` with embedded quotes doubled, for identifiers that cannot be bind parameters. */
export function pgIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Opens a connection to `db` on the throwaway server, runs `fn`, always closes. */
export async function withPg<T>(db: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const s = pgServer();
  const client = new pg.Client({ host: s.host, port: s.port, user: s.user, database: db });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Runs one or more statements (simple protocol, so a whole SQL script works). */
export async function pgExec(db: string, sql: string): Promise<void> {
  await withPg(db, (c) => c.query(sql));
}

export async function pgQuery<R extends PgRow = PgRow>(
  db: string,
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  return withPg(db, async (c) => (await c.query<R>(sql, params)).rows);
}

export async function createPgDatabase(name: string): Promise<void> {
  await pgExec('postgres', `CREATE DATABASE ${pgIdent(name)} TEMPLATE template0 ENCODING 'UTF8'`);
}

/** Drops `name` if it exists, kicking out sessions that a failed test may have left open. */
export async function dropPgDatabase(name: string): Promise<void> {
  await withPg('postgres', async (c) => {
    const { rows } = await c.query<{ v: string }>('SHOW server_version_num');
    if (Number(rows[0]?.v) >= 130000) {
      // FORCE terminates sessions and drops atomically, so nothing can reconnect in between.
      await c.query(`DROP DATABASE IF EXISTS ${pgIdent(name)} WITH (FORCE)`);
      return;
    }
    await c.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [name],
    );
    await c.query(`DROP DATABASE IF EXISTS ${pgIdent(name)}`);
  });
}
