import { DbBackupError } from '../../errors.js';
import type { RetentionPolicy } from '../../catalog/retention.js';
import { formatBytes } from '../../units.js';
import { requireIdentity } from '../../pitr/archive.js';
import { applyPitrCleanup, planPitrCleanup } from '../../pitr/retention.js';
import { lazyUnlockers } from '../../pitr/wal-keys.js';
import type { Storage } from '../../storage/storage.js';
import { out } from '../context.js';

/**
 * `cleanup` on a WAL archive (called by cleanup.ts): the retention policy chooses base backups;
 * WAL older than the oldest retained backup's start goes with them.
 */
export async function cleanupArchive(
  storage: Storage,
  policy: RetentionPolicy,
  o: { timeZone: string; dryRun: boolean; json: boolean },
): Promise<void> {
  const identity = await requireIdentity(storage);
  const plan = await planPitrCleanup(storage, identity, policy, {
    timeZone: o.timeZone,
    unlockers: lazyUnlockers({}),
  });
  const result = o.dryRun ? undefined : await applyPitrCleanup(storage, plan);
  if (o.json) {
    out.json({
      location: storage.location,
      dryRun: o.dryRun,
      decisions: plan.decisions,
      incomplete: plan.incomplete,
      cutoff: plan.cutoff,
      wal: { delete: plan.wal.delete.map((w) => w.key), keep: plan.wal.keep },
      refusals: plan.refusals,
      result,
    });
  } else {
    out.line(
      `Retention plan for the WAL archive ${storage.location}${o.dryRun ? ' (dry run: nothing is deleted)' : ''}:`,
    );
    for (const d of plan.decisions)
      out.line(
        `  ${d.keep ? 'keep  ' : o.dryRun ? 'DELETE' : 'deleted'}  ${d.time.toISOString().replace('T', ' ').slice(0, 19)}  base/${d.key}  (${d.reasons.join(', ')})`,
      );
    for (const name of plan.incomplete)
      out.line(`  report   base/${name}: incomplete (no meta.json): left alone`);
    out.line(
      plan.cutoff
        ? `  WAL: ${plan.wal.delete.length} object(s) before ${plan.cutoff} (the oldest retained base backup's start) ${o.dryRun ? 'would be deleted' : 'deleted'}, ${plan.wal.keep} kept; history files are never deleted`
        : '  WAL: nothing is deleted (no base backup is retained)',
    );
    for (const r of plan.refusals) out.line(`REFUSED: ${r}`);
    if (result)
      out.line(
        `${result.deletedBases.length} base backup(s) and ${result.deletedWal} WAL object(s) deleted, ${formatBytes(result.freedBytes)} freed.`,
      );
    for (const e of result?.errors ?? []) out.note(`error: ${e}`);
  }
  if (plan.refusals.length)
    throw new DbBackupError(`Nothing deleted: ${plan.refusals[0]}`, {
      hint: 'Run "dbbackup wal verify --deep" and take a new base backup.',
    });
  if (result?.errors.length)
    throw new DbBackupError(`${result.errors.length} deletions failed`, {
      hint: 'Run cleanup again; what remains is still consistent.',
    });
}
