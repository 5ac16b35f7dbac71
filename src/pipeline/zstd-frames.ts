import { Duplex, PassThrough, pipeline, Readable } from 'node:stream';
import zlib from 'node:zlib';
import { IntegrityError } from '../errors.js';

/**
 * Node's zstd decoder stops after the first frame and takes a stream cut off mid-frame as complete.
 * Our in-process compressor writes one frame per block, and `zstd` itself may append frames, so
 * the stream is split at frame boundaries here (following RFC 8878's frame layout) and each frame
 * gets its own decoder; input that ends inside a frame is an error, never a short restore.
 */

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

type State =
  'magic' | 'descriptor' | 'header' | 'blockHeader' | 'blockBody' | 'checksum' | 'skipSize' | 'skipBody';

/** A piece of one zstd frame; `end` marks the frame's last bytes. Skippable frames are dropped. */
export interface FramePiece {
  data: Buffer;
  end: boolean;
}

/** Splits a zstd stream into per-frame pieces, incrementally, without copying frame bodies. */
export class ZstdFrameSplitter {
  private state: State = 'magic';
  /** Bytes still needed to finish the current element. */
  private need = 4;
  /** Bytes of a small element (magic, header, block header, size) gathered across chunks. */
  private acc: number[] = [];
  private lastBlock = false;
  private checksum = false;
  private offset = 0;

  /** True while the stream is inside a frame: ending here means it was cut off. */
  get midFrame(): boolean {
    return this.state !== 'magic' || this.acc.length > 0;
  }

  push(chunk: Buffer): FramePiece[] {
    const pieces: FramePiece[] = [];
    // Where in `chunk` the current frame's not yet emitted bytes start; -1 outside a zstd frame.
    let regionStart = this.inFrame() ? 0 : -1;
    let i = 0;
    while (i < chunk.length) {
      const take = Math.min(this.need, chunk.length - i);
      if (this.state !== 'blockBody' && this.state !== 'skipBody') {
        for (let k = 0; k < take; k++) this.acc.push(chunk[i + k] ?? 0);
      }
      i += take;
      this.need -= take;
      if (this.need > 0) break;
      const event = this.advance();
      if (event === 'start') {
        pieces.push({ data: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), end: false });
        regionStart = i;
      } else if (event === 'end') {
        pieces.push({ data: chunk.subarray(regionStart, i), end: true });
        regionStart = -1;
      }
    }
    if (regionStart >= 0 && regionStart < chunk.length)
      pieces.push({ data: chunk.subarray(regionStart), end: false });
    this.offset += chunk.length;
    return pieces;
  }

  private inFrame(): boolean {
    return this.state !== 'magic' && this.state !== 'skipSize' && this.state !== 'skipBody';
  }

  /** The current element is complete: move on, saying when a frame starts or ends. */
  private advance(): 'start' | 'end' | undefined {
    const bytes = Buffer.from(this.acc);
    this.acc = [];
    switch (this.state) {
      case 'magic': {
        const magic = bytes.readUInt32LE(0);
        if (magic === ZSTD_MAGIC) {
          this.next('descriptor', 1);
          return 'start';
        }
        if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) return this.next('skipSize', 4);
        throw new IntegrityError(`The zstd stream is damaged: no frame starts near byte ${this.offset}`, {
          hint: 'The backup is corrupt or not zstd-compressed.',
        });
      }
      case 'descriptor': {
        const d = bytes[0] ?? 0;
        const fcsFlag = d >> 6;
        const singleSegment = (d >> 5) & 1;
        this.checksum = ((d >> 2) & 1) === 1;
        const dictionaryId = [0, 1, 2, 4][d & 3] ?? 0;
        const contentSize = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag] ?? 0;
        const rest = (singleSegment ? 0 : 1) + dictionaryId + contentSize;
        return rest ? this.next('header', rest) : this.next('blockHeader', 3);
      }
      case 'header':
        return this.next('blockHeader', 3);
      case 'blockHeader': {
        const h = bytes.readUIntLE(0, 3);
        this.lastBlock = (h & 1) === 1;
        const type = (h >> 1) & 3;
        if (type === 3) {
          throw new IntegrityError('The zstd stream is damaged: a block has the reserved type', {
            hint: 'The backup is corrupt.',
          });
        }
        const body = type === 1 ? 1 : h >>> 3;
        return body > 0 ? this.next('blockBody', body) : this.afterBlock();
      }
      case 'blockBody':
        return this.afterBlock();
      case 'checksum':
        this.next('magic', 4);
        return 'end';
      case 'skipSize': {
        const size = bytes.readUInt32LE(0);
        return size > 0 ? this.next('skipBody', size) : this.next('magic', 4);
      }
      case 'skipBody':
        return this.next('magic', 4);
    }
  }

  private afterBlock(): 'end' | undefined {
    if (!this.lastBlock) return this.next('blockHeader', 3);
    if (this.checksum) return this.next('checksum', 4);
    this.next('magic', 4);
    return 'end';
  }

  private next(state: State, need: number): undefined {
    this.state = state;
    this.need = need;
    return undefined;
  }
}

/** A zstd decompressor for any number of frames that fails on a stream cut off inside one. */
export function createZstdFramesDecompress(): Duplex {
  // The generator reads a stream of its own: a generator given the duplex's writable side as its
  // source waits forever when an upstream stage fails before its first byte (the duplex is
  // destroyed, the pending read never settles, and the pipeline never ends). Destroying this one
  // ends the read with an error.
  const input = new PassThrough();
  return Duplex.from({ writable: input, readable: Readable.from(decodeFrames(input)) });
}

async function* decodeFrames(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const splitter = new ZstdFrameSplitter();
  const input = source[Symbol.asyncIterator]();
  let queue: FramePiece[] = [];
  let finished = false;
  const nextPiece = async (): Promise<FramePiece | undefined> => {
    while (!queue.length) {
      if (finished) return undefined;
      const r = await input.next();
      if (r.done) {
        finished = true;
        if (splitter.midFrame) {
          throw new IntegrityError('The zstd stream ends in the middle of a frame: it is truncated', {
            hint: 'The backup is incomplete; use another backup.',
          });
        }
      } else queue = splitter.push(Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value));
    }
    return queue.shift();
  };
  for (let first = await nextPiece(); first; first = await nextPiece()) {
    const start = first;
    const frame = async function* (): AsyncGenerator<Buffer> {
      for (let p: FramePiece | undefined = start; p; p = p.end ? undefined : await nextPiece()) {
        if (p.data.length) yield p.data;
      }
    };
    const decoder = pipeline(Readable.from(frame()), zlib.createZstdDecompress(), () => undefined);
    for await (const out of decoder) yield out as Buffer;
  }
}
