/**
 * Synthetic MariaDB binlog files for unit tests: the event framing the server writes (19-byte
 * headers, next positions, CRC32 trailers), with just enough bodies for GTIDs, commits and rotation.
 */
import zlib from 'node:zlib';
import { BINLOG_MAGIC, EVENT } from '../../src/pitr/binlog/events.js';

export interface FakeTx {
  seq: number;
  time: number;
  domain?: number;
  /** DDL: a standalone group (one Query event, no XID). */
  ddl?: boolean;
  /** Row events of this many bytes each. */
  rows?: number[];
}

export class BinlogBuilder {
  private readonly parts: Buffer[] = [BINLOG_MAGIC];
  private pos = BINLOG_MAGIC.length;

  constructor(
    private readonly serverId = 1,
    created = 1_800_000_000,
    startGtids: Array<{ domain: number; server: number; seq: number }> = [],
  ) {
    // Format description: binlog v4, server version, create time, header length, post-header lengths, CRC32.
    const fde = Buffer.alloc(2 + 50 + 4 + 1 + 10 + 1);
    fde.writeUInt16LE(4, 0);
    fde.write('10.11.19-MariaDB-log', 2, 'latin1');
    fde.writeUInt32LE(created, 52);
    fde[56] = 19;
    fde[fde.length - 1] = 1;
    this.event(EVENT.FORMAT_DESCRIPTION, fde, created);
    const list = Buffer.alloc(4 + startGtids.length * 16);
    list.writeUInt32LE(startGtids.length, 0);
    startGtids.forEach((g, i) => {
      list.writeUInt32LE(g.domain, 4 + i * 16);
      list.writeUInt32LE(g.server, 8 + i * 16);
      list.writeBigUInt64LE(BigInt(g.seq), 12 + i * 16);
    });
    this.event(EVENT.GTID_LIST, list, created);
  }

  get length(): number {
    return this.pos;
  }

  event(type: number, body: Buffer, time: number): { start: number; end: number } {
    const size = 19 + body.length + 4;
    const head = Buffer.alloc(19);
    head.writeUInt32LE(time, 0);
    head[4] = type;
    head.writeUInt32LE(this.serverId, 5);
    head.writeUInt32LE(size, 9);
    head.writeUInt32LE(this.pos + size, 13);
    const without = Buffer.concat([head, body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(zlib.crc32(without), 0);
    const start = this.pos;
    this.parts.push(without, crc);
    this.pos += size;
    return { start, end: this.pos };
  }

  query(text: string, time: number): void {
    const post = Buffer.alloc(13);
    post[8] = 4; // db length
    this.event(EVENT.QUERY, Buffer.concat([post, Buffer.from('shop\0'), Buffer.from(text)]), time);
  }

  tx(t: FakeTx): { start: number; end: number } {
    const g = Buffer.alloc(13);
    g.writeBigUInt64LE(BigInt(t.seq), 0);
    g.writeUInt32LE(t.domain ?? 0, 8);
    g[12] = t.ddl ? 1 : 0;
    const { start } = this.event(EVENT.GTID, g, t.time);
    if (t.ddl) {
      this.query('CREATE TABLE x (id int)', t.time);
      return { start, end: this.pos };
    }
    for (const n of t.rows ?? [40]) this.event(30, Buffer.alloc(n, 7), t.time);
    this.event(EVENT.XID, Buffer.alloc(8), t.time);
    return { start, end: this.pos };
  }

  rotate(next: string, time: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(4n, 0);
    this.event(EVENT.ROTATE, Buffer.concat([b, Buffer.from(next, 'latin1')]), time);
  }

  stop(time: number): void {
    this.event(EVENT.STOP, Buffer.alloc(0), time);
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Splits a buffer into pieces of `size` bytes (the last shorter). */
export function pieces(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}
