import mysql from 'mysql2/promise';
import { myServer } from './servers.js';

export type MyRow = Record<string, unknown>;

/** `` `name` `` with embedded backticks doubled. */
export function myIdent(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}

/** Driver options for the throwaway server: utf8mb4, multi-statements, big numbers and dates as strings. */
export function myOptions(db?: string): mysql.ConnectionOptions {
  const s = myServer();
  return {
    host: s.host,
    port: s.port,
    user: s.user,
    database: db,
    charset: 'utf8mb4',
    multipleStatements: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    // JS Dates passed as parameters are written as UTC, matching the session zone myConnect sets.
    timezone: 'Z',
  };
}

/** A connection to the throwaway server (database optional); the caller must end() it. */
export async function myConnect(db?: string): Promise<mysql.Connection> {
  const conn = await mysql.createConnection(myOptions(db));
  // TIMESTAMP values are rendered in the session zone; pin it so results do not depend on the host.
  await conn.query("SET time_zone = '+00:00'");
  return conn;
}

export async function withMy<T>(
  db: string | undefined,
  fn: (conn: mysql.Connection) => Promise<T>,
): Promise<T> {
  const conn = await myConnect(db);
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

/** Runs one or more `;`-separated statements (no DELIMITER handling; see loadMySqlScript). */
export async function myExec(db: string | undefined, sql: string): Promise<void> {
  await withMy(db, (c) => c.query(sql));
}

export async function myQuery<R extends MyRow = MyRow>(
  db: string | undefined,
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  return withMy(db, async (c) => {
    const [rows] = await c.query(sql, params);
    return rows as R[];
  });
}

export async function createMyDatabase(name: string): Promise<void> {
  await myExec(undefined, `CREATE DATABASE ${myIdent(name)}`);
}

/** Drops `name` if it exists after killing other sessions using it (their locks would block DROP). */
export async function dropMyDatabase(name: string): Promise<void> {
  await withMy(undefined, async (c) => {
    const [rows] = await c.query(
      'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
      [name],
    );
    for (const { id } of rows as { id: string | number }[]) {
      await c.query(`KILL ${Number(id)}`).catch(() => undefined); // may have ended meanwhile
    }
    await c.query(`DROP DATABASE IF EXISTS ${myIdent(name)}`);
  });
}

/**
 * Splits a script the way the mariadb client does for the cases our fixtures use: `DELIMITER x`
 * lines switch the terminator, and a statement ends where a line ends with the terminator.
 */
export function splitMySqlScript(script: string): string[] {
  const statements: string[] = [];
  let delimiter = ';';
  let current: string[] = [];
  for (const line of script.split('\n')) {
    const directive = /^\s*DELIMITER\s+(\S+)\s*$/i.exec(line);
    if (directive?.[1]) {
      delimiter = directive[1];
      continue;
    }
    if (current.length === 0 && (/^\s*(--|#)/.test(line) || line.trim() === '')) continue;
    const trimmed = line.trimEnd();
    if (trimmed.endsWith(delimiter)) {
      current.push(trimmed.slice(0, -delimiter.length));
      statements.push(current.join('\n').trim());
      current = [];
    } else {
      current.push(line);
    }
  }
  if (current.join('').trim()) statements.push(current.join('\n').trim());
  return statements.filter(Boolean);
}

/** Runs a script with DELIMITER blocks statement by statement on one session (SET persists). */
export async function loadMySqlScript(db: string, script: string): Promise<void> {
  await withMy(db, async (c) => {
    for (const sql of splitMySqlScript(script)) {
      try {
        await c.query(sql);
      } catch (err) {
        throw new Error(`${(err as Error).message}\nin statement:\n${sql.slice(0, 500)}`, { cause: err });
      }
    }
  });
}
