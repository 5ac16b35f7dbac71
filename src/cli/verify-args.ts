import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import picomatch from 'picomatch';
import { backupKeys } from '../verify/listing.js';
import { META_SUFFIX, SHA256_SUFFIX, sidecarOwner } from '../catalog/naming.js';
import { MANIFEST_NAME, readManifest } from '../catalog/manifest.js';
import {
  EncryptionKeyError,
  unlockersFromFlags,
  type EncryptionFlags,
  type KeyUnlocker,
} from '../crypto/index.js';
import { checkUnlocks, readStoredHeader } from '../crypto/stored-header.js';
import { UsageError } from '../errors.js';
import { formatBytes } from '../units.js';
import type { CloudSettings } from '../storage/cloud.js';
import { isCloudUri, maskUri } from '../storage/cloud-uri.js';
import type { Storage } from '../storage/storage.js';
import { openLocation, openStore, type Location } from '../storage/uri.js';
import type { UnlockerSource } from '../verify/deep.js';
import type { VerifyOptions, VerifyResult } from '../verify/verify.js';
import { encryptionFlags } from './encryption-options.js';

/*
 * What verify-backup shares with the commands that verify or rewrite stored backups (cloud,
 * rekey): naming the backups an argument means, keys, the result line.
 */

/** One argument → the backups it names: a file or object, a directory or prefix, or a glob in the last part. */
export async function expandBackups(arg: string, settings: CloudSettings): Promise<Location[]> {
  const cloud = isCloudUri(arg);
  // A cloud URI's query (credentials, endpoint) may contain '/', so the path is split without it.
  const q = cloud ? arg.indexOf('?') : -1;
  const pathPart = q >= 0 ? arg.slice(0, q) : arg;
  const query = q >= 0 ? arg.slice(q) : '';
  const withQuery = (p: string): string => p + query;
  const base = pathPart.slice(pathPart.lastIndexOf('/') + 1);
  const isDir = cloud ? base === '' : (await stat(arg).catch(() => undefined))?.isDirectory() === true;
  const isGlob = !isDir && picomatch.scan(base).isGlob;
  if (!isDir && !isGlob) {
    // A path with nothing there, not even a sidecar, is a typo, not an "incomplete" backup.
    if (!cloud && !['', META_SUFFIX, SHA256_SUFFIX].some((s) => existsSync(arg + s))) {
      throw new UsageError(
        `No backup at ${arg}`,
        'Check the path; "dbbackup list backups" lists the backups in the backup directory.',
      );
    }
    const location = await openLocation(arg, settings);
    // A sidecar names its backup.
    return [{ ...location, key: sidecarOwner(location.key) ?? location.key }];
  }
  // A cluster backup's own directory (or prefix) names that one backup.
  const trimmed = pathPart.replace(/\/+$/, '');
  const dirName = trimmed.slice(trimmed.lastIndexOf('/') + 1);
  // A base backup in a WAL archive (<archive>/base/<name>/), or a physical one in a binlog archive.
  const inArchive = /^(.*)\/(base|physical)$/.exec(trimmed.slice(0, trimmed.lastIndexOf('/')));
  const archiveRoot = inArchive?.[1];
  if (isDir && archiveRoot !== undefined) {
    const root = await openStore(cloud ? withQuery(`${archiveRoot}/`) : archiveRoot || '/', settings);
    if (await root.stat('archive.json'))
      return [{ storage: root, key: `${inArchive?.[2] ?? 'base'}/${dirName}/` }];
  }
  if (isDir && (dirName.startsWith('cluster_') || (!cloud && existsSync(path.join(arg, MANIFEST_NAME))))) {
    const parent = cloud
      ? withQuery(trimmed.slice(0, trimmed.lastIndexOf('/') + 1))
      : path.dirname(path.resolve(arg));
    return [{ storage: await openStore(parent, settings), key: `${dirName}/` }];
  }
  const storeArg = isDir
    ? arg
    : cloud
      ? withQuery(pathPart.slice(0, pathPart.lastIndexOf('/') + 1))
      : path.dirname(arg);
  const storage = await openStore(storeArg, settings);
  const isMatch = isGlob ? picomatch(base) : () => true;
  // Only direct children: a glob never reaches into sub-directories.
  const keys = (await backupKeys(storage)).filter((k) => {
    const name = k.endsWith('/') ? k.slice(0, -1) : k;
    const inArchiveDir = /^(base|physical)\/[^/]+\/$/.exec(k);
    if (inArchiveDir) return isMatch(name.slice(`${inArchiveDir[1] ?? ''}/`.length));
    return !name.includes('/') && isMatch(name);
  });
  if (!keys.length) {
    throw new UsageError(
      `No backups match ${maskUri(arg)}`,
      'Check the path or pattern; quote globs so the shell does not expand them.',
    );
  }
  return keys.map((key) => ({ storage, key }));
}

