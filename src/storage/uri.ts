import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import {
  asPrefix,
  isCloudUri,
  maskUri,
  parseCloudUri,
  splitObjectPath,
  SUPPORTED_SCHEMES,
  type Provider,
} from './cloud-uri.js';
import type { CloudSettings, OpenCloudStore } from './cloud.js';
import { LocalStorage } from './local/local.js';
import type { Storage } from './storage.js';

/** Where a backup lives: a store (directory or bucket prefix) plus the object key inside it. */
export interface Location {
  storage: Storage;
  /** Key of the object inside the store. */
  key: string;
}

export function defaultBackupDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DBBACKUP_BACKUP_DIR || path.join(os.homedir(), 'db_backups');
}

export function isUri(arg: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(arg);
}

/** Cloud backends load their SDK only when used, so local commands start fast. */
const CLOUD_BACKENDS: Record<Provider, () => Promise<OpenCloudStore>> = {
  s3: async () => (await import('./s3/s3.js')).openS3,
  azure: async () => (await import('./azure/azure.js')).openAzure,
  gcs: async () => (await import('./gcs/gcs.js')).openGcs,
};

function localPathOf(arg: string): string {
  return arg.toLowerCase().startsWith('file://') ? decodeURIComponent(new URL(arg).pathname) : arg;
}

/**
 * Anything that starts like a URI (`word:`) is one: `s3:/bucket/x` (one slash), `s3:bucket` or
 * `ftp://host/x` is a usage error, never a relative directory (which once put a backup in
 * ./s3:/bucket/x/). A local directory whose name holds ':' is written `./name:…`.
 */
export function checkScheme(arg: string): void {
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(arg);
  if (!m) return;
  const scheme = (m[1] ?? '').toLowerCase();
  if (scheme === 'file' ? arg.toLowerCase().startsWith('file://') : isCloudUri(arg)) return;
  const known = SUPPORTED_SCHEMES.includes(scheme) || scheme === 'file';
  const rest = arg.slice(m[0].length).replace(/^\/*/, '');
  throw new UsageError(
    known
      ? `Malformed storage URI "${maskUri(arg)}"`
      : `Unknown storage scheme "${scheme}:" in "${maskUri(arg)}"`,
    known
      ? `Write ${scheme}://${rest} (two slashes after "${scheme}:").`
      : `Use a directory path, file://, or one of: ${SUPPORTED_SCHEMES.map((s) => `${s}://`).join(', ')}. For a local directory whose name contains ':', write ./${arg}.`,
  );
}

/** Open the store named by a directory path or URI (the URI's path is a prefix). The only place that knows which backends exist. */
export async function openStore(arg: string, settings: CloudSettings = {}): Promise<Storage> {
  checkScheme(arg);
  if (!isCloudUri(arg)) return new LocalStorage(localPathOf(arg));
  const uri = parseCloudUri(arg);
  return (await CLOUD_BACKENDS[uri.provider]())(uri, asPrefix(uri.path), settings);
}

/** Split a backup file argument into its store and key: `/dir/x.dump` → (LocalStorage(/dir), `x.dump`). */
export async function openLocation(arg: string, settings: CloudSettings = {}): Promise<Location> {
  checkScheme(arg);
  if (!isCloudUri(arg)) {
    const abs = path.resolve(localPathOf(arg));
    return { storage: new LocalStorage(path.dirname(abs)), key: path.basename(abs) };
  }
  const uri = parseCloudUri(arg);
  const { prefix, name } = splitObjectPath(uri.path);
  if (!name)
    throw new UsageError(
      `${uri.display} names a directory, not a backup`,
      'Give the full object name, e.g. s3://bucket/backups/shop_20261126_050000.dump.zst.',
    );
  return { storage: await (await CLOUD_BACKENDS[uri.provider]())(uri, prefix, settings), key: name };
}
