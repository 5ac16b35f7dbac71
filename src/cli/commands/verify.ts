import { Command } from 'commander';
import { DbBackupError } from '../../errors.js';
import type { Location } from '../../storage/uri.js';
import { NO_KEY_HINT } from '../../verify/deep.js';
import { verifyAny, type VerifyResult } from '../../verify/verify.js';
import { cloudSettings, globals, out } from '../context.js';
import { withDecryptOptions } from '../encryption-options.js';
import { reportResult, type OperationReport } from '../../ops/operation.js';
import {
  checkKeysFirst,
  expandBackups,
  resultLine,
  verifyMode,
  type VerifyCommandOptions,
} from '../verify-args.js';

/** For the audit record and metrics: one backup is named, several are counted. */
function verifiedSummary(results: VerifyResult[], bad: number): OperationReport {
  const databases = [...new Set(results.map((r) => r.metadata?.database ?? r.cluster?.name ?? '*'))];
  return {
    database: databases.length === 1 ? databases[0] : '*',
    backup: results.length === 1 ? results[0]?.location : undefined,
    bytes: results.reduce((sum, r) => sum + (r.sizeBytes ?? 0), 0),
    details: { verified: results.length, failed: bad },
  };
}

export function verifyCommand(): Command {
  return withDecryptOptions(new Command('verify-backup'))
    .description(
      'Check backups against their metadata: size (--quick), the SHA-256 of every byte (default), or also the decrypted, decompressed dump (--deep)',
    )
    .argument('<backups...>', 'backup files, directories, globs, or cloud URIs (s3://bucket/prefix/*.zst)')
    .option('--quick', 'compare sizes only (no full read)')
    .option(
      '--deep',
      'also decrypt (authenticating every chunk), decompress, and check each dump is complete (pg_restore reads every data block; SQL ends with its trailer)',
    )
    .option('--json', 'print results as JSON')
    .addHelpText(
      'after',
      `
Examples:
  dbbackup verify-backup ~/db_backups/shop_20261126_050000.dump.zst
  dbbackup verify-backup '~/db_backups/*.zst' --quick
  dbbackup verify-backup ~/db_backups/ --deep --identity-file ~/.config/dbbackup/identity.txt`,
    )
    .action(async (args: string[], opts: VerifyCommandOptions, cmd: Command) => {
      const mode = verifyMode(opts);
      const settings = cloudSettings(globals(cmd));
      const targets: Location[] = [];
      for (const arg of args) targets.push(...(await expandBackups(arg, settings)));
      // A wrong or missing key stops everything at once, not after hours of reading other backups.
      if (mode.deep) await checkKeysFirst(targets, mode.deep.unlock, '--deep', NO_KEY_HINT);
      const results: VerifyResult[] = [];
      for (const { storage, key } of targets) {
        const r = await verifyAny(storage, key, mode);
        results.push(r);
        if (!opts.json) out.line(resultLine(r));
      }
      if (opts.json) out.json({ results });
      const bad = results.filter((r) => r.state !== 'valid').length;
      reportResult(verifiedSummary(results, bad));
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
