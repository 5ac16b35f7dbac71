import { formatBytes, formatDuration } from '../units.js';
import type { LogicalOutcome } from './binlog/logical.js';
import type { PhysicalOutcome } from './binlog/restore.js';
import type { BinlogRestorePlan } from './binlog/restore-plan.js';
import type { TargetAction } from './recovery.js';
import type { PitrRestorePlan } from './restore.js';
import type { RecoveryReached } from './start.js';

/*
 * The dry-run plans of `restore pitr` in words, one string a line: the command prints them and the
 * terminal UI shows them, so both say the same thing about the same restore.
 */

/** A PostgreSQL point-in-time restore's plan (WAL archive, base backup or chain, target, data directory). */
export function pitrPlanLines(p: PitrRestorePlan): string[] {
  const b = p.base;
  const lines = [
    `Archive:   ${p.archive}`,
    b
      ? `Base:      ${b.name} (ended ${b.finishedAt}; timeline ${b.timeline}, WAL ${b.startLsn} … ${b.stopLsn}; ${formatBytes(b.storedBytes)} stored, ${formatBytes(b.dataBytes)} of data)`
      : 'Base:      none',
  ];
  const chain = p.chain;
  if (b && chain && chain.members.length > 1) {
    lines.push(
      `Chain:     ${chain.members.length} backups, full first; ${formatBytes(chain.readBytes)} to read from the archive`,
    );
    chain.members.forEach((m, n) => {
      const size = formatBytes(m.files.reduce((k, f) => k + f.sizeBytes, 0));
      const sums = m.files.map((f) => `sha256 ${f.sha256}`).join(', ') || 'no objects';
      lines.push(
        `  ${n + 1}. ${m.name} (${m.backupType}${m.finishedAt ? `, ended ${m.finishedAt}` : ''}; ${size}; ${sums}): ${m.state}, ${m.detail}`,
      );
    });
    lines.push(`Checksum:  ${b.checksum}`);
  } else if (b) lines.push(`Checksum:  sha256 ${b.sha256}: ${b.checksum}`);
  lines.push(`Target:    ${p.target}`);
  lines.push(`Timelines: ${p.timelinePath ?? '?'} (recovery_target_timeline ${p.targetTimeline ?? '?'})`);
  if (p.window)
    lines.push(
      `WAL:       ${p.window.first} … ${p.window.last ?? '(none)'}${p.window.lastPushed ? `, newest archived ${p.window.lastPushed}` : ''}`,
    );
  lines.push(`Coverage:  ${p.coverage}`);
  for (const d of p.divergences)
    lines.push(
      `Fork:      timeline ${d.timeline} has WAL up to ${d.parentNewest} after timeline ${d.child} branched from it at ${d.switchAt}`,
    );
  lines.push(
    `Data dir:  ${p.dataDir.path} (${p.dataDir.exists ? `exists, ${p.dataDir.entries} entries` : 'will be created'}; owner ${p.dataDir.owner}, mode 0700)`,
  );
  for (const t of p.tablespaces ?? [])
    lines.push(
      `Tablespace: ${t.oid} (was ${t.from}) → ${t.to}${t.to === t.from ? '' : ' (mapped)'} (${t.exists ? `exists, ${t.entries} entries` : 'will be created'})`,
    );
  lines.push('Config:    appended to postgresql.auto.conf, with recovery.signal:');
  for (const c of p.config) lines.push(`             ${c}`);
  return [...lines, ...tail(p)];
}

/**
 * A MariaDB point-in-time restore's plan (binlog archive, physical backup chain or logical dumps,
 * binlogs to replay); `dumps`: for a logical backup, where each dump goes and what is done there.
 */
