/**
 * Where a binlog archive keeps things. Pure.
 *
 *   archive.json                                   the identity (identity.ts)
 *   binlog/<file>-<sha256>.zst[.enc]               a closed binary log; <sha256> of its raw bytes
 *   binlog/<file>-<sha256>.json                    its facts (size, times, GTIDs), written after it
 *   binlog/<file>.partial-<sha256>.zst[.enc]       the open one, a prefix cut between transactions
 *   binlog/<file>.partial-<sha256>.json
 *   physical/<name>/…                              physical backups (src/catalog/physical-backup.ts)
 *
 * A binlog without its facts file is one whose storing did not finish: nothing counts it.
 */

export const BINLOG_PREFIX = 'binlog/';

export interface Encoding {
  compression: 'zstd' | 'gzip' | 'none';
  encrypted: boolean;
}

/** `.zst`, `.gz`, `.enc` as the object's bytes are encoded. */
export function suffixOf(e: Encoding): string {
  const c = e.compression === 'zstd' ? '.zst' : e.compression === 'gzip' ? '.gz' : '';
  return `${c}${e.encrypted ? '.enc' : ''}`;
}

/** `mysql-bin.000042`: a base name and at least six digits. */
const FILE = /^([A-Za-z0-9_][A-Za-z0-9_.-]*)\.(\d{6,})$/;

export function isBinlogFileName(name: string): boolean {
  return FILE.test(name);
}

/** The number of `mysql-bin.000042` (42), and its base name. */
export function binlogNumber(file: string): { base: string; n: number; width: number } {
  const m = FILE.exec(file);
  if (!m?.[1] || !m[2]) throw new Error(`not a binlog file name: ${file}`);
  return { base: m[1], n: Number(m[2]), width: m[2].length };
}

/** The file `delta` numbers after `file` (same width). */
export function binlogAfter(file: string, delta = 1): string {
  const { base, n, width } = binlogNumber(file);
  return `${base}.${String(n + delta).padStart(width, '0')}`;
}

function stem(file: string, partial: boolean, sha256: string): string {
  return `${BINLOG_PREFIX}${file}${partial ? '.partial' : ''}-${sha256}`;
}

export function binlogDataKey(file: string, partial: boolean, sha256: string, e: Encoding): string {
  return `${stem(file, partial, sha256)}${suffixOf(e)}`;
}

export function binlogFactsKey(file: string, partial: boolean, sha256: string): string {
  return `${stem(file, partial, sha256)}.json`;
}

export interface BinlogKey {
  file: string;
  partial: boolean;
  sha256: string;
  /** The stored bytes, or the facts written after them. */
  kind: 'data' | 'facts';
  encoding?: Encoding;
}

const KEY =
  /^binlog\/([A-Za-z0-9_][A-Za-z0-9_.-]*\.\d{6,})(\.partial)?-([0-9a-f]{64})(\.json|(\.zst|\.gz)?(\.enc)?)$/;

export function parseBinlogKey(key: string): BinlogKey | undefined {
  const m = KEY.exec(key);
  if (!m?.[1] || !m[3]) return undefined;
  const base = { file: m[1], partial: Boolean(m[2]), sha256: m[3] };
  if (m[4] === '.json') return { ...base, kind: 'facts' };
  return {
    ...base,
    kind: 'data',
    encoding: {
      compression: m[5] === '.zst' ? 'zstd' : m[5] === '.gz' ? 'gzip' : 'none',
      encrypted: Boolean(m[6]),
    },
  };
}
