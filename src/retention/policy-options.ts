import { checkPolicy, parseDuration, type RetentionPolicy } from '../catalog/retention.js';
import { UsageError } from '../errors.js';
import { parseOptionalInteger } from '../numbers.js';

/*
 * The retention options as typed (flags of `cleanup` and the backup commands, or the fields of the
 * interactive UI's prune screen) and their strict parsing: one parser for both, so a value the CLI
 * refuses is refused in the UI too.
 */

export interface RetentionOptions {
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  keepWithin?: string;
  retentionDays?: string;
  minBackups?: string;
  timeZone?: string;
}

/** Counts of backups, days: whole numbers, strictly parsed (a blank `--keep-last ""` is an error, not 0). */
const COUNT = { min: 0, max: 1_000_000 };

export function retentionPolicy(o: RetentionOptions): RetentionPolicy {
  const policy: RetentionPolicy = {
    keepLast: parseOptionalInteger('--keep-last', o.keepLast, COUNT),
    keepHourly: parseOptionalInteger('--keep-hourly', o.keepHourly, COUNT),
    keepDaily: parseOptionalInteger('--keep-daily', o.keepDaily, COUNT),
    keepWeekly: parseOptionalInteger('--keep-weekly', o.keepWeekly, COUNT),
    keepMonthly: parseOptionalInteger('--keep-monthly', o.keepMonthly, COUNT),
    keepYearly: parseOptionalInteger('--keep-yearly', o.keepYearly, COUNT),
    keepWithinMs: o.keepWithin === undefined ? undefined : parseDuration(o.keepWithin),
    retentionDays: parseOptionalInteger('--retention-days', o.retentionDays, COUNT),
    minBackups: parseOptionalInteger('--min-backups', o.minBackups, COUNT),
  };
  checkPolicy(policy);
  return policy;
}

export function timeZoneOf(o: RetentionOptions): string {
  const tz = o.timeZone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new UsageError(`Unknown time zone "${tz}"`, 'Use an IANA name such as Europe/Berlin or UTC.');
  }
  return tz;
}
