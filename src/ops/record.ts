/**
 * One operation's result, as the audit log, the metrics, the notifications and the hooks see it.
 * The audit log stores exactly this, one JSON object per line (schema version `v`).
 */

export type Outcome = 'success' | 'failure' | 'interrupted';

export interface OperationRecord {
  /** Schema version of the record. */
  v: 1;
  /** Operation id (a UUID), also in every log line of the run. */
  id: string;
  /** When it finished (ISO 8601, UTC). */
  time: string;
  /** When it started. */
  started: string;
  durationSeconds: number;
  /** The command as typed: `backup single`, `restore cluster`, `cloud delete`. */
  command: string;
  /** The command as a metric label: `backup_single`. */
  kind: string;
  outcome: Outcome;
  exitCode: number;
  /** Nothing was changed: a plan without --confirm, or --dry-run. */
  dryRun: boolean;
  /** Who: the operating-system user. */
  user: string;
  /** The machine dbbackup ran on. */
  host: string;
  pid: number;
  /** dbbackup's version. */
  version: string;
  profile?: string;
  engine?: string;
  /** The database server (`host:port` or its socket). */
  server?: string;
  database?: string;
  /** Where backups were written or read: directory or URI (secrets masked). */
  destination?: string;
  /** The backup written, read or deleted (its name or location). */
  backup?: string;
  /** Bytes stored (backup), read (restore, verify) or deleted. */
  bytes?: number;
  error?: string;
  hint?: string;
  /** Anything else the command reported (counts, flags). */
  details?: Record<string, string | number | boolean>;
}

export function isOperationRecord(value: unknown): value is OperationRecord {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  return (
    r.v === 1 &&
    typeof r.id === 'string' &&
    typeof r.time === 'string' &&
    typeof r.command === 'string' &&
    (r.outcome === 'success' || r.outcome === 'failure' || r.outcome === 'interrupted')
  );
}
