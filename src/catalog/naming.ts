import { engineFamily } from '../engines/family.js';
import type { CompressionAlgorithm, DumpFormat, Engine } from '../types.js';

export type { DumpFormat, Engine };

export const META_SUFFIX = '.meta.json';
export const SHA256_SUFFIX = '.sha256';
export const SIDECAR_SUFFIXES = [META_SUFFIX, SHA256_SUFFIX];

/**
 * Database names can hold any character; file names should not. Keep letters, digits, '-', '_'
 * and '.', and percent-encode every other byte (including '%' itself), so two different names can
 * never map to the same file name and the original can always be recovered.
 */
export function safeName(database: string): string {
  const encoded = Array.from(Buffer.from(database, 'utf8'))
    .map((byte) => {
      const ch = String.fromCharCode(byte);
      return /[A-Za-z0-9_.-]/.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    })
    .join('');
  // A leading dot would hide the file; encode it.
  return encoded.startsWith('.') ? `%2E${encoded.slice(1)}` : encoded;
}

export function unsafeName(safe: string): string {
  return decodeURIComponent(safe);
}

/** `YYYYMMDD_HHMMSS` in UTC: sortable, unambiguous across DST changes. */
export function timestampTag(date: Date): string {
  const iso = date.toISOString(); // 2026-11-26T05:00:37.123Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}_${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
}

export function extensionFor(
  engine: Engine,
  format: DumpFormat,
  compression: CompressionAlgorithm,
  encrypted = false,
): string {
  const base = engineFamily(engine).dumpExtension(format);
  const suffix = compression === 'gzip' ? '.gz' : compression === 'zstd' ? '.zst' : '';
  return base + suffix + (encrypted ? '.enc' : '');
}

export function backupFileName(database: string, date: Date, extension: string, attempt = 0): string {
  const unique = attempt > 0 ? `-${attempt}` : '';
  return `${safeName(database)}_${timestampTag(date)}${unique}${extension}`;
}

export function isSidecar(key: string): boolean {
  return SIDECAR_SUFFIXES.some((s) => key.endsWith(s));
}

/** The backup a sidecar belongs to, e.g. `x.dump.meta.json` → `x.dump`. */
export function sidecarOwner(key: string): string | undefined {
  const suffix = SIDECAR_SUFFIXES.find((s) => key.endsWith(s));
  return suffix ? key.slice(0, -suffix.length) : undefined;
}

const BACKUP_EXTENSIONS = ['.dump', '.dump.gz', '.dump.zst', '.sql', '.sql.gz', '.sql.zst'];

/** Whether a key looks like a backup data file by name (used only to find orphans without metadata). */
export function looksLikeBackup(key: string): boolean {
  return BACKUP_EXTENSIONS.some((ext) => key.endsWith(ext) || key.endsWith(`${ext}.enc`));
}
