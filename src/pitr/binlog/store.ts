import { createReadStream } from 'node:fs';
import { commitUnit } from '../../catalog/commit.js';
import type { EncryptionDescription, KeyProtector } from '../../crypto/index.js';
import { IntegrityError, SafetyError } from '../../errors.js';
import { compressionFor, encryptionFor, startWriteGroup } from '../../pipeline/filter-group.js';
import { HashCounter } from '../../pipeline/hash.js';
import type { Storage } from '../../storage/storage.js';
import { describeState, formatGtidList } from './events.js';
import { FACTS_SCHEMA, FACTS_VERSION, scanBinlogFile, type BinlogFacts, type BinlogScan } from './facts.js';
import type { BinlogArchiveIdentity } from './identity.js';
import { BINLOG_PREFIX, binlogDataKey, binlogFactsKey, parseBinlogKey } from './names.js';

export interface StoreBinlogInput {
  storage: Storage;
  identity: BinlogArchiveIdentity;
  protectors: readonly KeyProtector[];
  /** The local copy (the streamer's, or a finished fetch). */
  path: string;
  file: string;
  /**
   * closed: the whole file, which must end with a Rotate or Stop event, or — `server` — match the
   * size the server lists for it while a newer file exists (a crash leaves no closing event).
   * partial: the prefix up to the last complete transaction.
   */
  mode: 'closed' | 'partial';
  serverSize?: number;
  signal?: AbortSignal;
}

export type StoreOutcome =
  | { stored: true; facts: BinlogFacts; key: string }
  | { stored: false; reason: 'already archived' | 'nothing new' | 'empty'; key?: string };

/**
 * Stores one binlog (or the open one's prefix) as a unit: its bytes through the write group, read
 * back, then its facts file, last. The same name with the same content is already done; with other
 * content it is refused, never replaced.
 */
export async function storeBinlog(i: StoreBinlogInput): Promise<StoreOutcome> {
  const scan = await scanBinlogFile(i.path, i.file);
  const closedBy = closure(i, scan);
  const partial = i.mode === 'partial';
  if (partial && scan.safeEnd <= 4) return { stored: false, reason: 'empty' };
  const existing = await storedVersions(i.storage, i.file);
  const same = existing.find((k) => k.partial === partial && k.sha256 === scan.sha256);
  if (same?.finished) return { stored: false, reason: 'already archived', key: same.key };
  // Bytes without facts: a store of this very content that did not finish; it is done again.
  if (same) await i.storage.delete(same.key);
  const closed = existing.find((k) => !k.partial && k.finished);
  if (closed && !partial)
    throw new SafetyError(
      `${i.file} is already in the archive with other contents (sha256 ${closed.sha256}); this copy has sha256 ${scan.sha256}`,
      {
        hint: 'The server that wrote it is not the one archived here, or its binlogs were reset (RESET MASTER): give it an archive of its own.',
      },
    );
  if (closed && partial) return { stored: false, reason: 'already archived', key: closed.key };
  const bytes = partial ? scan.safeEnd : scan.bytes;
  const encoding = {
    compression: i.identity.compression.algorithm,
    encrypted: i.protectors.length > 0,
  };
  const dataKey = binlogDataKey(i.file, partial, scan.sha256, encoding);
  const factsKey = binlogFactsKey(i.file, partial, scan.sha256);
  return commitUnit([i.storage], { signal: i.signal }, async (commit) => {
    const raw = new HashCounter();
    const group = startWriteGroup<EncryptionDescription>({
      source: createReadStream(i.path, { start: 0, end: bytes - 1, highWaterMark: 1024 * 1024 }),
      taps: [raw],
      compression: await compressionFor(encoding.compression, i.identity.compression.level, bytes),
      encryption: await encryptionFor(i.protectors),
      check: async () => {
        // The file is read twice (scanned, then stored): both reads must have seen the same bytes.
        if (raw.sha256 !== scan.sha256 || raw.bytes !== bytes)
          throw new IntegrityError(`${i.file} changed while it was being stored`);
      },
    });
    await commit.put(dataKey, group);
    const r = group.result();
    await commit.verify(dataKey, r.storedBytes);
    const facts: BinlogFacts = {
      schema: FACTS_SCHEMA,
      schemaVersion: FACTS_VERSION,
      file: i.file,
      partial,
      rawBytes: bytes,
      sha256: scan.sha256,
      storedBytes: r.storedBytes,
      storedSha256: r.storedSha256,
      compression: r.compression,
      encryption: r.encryption,
      serverId: scan.serverId,
      firstEventTime: iso(scan.firstEventTime),
      lastEventTime: iso(scan.lastEventTime),
      startGtids: formatGtidList(scan.startGtids),
      endGtids: describeState(scan.end),
      transactions: scan.transactions,
      closedBy: partial ? null : closedBy,
      nextFile: scan.nextFile,
      storedAt: new Date().toISOString(),
    };
    await commit.finish(factsKey, `${JSON.stringify(facts, null, 2)}\n`);
    return { stored: true as const, facts, key: dataKey };
  });
}

/** How a file to store closed proves it is closed; IntegrityError when it does not. */
function closure(i: StoreBinlogInput, scan: BinlogScan): BinlogFacts['closedBy'] {
  if (i.mode === 'partial') return null;
  const whole = scan.safeEnd === scan.bytes;
  if (whole && scan.closedBy) return scan.closedBy;
  if (whole && i.serverSize !== undefined && i.serverSize === scan.bytes) return 'server';
  throw new IntegrityError(
    `${i.file} is not complete: ${scan.bytes} bytes${i.serverSize !== undefined ? ` (the server lists ${i.serverSize})` : ''}, ${whole ? 'no Rotate or Stop event at its end' : `its last transaction is cut at byte ${scan.safeEnd}`}`,
    { hint: 'It was copied while still being written, or the copy was cut short; it was not stored.' },
  );
}

function iso(seconds: number | null): string | null {
  return seconds === null ? null : new Date(seconds * 1000).toISOString();
}

interface StoredVersion {
  key: string;
  partial: boolean;
  sha256: string;
  /** Its facts file is there: the store finished. */
  finished: boolean;
}

/** The objects stored for `file` (closed or partial, any content). */
async function storedVersions(storage: Storage, file: string): Promise<StoredVersion[]> {
  const out: StoredVersion[] = [];
  const facts = new Set<string>();
  for await (const o of storage.list(`${BINLOG_PREFIX}${file}`)) {
    const k = parseBinlogKey(o.key);
    if (k?.file !== file) continue;
    if (k.kind === 'facts') facts.add(o.key);
    else out.push({ key: o.key, partial: k.partial, sha256: k.sha256, finished: false });
  }
  for (const v of out) v.finished = facts.has(binlogFactsKey(file, v.partial, v.sha256));
  return out;
}

/** Removes the stored prefixes of `file` other than `keep` (facts first: never a prefix that looks stored without its bytes). */
export async function dropPartials(storage: Storage, file: string, keep?: string): Promise<number> {
  let dropped = 0;
  for (const v of await storedVersions(storage, file)) {
    if (!v.partial || v.key === keep) continue;
    await storage.delete(binlogFactsKey(file, true, v.sha256));
    await storage.delete(v.key);
    dropped++;
  }
  return dropped;
}

/** "mysql-bin.000042 (1234 bytes, 5 transactions, closed by rotate)", for the lines of binlog archive and stream. */
export function describeStored(f: BinlogFacts): string {
  return `${f.file} (${f.rawBytes} bytes, ${f.transactions} transactions, closed by ${f.closedBy ?? '?'})`;
}
