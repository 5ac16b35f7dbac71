import type { BackupMetadata } from '../catalog/metadata.js';
import type { DetectedFormat } from '../catalog/format.js';
import type { Trailer } from '../catalog/trailers.js';
import { engineFamily } from '../engines/family.js';

/** Everything decided before a restore touches anything; printed as the dry run. */
export interface RestorePlan {
  source: string;
  sizeBytes: number | null;
  detected: DetectedFormat;
  metadata: BackupMetadata | undefined;
  checksum: 'verified' | 'skipped (--force)' | 'not available (no metadata)' | 'to verify';
  target: string;
  endpoint: string;
  targetExists: boolean;
  targetObjects: number;
  actions: string[];
  tool: string;
  jobs: number;
  /**
   * Set for SQL dumps whose completeness nothing vouches for (no dbbackup metadata checked: a dump
   * of another tool, or --force): its completion trailer, checked as the dump streams in.
   */
  trailer?: Trailer;
  warnings: string[];
  /**
   * The database's own properties (owner, privileges, encoding, settings, comment…): what the restore
   * applies, in order, and what it leaves as it is, with the reason.
   */
  databaseProperties?: { apply: string[]; leave: string[] };
}

export function describePlan(plan: RestorePlan): string[] {
  const d = plan.detected;
  const what = `${engineFamily(d.engine ?? 'mariadb').label} ${d.format === 'custom' ? 'custom-format archive' : 'SQL dump'}`;
  const lines = [
    `Backup:    ${plan.source}${plan.sizeBytes !== null ? ` (${plan.sizeBytes} bytes)` : ''}`,
    `Content:   ${what}, compression ${d.compression}${plan.metadata ? `, database "${plan.metadata.database}" from ${plan.metadata.startedAt}` : ''}`,
    `Checksum:  ${plan.checksum}`,
    `Target:    database "${plan.target}" on ${plan.endpoint} (${plan.targetExists ? `exists, ${objectCount(plan.targetObjects)}` : 'does not exist'})`,
    `Tool:      ${plan.tool}${plan.jobs > 1 ? ` with ${plan.jobs} jobs` : ''}`,
    'Steps:',
    ...plan.actions.map((a, i) => `  ${i + 1}. ${a}`),
  ];
  const props = plan.databaseProperties;
  if (props) {
    lines.push('Database properties:');
    for (const a of props.apply) lines.push(`  apply: ${a}`);
    for (const l of props.leave) lines.push(`  leave: ${l}`);
  }
  for (const w of plan.warnings) lines.push(`Warning:   ${w}`);
  return lines;
}

export function objectCount(n: number): string {
  return `${n} object${n === 1 ? '' : 's'}`;
}
