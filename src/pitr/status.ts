import type { EncryptionFlags } from '../crypto/index.js';
import { engineFamily } from '../engines/family.js';
import type { PostgresEngine } from '../engines/postgres.js';
import { DbBackupError, errorMessage } from '../errors.js';
import { formatBytes, formatDuration } from '../units.js';
import type { CloudSettings } from '../storage/cloud.js';
import type { Engine } from '../types.js';
import { maskUri } from '../storage/cloud-uri.js';
import { openStore } from '../storage/uri.js';
import { analyzeArchive } from './analysis.js';
import { requireIdentity } from './archive.js';
import { commandOption, isDbbackupArchiveCommand } from './commands.js';
import { parsePushFailure, PUSH_STATUS_FILE, type PushFailure } from './push-status.js';
import {
  archiverStats,
  readServerFile,
  readyBacklog,
  serverFacts,
  type ArchiverStats,
  type ReadyBacklog,
} from './server.js';
import { lazyUnlockers } from './wal-keys.js';

export interface PitrStatus {
  server: {
    endpoint: string;
    reachable: boolean;
    error?: string;
    archiveMode?: string;
    archiveCommandIsDbbackup?: boolean;
    archiveTimeout?: number;
  };
  archiver: ArchiverStats | null;
  backlog: ReadyBacklog | null;
  /** The reason the last failed push gave (from pg_wal), when it is newer than the last success. */
  lastError: PushFailure | null;
  archive: {
    location: string | null;
    reachable: boolean;
    error?: string;
    segments?: number;
    bytes?: number;
    newest?: { segment: string; pushedAt: string; ageSeconds: number };
  };
  windows: Array<{
    base: string;
    state: string;
    detail: string;
    from?: string;
    until?: string | null;
    lastSegment?: string | null;
    gap?: { missing: string; resumesAt: string };
    timeline?: number;
  }>;
  /** Things that need attention (each a sentence); empty when all is well. */
  problems: string[];
}

/** Lag beyond which a quiet archive is reported (only when the server has archive_timeout unset it is normal). */
const STALE_FACTOR = 3;

export async function pitrStatus(o: {
  engine: PostgresEngine;
  database: string;
  archive?: string;
  settings: CloudSettings;
  flags: EncryptionFlags;
  now?: Date;
}): Promise<PitrStatus> {
  const now = o.now ?? new Date();
  const status: PitrStatus = {
    server: { endpoint: o.engine.endpoint, reachable: false },
    archiver: null,
    backlog: null,
    lastError: null,
    archive: { location: o.archive ? maskUri(o.archive) : null, reachable: false },
    windows: [],
    problems: [],
  };
  let archiveUri = o.archive;
  try {
    const c = await o.engine.connect(o.database);
    try {
      const facts = await serverFacts(c, 'pitr').catch(() => undefined);
      status.server.reachable = true;
      const settings = await c.query<{ name: string; setting: string }>(
        "SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'archive_command', 'archive_timeout')",
      );
      const get = (n: string) => settings.rows.find((r) => r.name === n)?.setting ?? '';
      const command = facts?.settings.archive_command ?? get('archive_command');
      status.server.archiveMode = get('archive_mode');
      status.server.archiveCommandIsDbbackup = isDbbackupArchiveCommand(command);
      status.server.archiveTimeout = Number(get('archive_timeout'));
      archiveUri ??= commandOption(command, '--archive');
      status.archive.location = archiveUri ? maskUri(archiveUri) : null;
      status.archiver = await archiverStats(c);
      status.backlog = await readyBacklog(c);
      const failure = parsePushFailure(await readServerFile(c, `pg_wal/${PUSH_STATUS_FILE}`));
      const a = status.archiver;
      if (failure && (!a.lastArchivedTime || new Date(failure.time) > a.lastArchivedTime))
        status.lastError = failure;
    } finally {
      await c.end().catch(() => undefined);
    }
  } catch (err) {
    status.server.error = errorMessage(err);
  }
  if (archiveUri) await archivePart(status, archiveUri, o, now);
  status.problems.push(...problemsOf(status, now));
  return status;
}

