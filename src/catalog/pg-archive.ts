import { Transform, type TransformCallback } from 'node:stream';

/**
 * A walk over a PostgreSQL custom-format archive as pg_dump streams it (pg_backup_archiver.c
 * WriteHead/WriteToc, pg_backup_custom.c): the header, every table-of-contents entry, then each
 * data block (type, dump id, length-prefixed chunks ending with a zero length; a large-object block
 * holds OID-introduced runs of chunks ending with a zero OID), up to the end of the stream.
 *
 * Why it exists (issue 16): a backup used to read its stored archive back through `pg_restore
 * --list`, a second process, to prove the archive's table of contents is readable. pg_restore
 * --list reads only the header and the TOC. Walking the bytes already flowing through the write
 * pipeline proves the same (every field pg_restore's ReadHead/ReadToc reads, in the same order, per
 * archive version) and more: a streamed archive has no data offsets, so pg_restore finds each
 * entry's data by reading the blocks in order — the walk checks that every entry that has data
 * (offset flag "not set" or "set") has exactly one block, that no block names an unknown entry,
 * and that the stream ends on a block boundary. A dump cut short at any point after its header
 * fails here, before the backup is committed; `pg_restore --list` would have passed one cut in its
 * data section.
 *
 * Only archive versions 1.12 to 1.16 (PostgreSQL 9.x to 17) are walked: a newer version (a newer
 * pg_dump) may lay out its entries differently, and is reported as `unknown`, for which the caller
 * falls back to reading the stored archive back with pg_restore --list.
 */

const BLK_DATA = 1;
const BLK_BLOBS = 3;
const K_OFFSET_POS_NOT_SET = 1;
const K_OFFSET_POS_SET = 2;
const K_OFFSET_NO_DATA = 3;
const MIN_MINOR = 12;
const MAX_MINOR = 16;

export type PgArchiveVerdict =
  | { state: 'valid'; entries: number; dataBlocks: number; dumpVersion: string | null }
  | { state: 'invalid'; problem: string }
  | { state: 'unknown'; reason: string };

class Short extends Error {}
class Bad extends Error {}

/** Reads ints and strings the archive's way out of a buffer; throws Short when it runs out. */
class Cursor {
  pos = 0;
  /** Where the last complete item ended: what may be dropped from the pending bytes. */
  mark = 0;
  constructor(
    readonly buf: Buffer,
    readonly intSize: number,
  ) {}

  byte(): number {
    if (this.pos >= this.buf.length) throw new Short();
    return this.buf[this.pos++] ?? 0;
  }

  /** ReadInt: a sign byte, then intSize bytes, least significant first. */
  int(): number {
    if (this.pos + 1 + this.intSize > this.buf.length) throw new Short();
    const negative = this.buf[this.pos++] !== 0;
    let value: number;
    if (this.intSize === 4) {
      // Every pg_dump writes 4-byte ints; a --jobs restore reads one per row of a -Z0 archive.
      value = this.buf.readUInt32LE(this.pos);
      this.pos += 4;
    } else {
      value = 0;
      for (let i = 0, f = 1; i < this.intSize; i++, f *= 256) value += (this.buf[this.pos++] ?? 0) * f;
    }
    return negative ? -value : value;
  }

  /** ReadStr: a length (negative: NULL), then that many bytes. */
  str(): string | null {
    const len = this.int();
    if (len < 0) return null;
    if (this.pos + len > this.buf.length) throw new Short();
    const s = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    return s;
  }

  skip(n: number): void {
    if (this.pos + n > this.buf.length) throw new Short();
    this.pos += n;
  }
}

type Phase = 'header' | 'toc' | 'blocks' | 'done';

export class PgArchiveWalk {
  private pending: Buffer = Buffer.alloc(0);
  private phase: Phase = 'header';
  private minor = 0;
  private intSize = 4;
  private offSize = 8;
  private dumpVersion: string | null = null;
  private tocCount = 0;
  private tocRead = 0;
  /** Dump ids of entries that have data, and whether their block was seen. */
  private readonly withData = new Map<number, boolean>();
  private dataBlocks = 0;
  /** Bytes of the current chunk still to skip. */
  private skipping = 0;
  /** Inside a block: reading chunk lengths of table data, or large objects (OID runs). */
  private block: 'none' | 'data' | 'lo-oid' | 'lo-data' = 'none';
  private verdict: PgArchiveVerdict | undefined;
  /** Where in the archive pending[0] lies: positions below are absolute. */
  private base = 0;
  /** Entries with data whose offset is "not set": where their offset flag byte lies. */
  private readonly unsetFields = new Map<number, number>();
  /** Where each data block starts (its type byte), by dump id. */
  private readonly blockStarts = new Map<number, number>();

