import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { IntegrityError } from '../../errors.js';

/**
 * A pass-through that reads the xbstream format mariadb-backup streams (as TarTap reads
 * pg_basebackup's tar): chunks of `XBSTCK01`, flags, type, path, then — for payload chunks — length,
 * offset, CRC32 and the bytes. It proves the stream ends on a chunk boundary with every file closed
 * by its EOF chunk, counts files and bytes, and keeps the small files that describe the backup
 * (xtrabackup_checkpoints, xtrabackup_binlog_info, xtrabackup_info, backup-my.cnf).
 */

const MAGIC = Buffer.from('XBSTCK01', 'latin1');
const FIXED = 14; // magic, flags, type, path length
const PAYLOAD_HEAD = 20; // length, offset, checksum
const FLAG_IGNORABLE = 0x01;
const MAX_CAPTURE = 1024 * 1024;

export const BACKUP_INFO_FILES = [
  'xtrabackup_checkpoints',
  'xtrabackup_binlog_info',
  'xtrabackup_info',
  'backup-my.cnf',
] as const;

interface Chunk {
  type: string;
  path: string;
  flags: number;
  left: number;
  offset: number;
  crc: number;
}

export class XbstreamTap extends Transform {
  /** Raw stream bytes seen. */
  bytes = 0;
  /** Payload bytes of all files. */
  payloadBytes = 0;
  readonly files = new Set<string>();
  readonly captured = new Map<string, Buffer>();
  private readonly open = new Set<string>();
  private head: Buffer[] = [];
  private headBytes = 0;
  /** What the next header read is for, and how long it must be. */
  private want: { kind: 'fixed' | 'path' | 'payload-head'; n: number } = { kind: 'fixed', n: FIXED };
  /** The payload being read. */
  private chunk: Chunk | undefined;
  /** A payload chunk whose path is read, waiting for its length, offset and checksum. */
  private next: Chunk | undefined;
  private pathLen = 0;
  private flags = 0;
  private type = '';
  private crc = 0;
  private capturing: Buffer[] | undefined;
  /** Bytes parsed so far (where a damaged header starts). */
  private parsed = 0;

  constructor(
    private readonly capture: readonly string[] = BACKUP_INFO_FILES,
    /** Check every payload's CRC32 (verify-backup --deep); off for backups, where mbstream checks them on restore. */
    private readonly checkPayloads = false,
  ) {
    super();
  }

  /** The stream ended where a chunk ends, and every file it opened was closed. */
  get complete(): boolean {
    return (
      this.chunk === undefined &&
      this.next === undefined &&
      this.headBytes === 0 &&
      this.want.kind === 'fixed' &&
      this.open.size === 0 &&
      this.files.size > 0
    );
  }

  /** Why the stream is not complete, for a message. */
  get problem(): string {
    if (this.files.size === 0) return 'it holds no files';
    if (this.chunk || this.next || this.headBytes || this.want.kind !== 'fixed')
      return `it ends inside a chunk (after ${this.bytes} bytes)`;
    if (this.open.size)
      return `${this.open.size} file(s) have no end marker, e.g. ${[...this.open][0] ?? ''}`;
    return '';
  }

  override _transform(data: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.bytes += data.length;
      this.parse(data);
      cb(null, data);
    } catch (err) {
      cb(err as Error);
    }
  }

  private parse(data: Buffer): void {
    let pos = 0;
    while (pos < data.length) {
      if (this.chunk) {
        const n = Math.min(this.chunk.left, data.length - pos);
        const part = data.subarray(pos, pos + n);
        if (this.capturing) this.capturing.push(Buffer.from(part));
        if (this.checkPayloads) this.crc = zlib.crc32(part, this.crc);
        this.chunk.left -= n;
        this.payloadBytes += n;
        this.parsed += n;
        pos += n;
        if (this.chunk.left === 0) this.endPayload();
        continue;
      }
      const take = Math.min(this.want.n - this.headBytes, data.length - pos);
      this.head.push(data.subarray(pos, pos + take));
      this.headBytes += take;
      this.parsed += take;
      pos += take;
      if (this.headBytes < this.want.n) break;
      const h = Buffer.concat(this.head);
      this.head = [];
      this.headBytes = 0;
      this.header(h);
    }
  }

  private header(h: Buffer): void {
    if (this.want.kind === 'fixed') {
      if (!h.subarray(0, 8).equals(MAGIC))
        throw new IntegrityError(`the xbstream is damaged at byte ${this.parsed - h.length}: no chunk magic`);
      this.flags = h[8] ?? 0;
      this.type = String.fromCharCode(h[9] ?? 0);
      this.pathLen = h.readUInt32LE(10);
      if (this.pathLen === 0 || this.pathLen >= 4096)
        throw new IntegrityError(`the xbstream is damaged: a path of ${this.pathLen} bytes`);
      this.want = { kind: 'path', n: this.pathLen };
      return;
    }
    if (this.want.kind === 'path') {
      const file = h.toString('utf8');
      if (this.type === 'E') {
        this.open.delete(file);
        this.files.add(file);
        this.want = { kind: 'fixed', n: FIXED };
        return;
      }
      if (this.type !== 'P' && !(this.flags & FLAG_IGNORABLE))
        throw new IntegrityError(`the xbstream holds a chunk of unknown type "${this.type}" (${file})`);
      this.next = { type: this.type, path: file, flags: this.flags, left: 0, offset: 0, crc: 0 };
      this.want = { kind: 'payload-head', n: PAYLOAD_HEAD };
      return;
    }
    const c = this.next;
    this.next = undefined;
    if (!c) throw new IntegrityError('the xbstream reader lost its place');
    const length = h.readBigUInt64LE(0);
    if (length > BigInt(Number.MAX_SAFE_INTEGER))
      throw new IntegrityError(`the xbstream is damaged: a chunk of ${length} bytes`);
    c.left = Number(length);
    c.offset = Number(h.readBigUInt64LE(8));
    c.crc = h.readUInt32LE(16);
    this.crc = 0;
    if (c.type === 'P') {
      this.open.add(c.path);
      this.files.add(c.path);
    }
    this.capturing = this.capture.includes(c.path) && c.offset + c.left <= MAX_CAPTURE ? [] : undefined;
    this.want = { kind: 'fixed', n: FIXED };
    this.chunk = c;
    if (c.left === 0) this.endPayload();
  }

  private endPayload(): void {
    const c = this.chunk;
    this.chunk = undefined;
    if (!c) return;
    if (this.checkPayloads && c.type === 'P' && this.crc >>> 0 !== c.crc >>> 0)
      throw new IntegrityError(`the xbstream is damaged: a chunk of ${c.path} does not match its CRC32`);
    if (this.capturing) {
      const bytes = Buffer.concat(this.capturing);
      const had = this.captured.get(c.path) ?? Buffer.alloc(0);
      const whole = Buffer.alloc(Math.max(had.length, c.offset + bytes.length));
      had.copy(whole);
      bytes.copy(whole, c.offset);
      this.captured.set(c.path, whole);
    }
    this.capturing = undefined;
  }
}

/** `key = value` lines (xtrabackup_checkpoints, xtrabackup_info). */
export function keyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m?.[1]) out[m[1]] = m[2] ?? '';
  }
  return out;
}
