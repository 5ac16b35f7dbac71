import { safeName, timestampTag } from '../../catalog/naming.js';
import { UsageError } from '../../errors.js';

// ---------------------------------------------------------------------------------------------
// What a sample is
// ---------------------------------------------------------------------------------------------

export type SampleStrategy = 'ratio' | 'percent' | 'count';
export const SAMPLE_STRATEGIES: SampleStrategy[] = ['ratio', 'percent', 'count'];

export interface SampleSpec {
  strategy: SampleStrategy;
  /** ratio: every Nth row (N ≥ 2); percent: about N % of rows (0 < N ≤ 100); count: at most N rows. */
  value: number;
  /**
   * Add the rows that sampled rows reference through foreign keys (transitively), so every
   * constraint holds. Without it, rows whose referenced rows are not in the sample are left out.
   */
  keepReferences: boolean;
}

/** Seed of the percent strategy: the same data gives the same sample. */
export const PERCENT_SEED = 42;

/** Throws a UsageError (exit 2) unless the strategy and value make a sample. */
export function validateSampleSpec(
  strategy: string,
  value: number,
  flag = '--sample-value',
): SampleSpec['strategy'] {
  if (!SAMPLE_STRATEGIES.includes(strategy as SampleStrategy)) {
    throw new UsageError(`Unknown sample strategy "${strategy}"`, 'Use ratio, percent or count.');
  }
  const s = strategy as SampleStrategy;
  if (!Number.isFinite(value) || value <= 0) {
    throw new UsageError(`Invalid ${flag} ${value}: it must be greater than 0`, sampleHint(s));
  }
  if (s === 'percent' && value > 100) {
    throw new UsageError(`Invalid ${flag} ${value}: a percentage cannot exceed 100`, sampleHint(s));
  }
  if (s !== 'percent' && !Number.isInteger(value)) {
    throw new UsageError(`Invalid ${flag} ${value}: ${s} needs a whole number`, sampleHint(s));
  }
  if (s === 'ratio' && value < 2) {
    throw new UsageError(
      `Invalid ${flag} ${value}: a ratio must be at least 2 (ratio 1 would keep every row)`,
      sampleHint(s),
    );
  }
  return s;
}

function sampleHint(s: SampleStrategy): string {
  switch (s) {
    case 'ratio':
      return 'Use --sample-ratio N with N ≥ 2 to keep every Nth row (e.g. --sample-ratio 10); use "backup single" for a full copy.';
    case 'percent':
      return 'Use --sample-percent N with 0 < N ≤ 100 (e.g. --sample-percent 5).';
    case 'count':
      return 'Use --sample-count N with N ≥ 1 to keep at most N rows per table (e.g. --sample-count 1000).';
  }
}

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}

/** `ratio 10 (every 10th row), referenced rows added` */
export function describeSpec(spec: SampleSpec): string {
  const what =
    spec.strategy === 'ratio'
      ? `every ${ordinal(spec.value)} row`
      : spec.strategy === 'percent'
        ? `about ${spec.value}% of the rows`
        : `at most ${spec.value} rows per table`;
  return `${spec.strategy} ${spec.value} (${what}), ${spec.keepReferences ? 'referenced rows added' : 'rows with missing references left out'}`;
}

/** `shop_sample-ratio10_20260101_120000.sql.zst`: sorts next to the database's full backups. */
export function sampleFileName(
  database: string,
  spec: SampleSpec,
  date: Date,
  extension: string,
  attempt = 0,
): string {
  const unique = attempt > 0 ? `-${attempt}` : '';
  return `${safeName(database)}_sample-${spec.strategy}${safeName(String(spec.value))}_${timestampTag(date)}${unique}${extension}`;
}
