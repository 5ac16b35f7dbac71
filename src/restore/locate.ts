import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { isCloudUri } from '../storage/cloud-uri.js';
import type { CloudSettings } from '../storage/cloud.js';
import type { Storage } from '../storage/storage.js';
import { openLocation, openStore, type Location } from '../storage/uri.js';

/**
 * Where a backup named on the command line is: restore, drill and verify take the same spellings
 * (a name in the backup directory, a path, a cloud URI).
 */

/** A cluster backup argument → its store and name: `cluster_x` (in the backup dir), `/dir/cluster_x`, `s3://b/p/cluster_x/`. */
export async function resolveClusterArg(
  arg: string,
  dir: string,
  settings: CloudSettings,
): Promise<{ storage: Storage; name: string }> {
  // A cloud URI's query (?endpoint=http://…) holds slashes of its own: it belongs to the parent.
  const q = isCloudUri(arg) ? arg.indexOf('?') : -1;
  const query = q >= 0 ? arg.slice(q) : '';
  const trimmed = (q >= 0 ? arg.slice(0, q) : arg).replace(/\/+$/, '').replace(/\/manifest\.json$/, '');
  const slash = trimmed.lastIndexOf('/');
  if (slash < 0 || (!isCloudUri(trimmed) && !trimmed.includes('/'))) {
    // A bare name: a file here (a reference cluster_<ts>.tar.gz), else a name in the backup directory.
    if (existsSync(trimmed) && statSync(trimmed).isFile())
      return { storage: await openStore(process.cwd()), name: trimmed };
    return { storage: await openStore(dir), name: trimmed };
  }
  const parent = trimmed.slice(0, slash + 1);
  return {
    storage: await openStore(isCloudUri(trimmed) ? parent + query : path.resolve(parent), settings),
    name: trimmed.slice(slash + 1),
  };
}

/** A single backup argument → its store and key; a bare name that is not a file here is in the backup directory. */
export async function resolveBackupArg(arg: string, dir: string, settings: CloudSettings): Promise<Location> {
  if (!arg.includes('/') && !existsSync(arg)) return { storage: await openStore(dir), key: arg };
  return openLocation(arg, settings);
}
