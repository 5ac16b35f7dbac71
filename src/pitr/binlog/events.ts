import { IntegrityError } from '../../errors.js';

/**
 * MariaDB binary log files, read event by event: only the 19-byte header of most events, and the
 * bodies of the few that say where transactions begin and end (GTID, XID, COMMIT), what the file
 * starts with (GTID list) and how it ends (Rotate, Stop). Pure: bytes in, events out, so the
 * streamer, the replay filter and the tests share one reading of the format.
 */

export const BINLOG_MAGIC = Buffer.from([0xfe, 0x62, 0x69, 0x6e]);
export const HEADER_BYTES = 19;

export const EVENT = {
  QUERY: 2,
  STOP: 3,
  ROTATE: 4,
  FORMAT_DESCRIPTION: 15,
  XID: 16,
  XA_PREPARE: 38,
  ANNOTATE_ROWS: 160,
  BINLOG_CHECKPOINT: 161,
  GTID: 162,
  GTID_LIST: 163,
  START_ENCRYPTION: 164,
} as const;

/** GTID event flags2: a group without BEGIN/COMMIT (DDL). */
const FL_STANDALONE = 1;

/** Query events larger than this are never COMMIT/ROLLBACK: their text is not read. */
const SMALL_QUERY = 4096;

export interface Gtid {
  domain: number;
  server: number;
  seq: bigint;
}

export interface BinlogEvent {
  /** Where the event starts in its file. */
  offset: number;
  size: number;
  type: number;
  /** Seconds since the epoch (the binlog's resolution). */
  timestamp: number;
  serverId: number;
  nextPos: number;
  gtid?: Gtid & { standalone: boolean };
  gtidList?: Gtid[];
  rotate?: { file: string; position: bigint };
  /** The text of a small Query event (COMMIT, ROLLBACK, XA …), without its checksum. */
  query?: string;
}

/** Which bodies are read: everything else is skipped after its header. */
function wantsBody(type: number, size: number): boolean {
  return (
    type === EVENT.FORMAT_DESCRIPTION ||
    type === EVENT.GTID ||
    type === EVENT.GTID_LIST ||
    type === EVENT.ROTATE ||
    (type === EVENT.QUERY && size <= SMALL_QUERY)
  );
}

/**
 * Reads a binlog file's events from chunks as they arrive. `push` returns the events completed by
 * the chunk; `offset` is how many bytes were consumed. A file that does not start with the binlog
 * magic, or an event whose header contradicts its position, is an IntegrityError naming where.
 */
export class BinlogScanner {
  offset = 0;
  /** CRC32 checksums trail every event (read from the format description event). */
  checksums = false;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The event being skipped (its header already parsed): bytes still to skip. */
  private skipping: { event: BinlogEvent; left: number } | undefined;

  constructor(
    private readonly source = 'the binlog',
    /** Off for a replay's filtered stream, whose events keep their original positions. */
    private readonly checkPositions = true,
  ) {}

