import type { EncryptionFlags, KeyUnlocker } from '../crypto/index.js';
import { DbBackupError, errorMessage } from '../errors.js';
import type { OsUser } from '../os/user.js';
import type { Storage } from '../storage/storage.js';
import type { Engine } from '../types.js';
import type { DrillResult, DrillSubject } from './drill.js';

/**
 * What the drills of point-in-time backups share (a PostgreSQL base backup in a WAL archive, a
 * MariaDB physical backup in a binlog archive): their inputs, and how they count what they read.
 */
export interface ArchiveDrillInput {
  storage: Storage;
  /** The archive as given (restore_command names it). */
  archive: string;
  /** A backup's name (`base_…`, `phys_…`, with or without `base/`/`physical/`) or `latest`. */
  backup: string;
  osUser: OsUser;
  flags: EncryptionFlags;
  envFile?: string;
  unlockers: () => Promise<readonly KeyUnlocker[]>;
  keep: boolean;
  /** How long recovery (or the server's start) may take. */
  timeoutMs: number;
  signal: AbortSignal;
  onNote: (line: string) => void;
  onWarning: (line: string) => void;
  /** Called once the backup is known (before anything is restored): the header line, the run lock. */
  onSubject: (subject: DrillSubject) => Promise<void>;
}

export interface ArchiveDrill {
  subject: DrillSubject;
  result: DrillResult;
}

/** What the checks of a restored server read, per database and in total. */
export interface ScanTally {
  databases: number;
  tables: number;
  rows: number;
  /** Indexes checked (amcheck bt_index_check / CHECK TABLE). */
  indexes: number;
  /** Tables whose pages were checked (amcheck verify_heapam / CHECK TABLE). */
  heapChecked: number;
}

export function emptyTally(): ScanTally {
  return { databases: 0, tables: 0, rows: 0, indexes: 0, heapChecked: 0 };
}

/** The name as the archive's restore knows it: `base/base_x/` → `base_x`. */
export function archiveName(name: string, prefix: 'base' | 'physical'): string {
  return name.replace(new RegExp(`^${prefix}/`), '').replace(/\/+$/, '');
}

/** Rejects when the signal fires, so a long check is not waited for after Ctrl-C/SIGTERM. */
export function whenAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = (): void => reject(new Error('Interrupted'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

/** A point-in-time drill's result before anything ran. */
export function newResult(server: string): DrillResult {
  return {
    outcome: 'failed',
    restoreSeconds: null,
    totalSeconds: 0,
    units: [],
    differences: [],
    warnings: [],
    server,
    lines: [],
  };
}

/**
 * The outcome, once the scratch server and directory are gone: interrupted, failed (an error or a
 * difference, the first difference then being the error) or passed. Before the backup was even
 * known there is nothing to record: the error is thrown.
 */
export function finish(
  subject: DrillSubject | undefined,
  result: DrillResult,
  signal: AbortSignal,
  started: number,
): ArchiveDrill {
  const interrupted = signal.aborted;
  const failed = result.error !== undefined || result.differences.length > 0;
  result.outcome = interrupted ? 'interrupted' : failed ? 'failed' : 'passed';
  if (result.error === undefined && result.differences.length && !interrupted)
    result.error = new DbBackupError(result.differences[0] ?? '');
  result.totalSeconds = (Date.now() - started) / 1000;
  if (!subject)
    throw result.error instanceof Error ? result.error : new DbBackupError(errorMessage(result.error));
  return { subject, result };
}

/** The archive backup a drill proves, announced (the header line, the run lock) before anything is restored. */
export async function announceArchiveSubject(
  i: ArchiveDrillInput,
  o: {
    entry: string;
    engine: Engine;
    meta: { startedAt: string; connection: { host: string; port: number | string } };
  },
): Promise<DrillSubject> {
  const subject: DrillSubject = {
    storage: i.storage,
    entry: o.entry,
    location: `${i.storage.location.replace(/\/$/, '')}/${o.entry}`,
    engine: o.engine,
    takenAt: o.meta.startedAt,
    source: `${o.meta.connection.host}:${o.meta.connection.port}`,
    label: '*',
    units: [],
  };
  await i.onSubject(subject);
  return subject;
}

/** A plan that cannot reach the end of the archive (a lost WAL segment or binlog) is the drill's failure. */
export function acceptPlan(
  i: ArchiveDrillInput,
  result: DrillResult,
  plan: { refusals: string[]; warnings: string[] },
): void {
  if (plan.refusals.length) {
    result.differences.push(...plan.refusals.map((r) => `cannot be restored: ${r}`));
    throw new DbBackupError(`Not restorable to the end of the archive: ${plan.refusals[0] ?? ''}`);
  }
  for (const w of plan.warnings) i.onWarning(w);
}