/** The files of a backup that carry an encryption header: the backup itself, or every member of a cluster. */
async function encryptedFiles(storage: Storage, key: string): Promise<string[]> {
  if (!key.endsWith('/')) return [key];
  const manifest = await readManifest(storage, key.slice(0, -1)).catch(() => undefined);
  if (!manifest?.encryption) return [];
  return [manifest.globals.file, ...manifest.databases.flatMap((m) => (m.file ? [m.file] : []))];
}

/**
 * Before any long read: every encrypted file among the targets must open with the keys given.
 * Only key problems stop here; a damaged or missing file is left for the verification to report.
 */
export async function checkKeysFirst(
  targets: readonly Location[],
  unlock: UnlockerSource,
  why: string,
  moreHint = '',
): Promise<void> {
  for (const { storage, key } of targets) {
    for (const file of await encryptedFiles(storage, key)) {
      const header = await readStoredHeader(storage, file).catch(() => undefined);
      if (!header) continue;
      const location = `${storage.location.replace(/\/$/, '')}/${file}`;
      try {
        await checkUnlocks(location, header, await unlock(), why, moreHint);
      } catch (err) {
        if (err instanceof EncryptionKeyError) throw err;
      }
    }
  }
}

/** Keys from the decrypt options, read on first need: plaintext backups never need (or read) them. */
export function lazyUnlockers(flags: EncryptionFlags): UnlockerSource {
  let unlockers: Promise<KeyUnlocker[]> | undefined;
  return () => (unlockers ??= unlockersFromFlags(flags));
}

/** True when a key option was given on the command line (the key variable alone does not count). */
export function keyOptionGiven(flags: EncryptionFlags): boolean {
  return Boolean(
    flags.encryptionKeyFile || flags.encryptionKeyEnv || flags.passphraseFile || flags.identityFile?.length,
  );
}

export interface VerifyCommandOptions extends EncryptionFlags {
  quick?: boolean;
  deep?: boolean;
  json?: boolean;
}

/** The output line of one result; the reference tool's backups are marked `[ref]`. */
export function resultLine(r: VerifyResult): string {
  const size = r.sizeBytes === null ? '' : ` (${formatBytes(r.sizeBytes)})`;
  const mark = r.producer === 'reference' ? ' [ref]' : '';
  return `${r.state === 'valid' ? 'OK  ' : 'FAIL'}  ${r.location}${mark}${size}: ${r.state === 'valid' ? r.detail : `${r.state}: ${r.detail}`}`;
}

/** Options for verifyAny from --quick / --deep and the key options; checks their combination. */
export function verifyMode(opts: VerifyCommandOptions): VerifyOptions {
  if (opts.quick && opts.deep)
    throw new UsageError(
      '--quick and --deep exclude each other',
      'Use one: --quick reads nothing, --deep reads everything.',
    );
  if (!opts.deep && keyOptionGiven(encryptionFlags(opts)))
    throw new UsageError(
      'Keys are only used with --deep',
      'Add --deep to decrypt and check the dump; without it the checksum is verified without a key.',
    );
  return {
    quick: Boolean(opts.quick),
    deep: opts.deep ? { unlock: lazyUnlockers(encryptionFlags(opts)) } : undefined,
  };
}
