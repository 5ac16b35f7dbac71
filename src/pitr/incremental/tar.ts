import { IntegrityError } from '../../errors.js';

/**
 * The little tar this module writes and reads: ustar headers for regular files and directories,
 * nothing else (the delta stream's own members; the full backup's tar is pg_basebackup's, read
 * by GNU tar).
 */

const BLOCK = 512;

function octal(buf: Buffer, value: number, offset: number, length: number): void {
  buf.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'ascii');
}

/** A ustar header; names over 100 bytes are split into prefix and name at a slash. */
export function tarHeader(name: string, size: number, type: 'file' | 'dir' = 'file'): Buffer {
  const h = Buffer.alloc(BLOCK);
  let base = name;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100)
      throw new IntegrityError(`Path too long for the delta tar: ${name}`);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  h.write(base, 0, 100, 'utf8');
  octal(h, type === 'dir' ? 0o700 : 0o600, 100, 8);
  octal(h, 0, 108, 8);
  octal(h, 0, 116, 8);
  octal(h, size, 124, 12);
  octal(h, Math.floor(Date.now() / 1000), 136, 12);
  h.write('        ', 148, 8, 'ascii');
  h.write(type === 'dir' ? '5' : '0', 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

export function tarPadding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest ? BLOCK - rest : 0);
}

export const TAR_END = Buffer.alloc(BLOCK * 2);

export interface TarMember {
  name: string;
  size: number;
  type: 'file' | 'dir';
}

function field(h: Buffer, offset: number, length: number): string {
  const raw = h.subarray(offset, offset + length);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? length : nul).toString('utf8');
}

/** Parses one header block; undefined for a zero block (the end marker). */
export function parseTarHeader(h: Buffer): TarMember | undefined {
  if (h.every((b) => b === 0)) return undefined;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (h[i] ?? 0);
  if (parseInt(field(h, 148, 8).trim(), 8) !== sum)
    throw new IntegrityError('Delta tar: bad header checksum');
  const prefix = field(h, 345, 155);
  const base = field(h, 0, 100);
  const flag = String.fromCharCode(h[156] ?? 48);
  if (flag !== '0' && flag !== '5' && flag !== '\0')
    throw new IntegrityError(`Delta tar: unexpected member type ${flag} for ${base}`);
  return {
    name: prefix ? `${prefix}/${base}` : base,
    size: parseInt(field(h, 124, 12).trim() || '0', 8),
    type: flag === '5' ? 'dir' : 'file',
  };
}

/**
 * Feeds a tar stream chunk by chunk to a handler: `begin` per member, `data` with its bytes in
 * order, `end` after its last byte. Async handlers are awaited in order (the caller's Writable
 * waits for `push`).
 */
export interface TarHandler {
  begin(m: TarMember): Promise<void>;
  data(m: TarMember, chunk: Buffer): Promise<void>;
  end(m: TarMember): Promise<void>;
}

export class TarReader {
  private header = Buffer.alloc(BLOCK);
  private fill = 0;
  private member: TarMember | undefined;
  private left = 0;
  private pad = 0;
  private zeros = 0;

  constructor(private readonly handler: TarHandler) {}

  get complete(): boolean {
    return this.zeros >= 2;
  }

  async push(chunk: Buffer): Promise<void> {
    let i = 0;
    while (i < chunk.length) {
      if (this.member && this.left > 0) {
        const n = Math.min(this.left, chunk.length - i);
        await this.handler.data(this.member, chunk.subarray(i, i + n));
        this.left -= n;
        i += n;
        if (this.left === 0) await this.finishMember();
        continue;
      }
      if (this.pad > 0) {
        const n = Math.min(this.pad, chunk.length - i);
        this.pad -= n;
        i += n;
        continue;
      }
      const n = Math.min(BLOCK - this.fill, chunk.length - i);
      chunk.copy(this.header, this.fill, i, i + n);
      this.fill += n;
      i += n;
      if (this.fill < BLOCK) continue;
      this.fill = 0;
      if (this.complete) continue;
      const m = parseTarHeader(this.header);
      if (!m) {
        this.zeros++;
        continue;
      }
      this.member = m;
      this.left = m.type === 'dir' ? 0 : m.size;
      await this.handler.begin(m);
      if (this.left === 0) await this.finishMember();
    }
  }

  private async finishMember(): Promise<void> {
    const m = this.member;
    if (!m) return;
    this.member = undefined;
    this.pad = m.type === 'dir' ? 0 : tarPadding(m.size).length;
    await this.handler.end(m);
  }
}