  push(chunk: Buffer): BinlogEvent[] {
    const events: BinlogEvent[] = [];
    let pos = 0;
    while (pos < chunk.length) {
      if (this.skipping) {
        const n = Math.min(this.skipping.left, chunk.length - pos);
        this.skipping.left -= n;
        pos += n;
        this.offset += n;
        if (this.skipping.left === 0) {
          events.push(this.skipping.event);
          this.skipping = undefined;
        }
        continue;
      }
      const need = this.needed();
      const take = Math.min(need - this.pendingBytes, chunk.length - pos);
      this.pending.push(chunk.subarray(pos, pos + take));
      this.pendingBytes += take;
      pos += take;
      if (this.pendingBytes < need) break;
      // A complete header may reveal that the whole event is wanted.
      if (this.needed() > this.pendingBytes) continue;
      const whole = Buffer.concat(this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      const ev = this.consume(whole);
      if (ev) events.push(ev);
    }
    return events;
  }

  /** Bytes of a partial event (or magic) waiting for more input. */
  get buffered(): number {
    return this.pendingBytes + (this.skipping ? this.skipping.event.size - this.skipping.left : 0);
  }

  /** How many bytes the next step needs: the magic, a header, or a whole small event. */
  private needed(): number {
    if (this.offset === 0) return BINLOG_MAGIC.length;
    if (this.pendingBytes < HEADER_BYTES) return HEADER_BYTES;
    const head = Buffer.concat(this.pending);
    this.pending = [head];
    const size = head.readUInt32LE(9);
    return wantsBody(head[4] ?? 0, size) ? size : HEADER_BYTES;
  }

  private consume(bytes: Buffer): BinlogEvent | undefined {
    if (this.offset === 0) {
      if (!bytes.equals(BINLOG_MAGIC))
        throw new IntegrityError(
          `${this.source} is not a binary log (it does not start with the binlog magic)`,
        );
      this.offset = BINLOG_MAGIC.length;
      return undefined;
    }
    const event = this.header(bytes);
    if (bytes.length === HEADER_BYTES && event.size > HEADER_BYTES) {
      this.offset += HEADER_BYTES;
      this.skipping = { event, left: event.size - HEADER_BYTES };
      return undefined;
    }
    this.offset += bytes.length;
    this.body(event, bytes);
    return event;
  }

  private header(b: Buffer): BinlogEvent {
    const event: BinlogEvent = {
      offset: this.offset,
      timestamp: b.readUInt32LE(0),
      type: b[4] ?? 0,
      serverId: b.readUInt32LE(5),
      size: b.readUInt32LE(9),
      nextPos: b.readUInt32LE(13),
    };
    if (event.size < HEADER_BYTES)
      throw new IntegrityError(
        `${this.source} is damaged at byte ${this.offset}: an event of ${event.size} bytes`,
      );
    // In a binlog file every event records where the next one starts.
    if (this.checkPositions && event.nextPos !== 0 && event.nextPos !== this.offset + event.size)
      throw new IntegrityError(
        `${this.source} is damaged at byte ${this.offset}: the event says the next starts at ${event.nextPos}, its size says ${this.offset + event.size}`,
      );
    return event;
  }

  private body(event: BinlogEvent, b: Buffer): void {
    const end = b.length - (this.checksums && event.type !== EVENT.FORMAT_DESCRIPTION ? 4 : 0);
    const at = HEADER_BYTES;
    switch (event.type) {
      case EVENT.FORMAT_DESCRIPTION: {
        // binlog version, server version, create time, header length, post-header lengths, then
        // (since 5.6.1) the checksum algorithm and the event's own checksum.
        const alg = b[b.length - 5];
        this.checksums = alg === 1;
        return;
      }
      case EVENT.GTID: {
        if (end < at + 13) return;
        const flags2 = b[at + 12] ?? 0;
        event.gtid = {
          seq: b.readBigUInt64LE(at),
          domain: b.readUInt32LE(at + 8),
          server: event.serverId,
          standalone: (flags2 & FL_STANDALONE) !== 0,
        };
        return;
      }
      case EVENT.GTID_LIST: {
        if (end < at + 4) return;
        const count = b.readUInt32LE(at) & 0x0fffffff;
        const list: Gtid[] = [];
        for (let i = 0; i < count && at + 4 + (i + 1) * 16 <= end; i++) {
          const p = at + 4 + i * 16;
          list.push({
            domain: b.readUInt32LE(p),
            server: b.readUInt32LE(p + 4),
            seq: b.readBigUInt64LE(p + 8),
          });
        }
        event.gtidList = list;
        return;
      }
      case EVENT.ROTATE: {
        if (end < at + 8) return;
        event.rotate = { position: b.readBigUInt64LE(at), file: b.subarray(at + 8, end).toString('latin1') };
        return;
      }
      case EVENT.QUERY: {
        // thread id (4), exec time (4), db length (1), error code (2), status vars length (2).
        if (end < at + 13) return;
        const dbLen = b[at + 8] ?? 0;
        const varsLen = b.readUInt16LE(at + 11);
        const textAt = at + 13 + varsLen + dbLen + 1;
        if (textAt <= end) event.query = b.subarray(textAt, end).toString('utf8');
        return;
      }
      default:
        return;
    }
  }
}

/** The events that end a transaction group (besides the one event of a standalone group). */
export function endsGroup(ev: BinlogEvent): boolean {
  if (ev.type === EVENT.XID || ev.type === EVENT.XA_PREPARE) return true;
  if (ev.type !== EVENT.QUERY || ev.query === undefined) return false;
  return /^\s*(COMMIT|ROLLBACK)\s*$/i.test(ev.query) || /^\s*XA\s+(COMMIT|ROLLBACK)\b/i.test(ev.query);
}

/** A transaction group: its GTID and where it lies in its file. */
export interface Group {
  gtid: Gtid;
  start: number;
  end: number;
  timestamp: number;
}

/**
 * Follows transaction groups through a file's events. `safeEnd` is the end of the last event after
 * which the file can be cut without splitting a transaction: a prefix up to it replays cleanly.
 */
export class GroupTracker {
  safeEnd = BINLOG_MAGIC.length;
  private open:
    { gtid: Gtid; start: number; timestamp: number; standalone: boolean; events: number } | undefined;
  /** Called with every group once its last event has been read. */
  onGroup?: (g: Group) => void;

