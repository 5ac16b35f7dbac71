import { rm } from 'node:fs/promises';
import type { EncryptionFlags, KeyProtector } from '../../crypto/index.js';
import type { MysqlEngine } from '../../engines/mysql.js';
import { errorMessage, IntegrityError, SafetyError } from '../../errors.js';
import { ToolProcess } from '../../pipeline/process.js';
import type { Storage } from '../../storage/storage.js';
import { scanBinlogFile } from './facts.js';
import {
  binlogFetchCommand,
  classifyBinlogTool,
  clearSpool,
  openSpool,
  spoolFiles,
  type Spool,
} from './fetch.js';
import { checkSameServer, openBinlogArchive, type BinlogArchiveIdentity } from './identity.js';
import { readBinlogInventory } from './inventory.js';
import { binlogAfter, binlogNumber } from './names.js';
import { binaryLogs, binlogServerFacts, requireBinlogs } from './server.js';
import { describeStored, dropPartials, storeBinlog } from './store.js';

export interface StreamInput {
  engine: MysqlEngine;
  storage: Storage;
  flags: EncryptionFlags;
  compression: BinlogArchiveIdentity['compression'];
  spoolDir?: string;
  /** How often the open file's prefix is stored (the archive's RPO). */
  partialIntervalMs: number;
  /** A server ahead of the spool for this long, with the spool not growing: the stream is stuck. */
  stallMs: number;
  replicaId?: number;
  signal: AbortSignal;
  log: (line: string) => void;
}

export interface StreamSummary {
  stored: string[];
  partials: number;
  sessions: number;
}

const POLL_MS = 500;
const MAX_BACKOFF_MS = 30_000;

/**
 * `binlog stream`: keeps `mariadb-binlog --raw --stop-never` running against the server and the
 * archive within seconds of it. Every file the stream has moved past is stored closed (it must end
 * with a Rotate or Stop event, or match the server's size); the file being written is stored as a
 * prefix cut between transactions every `partialIntervalMs`. When the reader exits (a server
 * restart, a network drop) or stalls, what it wrote is stored and it is started again — from the
 * first file the archive does not hold closed, which it fetches again from its start (raw mode
 * rewrites the file, so a copy that missed the final events is completed). On SIGTERM the reader
 * is stopped, what it wrote is stored (the open file as a prefix), and the command ends.
 */