  /** Feeds the next bytes of the archive. */
  push(chunk: Buffer): void {
    if (this.verdict) return;
    try {
      let data = chunk;
      if (this.skipping > 0) {
        const n = Math.min(this.skipping, data.length);
        this.skipping -= n;
        this.base += n;
        data = data.subarray(n);
        if (!data.length) return;
      }
      this.pending = this.pending.length ? Buffer.concat([this.pending, data]) : data;
      this.advance();
    } catch (err) {
      this.verdict = err instanceof Bad ? { state: 'invalid', problem: err.message } : this.fail(err);
    }
  }

  /** The verdict once the stream has ended. */
  end(): PgArchiveVerdict {
    if (this.verdict) return this.verdict;
    if (this.phase === 'header' || this.phase === 'toc')
      return { state: 'invalid', problem: 'the archive ends inside its table of contents' };
    if (this.skipping > 0 || this.pending.length > 0 || this.block !== 'none')
      return { state: 'invalid', problem: 'the archive ends inside a data block' };
    const missing = [...this.withData].filter(([, seen]) => !seen).map(([id]) => id);
    if (missing.length)
      return {
        state: 'invalid',
        problem: `the archive ends before the data of ${missing.length} of its entries (first: dump id ${missing[0]})`,
      };
    return {
      state: 'valid',
      entries: this.tocCount,
      dataBlocks: this.dataBlocks,
      dumpVersion: this.dumpVersion,
    };
  }

  /** The table of contents has been read, and no entry lacks its data offset: the blocks need no walk. */
  offsetsComplete(): boolean {
    return this.phase !== 'header' && this.phase !== 'toc' && this.unsetFields.size === 0;
  }

  /**
   * For a valid archive (after end()): each entry whose offset is "not set", where its offset flag
   * lies and where its data block starts — what pg_dump would have written had it been able to seek.
   */
  missingOffsets(): { offSize: number; entries: Array<{ field: number; block: number }> } | undefined {
    if (this.end().state !== 'valid') return undefined;
    const entries: Array<{ field: number; block: number }> = [];
    for (const [id, field] of this.unsetFields) {
      const block = this.blockStarts.get(id);
      if (block !== undefined) entries.push({ field, block });
    }
    return { offSize: this.offSize, entries };
  }

  private fail(err: unknown): PgArchiveVerdict {
    return { state: 'invalid', problem: err instanceof Error ? err.message : String(err) };
  }

  private advance(): void {
    while (this.pending.length && !this.verdict) {
      const c = new Cursor(this.pending, this.intSize);
      try {
        if (this.phase === 'header') this.readHeader(c);
        else if (this.phase === 'toc') this.readEntry(c);
        else this.readBlocks(c);
        this.consume(c.mark);
      } catch (err) {
        if (!(err instanceof Short)) throw err;
        // Not enough bytes for the next item: keep them (re-read from its start with more).
        this.consume(c.mark);
        return;
      }
    }
  }

  private consume(n: number): void {
    this.base += n;
    this.pending = n >= this.pending.length ? Buffer.alloc(0) : this.pending.subarray(n);
  }

  private readHeader(c: Cursor): void {
    if (c.buf.length < 12) throw new Short();
    if (c.buf.toString('latin1', 0, 5) !== 'PGDMP') throw new Bad('it does not start with "PGDMP"');
    c.skip(5);
    const major = c.byte();
    const minor = c.byte();
    c.byte(); // revision
    const intSize = c.byte();
    const offSize = c.byte();
    const format = c.byte();
    if (format !== 1) throw new Bad(`it is not a custom-format archive (format ${format})`);
    if (major !== 1 || minor < MIN_MINOR || minor > MAX_MINOR || intSize < 1 || intSize > 6 || offSize > 16) {
      this.verdict = {
        state: 'unknown',
        reason: `archive version ${major}.${minor} (int ${intSize}, offset ${offSize} bytes)`,
      };
      return;
    }
    const h = new Cursor(c.buf, intSize);
    h.pos = c.pos;
    if (minor >= 15)
      h.byte(); // compression algorithm
    else h.int(); // compression level
    for (let i = 0; i < 7; i++) h.int(); // creation time
    h.str(); // database name
    h.str(); // server version
    this.dumpVersion = h.str();
    const count = h.int();
    if (count < 0) throw new Bad(`its table of contents has ${count} entries`);
    c.pos = h.pos;
    this.minor = minor;
    this.intSize = intSize;
    this.offSize = offSize;
    this.tocCount = count;
    this.phase = count > 0 ? 'toc' : 'blocks';
    c.mark = c.pos;
  }

