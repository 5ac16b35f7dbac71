import path from 'node:path';
import type { Command } from 'commander';
import { copyBackup } from '../../../catalog/transfer.js';
import { describeEncryption, unlockersFromFlags, type EncryptionFlags } from '../../../crypto/index.js';
import { copyDecrypted } from '../../../crypto/decrypt-copy.js';
import { describeProtections, readStoredHeader } from '../../../crypto/stored-header.js';
import { UsageError } from '../../../errors.js';
import { maskUri } from '../../../storage/cloud-uri.js';
import { openStore } from '../../../storage/uri.js';
import { formatBytes } from '../../../units.js';
import { openSource, requireCloud, transfer, transferLine } from '../../cloud-transfer.js';
import { cloudSettings, globals, out } from '../../context.js';
import { encryptionFlags, withDecryptOptions } from '../../encryption-options.js';
import { keyOptionGiven } from '../../verify-args.js';

interface DownloadOptions extends EncryptionFlags {
  decrypt?: boolean;
  overwrite?: boolean;
}

export function addDownloadCommand(cloud: Command): void {
  withDecryptOptions(cloud.command('download'))
    .description(
      'Download a backup (and its sidecars) into a local directory, verified against its metadata; stored bytes as they are, or decrypted with --decrypt',
    )
    .argument('<uri>', 'cloud URI of the backup (or of a cluster backup: its prefix)')
    .argument('<dir>', 'local directory')
    .option('--overwrite', 'replace a different backup of the same name in the directory')
    .option(
      '--decrypt',
      'write the decrypted (still compressed) dump, with its own .sha256 and metadata, instead of the encrypted bytes (needs the key)',
    )
    .action(download);
}

async function download(uri: string, dir: string, opts: DownloadOptions, cmd: Command): Promise<void> {
  requireCloud(uri);
  const settings = cloudSettings(globals(cmd));
  const flags = encryptionFlags(opts);
  if (!opts.decrypt && keyOptionGiven(flags))
    throw new UsageError(
      'A key is only used with --decrypt',
      'Add --decrypt to write the decrypted dump; without it the backup is downloaded as stored (encrypted).',
    );
  const { storage, key } = await openSource(uri, settings);
  const dest = await openStore(dir);
  if (key.endsWith('/')) {
    if (opts.decrypt)
      throw new UsageError(
        '--decrypt works on one backup, not a cluster',
        'Download the cluster as stored, or give one member.',
      );
    out.line(transferLine('Downloaded', maskUri(uri), dest, await transfer(storage, key, dest, opts)));
    return;
  }
  if (opts.decrypt) {
    const unlockers = await unlockersFromFlags(flags);
    const d = await copyDecrypted(storage, key, dest, unlockers, Boolean(opts.overwrite));
    if (d) {
      out.line(
        `Downloaded and decrypted ${maskUri(uri)} → ${path.join(path.resolve(dir), d.key)} (${formatBytes(d.bytes)}, sha256 ${d.sha256}, ${d.chunks} chunks authenticated${d.metadata ? ', source checksum verified' : ', no metadata'}); this copy is NOT encrypted`,
      );
      return;
    }
    out.note(`${key} is not encrypted: downloading it as stored.`);
  }
  const r = await copyBackup(storage, key, dest, key, { overwrite: opts.overwrite });
  if (r.skipped) {
    out.line(transferLine('Downloaded', maskUri(uri), dest, r));
    return;
  }
  const header = r.metadata?.encryption
    ? undefined
    : await readStoredHeader(dest, r.key).catch(() => undefined);
  const encryption = r.metadata?.encryption ?? (header ? describeEncryption(header) : null);
  out.line(
    `Downloaded ${maskUri(uri)} → ${path.join(path.resolve(dir), r.key)} (${formatBytes(r.bytes)}, sha256 ${r.sha256}${r.metadata ? ', verified' : ', no metadata'}${encryption ? `; encrypted for ${describeProtections(encryption)}` : ''})`,
  );
}
