import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { baseNameOf, readBaseMetadata, type BaseBackupMetadata } from '../catalog/base-backup.js';
import { errorMessage, IntegrityError } from '../errors.js';
import { runReadGroup } from '../pipeline/filter-group.js';
import { formatBytes } from '../pipeline/progress.js';
import type { Storage } from '../storage/storage.js';
import { parseBackupManifest } from '../pitr/backup-manifest.js';
import { requiredSegments } from '../pitr/chain.js';
import { parentProblem } from '../pitr/incremental/chain.js';
import { readInventory } from '../pitr/inventory.js';
import { TarTap } from '../pitr/tar-tap.js';
import { timelinePath } from '../pitr/timeline.js';
import { segmentNumber } from '../pitr/wal-names.js';
import { hashStored } from './checksum.js';
import type { UnlockerSource } from './deep.js';
import type { BackupState } from './state.js';

export interface BaseVerifyResult {
  key: string;
  location: string;
  state: BackupState;
  detail: string;
  sizeBytes: number | null;
  base?: BaseBackupMetadata;
}

/**
 * A base backup in a WAL archive is valid when its metadata is, every file is there with its size
 * and (unless quick) its SHA-256, and the archive holds the WAL from its start to its stop
 * segment. With `deep`, its tar stream is also decrypted, decompressed and read to its
 * end-of-archive marker, and the server's backup_manifest is checked against its own checksum.
 */
export async function verifyBase(
  storage: Storage,
  key: string,
  mode: { quick?: boolean; deep?: { unlock: UnlockerSource } },
): Promise<BaseVerifyResult> {
  const name = baseNameOf(key) ?? '';
  const base = { key, location: `${storage.location.replace(/\/$/, '')}/${key}` };
  let meta: BaseBackupMetadata | undefined;
  try {
    meta = await readBaseMetadata(storage, name);
  } catch (err) {
    return { ...base, state: 'corrupt', detail: errorMessage(err), sizeBytes: null };
  }
  if (!meta)
    return {
      ...base,
      state: 'incomplete',
      detail: 'no meta.json: the base backup never finished',
      sizeBytes: null,
    };
  const result = (state: BackupState, detail: string): BaseVerifyResult => ({
    ...base,
    state,
    detail,
    sizeBytes: meta.sizeBytes,
    base: meta,
  });
  for (const f of meta.files) {
    const info = await storage.stat(f.key);
    if (!info) return result('incomplete', `${f.key} is missing`);
    if (info.size !== f.sizeBytes)
      return result('corrupt', `${f.key}: size mismatch: expected ${f.sizeBytes} bytes, found ${info.size}`);
  }
  // An incremental or differential is only as good as its chain (src/pitr/incremental/).
  const broken = await parentProblem(storage, meta, !mode.quick);
  if (broken) return result(/is missing|incomplete/.test(broken) ? 'incomplete' : 'corrupt', broken);
  const missing = await missingWal(storage, meta);
  if (missing.length)
    return result('corrupt', `the WAL it needs is not all in the archive: ${missing[0]} is missing`);
  if (mode.quick)
    return result(
      'valid',
      `${meta.files.length} files present with the right sizes, WAL ${meta.startSegment} … ${meta.stopSegment} archived`,
    );
  if (mode.deep) {
    try {
      const read = await deepReadBase(storage, meta, mode.deep.unlock);
      return result(
        'valid',
        `${meta.files.length} files match their checksums, the tar stream is complete (${read}), WAL ${meta.startSegment} … ${meta.stopSegment} archived`,
      );
    } catch (err) {
      return result('corrupt', errorMessage(err));
    }
  }
  for (const f of meta.files) {
    const actual = await hashStored(storage, f.key);
    if (actual.sha256 !== f.sha256)
      return result(
        'corrupt',
        `${f.key}: checksum mismatch: expected sha256 ${f.sha256}, computed ${actual.sha256}`,
      );
  }
  return result(
    'valid',
    `${meta.files.length} files match their checksums, WAL ${meta.startSegment} … ${meta.stopSegment} archived`,
  );
}

async function missingWal(storage: Storage, meta: BaseBackupMetadata): Promise<string[]> {
  const inv = await readInventory(storage);
  const segSize = meta.walSegmentSize;
  const path = timelinePath(meta.timeline, []);
  return requiredSegments(
    path,
    segmentNumber(meta.startSegment, segSize),
    segmentNumber(meta.stopSegment, segSize),
    segSize,
  ).filter((n) => !inv.segments.has(n));
}

async function deepReadBase(
  storage: Storage,
  meta: BaseBackupMetadata,
  unlock: UnlockerSource,
): Promise<string> {
  let files = 0;
  let bytes = 0;
  for (const f of meta.files) {
    const tap = new TarTap(new Set(['backup_manifest']));
    const isTar = f.role !== 'manifest';
    const chunks: Buffer[] = [];
    const sink = isTar
      ? tap
      : new Writable({
          write(c: Buffer, _e, cb) {
            chunks.push(c);
            cb();
          },
        });
    const drained = isTar ? pipeline(tap, new Writable({ write: (_c, _e, cb) => cb() })) : Promise.resolve();
    await runReadGroup({
      source: await storage.get(f.key),
      expected: { sha256: f.sha256, bytes: f.sizeBytes },
      decrypt: meta.encryption
        ? (await import('../crypto/index.js')).createDecryptStream(await unlock())
        : undefined,
      compression: meta.compression.algorithm,
      sizeHint: f.sizeBytes,
      sink: { kind: 'stream', stream: sink },
    });
    await drained;
    if (isTar) {
      if (!tap.complete)
        throw new IntegrityError(`${f.key}: the tar stream ends without its end-of-archive marker`);
      files += tap.members;
      bytes += tap.bytes;
      const inside = tap.captured.get('backup_manifest');
      if (inside) parseBackupManifest(inside);
    } else parseBackupManifest(Buffer.concat(chunks));
  }
  return `${files} members, ${formatBytes(bytes)}`;
}
