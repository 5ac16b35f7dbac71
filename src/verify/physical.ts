import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { physicalNameOf, type PhysicalMetadata } from '../catalog/physical-backup.js';
import { errorMessage, IntegrityError } from '../errors.js';
import { formatBytes } from '../pipeline/progress.js';
import { readBinlogInventory } from '../pitr/binlog/inventory.js';
import { chainOf, readPhysicalBackups, type PhysicalEntry } from '../pitr/binlog/physical-catalog.js';
import { readPhysicalFile } from '../pitr/binlog/read.js';
import { keyValues, XbstreamTap } from '../pitr/binlog/xbstream-tap.js';
import type { Storage } from '../storage/storage.js';
import { hashStored } from './checksum.js';
import type { UnlockerSource } from './deep.js';
import type { BackupState } from './state.js';

export interface PhysicalVerifyResult {
  key: string;
  location: string;
  state: BackupState;
  detail: string;
  sizeBytes: number | null;
  physical?: PhysicalMetadata;
}

/**
 * A physical backup in a binlog archive is valid when it and every backup it builds on (its chain,
 * down to the full one) has its metadata and its files with their sizes and (unless quick) their
 * SHA-256. With `deep`, each xbstream is also decrypted, decompressed and read to its end: every
 * chunk's CRC32, every file closed, and its LSNs as the metadata says.
 */
export async function verifyPhysical(
  storage: Storage,
  key: string,
  mode: { quick?: boolean; deep?: { unlock: UnlockerSource } },
): Promise<PhysicalVerifyResult> {
  const name = physicalNameOf(key) ?? '';
  const base = { key, location: `${storage.location.replace(/\/$/, '')}/${key}` };
  const entries = await readPhysicalBackups(storage);
  const entry = entries.find((e) => e.name === name);
  if (!entry)
    return { ...base, state: 'incomplete', detail: 'nothing is stored under this name', sizeBytes: null };
  const meta = entry.meta;
  if (!meta) return { ...base, state: entry.state, detail: entry.detail, sizeBytes: null };
  const result = (state: BackupState, detail: string): PhysicalVerifyResult => ({
    ...base,
    state,
    detail,
    sizeBytes: meta.sizeBytes,
    physical: meta,
  });
  const chain = chainOf(entries, name);
  if (chain.problem)
    return result(entry.state === 'valid' ? 'corrupt' : entry.state, `its chain is broken: ${chain.problem}`);
  const what = meta.parent
    ? `chain of ${chain.members.length} (full ${chain.members[0]?.name ?? '?'})`
    : 'full backup';
  const binlog = await binlogNote(storage, meta);
  if (mode.quick) return result('valid', `${what}: every file present with the right size${binlog}`);
  try {
    for (const m of chain.members) await checkMember(storage, m, mode.deep?.unlock);
  } catch (err) {
    return result('corrupt', errorMessage(err));
  }
  return result(
    'valid',
    `${what}: every file matches its checksum${mode.deep ? ', every xbstream read to its end (chunk CRC32s, files closed, LSNs as recorded)' : ''}${binlog}`,
  );
}

async function checkMember(
  storage: Storage,
  e: PhysicalEntry,
  unlock: UnlockerSource | undefined,
): Promise<void> {
  const m = e.meta;
  if (!m) throw new IntegrityError(`${e.name}: no metadata`);
  for (const f of m.files) {
    if (!unlock) {
      const actual = await hashStored(storage, f.key);
      if (actual.sha256 !== f.sha256 || actual.bytes !== f.sizeBytes)
        throw new IntegrityError(
          `${f.key}: checksum mismatch: expected sha256 ${f.sha256}, computed ${actual.sha256}`,
        );
      continue;
    }
    const tap = new XbstreamTap(undefined, true);
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const drained = pipeline(tap, sink);
    await readPhysicalFile(storage, m, f, { kind: 'stream', stream: tap }, unlock).catch((err: unknown) => {
      throw new IntegrityError(`${f.key}: ${errorMessage(err)}`);
    });
    await drained;
    if (!tap.complete) throw new IntegrityError(`${f.key}: the xbstream is incomplete: ${tap.problem}`);
    const cp = keyValues(tap.captured.get('xtrabackup_checkpoints')?.toString('utf8') ?? '');
    if (cp.from_lsn !== m.fromLsn || cp.to_lsn !== m.toLsn)
      throw new IntegrityError(
        `${f.key}: its LSNs (${cp.from_lsn ?? '?'} … ${cp.to_lsn ?? '?'}) are not the recorded ${m.fromLsn} … ${m.toLsn}`,
      );
    if (m.stream && tap.payloadBytes !== m.stream.bytes)
      throw new IntegrityError(
        `${f.key}: it holds ${formatBytes(tap.payloadBytes)} of files, the metadata says ${formatBytes(m.stream.bytes)}`,
      );
  }
}

/** Whether the binlog its position lies in is archived (what a point-in-time restore from it needs first). */
async function binlogNote(storage: Storage, meta: PhysicalMetadata): Promise<string> {
  if (!meta.binlog) return '; no binlog position (restorable, not to a point in time)';
  const inv = await readBinlogInventory(storage);
  const file = meta.binlog.file;
  if (inv.closed.has(file) || inv.partials.has(file)) return `; its binlog ${file} is archived`;
  return `; its binlog ${file} is not in the archive yet (point-in-time restores from it need it)`;
}
