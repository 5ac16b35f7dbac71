import { createHash } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import { parseLsn } from './wal-names.js';

/**
 * The server's backup_manifest (PostgreSQL 13+): every file of the backup with size and checksum,
 * the WAL range the backup needs, and a SHA-256 of the manifest itself. Pure.
 */
export interface BackupManifest {
  files: Array<{ path: string; size: number; checksumAlgorithm: string; checksum: string }>;
  walRanges: Array<{ timeline: number; startLsn: bigint; endLsn: bigint }>;
  checksumAlgorithm: string;
}

interface RawManifest {
  'PostgreSQL-Backup-Manifest-Version'?: number;
  Files?: Array<{
    Path?: string;
    'Encoded-Path'?: string;
    Size?: number;
    'Checksum-Algorithm'?: string;
    Checksum?: string;
  }>;
  'WAL-Ranges'?: Array<{ Timeline?: number; 'Start-LSN'?: string; 'End-LSN'?: string }>;
  'Manifest-Checksum'?: string;
}

/** Parses and checks a backup_manifest; IntegrityError when it is damaged. */
export function parseBackupManifest(bytes: Buffer): BackupManifest {
  const text = bytes.toString('utf8');
  // The manifest's own checksum covers everything before its last line.
  const lastLine = text.lastIndexOf('\n', text.length - 2);
  const covered = bytes.subarray(0, Buffer.byteLength(text.slice(0, lastLine + 1)));
  let raw: RawManifest;
  try {
    raw = JSON.parse(text) as RawManifest;
  } catch {
    throw new IntegrityError('The backup_manifest is not valid JSON');
  }
  const expected = raw['Manifest-Checksum'];
  const actual = createHash('sha256').update(covered).digest('hex');
  if (!expected || expected.toLowerCase() !== actual)
    throw new IntegrityError(
      `The backup_manifest does not match its own checksum (expected ${expected ?? 'none'}, computed ${actual})`,
    );
  const walRanges = (raw['WAL-Ranges'] ?? []).map((r) => {
    const start = parseLsn(r['Start-LSN'] ?? '');
    const end = parseLsn(r['End-LSN'] ?? '');
    if (start === undefined || end === undefined || !r.Timeline)
      throw new IntegrityError('The backup_manifest has a malformed WAL range');
    return { timeline: r.Timeline, startLsn: start, endLsn: end };
  });
  if (!walRanges.length) throw new IntegrityError('The backup_manifest names no WAL range');
  const files = (raw.Files ?? []).map((f) => ({
    path: f.Path ?? Buffer.from(f['Encoded-Path'] ?? '', 'hex').toString('utf8'),
    size: f.Size ?? 0,
    checksumAlgorithm: f['Checksum-Algorithm'] ?? 'NONE',
    checksum: f.Checksum ?? '',
  }));
  return { files, walRanges, checksumAlgorithm: files[0]?.checksumAlgorithm ?? 'NONE' };
}
