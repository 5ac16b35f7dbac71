import type mysql from 'mysql2/promise';

/**
 * How long the shared connection stays open after its last statement: long enough for the next
 * query of the same run, short enough that a long dump does not hold a connection the server may
 * time out (wait_timeout) or a firewall drop. As PostgreSQL's (pg-idle.ts).
 */
export const IDLE_MS = 2000;

/**
 * One connection to no database shared by the engine's single statements (issue 16: each opened its
 * own connection, 11 for a tiny MariaDB backup — version, existence, size, binlog state, table list,
 * one exact count per small table, character set, a TCP handshake and an authentication exchange
 * each; with this, 4). mysql2 queues the statements of one connection, so calls made at the same
 * time run one after another on it. They are single autocommit statements that set nothing in the
 * session, so sharing is safe; one that fails gives the connection up (it may be broken: ended
 * after what is queued on it, and the next statement opens another). While idle its socket does
 * not keep the process alive. A session on no database holds no metadata lock on a database, and
 * forceDropDatabase, which kills the sessions in the database it drops, leaves it alone.
 */
export class SharedConnection {
  private conn: Promise<mysql.Connection> | undefined;
  private busy = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly open: () => Promise<mysql.Connection>,
    private readonly idleMs = IDLE_MS,
  ) {}

  async query(sql: string, params: unknown[]): Promise<unknown> {
    clearTimeout(this.timer);
    this.busy++;
    const pending = (this.conn ??= this.opening());
    try {
      const conn = await pending;
      socketOf(conn)?.ref();
      try {
        const [rows] = await conn.query(sql, params);
        return rows;
      } catch (err) {
        this.drop(pending);
        throw err;
      }
    } finally {
      if (--this.busy === 0) this.park();
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    const pending = this.conn;
    this.conn = undefined;
    const conn = await pending?.catch(() => undefined);
    if (conn) await endConn(conn);
  }

  private opening(): Promise<mysql.Connection> {
    const pending = this.open().then((conn) => {
      const gone = (): void => {
        if (this.conn === pending) this.conn = undefined;
      };
      conn.once('end', gone);
      // Also what keeps a connection the server closes while idle from being an unhandled error.
      conn.on('error', gone);
      return conn;
    });
    // A connection that could not be opened is tried again by the next statement.
    pending.catch(() => {
      if (this.conn === pending) this.conn = undefined;
    });
    return pending;
  }

  private drop(pending: Promise<mysql.Connection>): void {
    if (this.conn !== pending) return;
    this.conn = undefined;
    void pending.then(endConn, () => undefined);
  }

  /** Nothing in flight: the socket stops holding the event loop, and the connection ends after idleMs. */
  private park(): void {
    const pending = this.conn;
    if (!pending) return;
    void pending.then(
      (conn) => {
        if (this.conn === pending && this.busy === 0) socketOf(conn)?.unref();
      },
      () => undefined,
    );
    this.timer = setTimeout(() => {
      if (this.conn !== pending || this.busy > 0) return;
      this.conn = undefined;
      void pending.then(endConn, () => undefined);
    }, this.idleMs);
    this.timer.unref();
  }
}

/** Ends a connection after what is queued on it; its socket holds the event loop until the goodbye is through. */
async function endConn(conn: mysql.Connection): Promise<void> {
  socketOf(conn)?.ref();
  await conn.end().catch(() => undefined);
}

/** The promise wrapper's core connection holds the socket (not in mysql2's typings). */
function socketOf(conn: mysql.Connection): { ref(): unknown; unref(): unknown } | undefined {
  const stream = (conn as { connection?: { stream?: unknown } }).connection?.stream;
  if (stream && typeof stream === 'object' && 'unref' in stream && 'ref' in stream) {
    return stream as { ref(): unknown; unref(): unknown };
  }
  return undefined;
}
