import type { MysqlEngine } from '../../engines/mysql.js';
import { errorMessage } from '../../errors.js';
import type { Storage } from '../../storage/storage.js';
import type { BinlogArchiveIdentity } from './identity.js';
import { archiveGaps, archivedFiles, newestOf, readBinlogInventory } from './inventory.js';
import { binlogNumber } from './names.js';
import { binaryLogs, binlogServerFacts } from './server.js';
import { purgedBefore } from './copy.js';

export interface BinlogStatus {
  archive: string;
  server: BinlogArchiveIdentity['server'];
  files: { count: number; oldest: string | null; newest: string | null; bytes: number };
  /** The newest position the archive holds: a closed file's end or an open file's stored prefix. */
  newest: {
    file: string;
    bytes: number;
    partial: boolean;
    endGtids: string;
    lastEventTime: string | null;
    storedAt: string;
    ageSeconds: number;
  } | null;
  gaps: Array<{ missing: string; resumesAt: string }>;
  incomplete: string[];
  conflicts: string[];
  /** The server's side, when it answers: where it writes now, and how far the archive lags. */
  live: {
    file: string;
    position: number;
    gtid: string;
    lagBytes: number | null;
    purged: { from: string; to: string } | null;
  } | null;
  liveError: string | null;
  problems: string[];
}

/** `binlog status`: the archive's newest position and its age, gaps, and the server's lead. */
export async function binlogStatus(
  storage: Storage,
  identity: BinlogArchiveIdentity,
  engine: MysqlEngine | undefined,
  now = new Date(),
): Promise<BinlogStatus> {
  const inv = await readBinlogInventory(storage);
  const files = archivedFiles(inv);
  const newestName = files.at(-1);
  const newest = newestName ? newestOf(inv, newestName) : undefined;
  const status: BinlogStatus = {
    archive: storage.location,
    server: identity.server,
    files: {
      count: files.length,
      oldest: files[0] ?? null,
      newest: newestName ?? null,
      bytes: [...inv.closed.values()].reduce((n, b) => n + b.storedBytes, 0),
    },
    newest: newest
      ? {
          file: newest.file,
          bytes: newest.facts.rawBytes,
          partial: newest.partial,
          endGtids: newest.facts.endGtids,
          lastEventTime: newest.facts.lastEventTime,
          storedAt: newest.facts.storedAt,
          ageSeconds: Math.round((now.getTime() - new Date(newest.facts.storedAt).getTime()) / 1000),
        }
      : null,
    gaps: archiveGaps(inv),
    incomplete: inv.incomplete,
    conflicts: inv.conflicts,
    live: null,
    liveError: null,
    problems: [],
  };
  if (engine) {
    try {
      const conn = await engine.connect();
      try {
        const facts = await binlogServerFacts(conn);
        const logs = await binaryLogs(conn);
        const cur = logs.at(-1);
        if (cur) {
          const ours = newest?.file === cur.name ? newest.facts.rawBytes : undefined;
          const behind =
            newest && binlogNumber(newest.file).n === binlogNumber(cur.name).n - 1 && !newest.partial;
          status.live = {
            file: cur.name,
            position: cur.size,
            gtid: facts.gtidBinlogPos,
            lagBytes: ours !== undefined ? cur.size - ours : behind ? cur.size : null,
            purged: purgedBefore(
              [...inv.closed.keys()],
              logs.map((l) => l.name),
            ),
          };
        }
      } finally {
        await conn.end().catch(() => undefined);
      }
    } catch (err) {
      status.liveError = errorMessage(err);
    }
  }
  for (const g of status.gaps)
    status.problems.push(`gap: ${g.missing} is missing; the archive resumes at ${g.resumesAt}`);
  if (status.live?.purged)
    status.problems.push(
      `the server purged ${status.live.purged.from} … ${status.live.purged.to} before they were archived`,
    );
  for (const c of status.conflicts)
    status.problems.push(`conflict: ${c} is stored twice with different contents`);
  if (!newest) status.problems.push('the archive holds no binlog yet');
  return status;
}
