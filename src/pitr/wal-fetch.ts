import { createWriteStream, rmSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { KeyUnlocker } from '../crypto/index.js';
import { IntegrityError, UsageError } from '../errors.js';
import { runReadGroup, type ReadSink } from '../pipeline/filter-group.js';
import type { Storage } from '../storage/storage.js';
import { ARCHIVE_FILE } from './archive.js';
import { WalNotFoundError } from './errors.js';
import { storedVersions } from './wal-push.js';
import { parseWalFileName, type StoredWal, type WalFileName } from './wal-names.js';

export interface FetchResult {
  name: string;
  key: string;
  bytes: number;
}

/**
 * The one stored object for `name`. Nothing: WalNotFoundError (the only "not found"). Several
 * different contents under one name cannot be told apart: that is damage, not absence.
 */
export async function locateWal(
  storage: Storage,
  name: string,
): Promise<{ wal: WalFileName; object: StoredWal }> {
  const wal = parseWalFileName(name);
  if (!wal) throw new WalNotFoundError(`${name} is not a WAL file name; the archive holds none by that name`);
  const versions = await storedVersions(storage, wal);
  if (!versions.length) {
    // An archive that is not there at all must not look like an archive that lacks one file.
    if (!(await storage.stat(ARCHIVE_FILE)))
      throw new UsageError(
        `${storage.location} is not a WAL archive (it has no ${ARCHIVE_FILE})`,
        'Check --archive.',
      );
    throw new WalNotFoundError(`${name} is not in the archive`);
  }
  const hashes = new Set(versions.map((v) => v.sha256));
  if (hashes.size > 1)
    throw new IntegrityError(`The archive holds ${hashes.size} different versions of ${name}`, {
      hint: 'Two clusters archived into one archive; recovery cannot tell which is right.',
    });
  const object = versions[0];
  if (!object) throw new WalNotFoundError(`${name} is not in the archive`);
  return { wal, object };
}

/**
 * Reads one stored WAL object, decrypted and decompressed, into `sink`, and proves it is the file
 * that was archived: the SHA-256 of the decoded bytes must be the one in its name.
 */
export async function readWal(
  storage: Storage,
  object: StoredWal,
  sink: ReadSink,
  unlockers: () => Promise<readonly KeyUnlocker[]>,
): Promise<number> {
  const decrypt = object.encoding.encrypted
    ? (await import('../crypto/index.js')).createDecryptStream(await unlockers())
    : undefined;
  const result = await runReadGroup({
    source: await storage.get(object.key),
    decrypt,
    compression: object.encoding.compression,
    sizeHint: object.size,
    decodedSha256: object.sha256,
    sink,
  });
  return result.decodedBytes;
}

/**
 * `restore_command`: fetches `name` into `dest` (%p, relative to the data directory). The file
 * appears under `dest` only once it is complete and verified.
 */
export async function fetchWalFile(
  storage: Storage,
  name: string,
  dest: string,
  unlockers: () => Promise<readonly KeyUnlocker[]>,
): Promise<FetchResult> {
  const { object } = await locateWal(storage, name);
  const temp = path.join(path.dirname(dest), `.dbbackup-fetch-${process.pid}-${path.basename(dest)}`);
  // PostgreSQL stops restore_command with SIGTERM when it shuts down, and must see it die of that
  // signal: the half-written file goes, then the signal is raised again.
  const onSignal = (sig: NodeJS.Signals): void => {
    rmSync(temp, { force: true });
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.kill(process.pid, sig);
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    const bytes = await readWal(
      storage,
      object,
      { kind: 'stream', stream: createWriteStream(temp, { mode: 0o600 }) },
      unlockers,
    );
    await rename(temp, dest);
    return { name, key: object.key, bytes };
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
