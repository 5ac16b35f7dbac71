import { UsageError } from '../errors.js';

/** A retention policy: restic's keep rules plus the reference tool's days/minimum. A backup kept by any rule is kept. */
export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** Keep everything within this many milliseconds of the group's newest backup (restic --keep-within). */
  keepWithinMs?: number;
  /** Reference semantics: keep what is younger than N days (relative to now)… */
  retentionDays?: number;
  /** …and the M newest, whatever their age. */
  minBackups?: number;
}

export interface RetentionItem {
  key: string;
  /** Backups are grouped by engine + host + database; rules apply per group. */
  group: string;
  /** The backup's own timestamp (from its metadata), never a file's mtime. */
  time: Date;
  valid: boolean;
}

export interface RetentionDecision extends RetentionItem {
  keep: boolean;
  /** Why it is kept (`last 1/3`, `daily 2026-11-25`, `newest valid backup`…), or why it goes. */
  reasons: string[];
  /**
   * Kept by a rule's slot (a count, a calendar bucket, the oldest, the newest valid backup), not
   * only by its age. Only such a backup stands in for others: were it bad, an older backup would
   * take its slot instead of being deleted. Age (--keep-within, --retention-days) keeps each backup
   * for itself, whatever the others are.
   */
  holdsSlot: boolean;
}

/**
 * A policy that can be applied. `--min-backups` only qualifies an age rule (keep the M newest even
 * when older than N days): alone it would read as a rule that keeps M, and delete everything else.
 */
export function checkPolicy(p: RetentionPolicy): void {
  if (p.minBackups !== undefined && p.retentionDays === undefined && p.keepWithinMs === undefined)
    throw new UsageError(
      '--min-backups needs an age rule (--retention-days or --keep-within)',
      '--min-backups M keeps the M newest backups that the age rule would delete; to keep the M newest backups and nothing else, use --keep-last M.',
    );
}

export function hasRule(p: RetentionPolicy): boolean {
  return [
    p.keepLast,
    p.keepHourly,
    p.keepDaily,
    p.keepWeekly,
    p.keepMonthly,
    p.keepYearly,
    p.keepWithinMs,
    p.retentionDays,
    p.minBackups,
  ].some((v) => v !== undefined);
}