export function binlogPlanLines(p: BinlogRestorePlan, dumps: readonly string[] = []): string[] {
  const lines = [`Archive:   ${p.archive} (MariaDB binlog archive)`];
  if (p.base) {
    lines.push(
      `Base:      ${p.base.name} (${p.kind}, finished ${p.base.finishedAt}; binlog ${p.base.binlog.file ?? '?'}:${p.base.binlog.position ?? '?'}, GTID ${p.base.binlog.gtid || '-'})`,
    );
    const check = p.kind === 'physical' ? 'verified while it streams in' : 'verified before the restore';
    for (const m of p.base.chain)
      lines.push(
        `  chain:   ${m.name} (${m.type}, ${formatBytes(m.storedBytes)}, sha256 ${m.sha256}: ${check})`,
      );
  } else lines.push('Base:      none');
  lines.push(`Target:    ${p.target}`);
  lines.push(`Replay:    transactions after ${p.replayFrom}`);
  lines.push(
    p.binlogs
      ? `Binlogs:   ${p.binlogs.files.length} (${p.binlogs.files[0] ?? ''} … ${p.binlogs.files.at(-1) ?? ''}, ${formatBytes(p.binlogs.bytes)}), each checked before the first is applied`
      : 'Binlogs:   none needed',
  );
  lines.push(`Coverage:  ${p.coverage}`);
  if (p.dataDir)
    lines.push(
      `Data dir:  ${p.dataDir.path} (${p.dataDir.exists ? `exists, ${p.dataDir.entries} entries` : 'will be created'}; owner ${p.dataDir.owner}, mode 0750; configuration in restored.cnf)`,
    );
  for (const d of dumps) lines.push(`Into:      ${d}`);
  for (const m of p.members ?? [])
    lines.push(
      `Replay of: ${m.database}: transactions after ${m.replayFrom || '(nothing)'}, from ${m.startFile ?? '?'} (${m.binlogs} binlog(s), mariadb-binlog --database)`,
    );
  if (p.database) lines.push(`Replay of: database ${p.database} only (mariadb-binlog --database)`);
  return [...lines, ...tail(p)];
}

/** Warnings, then what refuses the restore: last, where a reader's eye ends. */
function tail(p: { warnings: readonly string[]; refusals: readonly string[] }): string[] {
  return [...p.warnings.map((w) => `Warning:   ${w}`), ...p.refusals.map((r) => `REFUSED:   ${r}`)];
}

/** The restore done (PostgreSQL): what was written. */
export function pitrRestoredLine(base: string, dataDir: string, seconds: number): string {
  return `Restored ${base} into ${dataDir} in ${formatDuration(seconds)}; recovery.signal and the recovery settings are written.`;
}

/** The restored server followed to its target (--start). */
export function pitrReachedLine(r: RecoveryReached, port: number | undefined): string {
  return `Server ${r.state} on port ${port} after ${formatDuration(r.seconds)}: ${r.stoppedAt ?? 'recovery reached the end of the archive'}${r.lastTransactionTime ? `; last transaction replayed at ${r.lastTransactionTime}` : ''}${r.timeline ? `; now on timeline ${r.timeline}` : ''}${r.replayLsn ? ` (replayed to ${r.replayLsn})` : ''}`;
}

/** How to start the restored server yourself, and what it does then. */
export function pitrStartHint(user: string, dataDir: string, target: string, action: TargetAction): string {
  const then = action === 'promote' ? 'promotes' : action === 'pause' ? 'pauses' : 'shuts down';
  return `Start it as ${user} (pg_ctl start -D ${dataDir}); it recovers to ${target} and then ${then}.`;
}

type Replayed = {
  applied: number;
  stoppedAt: string | null;
  last: { gtid: string; time: string } | null;
} | null;

function reachedText(r: Replayed): string {
  if (!r) return '; no binlog to replay';
  return `; ${r.applied} transaction(s) replayed${r.last ? `, the last ${r.last.gtid} (stamped ${r.last.time})` : ''}${r.stoppedAt ? `; stopped ${r.stoppedAt}` : ''}`;
}

/** A MariaDB point-in-time restore done: what was restored and replayed, and the server's state. */
export function binlogOutcomeLines(
  plan: BinlogRestorePlan,
  outcome: { kind: 'physical'; restored: PhysicalOutcome } | { kind: 'logical'; restored: LogicalOutcome },
  user: string,
  root: boolean,
): string[] {
  const base = plan.base?.name ?? '?';
  if (outcome.kind === 'logical')
    return [
      ...outcome.restored.databases.map(
        (d) => `Restored ${base} into ${d.database} and replayed to ${plan.target}${reachedText(d.replay)}`,
      ),
      `Done in ${formatDuration(outcome.restored.seconds)}`,
    ];
  const p = outcome.restored;
  return [
    `Restored ${base} into ${p.dataDir} in ${formatDuration(p.seconds)}${reachedText(p.replay)}`,
    p.server
      ? `Server started on port ${p.server.port} (pid ${p.server.pid}, socket ${p.server.socket}); configuration ${p.cnf}`
      : `Start it with: mariadbd --defaults-file=${p.cnf}${root ? ` --user=${user}` : ''}`,
  ];
}
