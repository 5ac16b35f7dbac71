import path from 'node:path';
import { engineFamily } from '../engines/family.js';
import { MysqlEngine } from '../engines/mysql.js';
import { SafetyError, UsageError } from '../errors.js';
import { dataDirTarget, restoreTarget } from '../locks/targets.js';
import { takeRunLocks } from '../locks/run-lock.js';
import { reportResult } from '../ops/operation.js';
import { analyzeArchive } from '../pitr/analysis.js';
import { requireIdentity } from '../pitr/archive.js';
import {
  isPhysicalArg,
  planBinlogPitr,
  replayTargetOf,
  resolveLogicalBase,
  type BinlogPitrRequest,
} from '../pitr/binlog-pitr.js';
import { requireBinlogIdentity } from '../pitr/binlog/identity.js';
import { readPhysicalBackups } from '../pitr/binlog/physical-catalog.js';
import type { TimelineChoice } from '../pitr/inventory.js';
import { isRoot, serverOsUser } from '../os/user.js';
import {
  binlogOutcomeLines,
  pitrPlanLines,
  pitrReachedLine,
  pitrRestoredLine,
  pitrStartHint,
} from '../pitr/plan-lines.js';
import { executePitrRestoreReported } from '../pitr/read-progress.js';
import { targetFromFlags, type TargetFlags } from '../pitr/recovery.js';
import { planPitrRestore, type PitrRestoreInput } from '../pitr/restore.js';
import { restoredServerStart } from '../pitr/isolation.js';
import { startAndFollow } from '../pitr/start.js';
import type { StepReporter } from '../restore/single.js';
import { isCloudUri, maskUri } from '../storage/cloud-uri.js';
import { openStore } from '../storage/uri.js';
import { listBackups } from '../verify/listing.js';
import { unlockersFor, type KeyEntry } from './keys.js';
import { underLocks, type RestoreContext } from './live-restore.js';
import type { BaseBackupList, PitrDone, PitrPreview, PitrRequest, PitrWatch } from './services.js';

/** How long a started server may take to come up (and, PostgreSQL, to reach the target): as the command. */
const START_TIMEOUT_MS = { wal: 3600_000, binlog: 600_000 };

/**
 * `restore pitr` for the UI, PostgreSQL (WAL archive) and MariaDB (binlog archive) alike: the same
 * domain calls as the command (planPitrRestore and executePitrRestore; planBinlogPitr and its
 * execute), the preview being its dry run, the run its --confirm (and --start), under the same run
 * locks, audited under the same name, its plan and outcome in the same words (pitr/plan-lines.ts).
 */
export class PitrServices {
  constructor(private readonly ctx: RestoreContext) {}

  private get binlog(): boolean {
    return engineFamily(this.ctx.engine()).logArchive === 'binlog';
  }

  private async openArchive(archive: string): Promise<Awaited<ReturnType<typeof openStore>>> {
    const where = archive.trim();
    if (!where)
      throw new UsageError(
        `No ${this.binlog ? 'binlog' : 'WAL'} archive given`,
        'Type the archive directory or URI, or set pitr.archive in Settings.',
      );
    return openStore(where, this.ctx.config().cloudSettings);
  }

  async listBaseBackups(archive: string, keys: KeyEntry): Promise<BaseBackupList> {
    const storage = await this.openArchive(archive);
    if (this.binlog) {
      await requireBinlogIdentity(storage);
      const physical = (await readPhysicalBackups(storage)).map((e) => ({
        name: e.name,
        kind: e.meta ? `physical ${e.meta.backupType}` : 'physical',
        state: e.state,
        detail: e.detail,
        finishedAt: e.meta?.finishedAt,
        sizeBytes: e.meta?.sizeBytes,
      }));
      return { location: storage.location, bases: [...physical, ...(await this.logicalBackups())] };
    }
    const identity = await requireIdentity(storage);
    const analysis = await analyzeArchive(storage, identity, 'latest', () => unlockersFor(keys));
    return {
      location: storage.location,
      bases: analysis.bases.map((b) => ({
        name: b.name,
        state: b.state,
        detail: b.detail,
        finishedAt: b.meta?.finishedAt,
        timeline: b.meta?.timeline,
        sizeBytes: b.meta?.sizeBytes,
      })),
    };
  }

  /** The engine's logical backups (single and cluster) in the configured archive, by their location. */
  private async logicalBackups(): Promise<BaseBackupList['bases']> {
    const config = this.ctx.config();
    const where = config.cloud ?? config.backupDir;
    const storage = config.cloud ? await openStore(where, config.cloudSettings) : await openStore(where);
    const engines = engineFamily(this.ctx.engine()).engines as readonly string[];
    const entries = await listBackups(storage).catch(() => []);
    return entries
      .filter((e) => (e.kind === 'single' || e.kind === 'cluster') && engines.includes(e.engine ?? ''))
      .map((e) => ({
        name: locationOf(where, e.key),
        shown: e.key,
        kind: `logical ${e.kind ?? ''}`,
        logical: true,
        state: e.state,
        detail: e.detail,
        finishedAt: e.created?.toISOString(),
        sizeBytes: e.sizeBytes ?? undefined,
      }));
  }

