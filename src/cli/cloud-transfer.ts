import { manifestKey } from '../catalog/manifest.js';
import {
  copyBackup,
  copyCluster,
  type ClusterTransferResult,
  type TransferResult,
} from '../catalog/transfer.js';
import { UsageError } from '../errors.js';
import type { CloudSettings } from '../storage/cloud.js';
import { isCloudUri, maskUri } from '../storage/cloud-uri.js';
import type { Storage } from '../storage/storage.js';
import { openLocation, type Location } from '../storage/uri.js';
import { formatBytes } from '../units.js';

/** What the `cloud` leaves share: the URI check, the source of a transfer, one backup or a cluster moved. */

export function requireCloud(uri: string): void {
  if (!isCloudUri(uri))
    throw new UsageError(
      `${uri} is not a cloud URI`,
      'Use s3://, minio://, b2://, azure://, azblob://, gs:// or gcs://.',
    );
}

/**
 * A backup argument → its store and key, where a cluster backup (a directory or prefix holding a
 * manifest.json, with or without the trailing '/') is the key `cluster_x/`.
 */
export async function openSource(arg: string, settings: CloudSettings): Promise<Location> {
  const q = isCloudUri(arg) ? arg.indexOf('?') : -1;
  const pathPart = q >= 0 ? arg.slice(0, q) : arg;
  const query = q >= 0 ? arg.slice(q) : '';
  const trimmed = pathPart.replace(/\/manifest\.json$/, '').replace(/\/+$/, '');
  const location = await openLocation(trimmed + query, settings);
  const cluster =
    !(await location.storage.stat(location.key)) &&
    Boolean(await location.storage.stat(manifestKey(location.key)));
  if (cluster) return { ...location, key: `${location.key}/` };
  if (trimmed !== pathPart)
    throw new UsageError(
      `${maskUri(arg)} names a directory, not a backup or a cluster backup`,
      'Give one backup (…/shop_20261126_050000.dump.zst) or a cluster backup (…/cluster_20261126_050000/).',
    );
  return location;
}

export type AnyTransfer = TransferResult | ClusterTransferResult;

/** One backup or a whole cluster, never replacing a different one unless --overwrite. */
export function transfer(
  from: Storage,
  key: string,
  to: Storage,
  opts: { overwrite?: boolean },
): Promise<AnyTransfer> {
  return key.endsWith('/')
    ? copyCluster(from, key, to, { overwrite: opts.overwrite })
    : copyBackup(from, key, to, key, { overwrite: opts.overwrite });
}

export function transferLine(verb: string, source: string, to: Storage, r: AnyTransfer): string {
  const where = `${to.location.replace(/\/$/, '')}/${'name' in r ? `${r.name}/` : r.key}`;
  if (r.skipped)
    return `Skipped ${source}: ${where} already holds this backup (same size and SHA-256 in its ${'name' in r ? 'manifest' : 'metadata'}); nothing was written`;
  if ('name' in r)
    return `${verb} cluster ${source} → ${where} (${r.files} files, ${formatBytes(r.bytes)}, each checked against the manifest; manifest written last)`;
  return `${verb} ${source} → ${where} (${formatBytes(r.bytes)}, sha256 ${r.sha256}${r.metadata ? ', verified' : ', no metadata'})`;
}
