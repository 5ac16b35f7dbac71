import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { sidecarOwner } from '../../catalog/naming.js';
import {
  EncryptionKeyError,
  protectorsFromFlags,
  unlockersFromFlags,
  type EncryptionFlags,
} from '../../crypto/index.js';
import { describeProtections, describeProtectors } from '../../crypto/stored-header.js';
import {
  planRekey,
  rekey,
  type RekeyKeys,
  type RekeyOutcome,
  type RekeyTarget,
} from '../../crypto/rekey-backup.js';
import { DbBackupError, IntegrityError, UsageError } from '../../errors.js';
import type { CloudSettings } from '../../storage/cloud.js';
import { isCloudUri } from '../../storage/cloud-uri.js';
import { openStore, type Location } from '../../storage/uri.js';
import { backupDir, cloudSettings, globals, out } from '../context.js';
import {
  encryptionFlags,
  newKeyFlags,
  withDecryptOptions,
  withNewKeyOptions,
  type NewKeyFlags,
} from '../encryption-options.js';
import { interruptSignal } from '../signals.js';
import { expandBackups } from '../verify-args.js';

interface RekeyOptions extends EncryptionFlags, NewKeyFlags {
  add?: boolean;
  confirm?: boolean;
  json?: boolean;
}

/** A bare name that is not a path here names a backup (or cluster backup) in the backup directory. */
async function resolveTargets(arg: string, dir: string, settings: CloudSettings): Promise<Location[]> {
  if (!isCloudUri(arg) && !arg.includes('/') && !(await stat(arg).catch(() => undefined))) {
    const storage = await openStore(dir);
    const isCluster = (await stat(path.join(dir, arg)).catch(() => undefined))?.isDirectory() === true;
    return [{ storage, key: isCluster ? `${arg}/` : (sidecarOwner(arg) ?? arg) }];
  }
  return expandBackups(arg, settings);
}

function afterText(target: RekeyTarget, keys: RekeyKeys): string {
  const added = describeProtectors(keys.protectors);
  return keys.add ? `${describeProtections(target.before)}, ${added}` : added;
}

function whatText(target: RekeyTarget): string {
  return target.kind === 'cluster'
    ? ` (cluster backup: globals and ${target.files.length - 1} database dumps, rewritten under new names)`
    : '';
}

export function rekeyCommand(): Command {
  return withNewKeyOptions(withDecryptOptions(new Command('rekey')))
    .description(
      'Give encrypted backups new keys or recipients without re-encrypting the data: the header is rewrapped, the checksums rewritten (a dry run unless --confirm)',
    )
    .argument(
      '<backups...>',
      'backups: names in the backup dir, files, directories, globs, cluster backups or cloud URIs',
    )
    .option('--add', 'keep the current protections and add the new ones (default: replace them)')
    .option('--confirm', 'really rekey (without it, only checks the keys and prints the plan)')
    .option('--json', 'print the plan and result as JSON')
    .addHelpText(
      'after',
      `
The current key is given like for a restore (--encryption-key-file, --encryption-key-env,
--passphrase-file, --identity-file); the new protections like for a backup, prefixed with --new-.

Examples:
  dbbackup rekey shop_20261126_050000.dump.zst.enc --encryption-key-file old.key --new-recipient age1…           # dry run
  dbbackup rekey ~/db_backups/ --identity-file old-id.txt --new-recipients-file recipients.txt --confirm
  dbbackup rekey cluster_20261126_050000 --passphrase-file pass.txt --new-encryption-key-file new.key --confirm
  dbbackup rekey 's3://bucket/backups/*.enc' --identity-file id.txt --new-recipient age1… --add --confirm

Copies of a backup made before it was rekeyed still open with the old keys: revoking a key protects
only what is rekeyed.`,
    )
    .action(runRekey);
}

