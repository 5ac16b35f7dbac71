import type { RetentionPolicy } from '../../catalog/retention.js';
import { DbBackupError } from '../../errors.js';
import { formatBytes } from '../../units.js';
import { applyBinlogCleanup, planBinlogCleanup } from '../../pitr/binlog/retention.js';
import type { Storage } from '../../storage/storage.js';
import { out } from '../context.js';

/**
 * `cleanup` on a MariaDB binlog archive (called by cleanup.ts): the policy chooses physical chains,
 * kept or deleted whole; binlogs older than the oldest kept backup's binlog file go with them.
 */
export async function cleanupBinlogArchive(
  storage: Storage,
  policy: RetentionPolicy,
  o: { timeZone: string; dryRun: boolean; json: boolean },
): Promise<void> {
  const plan = await planBinlogCleanup(storage, policy, { timeZone: o.timeZone });
  const result = o.dryRun ? undefined : await applyBinlogCleanup(storage, plan);
  if (o.json) {
    out.json({
      location: storage.location,
      dryRun: o.dryRun,
      decisions: plan.decisions,
      incomplete: plan.incomplete,
      cutoff: plan.cutoff,
      binlogs: { delete: plan.binlogs.delete.map((b) => b.dataKey), keep: plan.binlogs.keep },
      refusals: plan.refusals,
      result,
    });
  } else {
    out.line(
      `Retention plan for the binlog archive ${storage.location}${o.dryRun ? ' (dry run: nothing is deleted)' : ''}:`,
    );
    for (const d of plan.decisions)
      out.line(
        `  ${d.keep ? 'keep  ' : o.dryRun ? 'DELETE' : 'deleted'}  ${d.time.toISOString().replace('T', ' ').slice(0, 19)}  chain ${d.members.join(' + ')}  (${d.reasons.join(', ')})`,
      );
    for (const name of plan.incomplete)
      out.line(`  report   physical/${name}: incomplete (no meta.json): left alone`);
    out.line(
      plan.cutoff
        ? `  Binlogs: ${plan.binlogs.delete.length} object(s) before ${plan.cutoff} (the oldest kept backup's binlog) ${o.dryRun ? 'would be deleted' : 'deleted'}, ${plan.binlogs.keep} kept`
        : '  Binlogs: nothing is deleted (no kept backup records a binlog position)',
    );
    for (const r of plan.refusals) out.line(`REFUSED: ${r}`);
    if (result)
      out.line(
        `${result.deletedBackups.length} physical backup(s) and ${result.deletedBinlogs} binlog(s) deleted, ${formatBytes(result.freedBytes)} freed.`,
      );
    for (const e of result?.errors ?? []) out.note(`error: ${e}`);
  }
  if (plan.refusals.length)
    throw new DbBackupError(`Nothing deleted: ${plan.refusals[0]}`, {
      hint: 'Run "dbbackup verify-backup" on the newest physical backup and take a new one.',
    });
  if (result?.errors.length)
    throw new DbBackupError(`${result.errors.length} deletions failed`, {
      hint: 'Run cleanup again; what remains is still consistent.',
    });
}
