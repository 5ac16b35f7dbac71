import { Cron } from 'croner';
import { UsageError } from '../errors.js';

/**
 * Cron expressions (five fields: minute hour day-of-month month day-of-week, or @daily…) checked,
 * translated into systemd OnCalendar= values, and their next runs computed (croner). Pure.
 */

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const SYSTEMD_DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

interface Field {
  name: string;
  min: number;
  max: number;
  names?: string[];
  /** Where names start (months: jan = 1). */
  nameBase?: number;
}

const FIELDS: Field[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS, nameBase: 1 },
  // 7 is Sunday too, as in cron.
  { name: 'day of week', min: 0, max: 7, names: DAYS, nameBase: 0 },
];

function bad(expr: string, why: string): UsageError {
  return new UsageError(
    `Invalid --cron "${expr}": ${why}`,
    'Five fields: minute hour day-of-month month day-of-week, e.g. "0 5 * * *" (05:00 every day), "30 2 * * 1-5", or @daily.',
  );
}

function value(text: string, f: Field, expr: string): number {
  const lower = text.toLowerCase();
  const named = f.names?.indexOf(lower) ?? -1;
  if (named >= 0) return named + (f.nameBase ?? 0);
  if (!/^\d+$/.test(text)) throw bad(expr, `"${text}" is not a number in the ${f.name} field`);
  const n = Number(text);
  if (n < f.min || n > f.max) throw bad(expr, `${n} is outside ${f.min}-${f.max} in the ${f.name} field`);
  return n;
}

/** The values one field allows, or undefined for `*` (every value). */
function expand(text: string, f: Field, expr: string): number[] | undefined {
  if (text === '*') return undefined;
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(part);
    if (!m?.[1]) throw bad(expr, `"${part}" in the ${f.name} field`);
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) throw bad(expr, `a step of 0 in the ${f.name} field`);
    let lo: number;
    let hi: number;
    if (m[1] === '*') [lo, hi] = [f.min, f.max === 7 ? 6 : f.max];
    else if (m[1].includes('-')) {
      const [a, b] = m[1].split('-');
      lo = value(a ?? '', f, expr);
      hi = value(b ?? '', f, expr);
      if (lo > hi) throw bad(expr, `the range ${m[1]} runs backwards in the ${f.name} field`);
    } else {
      lo = value(m[1], f, expr);
      hi = m[2] === undefined ? lo : f.max === 7 ? 6 : f.max;
    }
    for (let v = lo; v <= hi; v += step) out.add(f.max === 7 ? v % 7 : v);
  }
  return [...out].sort((a, b) => a - b);
}

export interface CronSpec {
  /** As given (a macro expanded). */
  expression: string;
  fields: Array<number[] | undefined>;
}

/** Checks a cron expression; a usage error (exit 2) names what is wrong. */
export function parseCron(input: string): CronSpec {
  const trimmed = input.trim();
  if (trimmed === '@reboot')
    throw bad(input, '@reboot is not a time (systemd timers and this command schedule by the calendar)');
  const expression = MACROS[trimmed.toLowerCase()] ?? trimmed;
  const parts = expression.split(/\s+/);
  if (parts.length !== 5)
    throw bad(input, `${parts.length} fields (cron has five; seconds and years are not portable to crontab)`);
  if (
    /[?LW#]/i.test(
      expression.replace(/[a-z]{3}/gi, (w) =>
        DAYS.includes(w.toLowerCase()) || MONTHS.includes(w.toLowerCase()) ? '' : w,
      ),
    )
  )
    throw bad(input, 'L, W, # and ? are not understood by cron');
  return { expression, fields: parts.map((p, i) => expand(p, FIELDS[i] as Field, input)) };
}

/** `a..b` for a run of consecutive values, lists otherwise: systemd's calendar syntax. */
function calendarList(values: number[] | undefined, pad: boolean): string {
  if (!values) return '*';
  const fmt = (n: number): string => (pad ? String(n).padStart(2, '0') : String(n));
  const runs: string[] = [];
  for (let i = 0; i < values.length;) {
    let j = i;
    while (j + 1 < values.length && (values[j + 1] ?? 0) === (values[j] ?? 0) + 1) j++;
    const a = values[i] ?? 0;
    const b = values[j] ?? 0;
    runs.push(j > i + 1 ? `${fmt(a)}..${fmt(b)}` : j === i + 1 ? `${fmt(a)},${fmt(b)}` : fmt(a));
    i = j + 1;
  }
  return runs.join(',');
}

/**
 * The OnCalendar= values for a cron expression. Cron runs when either day field matches if both
 * are restricted; systemd needs both: such an expression becomes two OnCalendar= lines.
 */
export function toOnCalendar(spec: CronSpec): string[] {
  const [minute, hour, dom, month, dow] = spec.fields;
  const time = `${calendarList(hour, true)}:${calendarList(minute, true)}:00`;
  const date = (days: number[] | undefined): string =>
    `*-${calendarList(month, true)}-${calendarList(days, true)}`;
  const weekdays = dow ? dow.map((d) => SYSTEMD_DAYS[d] ?? '').join(',') : '';
  if (dom && dow) return [`${date(dom)} ${time}`, `${weekdays} ${date(undefined)} ${time}`];
  return [`${weekdays ? `${weekdays} ` : ''}${date(dom)} ${time}`];
}

/** The next `count` runs after `from`, in the machine's time zone (as cron and systemd run them). */
export function nextRuns(spec: CronSpec, count: number, from = new Date()): Date[] {
  // legacyMode: both day fields restricted means either (cron's rule).
  const cron = new Cron(spec.expression, { legacyMode: true, paused: true });
  const runs = cron.nextRuns(count, from);
  cron.stop();
  return runs;
}