/** `1y2m3w4d5h` (restic style; also `30d`, `12h`) → milliseconds. Months are 30 days, years 365. */
export function parseDuration(text: string): number {
  const units: Record<string, number> = {
    y: 365 * 86_400_000,
    m: 30 * 86_400_000,
    w: 7 * 86_400_000,
    d: 86_400_000,
    h: 3_600_000,
  };
  const parts = [...text.matchAll(/(\d+)([ymwdh])/g)];
  if (!parts.length || parts.map((p) => p[0]).join('') !== text) {
    throw new UsageError(`Invalid duration "${text}"`, 'Use e.g. 7d, 12h, 2w, 1y6m (y, m, w, d, h).');
  }
  return parts.reduce((ms, p) => ms + Number(p[1]) * (units[p[2] ?? ''] ?? 0), 0);
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** One formatter per time zone: building one per backup made planning a year of hourly backups take seconds. */
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      timeZoneName: 'longOffset',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Calendar fields of an instant in a time zone (DST-aware), for bucketing by hour/day/week/month/year. */
function fields(
  time: Date,
  timeZone: string,
): { y: number; mo: number; d: number; h: number; offset: string } {
  const parts = formatter(timeZone).formatToParts(time);
  const get = (type: string): string => parts.find((p) => p.type === type)?.value ?? '';
  return {
    y: Number(get('year')),
    mo: Number(get('month')),
    d: Number(get('day')),
    h: Number(get('hour')),
    offset: get('timeZoneName'),
  };
}

/** ISO 8601 week of a calendar date: weeks start on Monday; week 1 holds the year's first Thursday. */
export function isoWeek(y: number, mo: number, d: number): string {
  const date = new Date(Date.UTC(y, mo - 1, d));
  const day = date.getUTCDay() || 7;
  date.setUTCDate(date.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(date.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((date.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${date.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

type Bucketer = (time: Date, index: number) => string;

function bucketers(
  timeZone: string,
): Record<'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly', Bucketer> {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return {
    last: (_t, i) => `#${i}`,
    // The UTC offset is part of the hour: when clocks go back, 02:00–03:00 happens twice and is two hours.
    hourly: (t) => {
      const f = fields(t, timeZone);
      return `${f.y}-${pad(f.mo)}-${pad(f.d)} ${pad(f.h)}h ${f.offset}`;
    },
    daily: (t) => {
      const f = fields(t, timeZone);
      return `${f.y}-${pad(f.mo)}-${pad(f.d)}`;
    },
    weekly: (t) => {
      const f = fields(t, timeZone);
      return isoWeek(f.y, f.mo, f.d);
    },
    monthly: (t) => {
      const f = fields(t, timeZone);
      return `${f.y}-${pad(f.mo)}`;
    },
    yearly: (t) => String(fields(t, timeZone).y),
  };
}

/**
 * Decide, per group, what to keep. Like restic: walking from the newest backup, each rule keeps the
 * newest backup of each of its next N distinct buckets (hours, days, ISO weeks…). Invalid backups
 * (incomplete, corrupt) never fill a rule's slot and are never deleted here; the newest valid
 * backup of a group is always kept, whatever the flags.
 */
export function planRetention(
  items: RetentionItem[],
  policy: RetentionPolicy,
  now: Date,
  timeZone: string,
): RetentionDecision[] {
  if (!hasRule(policy))
    throw new UsageError(
      'No retention rule given',
      'Add --keep-last, --keep-daily…, --keep-within or --retention-days.',
    );
  const b = bucketers(timeZone);
  const out: RetentionDecision[] = [];
  const groups = new Map<string, RetentionItem[]>();
  for (const item of items) {
    const members = groups.get(item.group);
    if (members) members.push(item);
    else groups.set(item.group, [item]);
  }

  for (const members of groups.values()) {
    // A backup without a usable timestamp cannot be placed in time: it is reported and kept, never counted.
    const timed = members.filter((m) => Number.isFinite(m.time.getTime()));
    for (const m of members.filter((x) => !Number.isFinite(x.time.getTime()))) {
      out.push({
        ...m,
        keep: true,
        holdsSlot: false,
        reasons: ['unreadable timestamp: reported, not counted'],
      });
    }
    // Newest first; ties on the same instant broken by key so the plan is deterministic.
    const sorted = [...timed].sort(
      (x, y) => y.time.getTime() - x.time.getTime() || (y.key < x.key ? -1 : y.key > x.key ? 1 : 0),
    );
    // Backups dated in the future (clock skew) are kept, and do not move the reference point of
    // duration rules: otherwise one bad clock would make every real backup look old.
    const future = sorted.filter((m) => m.valid && m.time.getTime() > now.getTime());
    const valid = sorted.filter((m) => m.valid && m.time.getTime() <= now.getTime());
    const rules: Array<{ name: string; count: number; bucket: Bucketer; calendar: boolean; last?: string }> =
      [];
    const add = (name: string, count: number | undefined, bucket: Bucketer, calendar: boolean): void => {
      if (count !== undefined && count > 0) rules.push({ name, count, bucket, calendar });
    };
    add('last', policy.keepLast, b.last, false);
    add('min-backups', policy.minBackups, b.last, false);
    add('hourly', policy.keepHourly, b.hourly, true);
    add('daily', policy.keepDaily, b.daily, true);
    add('weekly', policy.keepWeekly, b.weekly, true);
    add('monthly', policy.keepMonthly, b.monthly, true);
    add('yearly', policy.keepYearly, b.yearly, true);
    const newest = valid[0]?.time.getTime();

    const slotted = valid.map(() => false);
    const reasonsOf = valid.map((item, index) => {
      const reasons: string[] = [];
      for (const rule of rules) {
        if (rule.count <= 0) continue;
        const bucket = rule.bucket(item.time, index);
        if (bucket !== rule.last) {
          rule.last = bucket;
          rule.count--;
          slotted[index] = true;
          reasons.push(
            rule.calendar ? `${rule.name} ${bucket.split(' GMT')[0]}` : `${rule.name} ${index + 1}`,
          );
        }
      }
      if (
        policy.keepWithinMs !== undefined &&
        newest !== undefined &&
        newest - item.time.getTime() <= policy.keepWithinMs
      ) {
        reasons.push('within');
      }
      // "Older than N days" is deleted: a backup exactly N days old is not older, so it stays.
      if (
        policy.retentionDays !== undefined &&
        now.getTime() - item.time.getTime() <= policy.retentionDays * 86_400_000
      ) {
        reasons.push(`not older than ${policy.retentionDays} days`);
      }
      if (index === 0) {
        reasons.push('newest valid backup');
        slotted[index] = true;
      }
      return reasons;
    });
    // As restic (0.17+): a calendar rule with slots left also keeps the oldest backup, so the
    // history reaches back as far as the policy asked for.
    const oldest = reasonsOf.length - 1;
    for (const rule of rules) {
      if (rule.calendar && rule.count > 0 && oldest >= 0) {
        reasonsOf[oldest]?.push(`${rule.name} oldest`);
        slotted[oldest] = true;
      }
    }
    valid.forEach((item, index) => {
      const reasons = reasonsOf[index] ?? [];
      out.push({
        ...item,
        keep: reasons.length > 0,
        holdsSlot: slotted[index] ?? false,
        reasons: reasons.length ? [...new Set(reasons)] : ['no rule keeps it'],
      });
    });
    for (const item of future)
      out.push({
        ...item,
        keep: true,
        holdsSlot: false,
        reasons: ['timestamp in the future: kept, not counted'],
      });
    for (const item of sorted.filter((m) => !m.valid)) {
      out.push({
        ...item,
        keep: true,
        holdsSlot: false,
        reasons: ['not valid: reported, not counted (see --prune-incomplete)'],
      });
    }
  }
  return out.sort(
    (x, y) => (x.group < y.group ? -1 : x.group > y.group ? 1 : 0) || y.time.getTime() - x.time.getTime(),
  );
}