  update(ev: BinlogEvent): void {
    const end = ev.offset + ev.size;
    if (ev.type === EVENT.GTID && ev.gtid) {
      const { standalone, ...gtid } = ev.gtid;
      this.open = { gtid, start: ev.offset, timestamp: ev.timestamp, standalone, events: 0 };
      return;
    }
    const g = this.open;
    if (!g) {
      this.safeEnd = end;
      return;
    }
    g.events++;
    if ((g.standalone && g.events === 1) || (!g.standalone && endsGroup(ev))) {
      this.open = undefined;
      this.safeEnd = end;
      this.onGroup?.({ gtid: g.gtid, start: g.start, end, timestamp: g.timestamp });
    }
  }

  /** Inside a transaction that has not ended yet. */
  get inGroup(): boolean {
    return this.open !== undefined;
  }
}

/** `0-1-1345` */
export function formatGtid(g: Gtid): string {
  return `${g.domain}-${g.server}-${g.seq}`;
}

/** `0-1-1345,1-2-7` → GTIDs; undefined when the text is not a GTID list. */
export function parseGtidList(text: string): Gtid[] | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const out: Gtid[] = [];
  for (const part of trimmed.split(',')) {
    const m = /^(\d{1,10})-(\d{1,10})-(\d{1,20})$/.exec(part.trim());
    if (!m) return undefined;
    const domain = Number(m[1]);
    const server = Number(m[2]);
    const seq = BigInt(m[3] ?? '0');
    if (domain > 0xffffffff || server > 0xffffffff || seq > 0xffffffffffffffffn) return undefined;
    out.push({ domain, server, seq });
  }
  return out;
}

export function formatGtidList(list: readonly Gtid[]): string {
  return list.map(formatGtid).join(',');
}

/** Per domain, the GTID with the highest sequence number: a GTID state (what a server has applied). */
export type GtidState = Map<number, Gtid>;

export function stateOf(list: readonly Gtid[]): GtidState {
  const state: GtidState = new Map();
  for (const g of list) advance(state, g);
  return state;
}

/** Records `g` in `state` when it is newer than what its domain holds. */
export function advance(state: GtidState, g: Gtid): void {
  const had = state.get(g.domain);
  if (had === undefined || g.seq > had.seq) state.set(g.domain, { ...g });
}

/** Whether a group with this GTID is already contained in `state`. */
export function applied(state: GtidState, g: Gtid): boolean {
  const had = state.get(g.domain);
  return had !== undefined && g.seq <= had.seq;
}

/** Whether `state` contains every GTID of `target`. */
export function contains(state: GtidState, target: GtidState): boolean {
  for (const g of target.values()) if (!applied(state, g)) return false;
  return true;
}

export function describeState(state: GtidState): string {
  return formatGtidList([...state.values()].sort((a, b) => a.domain - b.domain));
}

/** How a file ends: a Rotate (to the next file) or a Stop (server shutdown) closes it. */
export function closingEvent(ev: BinlogEvent): 'rotate' | 'stop' | undefined {
  if (ev.type === EVENT.ROTATE) return 'rotate';
  if (ev.type === EVENT.STOP) return 'stop';
  return undefined;
}
