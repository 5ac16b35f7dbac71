import type { CompressionAlgorithm, DumpFormat, Engine } from '../types.js';

/** What the first bytes of a backup say it is, whatever its name. */
export interface DetectedFormat {
  /** Encrypted with dbbackup's format: compression and format are those of the decrypted bytes. */
  encrypted: boolean;
  compression: CompressionAlgorithm;
  /** `postgres` for PostgreSQL dumps, `mysql` for MySQL and MariaDB dumps (same format). */
  engine: Engine | null;
  format: DumpFormat | null;
  /** PostgreSQL custom-format header facts, when present. */
  pgHeader?: PgDumpHeader;
  /** The (decompressed) content is a tar archive, e.g. a reference-tool `cluster_<ts>.tar.gz`. */
  tar?: boolean;
}

export interface PgDumpHeader {
  archiveVersion: string;
  database: string | null;
  serverVersion: string | null;
  dumpVersion: string | null;
}

/** Classify an (already decompressed) prefix of a dump. */
export function detectDump(head: Buffer): Pick<DetectedFormat, 'engine' | 'format' | 'pgHeader' | 'tar'> {
  if (head.subarray(0, 5).toString('latin1') === 'PGDMP') {
    return { engine: 'postgres', format: 'custom', pgHeader: parsePgDumpHeader(head) ?? undefined };
  }
  const text = head.subarray(0, 4096).toString('utf8');
  if (/^--\s*PostgreSQL database dump\b/m.test(text)) return { engine: 'postgres', format: 'plain' };
  if (/^--\s*(MySQL|MariaDB) dump\b/m.test(text) || /^\/\*!\d{5} SET /m.test(text))
    return { engine: 'mysql', format: 'plain' };
  if (isTarHeader(head)) return { engine: null, format: null, tar: true };
  return { engine: null, format: null };
}

/**
 * A tar header block: the POSIX/GNU magic `ustar` at offset 257, or (old v7 archives without it) a
 * valid header checksum — the sum of the 512 bytes with the checksum field counted as spaces.
 */
export function isTarHeader(head: Buffer): boolean {
  if (head.length < 512) return false;
  if (head.subarray(257, 262).toString('latin1') === 'ustar') return true;
  const field = head.subarray(148, 156).toString('latin1').replace(/\0.*$/s, '').trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : head.readUInt8(i);
  return sum === Number.parseInt(field, 8);
}

/**
 * The custom-format header (pg_backup_archiver.c, ReadHead): magic, version bytes, int and offset
 * sizes, format, compression, creation time, then database name and the server and pg_dump versions.
 */
export function parsePgDumpHeader(buf: Buffer): PgDumpHeader | null {
  try {
    let pos = 5;
    const vmaj = buf.readUInt8(pos++);
    const vmin = buf.readUInt8(pos++);
    pos++; // vrev
    const intSize = buf.readUInt8(pos++);
    pos++; // offSize
    pos++; // format
    const readInt = (): number => {
      const negative = buf.readUInt8(pos++) !== 0;
      let value = 0;
      for (let i = 0; i < intSize; i++) value += buf.readUInt8(pos++) * 2 ** (8 * i);
      return negative ? -value : value;
    };
    const readStr = (): string | null => {
      const len = readInt();
      if (len < 0) return null;
      const s = buf.subarray(pos, pos + len).toString('utf8');
      if (pos + len > buf.length) throw new RangeError('short header');
      pos += len;
      return s;
    };
    if (vmaj > 1 || (vmaj === 1 && vmin >= 15))
      pos++; // compression algorithm byte
    else readInt(); // compression level
    for (let i = 0; i < 7; i++) readInt(); // creation time
    const database = readStr();
    const serverVersion = readStr();
    const dumpVersion = readStr();
    return { archiveVersion: `${vmaj}.${vmin}`, database, serverVersion, dumpVersion };
  } catch {
    return null;
  }
}

/**
 * The dump tool's version as the dump itself records it in its first bytes: a custom archive's
 * header, `-- Dumped by pg_dump version 15.20`, `-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB`.
 * Null when the head says nothing recognisable (the caller then asks the program).
 */
export function dumpToolVersionFromHead(head: Buffer | undefined): string | null {
  if (!head?.length) return null;
  const raw =
    head.subarray(0, 5).toString('latin1') === 'PGDMP'
      ? parsePgDumpHeader(head)?.dumpVersion
      : (/^-- Dumped by pg_dump version (.+)$/m.exec(head.toString('utf8'))?.[1] ??
        /^-- (?:MySQL|MariaDB) dump .*$/m.exec(head.toString('utf8'))?.[0]);
  if (!raw) return null;
  // As parseVersion (engines/tools.ts) reads a --version banner: the Distrib version first.
  const distrib = /Distrib\s+(\d+\.\d+(?:\.\d+)?)/.exec(raw);
  if (distrib?.[1]) return distrib[1];
  return /(\d+\.\d+(?:\.\d+)?)/.exec(raw)?.[1] ?? null;
}
