import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { LocalStorage } from './local.js';
import type { Storage } from './storage.js';

/** Where a backup lives: a store (directory or bucket prefix) plus the object key inside it. */
export interface Location {
  storage: Storage;
  /** Key of the object inside the store; empty when the argument named a store, not an object. */
  key: string;
}

const CLOUD_SCHEMES = ['s3', 'minio', 'b2', 'azure', 'azblob', 'gs', 'gcs'];

export function defaultBackupDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DBBACKUP_BACKUP_DIR || path.join(os.homedir(), 'db_backups');
}

export function isUri(arg: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(arg);
}

/** Open the store named by a directory path or URI. The only place that knows which backends exist. */
export function openStore(arg: string): Storage {
  if (!isUri(arg)) return new LocalStorage(arg);
  const scheme = arg.slice(0, arg.indexOf(':')).toLowerCase();
  if (scheme === 'file') return new LocalStorage(decodeURIComponent(new URL(arg).pathname));
  if (CLOUD_SCHEMES.includes(scheme)) {
    throw new UsageError(
      `Cloud storage (${scheme}://) is not available in this build yet`,
      'Use a local --backup-dir for now.',
    );
  }
  throw new UsageError(
    `Unknown storage scheme "${scheme}://"`,
    `Use a directory path or file:// (cloud schemes: ${CLOUD_SCHEMES.map((s) => `${s}://`).join(', ')}).`,
  );
}

/** Split a backup file argument into its store and key: `/dir/x.dump` → (LocalStorage(/dir), `x.dump`). */
export function openLocation(arg: string): Location {
  if (!isUri(arg) || arg.toLowerCase().startsWith('file://')) {
    const file = isUri(arg) ? decodeURIComponent(new URL(arg).pathname) : arg;
    const abs = path.resolve(file);
    return { storage: new LocalStorage(path.dirname(abs)), key: path.basename(abs) };
  }
  return { storage: openStore(arg), key: '' };
}
