import type { Readable } from 'node:stream';
import { commitUnit } from '../catalog/commit.js';
import { manifestJson, manifestKey, readManifest, type ClusterManifest } from '../catalog/manifest.js';
import { metadataKey, readMetadata, sha256Line, writeMetadata } from '../catalog/metadata.js';
import { SHA256_SUFFIX, timestampTag } from '../catalog/naming.js';
import {
  describeEncryption,
  RewrapStream,
  type EncryptionDescription,
  type EncryptionHeader,
  type KeyProtector,
  type KeyUnlocker,
} from './index.js';
import { DbBackupError, errorMessage, IntegrityError, StorageError, UsageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { NO_COMPRESSION, startWriteGroup, type WriteGroup } from '../pipeline/filter-group.js';
import { HashCounter } from '../pipeline/hash.js';
import { putBuffer, readAll, type Storage } from '../storage/storage.js';
import { checkUnlocks, readStoredHeader } from './stored-header.js';

/**
 * Rekeying a stored backup: the per-backup data key is unwrapped with one of the old keys and
 * wrapped anew for the new keys; the encrypted body is copied byte for byte, never decrypted.
 * The header's length changes with its stanzas, so the stored bytes, their size and their SHA-256
 * change: the sidecars (or the cluster manifest) are rewritten to match.
 *
 * At no moment does a backup have metadata that disagrees with its data, and every failure before
 * the commit leaves the backup exactly as it was:
 *
 * - Single backup: the rewrapped stream is written over the backup with the store's atomic `put`
 *   (a temporary file renamed into place; an object replaced when its upload completes), after the
 *   old bytes were checked against the metadata on the way. Just before the put commits, the
 *   `.meta.json` and then the `.sha256` are removed; once the new data is in place the new `.sha256`
 *   and then the new `.meta.json` are written. A crash inside this short window leaves the backup
 *   "incomplete" (no metadata), never "valid" with a wrong checksum; an error in it puts the old
 *   sidecars back.
 * - Cluster backup: each member is rewritten under a new name (`<db>~rekey<UTC time>.<ext>`) next
 *   to the old one; the new manifest, naming the new files, is the single atomic commit; the old
 *   files are removed afterwards. A failure before the manifest removes the new files.
 */

export interface RekeyKeys {
  /** Keys that open the current header (any one is enough). */
  unlockers: readonly KeyUnlocker[];
  /** The new protections. */
  protectors: readonly KeyProtector[];
  /** Keep the current protections and add the new ones, instead of replacing them. */
  add: boolean;
}

/** A backup that can be rekeyed with the given keys (checked by planRekey). */
export interface RekeyTarget {
  kind: 'single' | 'cluster';
  storage: Storage;
  /** The backup's key, or `cluster_x/` for a cluster backup. */
  key: string;
  location: string;
  /** The files whose header is rewritten: the backup, or globals and every database dump. */
  files: string[];
  before: EncryptionDescription;
}

export interface RekeyOutcome {
  after: EncryptionDescription;
  /** Per file: its old and new key, new size and SHA-256. */
  files: Array<{ from: string; to: string; sizeBytes: number; sha256: string }>;
  /** Old cluster member files that could not be removed after the commit (harmless leftovers). */
  leftovers: string[];
}

const INTERRUPTED = (): DbBackupError =>
  new DbBackupError('Interrupted; the backup was not changed', { exitCode: ExitCode.Interrupted });

function locationOf(storage: Storage, key: string): string {
  return `${storage.location.replace(/\/$/, '')}/${key}`;
}

function notEncrypted(location: string): UsageError {
  return new UsageError(
    `${location} is not encrypted`,
    'rekey changes the keys of encrypted backups; to encrypt, take a new backup with --recipient or --encryption-key-file.',
  );
}

/**
 * Checks that a backup can be rekeyed: complete (metadata or manifest), encrypted, and opened by
 * `unlockers` (every member of a cluster). Changes nothing. Throws EncryptionKeyError for keys that
 * do not open it, UsageError when it is not encrypted, IntegrityError when it is incomplete.
 */
export async function planRekey(
  storage: Storage,
  key: string,
  unlockers: readonly KeyUnlocker[],
): Promise<RekeyTarget> {
  const location = locationOf(storage, key);
  if (key.endsWith('/')) {
    const name = key.slice(0, -1);
    const manifest = await readManifest(storage, name);
    if (!manifest) {
      throw new IntegrityError(`${location} has no manifest: the cluster backup is incomplete`, {
        hint: 'Only complete backups can be rekeyed.',
      });
    }
    if (!manifest.encryption) throw notEncrypted(location);
    const files = memberFiles(manifest).map((m) => m.file);
    for (const file of files) {
      const header = await readStoredHeader(storage, file);
      if (!header) {
        throw new IntegrityError(
          `${locationOf(storage, file)} is not encrypted, although the manifest says so`,
          {
            hint: 'The cluster backup was modified; verify it with dbbackup verify-backup.',
          },
        );
      }
      await checkUnlocks(locationOf(storage, file), header, unlockers, 'rekey');
    }
    return { kind: 'cluster', storage, key, location, files, before: manifest.encryption };
  }
  const metadata = await readMetadata(storage, key);
  if (!metadata) {
    throw new IntegrityError(`${location} has no metadata (.meta.json)`, {
      hint: 'Only complete backups can be rekeyed: their checksum is checked and rewritten.',
    });
  }
  if (!(await storage.stat(key))) {
    throw new IntegrityError(`${location} is missing (only its metadata exists)`, {
      hint: 'Run "dbbackup list backups" to see complete backups.',
    });
  }
  const header = await readStoredHeader(storage, key);
  if (!header) throw notEncrypted(location);
  await checkUnlocks(location, header, unlockers, 'rekey');
  return { kind: 'single', storage, key, location, files: [key], before: describeEncryption(header) };
}

function memberFiles(manifest: ClusterManifest): Array<{ file: string; sha256: string; sizeBytes: number }> {
  return [
    manifest.globals,
    ...manifest.databases.flatMap((m) =>
      m.file && m.sha256 ? [{ file: m.file, sha256: m.sha256, sizeBytes: m.sizeBytes }] : [],
    ),
  ];
}

interface Rewrapping {
  /** The write group storing the new header, then the old body (its readable goes to the put). */
  group: WriteGroup;
  rewrap: RewrapStream;
}

/**
 * The stored bytes of one file through the write group, checked against their recorded checksum on
 * the way (a mismatch fails before the store commits anything), with the header rewrapped.
 * `beforeCommit` runs once everything has been read and checked, right before the store commits.
 */
function rewrapStored(
  source: Readable,
  expected: { sha256: string; sizeBytes: number },
  keys: RekeyKeys,
  location: string,
  beforeCommit?: () => Promise<void>,
): Rewrapping {
  const oldHash = new HashCounter();
  const rewrap = new RewrapStream(keys.unlockers, keys.protectors, { keepExisting: keys.add });
  const group = startWriteGroup({
    source,
    taps: [oldHash, rewrap],
    compression: NO_COMPRESSION,
    check: async () => {
      if (oldHash.sha256 !== expected.sha256 || oldHash.bytes !== expected.sizeBytes) {
        throw new IntegrityError(
          `Checksum mismatch in ${location}: expected sha256 ${expected.sha256}, read ${oldHash.sha256}`,
          { hint: 'Nothing was changed. The backup is corrupt: verify it with dbbackup verify-backup.' },
        );
      }
      await beforeCommit?.();
    },
  });
  return { group, rewrap };
}

function newHeaderOf(r: Rewrapping): EncryptionHeader {
  if (!r.rewrap.newHeader) throw new Error('rekey: the stream ended before its header was rewrapped');
  return r.rewrap.newHeader;
}

/** Whether `key` holds the rewrapped bytes, for a put that failed only in reporting its success. */
async function landed(storage: Storage, key: string, r: Rewrapping): Promise<boolean> {
  const header = r.rewrap.newHeader;
  const info = await storage.stat(key).catch(() => undefined);
  if (!header || info?.size !== r.group.storedBytes()) return false;
  const stream = await storage.get(key, { start: 0, end: header.bytes.length - 1 });
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).equals(header.bytes);
}