  async previewPitr(r: PitrRequest): Promise<PitrPreview> {
    if (this.binlog) {
      const planned = await planBinlogPitr(await this.binlogRequest(r));
      try {
        return {
          request: r,
          into: planned.plan.dataDir?.path ?? `the server ${this.ctx.serverKey()}`,
          lines: planned.lines(),
          refusals: planned.plan.refusals,
        };
      } finally {
        await planned.close();
      }
    }
    const { plan } = await planPitrRestore(await this.pitrInput(r));
    const shown = isCloudUri(plan.archive) ? maskUri(plan.archive) : plan.archive;
    return {
      request: r,
      into: plan.dataDir.path,
      lines: pitrPlanLines({ ...plan, archive: shown }),
      refusals: plan.refusals,
    };
  }

  async runPitr(preview: PitrPreview, watch: PitrWatch, signal: AbortSignal): Promise<PitrDone> {
    const r = preview.request;
    const physical = !this.binlog || isPhysicalArg(r.base || 'latest');
    const lock = physical ? dataDirTarget(r.dataDir.trim()) : restoreTarget(this.ctx.serverKey(), '*');
    const reporter: StepReporter = {
      begin: (step, meter, total) => watch.begin(step, () => meter.bytes, total),
      end: (outcome) => watch.end(outcome),
    };
    return this.ctx.audited(
      { command: 'restore pitr', engine: this.ctx.engine(), server: this.ctx.serverKey(), database: '*' },
      () =>
        underLocks(
          () => takeRunLocks([lock]),
          () =>
            this.binlog
              ? this.runBinlog(r, watch, reporter, signal)
              : this.runWal(r, watch, reporter, signal),
        ),
    );
  }

  private async runWal(
    r: PitrRequest,
    watch: PitrWatch,
    reporter: StepReporter,
    signal: AbortSignal,
  ): Promise<PitrDone> {
    const input = await this.pitrInput(r);
    // Planned again under the lock: the directory or the archive may have changed since the preview.
    const { plan, chosen } = await planPitrRestore(input);
    if (plan.refusals.length || !chosen)
      throw new SafetyError(`Restore refused: ${plan.refusals[0] ?? 'no base backup'}`, {
        hint: 'Nothing was changed. Go back and change the options.',
      });
    const done = await executePitrRestoreReported(input, plan, chosen, signal, reporter);
    const lines = [pitrRestoredLine(plan.base?.name ?? '?', done.dataDir, done.seconds)];
    watch.note(lines[0] ?? '');
    if (r.start && input.port !== undefined) {
      // The same isolation as `restore pitr --start`: the copy's socket, 127.0.0.1 only, no collector.
      const start = await restoredServerStart({
        dataDir: done.dataDir,
        user: input.osUser,
        port: input.port,
        keepArchiving: input.keepArchiving,
      });
      for (const note of start.notes) watch.note(note);
      const reached = await startAndFollow({
        dataDir: done.dataDir,
        user: input.osUser,
        port: input.port,
        action: r.action,
        logFile: path.resolve(`${done.dataDir}.log`),
        timeoutMs: START_TIMEOUT_MS.wal,
        settings: start.settings,
        signal,
      });
      lines.push(pitrReachedLine(reached, input.port), `Socket:    ${start.socketDir} (port ${input.port})`);
    } else lines.push(pitrStartHint(input.osUser.name, done.dataDir, plan.target, r.action));
    reportResult({ backup: plan.base?.name, bytes: done.storedBytes });
    return { seconds: done.seconds, lines };
  }

  private async runBinlog(
    r: PitrRequest,
    watch: PitrWatch,
    reporter: StepReporter,
    signal: AbortSignal,
  ): Promise<PitrDone> {
    const started = Date.now();
    // Planned again under the lock: the archive, the directory or the server may have changed.
    const planned = await planBinlogPitr(await this.binlogRequest(r));
    try {
      if (planned.plan.refusals.length)
        throw new SafetyError(`Restore refused: ${planned.plan.refusals[0]}`, {
          hint: 'Nothing was changed. Go back and change the options.',
        });
      const outcome = await planned.execute({
        signal,
        onStep: (l) => watch.note(l),
        onWarning: (l) => watch.note(`warning: ${l}`),
        reporter,
      });
      reportResult({
        backup: planned.plan.base?.name,
        bytes: planned.plan.base?.chain.reduce((n, m) => n + m.storedBytes, 0),
      });
      return {
        seconds: (Date.now() - started) / 1000,
        lines: binlogOutcomeLines(planned.plan, outcome, planned.osUser.name, isRoot()),
      };
    } finally {
      await planned.close();
    }
  }

