import { segmentNumber, segmentTimeline, type WalFileName } from './wal-names.js';

/**
 * The long page header at the start of every WAL segment (XLogLongPageHeaderData, little-endian on
 * the platforms PostgreSQL archives from): it names the cluster, timeline, address and segment size,
 * so a segment can be checked against its own name and the archive with no SQL and no server.
 */
export interface WalLongHeader {
  magic: number;
  info: number;
  timeline: number;
  pageAddress: bigint;
  systemIdentifier: string;
  segmentSize: number;
  blockSize: number;
}

export const LONG_HEADER_BYTES = 40;
/** xlp_info flag: this page carries the long header (the first page of a segment). */
const XLP_LONG_HEADER = 0x0002;

/** The long header of a segment's first bytes; undefined when there are too few bytes. */
export function parseLongHeader(head: Buffer): WalLongHeader | undefined {
  if (head.length < LONG_HEADER_BYTES) return undefined;
  return {
    magic: head.readUInt16LE(0),
    info: head.readUInt16LE(2),
    timeline: head.readUInt32LE(4),
    pageAddress: head.readBigUInt64LE(8),
    systemIdentifier: head.readBigUInt64LE(24).toString(),
    segmentSize: head.readUInt32LE(32),
    blockSize: head.readUInt32LE(36),
  };
}

/** What the archive expects of every segment (from archive.json). */
export interface SegmentExpectation {
  systemIdentifier: string;
  segmentSize: number;
  /** The page magic of the server's major version, when recorded. */
  pageMagic: number | null;
}

/**
 * Every reason the segment file `file` (size `fileSize`, first bytes `head`) must not be archived
 * under its name in this archive; empty when it fits. Only segments and `.partial` files have a
 * header; history and backup history files are text.
 */
export function segmentProblems(
  file: WalFileName,
  fileSize: number,
  head: Buffer,
  expect: SegmentExpectation,
): string[] {
  if (file.kind !== 'segment' && file.kind !== 'partial') return [];
  const segment = file.segment ?? file.name;
  const h = parseLongHeader(head);
  if (!h) return [`it is too short to be a WAL segment (${fileSize} bytes)`];
  const problems: string[] = [];
  if ((h.info & XLP_LONG_HEADER) === 0)
    problems.push('its first page has no long header: it is not the start of a WAL segment');
  if (expect.pageMagic !== null && h.magic !== expect.pageMagic)
    problems.push(
      `its page magic is 0x${h.magic.toString(16).toUpperCase()}, the archive's server writes 0x${expect.pageMagic.toString(16).toUpperCase()} (another PostgreSQL major version)`,
    );
  if (h.systemIdentifier !== expect.systemIdentifier)
    problems.push(
      `it belongs to the cluster with system identifier ${h.systemIdentifier}, the archive to ${expect.systemIdentifier}`,
    );
  if (h.segmentSize !== expect.segmentSize)
    problems.push(
      `its header says segments of ${h.segmentSize} bytes, the archive holds ${expect.segmentSize}`,
    );
  if (fileSize !== expect.segmentSize)
    problems.push(`it is ${fileSize} bytes long, a segment of this archive is ${expect.segmentSize}`);
  // The first segment of a new timeline starts as a copy of its parent's: its first page may carry
  // an older timeline, never a newer one.
  const timeline = segmentTimeline(segment);
  if (h.timeline > timeline || h.timeline === 0)
    problems.push(`its header is on timeline ${h.timeline}, its name says ${timeline}`);
  const address = segmentNumber(segment, expect.segmentSize) * BigInt(expect.segmentSize);
  if (h.pageAddress !== address)
    problems.push(
      `its first page is WAL address 0x${h.pageAddress.toString(16).toUpperCase()}, its name says 0x${address.toString(16).toUpperCase()}`,
    );
  return problems;
}