async function retry<T>(fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200 * i));
    }
  }
}

/** Rekeys a single backup (see the module comment for the order of writes). */
export async function rekeySingle(
  target: RekeyTarget,
  keys: RekeyKeys,
  signal?: AbortSignal,
): Promise<RekeyOutcome> {
  const { storage, key, location } = target;
  const metadata = await readMetadata(storage, key);
  if (!metadata) throw new IntegrityError(`${location} has no metadata (.meta.json)`);
  const metaKey = metadataKey(key);
  const shaKey = key + SHA256_SUFFIX;
  const oldMeta = await readAll(storage, metaKey, 64 * 1024 * 1024);
  const oldSha = (await storage.stat(shaKey)) ? await readAll(storage, shaKey, 4096) : undefined;
  if (signal?.aborted) throw INTERRUPTED();

  const source = await storage.get(key);
  let committing = false;
  let sidecarsRemoved = false;
  const onAbort = (): void => {
    if (!committing) source.destroy(INTERRUPTED());
  };
  signal?.addEventListener('abort', onAbort);
  if (signal?.aborted) onAbort();
  const r = rewrapStored(source, metadata, keys, location, async () => {
    committing = true;
    // From here until the new metadata is written the backup reads as incomplete, never as valid
    // with a checksum that does not match its data.
    await storage.delete(metaKey);
    sidecarsRemoved = true;
    await storage.delete(shaKey);
  });
  try {
    await storage.put(key, r.group.readable, {
      metadata: { 'dbbackup-database': metadata.database, 'dbbackup-engine': metadata.engine },
    });
  } catch (err) {
    if (!sidecarsRemoved) throw err;
    if (!(await landed(storage, key, r).catch(() => false))) {
      // The old data is still in place: put its sidecars back, checksum first, metadata last.
      try {
        if (oldSha) await retry(() => putBuffer(storage, shaKey, oldSha));
        await retry(() => putBuffer(storage, metaKey, oldMeta));
      } catch (restoreErr) {
        throw new StorageError(
          `Rekeying ${location} failed (${errorMessage(err)}), and its metadata could not be put back: ${errorMessage(restoreErr)}`,
          {
            hint: 'The data is unchanged and opens with the old key; the backup shows as incomplete until its .meta.json is restored from a copy.',
            cause: err,
          },
        );
      }
      if (err instanceof DbBackupError) err.details.push('The backup was left as it was.');
      throw err;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  const header = newHeaderOf(r);
  const after = describeEncryption(header);
  const { storedSha256: sha256, storedBytes: sizeBytes } = r.group.result();
  try {
    await retry(() => putBuffer(storage, shaKey, sha256Line(sha256, key.split('/').pop() ?? key)));
    await retry(() => writeMetadata(storage, key, { ...metadata, encryption: after, sizeBytes, sha256 }));
  } catch (err) {
    throw new StorageError(
      `${location} was rekeyed, but its new metadata could not be written: ${errorMessage(err)}`,
      {
        hint: `The data is complete and opens with the new key; until its .meta.json is written it shows as incomplete. Its new sha256 is ${sha256} (${sizeBytes} bytes).`,
        cause: err,
      },
    );
  }
  return { after, files: [{ from: key, to: key, sizeBytes, sha256 }], leftovers: [] };
}

const REKEY_TAG = /~rekey\d{8}_\d{6}(?:-\d+)?$/;
const ENCRYPTED_EXTENSION = /^(.*?)((?:\.dump|\.sql)(?:\.gz|\.zst)?\.enc)$/;

/**
 * The new name of a rekeyed cluster member: `shop.dump.zst.enc` → `shop~rekey20261127_080000.dump.zst.enc`
 * (a previous tag replaced). `~` never occurs in dbbackup's names for databases (safeName encodes
 * it), and names already taken get a counter.
 */
export function rekeyedName(file: string, tag: string, taken: ReadonlySet<string>): string {
  const slash = file.lastIndexOf('/');
  const dir = file.slice(0, slash + 1);
  const base = file.slice(slash + 1);
  const match = ENCRYPTED_EXTENSION.exec(base);
  const stem = (match?.[1] ?? base).replace(REKEY_TAG, '');
  const extension = match?.[2] ?? '';
  for (let n = 0; ; n++) {
    const candidate = `${dir}${stem}~rekey${tag}${n ? `-${n}` : ''}${extension}`;
    if (!taken.has(candidate)) return candidate;
  }
}

/** Rekeys every member of a cluster backup; the new manifest is the commit. */
export async function rekeyCluster(
  target: RekeyTarget,
  keys: RekeyKeys,
  signal?: AbortSignal,
): Promise<RekeyOutcome> {
  const { storage, key, location } = target;
  const name = key.slice(0, -1);
  const manifest = await readManifest(storage, name);
  if (!manifest?.encryption) throw new IntegrityError(`${location} changed while it was being rekeyed`);
  const taken = new Set<string>();
  for await (const o of storage.list(key)) taken.add(o.key);
  const tag = timestampTag(new Date());
  const done = new Map<string, { to: string; sizeBytes: number; sha256: string; header: EncryptionHeader }>();
  // One unit: the new files, then the new manifest as the commit; before it, a failure removes the
  // new files and the backup is as it was. (The interrupt is checked here, for its own message.)
  await commitUnit([storage], {}, async (commit) => {
    for (const member of memberFiles(manifest)) {
      if (signal?.aborted) throw INTERRUPTED();
      const to = rekeyedName(member.file, tag, taken);
      taken.add(to);
      const source = await storage.get(member.file);
      const onAbort = (): void => void source.destroy(INTERRUPTED());
      signal?.addEventListener('abort', onAbort);
      if (signal?.aborted) onAbort();
      try {
        const r = rewrapStored(source, member, keys, locationOf(storage, member.file));
        await commit.put(to, r.group);
        const stored = r.group.result();
        done.set(member.file, {
          to,
          sizeBytes: stored.storedBytes,
          sha256: stored.storedSha256,
          header: newHeaderOf(r),
        });
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    }
    const globals = done.get(manifest.globals.file);
    if (!globals) throw new Error('rekey: globals were not rewritten');
    const databases = manifest.databases.map((m) => {
      const d = m.file ? done.get(m.file) : undefined;
      return d ? { ...m, file: d.to, sizeBytes: d.sizeBytes, sha256: d.sha256 } : m;
    });
    const next: ClusterManifest = {
      ...manifest,
      encryption: describeEncryption(globals.header),
      globals: {
        ...manifest.globals,
        file: globals.to,
        sizeBytes: globals.sizeBytes,
        sha256: globals.sha256,
      },
      databases,
      totalBytes: globals.sizeBytes + databases.reduce((n, m) => n + m.sizeBytes, 0),
    };
    try {
      // Replaces the old manifest: the single atomic commit.
      await commit.finish(manifestKey(name), manifestJson(next), { noOverwrite: false });
    } catch (err) {
      // An upload may succeed and still report a failure: the manifest read back decides.
      const stored = await readManifest(storage, name).catch(() => undefined);
      if (stored?.globals.sha256 !== globals.sha256) throw err;
    }
  });
  // The old files are no longer referenced by the manifest: remove them (leftovers are harmless).
  const leftovers: string[] = [];
  for (const from of done.keys()) await storage.delete(from).catch(() => leftovers.push(from));
  const globals = done.get(manifest.globals.file);
  return {
    after: globals ? describeEncryption(globals.header) : target.before,
    files: [...done].map(([from, d]) => ({ from, to: d.to, sizeBytes: d.sizeBytes, sha256: d.sha256 })),
    leftovers,
  };
}

/** Rekeys a planned backup, single or cluster. */
export function rekey(target: RekeyTarget, keys: RekeyKeys, signal?: AbortSignal): Promise<RekeyOutcome> {
  return target.kind === 'cluster' ? rekeyCluster(target, keys, signal) : rekeySingle(target, keys, signal);
}
