import { UsageError } from '../errors.js';
import { formatLsn, parseLsn } from './wal-names.js';
import type { TimelineChoice } from './inventory.js';

/**
 * Recovery targets and the configuration lines a restore writes. Pure.
 */
export type RecoveryTarget =
  | { kind: 'time'; text: string; time: Date }
  | { kind: 'lsn'; lsn: bigint }
  | { kind: 'xid'; xid: string }
  | { kind: 'name'; name: string }
  | { kind: 'immediate' }
  | { kind: 'end' };

export type TargetAction = 'promote' | 'pause' | 'shutdown';

export interface TargetFlags {
  targetTime?: string;
  targetLsn?: string;
  targetXid?: string;
  targetName?: string;
  targetImmediate?: boolean;
}

const TIME = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d{1,6})?)\s*(Z|[+-]\d\d(?::?\d\d)?)$/i;

/** A moment with an explicit offset; the text keeps PostgreSQL's microseconds. */
export function parseTargetTime(text: string): { text: string; time: Date } {
  const m = TIME.exec(text.trim());
  if (!m?.[1] || !m[2] || !m[3])
    throw new UsageError(
      `Invalid --target-time "${text}"`,
      'Give a date, a time to the second (or microsecond) and its UTC offset, e.g. "2026-12-07 05:33:41+00" or 2026-12-07T05:33:41Z: without an offset the moment is ambiguous.',
    );
  const zone =
    m[3].toUpperCase() === 'Z'
      ? '+00:00'
      : m[3].length === 3
        ? `${m[3]}:00`
        : m[3].includes(':')
          ? m[3]
          : `${m[3].slice(0, 3)}:${m[3].slice(3)}`;
  const time = new Date(`${m[1]}T${m[2].slice(0, 12)}${zone}`);
  if (Number.isNaN(time.getTime())) throw new UsageError(`Invalid --target-time "${text}": no such moment`);
  return { text: `${m[1]} ${m[2]}${zone}`, time };
}

/** Exactly one of the target flags (or none: to the end of the archive). */
export function targetFromFlags(f: TargetFlags): RecoveryTarget {
  const given = [
    f.targetTime !== undefined,
    f.targetLsn !== undefined,
    f.targetXid !== undefined,
    f.targetName !== undefined,
    Boolean(f.targetImmediate),
  ].filter(Boolean).length;
  if (given > 1)
    throw new UsageError(
      'Give at most one recovery target',
      'One of --target-time, --target-lsn, --target-xid, --target-name, --target-immediate (none: to the end of the archive).',
    );
  if (f.targetTime !== undefined) return { kind: 'time', ...parseTargetTime(f.targetTime) };
  if (f.targetLsn !== undefined) {
    const lsn = parseLsn(f.targetLsn);
    if (lsn === undefined)
      throw new UsageError(`Invalid --target-lsn "${f.targetLsn}"`, 'An LSN looks like 0/15D6B40.');
    return { kind: 'lsn', lsn };
  }
  if (f.targetXid !== undefined) {
    if (!/^[0-9]{1,20}$/.test(f.targetXid))
      throw new UsageError(
        `Invalid --target-xid "${f.targetXid}"`,
        'A transaction id is a number, e.g. 4642.',
      );
    return { kind: 'xid', xid: f.targetXid };
  }
  if (f.targetName !== undefined) {
    if (!f.targetName || f.targetName.length > 63)
      throw new UsageError(
        `Invalid --target-name "${f.targetName}"`,
        'A restore point name (pg_create_restore_point) has 1 to 63 characters.',
      );
    return { kind: 'name', name: f.targetName };
  }
  if (f.targetImmediate) return { kind: 'immediate' };
  return { kind: 'end' };
}

export function describeTarget(t: RecoveryTarget): string {
  switch (t.kind) {
    case 'time':
      return `time ${t.text}`;
    case 'lsn':
      return `LSN ${formatLsn(t.lsn)}`;
    case 'xid':
      return `transaction ${t.xid}`;
    case 'name':
      return `restore point "${t.name}"`;
    case 'immediate':
      return 'the end of the base backup (consistency, --target-immediate)';
    case 'end':
      return 'the end of the archive';
  }
}

/** A value in postgresql.conf syntax: single quotes, embedded quotes doubled. */
export function confValue(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

export interface RecoveryConfig {
  restoreCommand: string;
  target: RecoveryTarget;
  timeline: TimelineChoice;
  action: TargetAction;
  inclusive: boolean;
  keepArchiving: boolean;
  port?: number;
}

/** The lines appended to postgresql.auto.conf (later lines win over the base backup's own). */
export function recoveryLines(c: RecoveryConfig, header: string): string[] {
  const lines = [`# ${header}`, `restore_command = ${confValue(c.restoreCommand)}`];
  const t = c.target;
  if (t.kind === 'time') lines.push(`recovery_target_time = ${confValue(t.text)}`);
  if (t.kind === 'lsn') lines.push(`recovery_target_lsn = ${confValue(formatLsn(t.lsn))}`);
  if (t.kind === 'xid') lines.push(`recovery_target_xid = ${confValue(t.xid)}`);
  if (t.kind === 'name') lines.push(`recovery_target_name = ${confValue(t.name)}`);
  if (t.kind === 'immediate') lines.push(`recovery_target = 'immediate'`);
  if (t.kind !== 'end' && t.kind !== 'immediate' && !c.inclusive)
    lines.push(`recovery_target_inclusive = 'off'`);
  lines.push(`recovery_target_timeline = ${confValue(String(c.timeline))}`);
  // PostgreSQL's default is pause: a server that looks up but takes no writes.
  if (t.kind !== 'end') lines.push(`recovery_target_action = ${confValue(c.action)}`);
  // A restore drill must never push its new timeline into the production archive.
  if (!c.keepArchiving) lines.push(`archive_mode = 'off'`);
  if (c.port !== undefined) lines.push(`port = ${c.port}`);
  return lines;
}
