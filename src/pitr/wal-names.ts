/**
 * PostgreSQL's WAL file names and positions, and where each file lives in an archive. Pure: no I/O.
 *
 * A segment is named TTTTTTTTXXXXXXXXYYYYYYYY: timeline, then the segment number split into a
 * "log id" and a segment within it, where a log id spans 4 GiB. The split depends on the segment
 * size (initdb --wal-segsize), so every computation here takes it as a parameter.
 */

export type WalFileKind = 'segment' | 'partial' | 'history' | 'backup';

export interface WalFileName {
  kind: WalFileKind;
  /** The name PostgreSQL uses (`%f`). */
  name: string;
  timeline: number;
  /** The 24-hex segment part (segments, partials and backup history files); undefined for `.history`. */
  segment?: string;
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
const PARTIAL = /^([0-9A-F]{24})\.partial$/;
const BACKUP = /^([0-9A-F]{24})\.[0-9A-F]{8}\.backup$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;

/** What kind of WAL archive file `name` is, or undefined when PostgreSQL would never archive it. */
export function parseWalFileName(name: string): WalFileName | undefined {
  if (SEGMENT.test(name)) return { kind: 'segment', name, timeline: hexInt(name.slice(0, 8)), segment: name };
  const partial = PARTIAL.exec(name);
  if (partial?.[1]) return { kind: 'partial', name, timeline: hexInt(name.slice(0, 8)), segment: partial[1] };
  const backup = BACKUP.exec(name);
  if (backup?.[1]) return { kind: 'backup', name, timeline: hexInt(name.slice(0, 8)), segment: backup[1] };
  const history = HISTORY.exec(name);
  if (history?.[1]) return { kind: 'history', name, timeline: hexInt(history[1]) };
  return undefined;
}

function hexInt(hex: string): number {
  return Number.parseInt(hex, 16);
}

function hex8(n: number | bigint): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

/** Valid segment sizes: a power of two from 1 MiB to 1 GiB (initdb --wal-segsize). */
export function isValidSegmentSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 << 20 && size <= 1 << 30 && (size & (size - 1)) === 0;
}

function segmentsPerLogId(segSize: number): bigint {
  return 0x1_0000_0000n / BigInt(segSize);
}

/** The segment number (0-based over the whole WAL) of a 24-hex segment name. */
export function segmentNumber(segment: string, segSize: number): bigint {
  const m = SEGMENT.exec(segment);
  if (!m?.[2] || !m[3]) throw new RangeError(`not a WAL segment name: ${segment}`);
  return BigInt(`0x${m[2]}`) * segmentsPerLogId(segSize) + BigInt(`0x${m[3]}`);
}

/** The timeline of a 24-hex segment name. */
export function segmentTimeline(segment: string): number {
  return hexInt(segment.slice(0, 8));
}

/** The name of segment `segno` on `timeline`. */
export function segmentName(timeline: number, segno: bigint, segSize: number): string {
  const per = segmentsPerLogId(segSize);
  return `${hex8(timeline)}${hex8(segno / per)}${hex8(segno % per)}`;
}

/** Whether a 24-hex segment name is well-formed for this segment size (the low part in range). */
export function segmentFitsSize(segment: string, segSize: number): boolean {
  const m = SEGMENT.exec(segment);
  return Boolean(m?.[3]) && BigInt(`0x${m?.[3]}`) < segmentsPerLogId(segSize);
}

/** An LSN `X/Y` (hex) as a 64-bit number; undefined when it is not one. */
export function parseLsn(text: string): bigint | undefined {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m?.[1] || !m[2]) return undefined;
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/** The segment holding byte `lsn` of the WAL. */
export function segmentOfLsn(timeline: number, lsn: bigint, segSize: number): string {
  return segmentName(timeline, lsn / BigInt(segSize), segSize);
}

/**
 * The segment holding the last byte before `lsn`: a backup's stop LSN that falls exactly on a
 * segment boundary needs only the segment before it (as PostgreSQL's XLByteToPrevSeg).
 */
export function segmentBeforeLsn(timeline: number, lsn: bigint, segSize: number): string {
  return segmentName(timeline, (lsn - 1n) / BigInt(segSize), segSize);
}

// ---- archive layout ----------------------------------------------------------------------------

export const WAL_PREFIX = 'wal/';
export const HISTORY_DIR = `${WAL_PREFIX}history/`;

/** How a stored WAL object is encoded, from its key's suffix. */
export interface StoredEncoding {
  compression: 'zstd' | 'gzip' | 'none';
  encrypted: boolean;
}

export function encodingSuffix(e: StoredEncoding): string {
  const c = e.compression === 'zstd' ? '.zst' : e.compression === 'gzip' ? '.gz' : '';
  return `${c}${e.encrypted ? '.enc' : ''}`;
}

/** The directory of a WAL file in the archive: one per timeline and 4 GiB of WAL, histories apart. */
export function walDirectory(file: WalFileName): string {
  return file.kind === 'history' ? HISTORY_DIR : `${WAL_PREFIX}${file.name.slice(0, 16)}/`;
}

/**
 * Every stored object of `name` starts with this: the SHA-256 of the raw file follows, so one
 * listing answers "is it there, and is it the same file?" (`000…05-` never matches `000…05.partial-`).
 */
export function walKeyPrefix(file: WalFileName): string {
  return `${walDirectory(file)}${file.name}-`;
}

export function walObjectKey(file: WalFileName, sha256: string, encoding: StoredEncoding): string {
  return `${walKeyPrefix(file)}${sha256}${encodingSuffix(encoding)}`;
}

/** A WAL object found in a listing. */
export interface StoredWal {
  key: string;
  file: WalFileName;
  /** SHA-256 of the raw (decrypted, decompressed) file. */
  sha256: string;
  encoding: StoredEncoding;
  size: number;
  modified: Date;
}

const OBJECT_KEY =
  /^wal\/(?:[0-9A-F]{16}|history)\/([0-9A-F]{8}(?:[0-9A-F]{16}(?:\.partial|\.[0-9A-F]{8}\.backup)?|\.history))-([0-9a-f]{64})(\.zst|\.gz)?(\.enc)?$/;

/** A stored WAL object's key → what it holds; undefined for anything else (temporary files, strangers). */
export function parseWalObjectKey(
  key: string,
  info: { size: number; modified: Date } = { size: 0, modified: new Date(0) },
): StoredWal | undefined {
  const m = OBJECT_KEY.exec(key);
  if (!m?.[1] || !m[2]) return undefined;
  const file = parseWalFileName(m[1]);
  if (!file || !key.startsWith(walDirectory(file))) return undefined;
  return {
    key,
    file,
    sha256: m[2],
    encoding: {
      compression: m[3] === '.zst' ? 'zstd' : m[3] === '.gz' ? 'gzip' : 'none',
      encrypted: m[4] === '.enc',
    },
    size: info.size,
    modified: info.modified,
  };
}