async function archivePart(
  status: PitrStatus,
  uri: string,
  o: { settings: CloudSettings; flags: EncryptionFlags },
  now: Date,
): Promise<void> {
  try {
    const storage = await openStore(uri, o.settings);
    status.archive.location = storage.location;
    const identity = await requireIdentity(storage);
    const analysis = await analyzeArchive(storage, identity, 'latest', lazyUnlockers(o.flags));
    status.archive.reachable = true;
    const segs = [...analysis.inventory.segments.values()];
    status.archive.segments = segs.length;
    status.archive.bytes = segs.reduce((n, s) => n + s.size, 0);
    const newest = segs.reduce<(typeof segs)[number] | undefined>(
      (best, s) => (!best || s.file.name > best.file.name ? s : best),
      undefined,
    );
    if (newest)
      status.archive.newest = {
        segment: newest.file.name,
        pushedAt: newest.modified.toISOString(),
        ageSeconds: Math.max(0, (now.getTime() - newest.modified.getTime()) / 1000),
      };
    for (const b of analysis.bases) {
      const last = b.window?.segments.at(-1);
      status.windows.push({
        base: b.name,
        state: b.state,
        detail: b.detail,
        from: b.meta?.finishedAt,
        until: last ? last.modified.toISOString() : null,
        lastSegment: b.window?.last ?? null,
        gap: b.window?.gap,
        timeline: b.targetTimeline,
      });
    }
  } catch (err) {
    status.archive.reachable = false;
    status.archive.error = err instanceof DbBackupError ? err.message : errorMessage(err);
  }
}

function problemsOf(s: PitrStatus, now: Date): string[] {
  const p: string[] = [];
  if (!s.server.reachable) p.push(`the server is not reachable: ${s.server.error ?? '?'}`);
  if (s.server.reachable && s.server.archiveMode === 'off') p.push('archive_mode is off: no WAL is archived');
  if (s.server.reachable && s.server.archiveCommandIsDbbackup === false)
    p.push("archive_command is not dbbackup's");
  const a = s.archiver;
  if (a?.lastFailedTime && (!a.lastArchivedTime || a.lastFailedTime > a.lastArchivedTime))
    p.push(
      `archiving is failing: ${a.failedCount} failures, the last at ${a.lastFailedTime.toISOString()} on ${a.lastFailedWal ?? '?'}${s.lastError ? `: ${s.lastError.message}` : ''}`,
    );
  if (s.backlog && s.backlog.count > 4)
    p.push(
      `${s.backlog.count} WAL files (${formatBytes(s.backlog.bytes)}) wait to be archived: pg_wal grows until archiving catches up`,
    );
  if (s.archive.location && !s.archive.reachable)
    p.push(`the archive is not usable: ${s.archive.error ?? '?'}`);
  const timeout = s.server.archiveTimeout ?? 0;
  const newest = s.archive.newest;
  if (newest && timeout > 0 && newest.ageSeconds > STALE_FACTOR * timeout && (s.backlog?.count ?? 0) > 0)
    p.push(
      `the newest archived segment is ${formatDuration(newest.ageSeconds)} old (archive_timeout is ${timeout}s)`,
    );
  for (const w of s.windows) {
    if (w.gap)
      p.push(
        `base backup ${w.base}: WAL is missing from ${w.gap.missing} (the archive resumes at ${w.gap.resumesAt}): point-in-time recovery stops before it`,
      );
    else if (w.state !== 'valid' && w.state !== 'incomplete') p.push(`base backup ${w.base}: ${w.detail}`);
  }
  if (s.archive.reachable && !s.windows.some((w) => w.state === 'valid'))
    p.push('no restorable base backup in the archive: run "dbbackup backup base"');
  void now;
  return p;
}

