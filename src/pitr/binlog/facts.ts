import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { z } from 'zod';
import { encryptionSchemas } from '../../crypto/metadata.js';
import { IntegrityError } from '../../errors.js';
import { lazySchemas } from '../../zod.js';
import {
  advance,
  BinlogScanner,
  closingEvent,
  GroupTracker,
  stateOf,
  type Gtid,
  type GtidState,
} from './events.js';

/**
 * What dbbackup knows about one stored binary log, kept beside it (`<key>.json`): its size and
 * checksum, the times and GTIDs it spans, and how it was closed. The restore plan reads these,
 * never the binlogs, to decide which files a target needs and whether the archive reaches it.
 */

export const FACTS_SCHEMA = 'dbbackup.binlog';
export const FACTS_VERSION = 1;

const schemas = lazySchemas((z) => {
  const facts = z.object({
    schema: z.literal(FACTS_SCHEMA),
    schemaVersion: z.literal(FACTS_VERSION),
    file: z.string(),
    /** The open file's prefix (cut between transactions), not the whole file. */
    partial: z.boolean(),
    rawBytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    storedBytes: z.number().int().nonnegative(),
    storedSha256: z.string().regex(/^[0-9a-f]{64}$/),
    compression: z.object({
      algorithm: z.enum(['none', 'gzip', 'zstd']),
      level: z.number(),
      implementation: z.string(),
    }),
    encryption: encryptionSchemas().encryptionDescription.nullable(),
    serverId: z.number().int().nonnegative(),
    /** The file's creation (its format description event). */
    firstEventTime: z.iso.datetime({ offset: true }).nullable(),
    /** The newest event in it (1 s resolution). */
    lastEventTime: z.iso.datetime({ offset: true }).nullable(),
    /** The GTID state the file starts from (its Gtid_list event), and the state after its last transaction. */
    startGtids: z.string(),
    endGtids: z.string(),
    transactions: z.number().int().nonnegative(),
    /** rotate: the server moved to the next file; stop: it shut down; server: its size matched the server's, with a newer file there. */
    closedBy: z.enum(['rotate', 'stop', 'server']).nullable(),
    nextFile: z.string().nullable(),
    storedAt: z.iso.datetime({ offset: true }),
  });
  return { facts };
});

export type BinlogFacts = z.infer<ReturnType<typeof schemas>['facts']>;

export function parseFacts(text: string, source: string): BinlogFacts {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new IntegrityError(`${source} is not valid JSON`);
  }
  const r = schemas().facts.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new IntegrityError(
      `${source} is not a valid binlog record: ${issue ? `${issue.path.join('.')}: ${issue.message}` : '?'}`,
    );
  }
  return r.data;
}

/** What a scan of a binlog's bytes (from its start) finds. */
export interface BinlogScan {
  /** Bytes read. */
  bytes: number;
  /** Where a prefix can end without splitting a transaction (== bytes for a whole, closed file). */
  safeEnd: number;
  serverId: number;
  firstEventTime: number | null;
  lastEventTime: number | null;
  startGtids: Gtid[];
  end: GtidState;
  transactions: number;
  closedBy: 'rotate' | 'stop' | null;
  nextFile: string | null;
  /** SHA-256 of the bytes up to safeEnd. */
  sha256: string;
}

/** Follows a file's events and keeps what BinlogScan reports. */
export class ScanState {
  readonly scanner: BinlogScanner;
  readonly tracker = new GroupTracker();
  serverId = 0;
  firstEventTime: number | null = null;
  lastEventTime: number | null = null;
  startGtids: Gtid[] | undefined;
  readonly end: GtidState = new Map();
  transactions = 0;
  closedBy: 'rotate' | 'stop' | null = null;
  nextFile: string | null = null;
  /** The same, frozen at the last safe end. */
  private atSafe: Omit<BinlogScan, 'bytes' | 'sha256'>;

  constructor(source: string) {
    this.scanner = new BinlogScanner(source);
    this.tracker.onGroup = (g) => {
      this.transactions++;
      advance(this.end, g.gtid);
    };
    this.atSafe = this.snapshot();
  }

  push(chunk: Buffer): void {
    for (const ev of this.scanner.push(chunk)) {
      if (this.firstEventTime === null) {
        this.firstEventTime = ev.timestamp;
        this.serverId = ev.serverId;
      }
      if (ev.timestamp) this.lastEventTime = Math.max(this.lastEventTime ?? 0, ev.timestamp);
      if (ev.gtidList && this.startGtids === undefined) {
        this.startGtids = ev.gtidList;
        for (const g of stateOf(ev.gtidList).values()) advance(this.end, g);
      }
      const closing = closingEvent(ev);
      this.closedBy = closing ?? null;
      if (ev.rotate) this.nextFile = ev.rotate.file;
      this.tracker.update(ev);
      if (this.tracker.safeEnd === ev.offset + ev.size) this.atSafe = this.snapshot();
    }
  }

  private snapshot(): Omit<BinlogScan, 'bytes' | 'sha256'> {
    return {
      safeEnd: this.tracker.safeEnd,
      serverId: this.serverId,
      firstEventTime: this.firstEventTime,
      lastEventTime: this.lastEventTime,
      startGtids: this.startGtids ?? [],
      end: new Map(this.end),
      transactions: this.transactions,
      closedBy: this.closedBy,
      nextFile: this.nextFile,
    };
  }

  /** The facts as of the last safe end (what a stored prefix up to it holds). */
  get safe(): Omit<BinlogScan, 'bytes' | 'sha256'> {
    return this.atSafe;
  }
}

/**
 * Scans a local binlog file as it is now (a streamer may still be appending): its events up to
 * the last complete transaction, and the SHA-256 of exactly that prefix.
 */
export async function scanBinlogFile(file: string, name: string): Promise<BinlogScan> {
  const state = new ScanState(name);
  const hash = createHash('sha256');
  let bytes = 0;
  // The prefix hash must stop at the safe end, which is known only once the events after it are read.
  const chunks: Buffer[] = [];
  let hashed = 0;
  for await (const chunk of createReadStream(file)) {
    const buf = chunk as Buffer;
    state.push(buf);
    bytes += buf.length;
    chunks.push(buf);
    const safe = state.safe.safeEnd;
    while (chunks.length && hashed + (chunks[0]?.length ?? 0) <= safe) {
      const c = chunks.shift() as Buffer;
      hash.update(c);
      hashed += c.length;
    }
  }
  const safe = state.safe;
  for (const c of chunks) {
    const take = Math.max(0, Math.min(c.length, safe.safeEnd - hashed));
    if (take) hash.update(c.subarray(0, take));
    hashed += take;
  }
  return { ...safe, bytes, sha256: hash.digest('hex') };
}