export async function streamBinlogs(i: StreamInput): Promise<StreamSummary> {
  const summary: StreamSummary = { stored: [], partials: 0, sessions: 0 };
  const spool = await openSpool(i.spoolDir);
  let archive: { identity: BinlogArchiveIdentity; protectors: KeyProtector[] } | undefined;
  let backoff = 1000;
  try {
    while (!i.signal.aborted) {
      let session: Session | undefined;
      try {
        const opened = await openSession(i, spool, archive);
        archive = opened.archive;
        session = opened.session;
      } catch (err) {
        if (err instanceof SafetyError) throw err;
        i.log(`cannot start reading binlogs: ${errorMessage(err)}; trying again in ${backoff / 1000} s`);
        await sleep(backoff, i.signal);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        continue;
      }
      summary.sessions++;
      const started = Date.now();
      i.log(`reading binlogs from ${session.start} (mariadb-binlog --stop-never)`);
      const why = await follow(i, session, summary);
      await finalPass(i, session, summary);
      if (i.signal.aborted) break;
      if (Date.now() - started > 60_000) backoff = 1000;
      i.log(`${why}; reconnecting in ${backoff / 1000} s`);
      await sleep(backoff, i.signal);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  } finally {
    await spool.dispose();
  }
  return summary;
}

interface Session {
  start: string;
  child: ToolProcess;
  exited: Promise<string>;
  archive: { identity: BinlogArchiveIdentity; protectors: KeyProtector[] };
  spool: Spool;
}

async function openSession(
  i: StreamInput,
  spool: Spool,
  known: Session['archive'] | undefined,
): Promise<{ session: Session; archive: Session['archive'] }> {
  const conn = await i.engine.connect();
  let logs: Array<{ name: string; size: number }>;
  let archive = known;
  try {
    const facts = await binlogServerFacts(conn);
    requireBinlogs(facts, 'binlog stream');
    if (archive) checkSameServer(archive.identity, facts.server, i.storage.location);
    else
      archive = await openBinlogArchive(i.storage, {
        engine: facts.engine,
        server: facts.server,
        compression: i.compression,
        flags: i.flags,
      });
    logs = await binaryLogs(conn);
  } finally {
    await conn.end().catch(() => undefined);
  }
  const inv = await readBinlogInventory(i.storage);
  const start = chooseStart(
    [...inv.closed.keys()],
    logs.map((l) => l.name),
    i.log,
  );
  await clearSpool(spool.dir);
  const command = await binlogFetchCommand(i.engine, spool.dir, {
    files: [start],
    follow: { replicaId: i.replicaId },
  });
  const child = new ToolProcess(command, ['ignore', 'ignore', 'pipe'], classifyBinlogTool);
  const exited = child.done.then(
    () => 'mariadb-binlog ended',
    (err: unknown) => `mariadb-binlog stopped: ${errorMessage(err)}`,
  );
  return { session: { start, child, exited, archive, spool }, archive };
}

/**
 * Where reading starts: after the newest file the archive holds closed (its successor is the file
 * a previous reader was in, or the next one), or at the server's oldest file for a new archive.
 */
export function chooseStart(archivedClosed: string[], onServer: string[], log: (l: string) => void): string {
  const oldest = onServer[0];
  const newestOnServer = onServer.at(-1);
  if (!oldest || !newestOnServer) throw new IntegrityError('The server lists no binary logs');
  const newest = [...archivedClosed].sort((a, b) => binlogNumber(b).n - binlogNumber(a).n)[0];
  if (!newest) return oldest;
  const next = binlogAfter(newest);
  if (onServer.includes(next)) return next;
  if (binlogNumber(next).n > binlogNumber(newestOnServer).n)
    throw new SafetyError(
      `The archive holds ${newest}, newer than the server's newest binlog ${newestOnServer}: its binlogs were reset (RESET MASTER) or this is another server`,
      { hint: 'Give this server a new archive.' },
    );
  log(
    `GAP: the server no longer has ${next} … (its oldest is ${oldest}): they were purged before they were archived`,
  );
  return oldest;
}

/** Stores closed files and prefixes while the reader runs; returns why it stopped. */
async function follow(i: StreamInput, s: Session, summary: StreamSummary): Promise<string> {
  let ended: string | undefined;
  void s.exited.then((why) => (ended = why));
  const onAbort = (): void => s.child.kill();
  i.signal.addEventListener('abort', onAbort);
  let lastPartial = Date.now();
  const stall = { since: Date.now(), size: -1, file: '' };
  try {
    while (ended === undefined && !i.signal.aborted) {
      await Promise.race([sleep(POLL_MS, i.signal), s.exited]);
      if (ended !== undefined || i.signal.aborted) break;
      const files = await spoolFiles(s.spool.dir);
      for (const f of files.slice(0, -1)) await storeSpooled(i, s, f, 'closed', summary);
      const open = files.at(-1);
      if (open && Date.now() - lastPartial >= i.partialIntervalMs) {
        lastPartial = Date.now();
        await storeSpooled(i, s, open, 'partial', summary);
      }
      if (open && (await stalled(i, stall, open))) {
        s.child.kill();
        await s.exited;
        return `no data from the server for ${Math.round(i.stallMs / 1000)} s while it wrote to ${open.name}: the connection was given up`;
      }
    }
  } finally {
    i.signal.removeEventListener('abort', onAbort);
  }
  if (i.signal.aborted) {
    s.child.kill();
    await s.exited;
    return 'stopped';
  }
  return ended ?? 'mariadb-binlog ended';
}

/**
 * Whether the reader is stuck: the server has written past what the spool holds and the spool has
 * not grown for `stallMs` (a dead connection that never reported an error).
 */
async function stalled(
  i: StreamInput,
  st: { since: number; size: number; file: string },
  open: { name: string; size: number },
): Promise<boolean> {
  if (open.name !== st.file || open.size !== st.size) {
    st.file = open.name;
    st.size = open.size;
    st.since = Date.now();
    return false;
  }
  if (Date.now() - st.since < i.stallMs) return false;
  st.since = Date.now();
  const conn = await i.engine.connect().catch(() => undefined);
  if (!conn) return false;
  try {
    const logs = await binaryLogs(conn);
    const newest = logs.at(-1);
    if (!newest) return false;
    return binlogNumber(newest.name).n > binlogNumber(open.name).n || newest.size > open.size;
  } catch {
    return false;
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** Stores a spool file closed or as a prefix; a closed one is then removed from the spool, its prefixes from the archive. */
async function storeSpooled(
  i: StreamInput,
  s: Session,
  f: { name: string; path: string },
  mode: 'closed' | 'partial',
  summary: StreamSummary,
): Promise<void> {
  try {
    // A file without its closing event counts as closed only at the size the server lists for it.
    const serverSize =
      mode === 'closed' && !(await scanBinlogFile(f.path, f.name)).closedBy
        ? await serverSizeOf(i, f.name)
        : undefined;
    const r = await storeBinlog({
      storage: i.storage,
      identity: s.archive.identity,
      protectors: s.archive.protectors,
      path: f.path,
      file: f.name,
      mode,
      serverSize,
      // Not stopped by SIGTERM: storing what the reader wrote is how the streamer stops.
    });
    if (mode === 'partial') {
      if (r.stored) {
        summary.partials++;
        await dropPartials(i.storage, f.name, r.key);
      }
      return;
    }
    if (r.stored) {
      summary.stored.push(f.name);
      i.log(`stored ${describeStored(r.facts)}`);
    }
    await dropPartials(i.storage, f.name);
    await rm(f.path, { force: true });
  } catch (err) {
    if (err instanceof SafetyError) throw err;
    i.log(`could not store ${mode === 'partial' ? 'the open ' : ''}${f.name} yet: ${errorMessage(err)}`);
  }
}

/** After the reader stopped: files it moved past are closed; the last is closed only if it says so. */
async function finalPass(i: StreamInput, s: Session, summary: StreamSummary): Promise<void> {
  const files = await spoolFiles(s.spool.dir);
  for (const f of files.slice(0, -1)) await storeSpooled(i, s, f, 'closed', summary);
  const last = files.at(-1);
  if (last) {
    const scan = await scanBinlogFile(last.path, last.name).catch(() => undefined);
    if (scan?.closedBy && scan.safeEnd === scan.bytes) await storeSpooled(i, s, last, 'closed', summary);
    else await storeSpooled(i, s, last, 'partial', summary);
  }
  await clearSpool(s.spool.dir);
}

async function serverSizeOf(i: StreamInput, file: string): Promise<number | undefined> {
  const conn = await i.engine.connect().catch(() => undefined);
  if (!conn) return undefined;
  try {
    const logs = await binaryLogs(conn);
    const idx = logs.findIndex((l) => l.name === file);
    // Only a file the server has moved past has its final size.
    return idx >= 0 && idx < logs.length - 1 ? logs[idx]?.size : undefined;
  } catch {
    return undefined;
  } finally {
    await conn.end().catch(() => undefined);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
