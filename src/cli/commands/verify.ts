import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import picomatch from 'picomatch';
import { backupKeys } from '../../catalog/listing.js';
import { sidecarOwner } from '../../catalog/naming.js';
import { MANIFEST_NAME } from '../../catalog/manifest.js';
import { DbBackupError, UsageError } from '../../errors.js';
import { formatBytes } from '../../pipeline/progress.js';
import type { CloudSettings } from '../../storage/cloud.js';
import { isCloudUri, maskUri } from '../../storage/cloud-uri.js';
import { openLocation, openStore, type Location } from '../../storage/uri.js';
import { verifyAny, type VerifyResult } from '../../verify/verify.js';
import { cloudSettings, globals, out } from '../context.js';

/** One argument → the backups it names: a file or object, a directory or prefix, or a glob in the last part. */
async function expand(arg: string, settings: CloudSettings): Promise<Location[]> {
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
    const location = await openLocation(arg, settings);
    // A sidecar names its backup.
    return [{ ...location, key: sidecarOwner(location.key) ?? location.key }];
  }
  // A cluster backup's own directory (or prefix) names that one backup.
  const trimmed = pathPart.replace(/\/+$/, '');
  const dirName = trimmed.slice(trimmed.lastIndexOf('/') + 1);
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

export function verifyCommand(): Command {
  return new Command('verify-backup')
    .description('Check backups against their metadata: size (--quick) or the SHA-256 of every byte')
    .argument('<backups...>', 'backup files, directories, globs, or cloud URIs (s3://bucket/prefix/*.zst)')
    .option('--quick', 'compare sizes only (no full read)')
    .option('--json', 'print results as JSON')
    .addHelpText(
      'after',
      `\nExamples:\n  dbbackup verify-backup ~/db_backups/shop_20261126_050000.dump.zst\n  dbbackup verify-backup '~/db_backups/*.zst' --quick`,
    )
    .action(async (args: string[], opts: { quick?: boolean; json?: boolean }, cmd: Command) => {
      const results: VerifyResult[] = [];
      const settings = cloudSettings(globals(cmd));
      for (const arg of args) {
        for (const { storage, key } of await expand(arg, settings)) {
          results.push(await verifyAny(storage, key, Boolean(opts.quick)));
        }
      }
      if (opts.json) out.json({ results });
      else {
        for (const r of results) {
          const size = r.sizeBytes === null ? '' : ` (${formatBytes(r.sizeBytes)})`;
          out.line(
            `${r.state === 'valid' ? 'OK  ' : 'FAIL'}  ${r.location}${size}: ${r.state === 'valid' ? r.detail : `${r.state}: ${r.detail}`}`,
          );
        }
      }
      const bad = results.filter((r) => r.state !== 'valid').length;
      if (bad) {
        throw new DbBackupError(
          `${bad} of ${results.length} backup${results.length > 1 ? 's' : ''} failed verification`,
          {
            hint: 'Do not rely on the failed backups; take a new backup.',
          },
        );
      }
      if (!opts.json) out.line(`All ${results.length} backup${results.length > 1 ? 's' : ''} verified.`);
    });
}