/** Checks every backup and key first, then rewraps each header (a dry run unless --confirm). */
async function runRekey(args: string[], opts: RekeyOptions, cmd: Command): Promise<void> {
  const g = globals(cmd);
  const settings = cloudSettings(g);
  // New keys first: a bad key file fails before anything is read.
  const protectors = await protectorsFromFlags(newKeyFlags(opts));
  if (!protectors.length) {
    throw new UsageError(
      'Name the new keys',
      'Give --new-recipient, --new-recipients-file, --new-encryption-key-file, --new-encryption-key-env or --new-passphrase-file.',
    );
  }
  const keys: RekeyKeys = {
    unlockers: await unlockersFromFlags(encryptionFlags(opts)),
    protectors,
    add: Boolean(opts.add),
  };
  const targets: Location[] = [];
  for (const arg of args) targets.push(...(await resolveTargets(arg, backupDir(g), settings)));

  // Every backup is checked (complete, encrypted, opened by the key) before any is changed.
  const plans: RekeyTarget[] = [];
  const skipped: Array<{ location: string; reason: string }> = [];
  for (const { storage, key } of targets) {
    try {
      plans.push(await planRekey(storage, key, keys.unlockers));
    } catch (err) {
      const skippable = err instanceof UsageError || err instanceof IntegrityError;
      if (!skippable || err instanceof EncryptionKeyError || targets.length === 1) throw err;
      skipped.push({ location: `${storage.location.replace(/\/$/, '')}/${key}`, reason: err.message });
    }
  }
  if (!plans.length) {
    throw new UsageError(
      'None of these backups can be rekeyed',
      skipped[0] ? `For example: ${skipped[0].reason}.` : undefined,
    );
  }
  const planned = plans.map((p) => ({
    location: p.location,
    kind: p.kind,
    files: p.files,
    before: describeProtections(p.before),
    after: afterText(p, keys),
  }));

  if (!opts.confirm) {
    if (opts.json) out.json({ dryRun: true, backups: planned, skipped });
    else {
      out.line('Rekey plan (dry run: nothing is changed):');
      for (const [i, p] of plans.entries()) {
        out.line(`  ${p.location}${whatText(p)}`);
        out.line(`      now:   ${planned[i]?.before ?? ''}`);
        out.line(`      after: ${planned[i]?.after ?? ''}`);
      }
      for (const s of skipped) out.line(`  skip: ${s.reason}`);
      out.line(
        `The keys given open ${plans.length === 1 ? 'it' : `all ${plans.length} backups`}. Only the headers change: the data is copied, not re-encrypted, and the checksums are rewritten.`,
      );
      out.line('Dry run: nothing was changed. Add --confirm to rekey.');
    }
    return;
  }

  const signal = interruptSignal();
  const results: Array<{ location: string; outcome: RekeyOutcome }> = [];
  for (const s of skipped) out.note(`skipped: ${s.reason}`);
  for (const plan of plans) {
    let outcome: RekeyOutcome;
    try {
      outcome = await rekey(plan, keys, signal);
    } catch (err) {
      if (err instanceof DbBackupError && results.length) {
        err.details.push(
          `${results.length} of ${plans.length} backups were rekeyed before this failure; the others are unchanged.`,
        );
      }
      throw err;
    }
    results.push({ location: plan.location, outcome });
    for (const f of outcome.leftovers)
      out.note(`warning: the old file ${f} could not be removed; it is no longer part of the backup`);
    if (!opts.json) {
      const first = outcome.files[0];
      const detail =
        plan.kind === 'cluster'
          ? `${outcome.files.length} files rewritten`
          : `sha256 ${first?.sha256.slice(0, 16) ?? ''}…`;
      out.line(`Rekeyed ${plan.location}: now ${describeProtections(outcome.after)} (${detail})`);
    }
  }
  if (opts.json)
    out.json({
      dryRun: false,
      backups: results.map((r) => ({ location: r.location, ...r.outcome })),
      skipped,
    });
  else {
    out.line(`Rekeyed ${results.length} backup${results.length === 1 ? '' : 's'}.`);
    if (!keys.add) out.note('Copies of these backups made before this rekey still open with the old keys.');
  }
}