export function printPitrStatus(s: PitrStatus, line: (text: string) => void): void {
  line(
    `Server:    ${s.server.endpoint}${s.server.reachable ? '' : ` — NOT REACHABLE: ${s.server.error ?? ''}`}`,
  );
  if (s.server.reachable)
    line(
      `Archiving: archive_mode=${s.server.archiveMode ?? '?'}, archive_command ${s.server.archiveCommandIsDbbackup ? "is dbbackup's" : "is NOT dbbackup's"}`,
    );
  const a = s.archiver;
  if (a)
    line(
      `Archiver:  ${a.archivedCount} archived (last ${a.lastArchivedWal ?? '-'} at ${a.lastArchivedTime?.toISOString() ?? '-'}), ${a.failedCount} failed (last ${a.lastFailedWal ?? '-'} at ${a.lastFailedTime?.toISOString() ?? '-'})`,
    );
  if (s.lastError) line(`Last error: ${s.lastError.message} (${s.lastError.wal}, ${s.lastError.time})`);
  line(
    s.backlog
      ? `Backlog:   ${s.backlog.count} file(s) waiting (.ready), ${formatBytes(s.backlog.bytes)}${s.backlog.oldest ? `, oldest ${s.backlog.oldest}` : ''}`
      : 'Backlog:   unknown (needs pg_monitor or superuser)',
  );
  if (s.archive.location) {
    if (!s.archive.reachable) line(`Archive:   ${s.archive.location} — NOT USABLE: ${s.archive.error ?? ''}`);
    else
      line(
        `Archive:   ${s.archive.location}: ${s.archive.segments ?? 0} segments, ${formatBytes(s.archive.bytes ?? 0)}${s.archive.newest ? `; newest ${s.archive.newest.segment}, pushed ${formatDuration(s.archive.newest.ageSeconds)} ago` : ''}`,
      );
  } else line("Archive:   unknown (archive_command is not dbbackup's; give --archive)");
  for (const w of s.windows) {
    const range =
      w.state === 'valid' && w.from
        ? `from ${w.from} until about ${w.until ?? '?'} (${w.lastSegment ?? 'no WAL'}, timeline ${w.timeline ?? '?'})`
        : w.detail;
    line(`Window:    ${w.base}: ${range}${w.gap ? ` — GAP at ${w.gap.missing}` : ''}`);
  }
  for (const p of s.problems) line(`PROBLEM:   ${p}`);
  if (!s.problems.length) line('OK:        archiving works and the archive is restorable');
}

/**
 * For `status` and `preflight`: when the server archives with dbbackup, whether archiving is
 * failing or lagging (a broken archive_command never stops PostgreSQL; it fills pg_wal). Undefined
 * when the server does not archive with dbbackup or cannot be asked.
 */
export async function archivingCheck(engine: {
  engine: Engine;
  connect?: (database: string) => Promise<import('pg').Client>;
}): Promise<{ status: 'ok' | 'warn'; detail: string; hint?: string } | undefined> {
  if (engineFamily(engine.engine).logArchive !== 'wal' || !engine.connect) return undefined;
  let c;
  try {
    c = await engine.connect('postgres');
  } catch {
    return undefined;
  }
  try {
    const settings = await c.query<{ mode: string; command: string; timeout: string }>(
      "SELECT current_setting('archive_mode') AS mode, current_setting('archive_command') AS command, current_setting('archive_timeout') AS timeout",
    );
    const row = settings.rows[0];
    if (!row || row.mode === 'off' || !isDbbackupArchiveCommand(row.command)) return undefined;
    const a = await archiverStats(c);
    const backlog = await readyBacklog(c);
    const problems: string[] = [];
    if (a.lastFailedTime && (!a.lastArchivedTime || a.lastFailedTime > a.lastArchivedTime))
      problems.push(
        `archiving is failing (last failure ${a.lastFailedTime.toISOString()} on ${a.lastFailedWal ?? '?'})`,
      );
    if (backlog && backlog.count > 4)
      problems.push(`${backlog.count} WAL files (${formatBytes(backlog.bytes)}) wait to be archived`);
    const archive = commandOption(row.command, '--archive');
    if (problems.length)
      return {
        status: 'warn',
        detail: problems.join('; '),
        hint: '"dbbackup pitr status" shows the error; until archiving works, pg_wal grows and point-in-time recovery stops at the last archived segment.',
      };
    return {
      status: 'ok',
      detail: `archiving into ${archive ? maskUri(archive) : '?'}: ${a.archivedCount} archived, last ${a.lastArchivedWal ?? '-'}${backlog ? `, ${backlog.count} waiting` : ''}`,
    };
  } catch {
    return undefined;
  } finally {
    await c.end().catch(() => undefined);
  }
}
