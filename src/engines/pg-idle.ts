import type pg from 'pg';

/**
 * Clients an engine keeps for a moment after a call, per database, so that the next call reuses the
 * connection instead of opening another (issue 16: a tiny backup opened 8 connections, each a TCP
 * handshake, a startup exchange and a server process forked; with reuse it opens 3: one for the
 * server queries, one in the database for its statistics and the drill facts' snapshot, pg_dump's).
 *
 * A client is lent to one call at a time (a call may open a transaction or set a session variable),
 * and only a call that succeeded gives it back: one that failed may have left a transaction open.
 * An idle client is closed after IDLE_MS, so a long dump does not hold connections a server may
 * time out (idle_session_timeout) or a firewall drop; while idle its socket does not keep the
 * process alive, so a command that never calls close() still exits at once.
 */
export const IDLE_MS = 2000;

interface Parked {
  client: pg.Client;
  timer: NodeJS.Timeout;
}

export class IdleClients {
  private readonly parked = new Map<string, Parked[]>();
  private readonly dead = new WeakSet<pg.Client>();

  constructor(private readonly idleMs = IDLE_MS) {}

  /** Watches a fresh client: one that ends or fails is never lent again. */
  track(client: pg.Client): pg.Client {
    const forget = (): void => {
      this.dead.add(client);
      this.remove(client);
    };
    client.once('end', forget);
    client.on('error', forget);
    return client;
  }

  /** An idle client connected to `database`, now the caller's; undefined when none is. */
  take(database: string): pg.Client | undefined {
    const list = this.parked.get(database);
    for (let p = list?.pop(); p; p = list?.pop()) {
      clearTimeout(p.timer);
      if (this.dead.has(p.client)) continue;
      socketOf(p.client)?.ref();
      return p.client;
    }
    return undefined;
  }

  /** Back from a call that succeeded: parked until reused, closed after idleMs. */
  give(database: string, client: pg.Client): void {
    if (this.dead.has(client)) return;
    socketOf(client)?.unref();
    const timer = setTimeout(() => {
      this.remove(client);
      void endClient(client);
    }, this.idleMs);
    timer.unref();
    const list = this.parked.get(database) ?? [];
    list.push({ client, timer });
    this.parked.set(database, list);
  }

  async closeAll(): Promise<void> {
    const all = [...this.parked.values()].flat();
    this.parked.clear();
    for (const p of all) clearTimeout(p.timer);
    await Promise.all(all.map((p) => endClient(p.client)));
  }

  private remove(client: pg.Client): void {
    for (const [db, list] of this.parked) {
      const i = list.findIndex((p) => p.client === client);
      if (i < 0) continue;
      const [p] = list.splice(i, 1);
      if (p) clearTimeout(p.timer);
      if (!list.length) this.parked.delete(db);
    }
  }
}

/** Ends a client; its socket holds the event loop again until the goodbye is through. */
async function endClient(client: pg.Client): Promise<void> {
  socketOf(client)?.ref();
  await client.end().catch(() => undefined);
}

/** The client's socket (net or TLS), to stop an idle one keeping the event loop alive. */
function socketOf(client: pg.Client): { ref(): unknown; unref(): unknown } | undefined {
  const stream: unknown = client.connection.stream;
  if (stream && typeof stream === 'object' && 'unref' in stream && 'ref' in stream) {
    const s = stream as { ref(): unknown; unref(): unknown };
    return s;
  }
  return undefined;
}
