import type { Command } from 'commander';
import { formatBytes } from '../units.js';
import type { CleanupResult, PlannedBackup, PruneItem } from '../retention/cleanup.js';
import { out, printable } from './context.js';

/*
 * The retention flags and the printed retention plan, shared by `cleanup` and the backup commands
 * that prune afterwards (`backup --keep-…`); the rules themselves are in catalog/retention.ts and
 * the run in retention/cleanup.ts.
 */

export { retentionPolicy, timeZoneOf, type RetentionOptions } from '../retention/policy-options.js';

/** Adds the retention flags to a command (cleanup, and backup commands that prune afterwards). */
export function withRetentionOptions(cmd: Command): Command {
  return cmd
    .option('--keep-last <n>', 'keep the n newest backups')
    .option('--keep-hourly <n>', 'keep the newest backup of each of the last n hours that have one')
    .option('--keep-daily <n>', 'keep the newest backup of each of the last n days that have one')
    .option('--keep-weekly <n>', 'keep the newest backup of each of the last n ISO weeks that have one')
    .option('--keep-monthly <n>', 'keep the newest backup of each of the last n months that have one')
    .option('--keep-yearly <n>', 'keep the newest backup of each of the last n years that have one')
    .option(
      '--keep-within <duration>',
      'keep everything within this long of the newest backup (e.g. 7d, 2w, 1y6m)',
    )
    .option('--retention-days <n>', 'keep everything younger than n days…')
    .option('--min-backups <n>', '…and the n newest, whatever their age')
    .option('--time-zone <tz>', 'time zone for hour/day/week/month/year buckets (default: local)');
}

export const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** The label of a backup in the plan: what the rule decided and what really happened to it. */
function planLabel(d: PlannedBackup): string {
  switch (d.outcome) {
    case 'kept':
      return 'keep  ';
    case 'would delete':
      return 'DELETE';
    case 'deleted':
      return 'deleted';
    default:
      return 'FAILED';
  }
}

function pruneLabel(i: PruneItem): string {
  switch (i.action) {
    case 'reported':
    case 'within grace':
      return 'report ';
    case 'would remove':
      return 'REMOVE ';
    case 'removed':
      return 'removed';
    default:
      return 'FAILED ';
  }
}

export function printCleanup(r: CleanupResult, dryRun: boolean, json: boolean, graceHours = 24): void {
  if (json) {
    out.json({ ...r, dryRun });
    return;
  }
  out.line(`Retention plan for ${r.location}${dryRun ? ' (dry run: nothing is deleted)' : ''}:`);
  let group = '';
  for (const d of r.decisions) {
    if (d.group !== group) {
      group = d.group;
      out.line(`  ${printable(group)}`);
    }
    const when = d.time.toISOString().replace('T', ' ').slice(0, 19);
    const proven = d.keep && d.state === 'valid' ? ' [checksum verified]' : '';
    const failed = d.error ? `: ${d.error}` : '';
    out.line(`    ${planLabel(d)}  ${when}  ${d.key}  (${d.reasons.join(', ')})${proven}${failed}`);
  }
  for (const i of r.incomplete) {
    const note =
      i.action === 'within grace'
        ? ` (kept: younger than the ${graceHours} h grace period)`
        : i.action === 'would remove'
          ? ` (would remove ${i.files.join(', ')})`
          : i.error
            ? `: ${i.error}`
            : '';
    out.line(`  ${pruneLabel(i)}  ${i.key}: ${i.state}: ${printable(i.detail)}${note}`);
  }
  if (r.notOurs.length) {
    out.line('Not ours, left alone (dbbackup removes only what it wrote itself):');
    for (const n of r.notOurs) out.line(`  ${n.key}: ${n.reason}`);
  }
  if (r.checked.length) {
    const bad = r.checked.filter((c) => c.state !== 'valid');
    out.line(
      `Read in full before deleting what they replace: ${plural(r.checked.length, 'backup')}${bad.length ? `, ${bad.length} not valid (${bad.map((c) => c.key).join(', ')}): not counted` : ', all match their checksums'}.`,
    );
  }
  out.line(summary(r, dryRun));
  const pruned = pruneSummary(r);
  if (pruned) out.line(pruned);
  if (r.leftAlone.length)
    out.line(
      `${r.leftAlone.length} backup${r.leftAlone.length === 1 ? '' : 's'} of the reference tool left alone (retention does not apply to them): ${r.leftAlone.join(', ')}`,
    );
}

/** "6 kept, 5 deleted, 1 not deleted, 12.0 MiB freed." — what really happened. */
function summary(r: CleanupResult, dryRun: boolean): string {
  const kept = r.decisions.filter((d) => d.keep).length;
  const chosen = r.decisions.filter((d) => !d.keep);
  if (dryRun) {
    const bytes = chosen.reduce((s, d) => s + (d.sizeBytes ?? 0), 0);
    return `${kept} kept, ${chosen.length} would be deleted, ${formatBytes(bytes)} would be freed.`;
  }
  const failed = chosen.filter((d) => d.outcome !== 'deleted').length;
  return `${kept} kept, ${r.deleted.length} deleted${failed ? `, ${failed} not deleted` : ''}, ${formatBytes(r.freedBytes)} freed.`;
}

function pruneSummary(r: CleanupResult): string | undefined {
  const count = (a: PruneItem['action']): number => r.incomplete.filter((i) => i.action === a).length;
  const parts = [
    [count('removed'), 'removed'],
    [count('would remove'), 'would be removed'],
    [count('partly removed') + count('not removed'), 'could not be removed'],
    [count('within grace'), 'kept within the grace period'],
  ] as const;
  const said = parts.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`);
  return said.length ? `Incomplete or corrupt: ${said.join(', ')}.` : undefined;
}