  /** One TOC entry, field by field as ReadToc reads them, with the custom format's data offset. */
  private readEntry(c: Cursor): void {
    const id = c.int();
    if (id <= 0) throw new Bad(`a table-of-contents entry has id ${id}`);
    c.int(); // hadDumper
    c.str(); // table oid
    c.str(); // oid
    c.str(); // tag
    c.str(); // desc
    c.int(); // section
    c.str(); // defn
    c.str(); // dropStmt
    c.str(); // copyStmt
    c.str(); // namespace
    c.str(); // tablespace
    if (this.minor >= 14) c.str(); // table access method
    if (this.minor >= 16) c.int(); // relkind
    c.str(); // owner
    c.str(); // "false" (WITH OIDS)
    while (c.str() !== null); // dependencies, ended by NULL
    const flagAt = this.base + c.pos;
    const flag = c.byte();
    c.skip(this.offSize);
    if (flag === K_OFFSET_POS_NOT_SET || flag === K_OFFSET_POS_SET) {
      if (this.withData.has(id)) throw new Bad(`dump id ${id} appears twice in the table of contents`);
      this.withData.set(id, false);
      if (flag === K_OFFSET_POS_NOT_SET) this.unsetFields.set(id, flagAt);
    } else if (flag !== K_OFFSET_NO_DATA) throw new Bad(`entry ${id} has data offset flag ${flag}`);
    this.tocRead++;
    if (this.tocRead === this.tocCount) this.phase = 'blocks';
    c.mark = c.pos;
  }

  private readBlocks(c: Cursor): void {
    for (;;) {
      if (this.block === 'none') {
        const at = this.base + c.pos;
        const type = c.byte();
        const id = c.int();
        if (type !== BLK_DATA && type !== BLK_BLOBS) throw new Bad(`a data block has type ${type}`);
        const seen = this.withData.get(id);
        if (seen === undefined) throw new Bad(`a data block names dump id ${id}, which has no data entry`);
        if (seen) throw new Bad(`the data of dump id ${id} appears twice`);
        this.withData.set(id, true);
        this.blockStarts.set(id, at);
        this.dataBlocks++;
        this.block = type === BLK_DATA ? 'data' : 'lo-oid';
        c.mark = c.pos;
      } else if (this.block === 'lo-oid') {
        const oid = c.int();
        this.block = oid === 0 ? 'none' : 'lo-data';
        c.mark = c.pos;
      } else {
        const len = c.int();
        if (len < 0) throw new Bad(`a data chunk has length ${len}`);
        if (len === 0) {
          this.block = this.block === 'data' ? 'none' : 'lo-oid';
          c.mark = c.pos;
          if (c.pos >= c.buf.length) return;
          continue;
        }
        const here = Math.min(len, c.buf.length - c.pos);
        c.pos += here;
        c.mark = c.pos;
        if (here < len) {
          // The rest of this chunk arrives later: skipped as it comes, never buffered.
          this.skipping = len - here;
          return;
        }
      }
      if (c.pos >= c.buf.length) return;
    }
  }
}

/** A pass-through stage that walks the archive flowing through it; `verdict()` once it has ended. */
export class PgArchiveCheck extends Transform {
  private readonly walk = new PgArchiveWalk();
  private result: PgArchiveVerdict | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.walk.push(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.result = this.walk.end();
    cb();
  }

  /** undefined until the stream has ended. */
  verdict(): PgArchiveVerdict | undefined {
    return this.result;
  }

  /** After the end of a valid archive: the offsets pg_dump could not write (see PgArchiveWalk). */
  missingOffsets(): ReturnType<PgArchiveWalk['missingOffsets']> {
    return this.result ? this.walk.missingOffsets() : undefined;
  }
}
