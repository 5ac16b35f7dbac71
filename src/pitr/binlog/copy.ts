import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { EncryptionFlags } from '../../crypto/index.js';
import type { MysqlEngine } from '../../engines/mysql.js';
import { errorMessage } from '../../errors.js';
import type { Storage } from '../../storage/storage.js';
import { fetchClosed, openSpool } from './fetch.js';
import { openBinlogArchive, type BinlogArchiveIdentity } from './identity.js';
import { readBinlogInventory } from './inventory.js';
import { binlogAfter, binlogNumber } from './names.js';
import { binaryLogs, binlogServerFacts, requireBinlogs } from './server.js';
import { describeStored, dropPartials, storeBinlog } from './store.js';

export interface CopyInput {
  engine: MysqlEngine;
  storage: Storage;
  flags: EncryptionFlags;
  compression: BinlogArchiveIdentity['compression'];
  /** FLUSH BINARY LOGS first, so the file being written is closed and copied too. */
  flush: boolean;
  spoolDir?: string;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
}

export interface CopyReport {
  archive: string;
  created: boolean;
  stored: string[];
  alreadyArchived: number;
  /** Files the server purged before they were archived: a hole no replay can cross. */
  purged: { from: string; to: string } | null;
  /** The file the server is writing now (not copied: it is not closed). */
  open: string | null;
}

/**
 * `binlog archive`: every closed binary log the server still has and the archive lacks is copied
 * (one at a time through a private spool), stored with its checksum and facts, and its stored
 * prefixes dropped. The open file is left to the next run (or to `binlog stream`).
 */
export async function copyClosedBinlogs(i: CopyInput): Promise<CopyReport> {
  const conn = await i.engine.connect();
  let logs: Array<{ name: string; size: number }>;
  let identity: BinlogArchiveIdentity;
  let created: boolean;
  let protectors;
  try {
    const facts = await binlogServerFacts(conn);
    requireBinlogs(facts, 'binlog archive');
    ({ identity, protectors, created } = await openBinlogArchive(i.storage, {
      engine: facts.engine,
      server: facts.server,
      compression: i.compression,
      flags: i.flags,
    }));
    if (i.flush) await conn.query('FLUSH BINARY LOGS');
    logs = await binaryLogs(conn);
  } finally {
    await conn.end().catch(() => undefined);
  }
  const inv = await readBinlogInventory(i.storage);
  const closedOnServer = logs.slice(0, -1);
  const wanted = closedOnServer.filter((l) => !inv.closed.has(l.name));
  const report: CopyReport = {
    archive: i.storage.location,
    created,
    stored: [],
    alreadyArchived: closedOnServer.length - wanted.length,
    purged: purgedBefore(
      [...inv.closed.keys()],
      logs.map((l) => l.name),
    ),
    open: logs.at(-1)?.name ?? null,
  };
  const spool = await openSpool(i.spoolDir);
  try {
    for (const log of wanted) {
      if (i.signal?.aborted) break;
      await fetchClosed(i.engine, spool.dir, [log.name]);
      const local = path.join(spool.dir, log.name);
      try {
        const r = await storeBinlog({
          storage: i.storage,
          identity,
          protectors,
          path: local,
          file: log.name,
          mode: 'closed',
          serverSize: log.size,
          signal: i.signal,
        });
        if (r.stored) {
          report.stored.push(log.name);
          i.onLine?.(`stored ${describeStored(r.facts)}`);
        }
        await dropPartials(i.storage, log.name).catch((err: unknown) =>
          i.onLine?.(`warning: could not remove the stored prefixes of ${log.name}: ${errorMessage(err)}`),
        );
      } finally {
        await rm(local, { force: true });
      }
    }
  } finally {
    await spool.dispose();
  }
  return report;
}

/**
 * The files between the archive's newest and the server's oldest, when the server no longer has
 * them (expire_logs_days, PURGE BINARY LOGS): they can never be archived.
 */
export function purgedBefore(archived: string[], onServer: string[]): { from: string; to: string } | null {
  const newest = [...archived].sort((a, b) => binlogNumber(b).n - binlogNumber(a).n)[0];
  const oldest = onServer[0];
  if (!newest || !oldest) return null;
  const next = binlogAfter(newest);
  if (binlogNumber(oldest).n <= binlogNumber(next).n) return null;
  return { from: next, to: binlogAfter(oldest, -1) };
}
