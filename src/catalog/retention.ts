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

/** Calendar fields of an instant in a time zone (DST-aware), for bucketing by hour/day/week/month/year. */
function fields(time: Date, timeZone: string): { y: number; mo: number; d: number; h: number } {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
  }).formatToParts(time);
  const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value ?? 0);
  return { y: get('year'), mo: get('month'), d: get('day'), h: get('hour') };
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
    hourly: (t) => {
      const f = fields(t, timeZone);
      return `${f.y}-${pad(f.mo)}-${pad(f.d)} ${pad(f.h)}h`;
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
  for (const item of items) groups.set(item.group, [...(groups.get(item.group) ?? []), item]);

  for (const members of groups.values()) {
    // Newest first; ties on the same instant broken by key so the plan is deterministic.
    const sorted = [...members].sort(
      (x, y) => y.time.getTime() - x.time.getTime() || y.key.localeCompare(x.key),
    );
    const valid = sorted.filter((m) => m.valid);
    const rules: Array<{ name: string; count: number; bucket: Bucketer; last?: string }> = [];
    const add = (name: string, count: number | undefined, bucket: Bucketer): void => {
      if (count !== undefined && count > 0) rules.push({ name, count, bucket });
    };
    add('last', policy.keepLast, b.last);
    add('min-backups', policy.minBackups, b.last);
    add('hourly', policy.keepHourly, b.hourly);
    add('daily', policy.keepDaily, b.daily);
    add('weekly', policy.keepWeekly, b.weekly);
    add('monthly', policy.keepMonthly, b.monthly);
    add('yearly', policy.keepYearly, b.yearly);
    const newest = valid[0]?.time.getTime();

    valid.forEach((item, index) => {
      const reasons: string[] = [];
      for (const rule of rules) {
        if (rule.count <= 0) continue;
        const bucket = rule.bucket(item.time, index);
        if (bucket !== rule.last) {
          rule.last = bucket;
          rule.count--;
          reasons.push(
            rule.name === 'last' || rule.name === 'min-backups'
              ? `${rule.name} ${index + 1}`
              : `${rule.name} ${bucket}`,
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
      if (
        policy.retentionDays !== undefined &&
        now.getTime() - item.time.getTime() < policy.retentionDays * 86_400_000
      ) {
        reasons.push(`younger than ${policy.retentionDays} days`);
      }
      if (index === 0) reasons.push('newest valid backup');
      out.push({
        ...item,
        keep: reasons.length > 0,
        reasons: reasons.length ? reasons : ['no rule keeps it'],
      });
    });
    for (const item of sorted.filter((m) => !m.valid)) {
      out.push({
        ...item,
        keep: true,
        reasons: ['not valid: reported, not counted (see --prune-incomplete)'],
      });
    }
  }
  return out.sort((x, y) => x.group.localeCompare(y.group) || y.time.getTime() - x.time.getTime());
}
