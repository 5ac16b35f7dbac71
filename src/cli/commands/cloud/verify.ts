import type { Command } from 'commander';
import type { EncryptionFlags } from '../../../crypto/index.js';
import { DbBackupError } from '../../../errors.js';
import { NO_KEY_HINT } from '../../../verify/deep.js';
import { verifyAny } from '../../../verify/verify.js';
import { requireCloud } from '../../cloud-transfer.js';
import { cloudSettings, globals, out } from '../../context.js';
import { withDecryptOptions } from '../../encryption-options.js';
import { checkKeysFirst, expandBackups, resultLine, verifyMode } from '../../verify-args.js';

interface CloudVerifyOptions extends EncryptionFlags {
  quick?: boolean;
  deep?: boolean;
}

export function addVerifyCommand(cloud: Command): void {
  withDecryptOptions(cloud.command('verify'))
    .description(
      'Re-hash stored backups against their metadata (a backup URI, or a prefix for all of them); --deep also decrypts and checks each dump',
    )
    .argument('<uri>', 'cloud URI of a backup or a prefix ending in /')
    .option('--quick', 'compare sizes only')
    .option('--deep', 'also decrypt (authenticating every chunk), decompress and check each dump is complete')
    .action(async (uri: string, opts: CloudVerifyOptions, cmd: Command) => {
      requireCloud(uri);
      const mode = verifyMode(opts);
      const settings = cloudSettings(globals(cmd));
      // The same resolution as verify-backup (a backup, a prefix — with or without a query after
      // its '/' — a cluster, a glob), so the two commands cannot disagree about what a URI names.
      const targets = await expandBackups(uri, settings);
      if (mode.deep) await checkKeysFirst(targets, mode.deep.unlock, '--deep', NO_KEY_HINT);
      let bad = 0;
      for (const { storage, key } of targets) {
        const r = await verifyAny(storage, key, mode);
        if (r.state !== 'valid') bad++;
        out.line(resultLine(r));
      }
      if (bad)
        throw new DbBackupError(`${bad} of ${targets.length} backups failed verification`, {
          hint: 'Do not rely on the failed backups.',
        });
    });
}
