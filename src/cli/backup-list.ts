import { drillSummaries, type DrillSummary } from '../catalog/drill-history.js';
import type { CatalogEntry } from '../verify/listing.js';
import { formatBytes } from '../units.js';
import type { Storage } from '../storage/storage.js';
import { out, table } from './context.js';

/* The table of backups that \`list backups\`, \`cloud list\` and \`restore --list\` print. */

/** Marks the reference tool's backups in the NAME column; explained under the table. */
export const REFERENCE_MARK = ' [ref]';

/** A listing's entries with their drill summaries (issue 17): "last proven restorable". */
export async function withDrills(
  storage: Storage,
  entries: CatalogEntry[],
): Promise<Array<CatalogEntry & { drills?: DrillSummary }>> {
  const drills = await drillSummaries(
    storage,
    entries.map((e) => e.key),
  );
  return entries.map((e) => ({ ...e, drills: drills.get(e.key) }));
}

/** The PROVEN column: when the last passed drill ran (and its RTO); a later failed drill says so. */
function provenCell(d: DrillSummary | undefined): string {
  if (!d?.lastDrill) return 'never drilled';
  const day = (iso: string): string => iso.replace('T', ' ').slice(0, 16);
  const proven = d.lastProven
    ? `${day(d.lastProven.time)} (RTO ${d.lastProven.restoreSeconds?.toFixed(1) ?? '?'} s)`
    : 'never';
  return d.lastDrill.outcome === 'passed'
    ? proven
    : `${proven}; last drill ${d.lastDrill.outcome} ${day(d.lastDrill.time)}`;
}

export function printBackupList(
  location: string,
  entries: Array<CatalogEntry & { drills?: DrillSummary }>,
  json: boolean,
  verified = false,
): void {
  if (json) {
    out.json({ location, checked: verified ? 'sha256' : 'size', backups: entries });
    return;
  }
  if (!entries.length) {
    out.line(`No backups in ${location}`);
    return;
  }
  // The drill column only where a drill ever ran here: a column of "never drilled" says nothing.
  const drilled = entries.some((e) => e.drills?.lastDrill);
  const rows = entries.map((e) => [
    e.producer === 'reference' ? `${e.key}${REFERENCE_MARK}` : e.key,
    e.database ?? '?',
    e.engine ?? '?',
    e.created ? e.created.toISOString().replace('T', ' ').slice(0, 19) : '?',
    e.sizeBytes === null ? '?' : formatBytes(e.sizeBytes),
    e.state === 'valid' || e.state === 'unverified' ? e.state : `${e.state}: ${e.detail}`,
    ...(drilled ? [provenCell(e.drills)] : []),
  ]);
  out.line(`Backups in ${location}:`);
  const headers = ['NAME', 'DATABASE', 'ENGINE', 'CREATED (UTC)', 'SIZE', 'STATE'];
  for (const line of table(drilled ? [...headers, 'LAST PROVEN RESTORABLE (UTC)'] : headers, rows))
    out.line(line);
  if (entries.some((e) => e.state === 'unverified'))
    out.line(
      'unverified: present with the size its metadata records; the data was not read, so a changed byte would not show. "list backups --verify" (or verify-backup) reads every byte and says valid or corrupt.',
    );
  if (entries.some((e) => e.producer === 'reference'))
    out.line(
      `${REFERENCE_MARK.trim()} made by the reference tool: restore and verify-backup read it; retention rules (cleanup) do not apply to it.`,
    );
}