  private async binlogRequest(r: PitrRequest): Promise<BinlogPitrRequest> {
    const config = this.ctx.config();
    const storage = await this.openArchive(r.archive);
    const identity = await requireBinlogIdentity(storage);
    const backup = r.base || 'latest';
    const physical = isPhysicalArg(backup);
    if (physical && !r.dataDir.trim())
      throw new UsageError(
        'No data directory given',
        'Give an empty or new directory for the restored server.',
      );
    const engine = this.ctx.engine();
    return {
      storage,
      identity,
      backup,
      logical: physical
        ? undefined
        : await resolveLogicalBase(backup, config.backupDir, config.cloudSettings),
      target: replayTargetOf(binlogTarget(r)),
      dataDir: physical ? r.dataDir.trim() : undefined,
      force: physical && r.force,
      clean: !physical && r.clean,
      osUser: await serverOsUser(undefined, 'mysql'),
      port: physical ? portOf(r) : undefined,
      start: physical && r.start,
      timeoutMs: START_TIMEOUT_MS.binlog,
      unlockers: () => unlockersFor(r.keys),
      engine: () => new MysqlEngine(config.connection(engine)),
    };
  }

  private async pitrInput(r: PitrRequest): Promise<PitrRestoreInput> {
    if (!r.dataDir.trim())
      throw new UsageError(
        'No data directory given',
        'Give an empty or new directory for the restored cluster.',
      );
    const storage = await this.openArchive(r.archive);
    const identity = await requireIdentity(storage);
    const flags = r.keys.file.trim() ? { encryptionKeyFile: r.keys.file.trim() } : {};
    return {
      storage,
      archive: r.archive.trim(),
      identity,
      base: r.base || 'latest',
      target: targetFromFlags(targetFlags(r)),
      timeline: timelineChoice(r.timeline),
      timelineExplicit: r.timeline.trim() !== '' && r.timeline.trim() !== 'latest',
      action: r.action,
      inclusive: r.inclusive,
      dataDir: r.dataDir.trim(),
      force: r.force,
      osUser: await serverOsUser(undefined, 'postgres'),
      keepArchiving: false,
      port: portOf(r),
      flags,
      unlockers: () => unlockersFor(r.keys),
    };
  }
}

/** A backup's location in the archive (directory or cloud prefix), as restore pitr takes it. */
function locationOf(where: string, key: string): string {
  // A cluster backup's key ends with a slash; the command takes its directory's name without one.
  if (!isCloudUri(where)) return path.join(where, key).replace(/\/+$/, '');
  const q = where.indexOf('?');
  const base = q >= 0 ? where.slice(0, q) : where;
  return `${base.replace(/\/*$/, '/')}${key}${q >= 0 ? where.slice(q) : ''}`;
}

/** The restored server's port: needed to start it (it must not take its source's). */
function portOf(r: PitrRequest): number | undefined {
  const text = r.port.trim();
  if (!text) {
    if (r.start)
      throw new UsageError(
        'Starting the restored server needs a port',
        'The restored server must not take the port of the server it came from.',
      );
    return undefined;
  }
  const n = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new UsageError(`Invalid port "${text}"`, 'A port from 1 to 65535.');
  return n;
}

function binlogTarget(r: PitrRequest): { targetTime?: string; targetGtid?: string; targetPosition?: string } {
  const v = r.targetValue.trim();
  switch (r.targetKind) {
    case 'time':
      return { targetTime: v };
    case 'gtid':
      return { targetGtid: v };
    case 'position':
      return { targetPosition: v };
    case 'end':
      return {};
    default:
      throw new UsageError(
        `A binlog archive has no ${r.targetKind} target`,
        'Recover to the end, a time, a GTID or a binlog position.',
      );
  }
}

function targetFlags(r: PitrRequest): TargetFlags {
  const v = r.targetValue.trim();
  switch (r.targetKind) {
    case 'time':
      return { targetTime: v };
    case 'lsn':
      return { targetLsn: v };
    case 'xid':
      return { targetXid: v };
    case 'name':
      return { targetName: v };
    case 'immediate':
      return { targetImmediate: true };
    case 'end':
      return {};
    default:
      throw new UsageError(
        `A WAL archive has no ${r.targetKind} target`,
        'Recover to the end, a time, an LSN, a transaction, a restore point or the base backup.',
      );
  }
}

function timelineChoice(text: string): TimelineChoice {
  const t = text.trim() || 'latest';
  if (t === 'current' || t === 'latest') return t;
  const n = Number(t);
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff)
    throw new UsageError(`Invalid timeline "${text}"`, 'current, latest or a timeline number (1, 2, …).');
  return n;
}
