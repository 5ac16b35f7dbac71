import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import picomatch from 'picomatch';
import { isSidecar, looksLikeBackup } from '../../catalog/naming.js';
import { TEMP_MARKER } from '../../storage/local.js';
import { openLocation } from '../../storage/uri.js';
import { verifyBackup, type VerifyResult } from '../../verify/verify.js';
import { DbBackupError, UsageError } from '../../errors.js';
import { formatBytes } from '../../pipeline/progress.js';
import { out } from '../context.js';

/** Expand paths, directories and globs (in the file-name part) into backup files. */
async function expand(args: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const arg of args) {
    const dir = path.dirname(arg);
    const base = path.basename(arg);
    if (picomatch.scan(base).isGlob) {
      const isMatch = picomatch(base, { dot: false });
      const names = await readdir(dir).catch(() => [] as string[]);
      const matched = names.filter((n) => isMatch(n) && !isSidecar(n) && !n.startsWith(TEMP_MARKER)).sort();
      if (!matched.length)
        throw new UsageError(
          `No backups match ${arg}`,
          'Check the pattern; quote it so the shell does not expand it.',
        );
      files.push(...matched.map((n) => path.join(dir, n)));
      continue;
    }
    const s = await stat(arg).catch(() => undefined);
    if (s?.isDirectory()) {
      const names = (await readdir(arg)).filter((n) => looksLikeBackup(n) || n.endsWith('.meta.json'));
      const backups = new Set(
        names
          .map((n) => n.replace(/\.meta\.json$/, ''))
          .filter((n) => !isSidecar(n) && !n.startsWith(TEMP_MARKER)),
      );
      files.push(...[...backups].sort().map((n) => path.join(arg, n)));
    } else {
      files.push(isSidecar(arg) ? arg.replace(/\.(meta\.json|sha256)$/, '') : arg);
    }
  }
  return files;
}

export function verifyCommand(): Command {
  return new Command('verify-backup')
    .description('Check backups against their metadata: size (--quick) or the SHA-256 of every byte')
    .argument('<backups...>', 'backup files, directories or globs')
    .option('--quick', 'compare sizes only (no full read)')
    .option('--json', 'print results as JSON')
    .addHelpText(
      'after',
      `\nExamples:\n  dbbackup verify-backup ~/db_backups/shop_20261126_050000.dump.zst\n  dbbackup verify-backup '~/db_backups/*.zst' --quick`,
    )
    .action(async (args: string[], opts: { quick?: boolean; json?: boolean }) => {
      const results: VerifyResult[] = [];
      for (const file of await expand(args)) {
        const { storage, key } = openLocation(file);
        results.push(await verifyBackup(storage, key, Boolean(opts.quick)));
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
