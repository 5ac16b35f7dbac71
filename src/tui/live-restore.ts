import path from 'node:path';
import { userInfo } from 'node:os';
import type { Engine } from '../catalog/naming.js';
import { DbBackupError, SafetyError, UsageError } from '../errors.js';
import { dataDirTarget, prepareLocked } from '../locks/targets.js';
import { releaseRunLocks, takeRunLocks } from '../locks/run-lock.js';
import { reportResult, type OperationStart } from '../ops/operation.js';
import { analyzeArchive } from '../pitr/analysis.js';
import { requireIdentity } from '../pitr/archive.js';
import { currentUser, isRoot, userByName, type OsUser } from '../pitr/os-user.js';
import { targetFromFlags, type TargetFlags } from '../pitr/recovery.js';
import {
  executePitrRestore,
  planPitrRestore,
  type PitrRestoreInput,
  type PitrRestorePlan,
} from '../pitr/restore.js';
import type { TimelineChoice } from '../pitr/inventory.js';
import { formatBytes, type ClusterProgressSink } from '../pipeline/progress.js';
import { DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_SERVER_WAIT_SECONDS } from '../restore/partial.js';
import { planClusterRestoreFor, type ClusterRestoreRequest as DomainClusterRequest } from '../restore/run.js';
import { isCloudUri, maskUri } from '../storage/cloud-uri.js';
import { openStore } from '../storage/uri.js';
import type { TuiConfig } from './config.js';
import { unlockersFor, type KeyEntry } from './keys.js';
import type {
  BaseBackupList,
  ClusterRestoreDone,
  ClusterRestorePreview,
  ClusterRestoreRequest,
  PitrDone,
  PitrPreview,
  PitrRequest,
} from './services.js';

/**
 * `restore cluster` and `restore pitr` for the UI: the same domain calls as the commands
 * (planClusterRestoreFor, planPitrRestore, executePitrRestore), the preview being the command's dry
 * run and the run its --confirm, under the same run locks, audited under the same names.
 */
export interface RestoreContext {
  config(): TuiConfig;
  engine(): Engine;
  /** The server as the CLI names it in audit records and backup locks. */
  serverKey(): string;
  audited<T>(start: Omit<OperationStart, 'audited'>, fn: () => Promise<T>): Promise<T>;
}

/** Holds the run locks `take` takes while `fn` runs; released after it, whatever happens. */
export async function underLocks<T>(take: () => Promise<void>, fn: () => Promise<T>): Promise<T> {
  try {
    await take();
    return await fn();
  } finally {
    await releaseRunLocks();
  }
}

/** A cluster backup's name in the configured archive as `restore cluster` takes it. */
function clusterLocation(config: TuiConfig, key: string): string {
  const name = key.replace(/\/+$/, '');
  const cloud = config.cloud;
  if (!cloud) return path.join(config.backupDir, name);
  const q = cloud.indexOf('?');
  const base = q >= 0 ? cloud.slice(0, q) : cloud;
  return `${base.replace(/\/*$/, '/')}${name}/${q >= 0 ? cloud.slice(q) : ''}`;
}

export class RestoreServices {
  constructor(private readonly ctx: RestoreContext) {}

  private clusterRequest(
    r: ClusterRestoreRequest,
    confirm: boolean,
    signal: AbortSignal,
  ): DomainClusterRequest {
    const config = this.ctx.config();
    return {
      backupDir: config.backupDir,
      cloud: config.cloudSettings,
      connection: (engine) => ({
        ...config.connection(engine),
        lockTimeoutSeconds: DEFAULT_LOCK_TIMEOUT_SECONDS,
      }),
      confirm,
      force: false,
      keys: () => unlockersFor(r.keys),
      locked: prepareLocked,
      signal,
      serverWaitMs: DEFAULT_SERVER_WAIT_SECONDS * 1000,
      onNote: () => undefined,
      backup: clusterLocation(config, r.key),
      include: r.include,
      cleanCluster: r.cleanCluster,
      jobs: r.jobs,
    };
  }

  async previewClusterRestore(r: ClusterRestoreRequest): Promise<ClusterRestorePreview> {
    const planned = await planClusterRestoreFor(this.clusterRequest(r, false, new AbortController().signal));
    try {
      const p = planned.plan;
      return {
        request: r,
        lines: [
          ...p.header,
          'Steps:',
          ...p.actions.map((a, n) => `  ${n + 1}. ${a}`),
          ...p.warnings.map((w) => `Warning: ${w}`),
        ],
        databases: p.members.map((m) => m.database),
        existing: p.existing,
      };
    } finally {
      await planned.engine.close();
    }
  }

  async runClusterRestore(
    preview: ClusterRestorePreview,
    watch: ClusterProgressSink,
    signal: AbortSignal,
  ): Promise<ClusterRestoreDone> {
    const r = preview.request;
    return this.ctx.audited(
      {
        command: 'restore cluster',
        engine: this.ctx.engine(),
        server: this.ctx.serverKey(),
        database: '*',
        backup: r.key.replace(/\/+$/, ''),
      },
      () =>
        underLocks(
          async () => undefined,
          async () => {
            const started = Date.now();
            // Planned again, now under the locks of every target: the preview may be minutes old.
            const planned = await planClusterRestoreFor(this.clusterRequest(r, true, signal));
            const warnings: string[] = [];
            try {
              await planned.execute((line) => warnings.push(line), watch);
            } finally {
              await planned.engine.close();
            }
            reportResult({ details: { databases: planned.plan.members.length } });
            return { done: planned.plan.done, seconds: (Date.now() - started) / 1000, warnings };
          },
        ),
    );
  }

  async listBaseBackups(archive: string, keys: KeyEntry): Promise<BaseBackupList> {
    const storage = await this.openArchive(archive);
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

  private async openArchive(archive: string): Promise<Awaited<ReturnType<typeof openStore>>> {
    const where = archive.trim();
    if (!where)
      throw new UsageError(
        'No WAL archive given',
        'Type the archive directory or URI, or set pitr.archive in Settings.',
      );
    return openStore(where, this.ctx.config().cloudSettings);
  }

  private async pitrInput(r: PitrRequest): Promise<PitrRestoreInput> {
    if (this.ctx.engine() !== 'postgres')
      throw new UsageError(
        'Point-in-time restore in the UI is for PostgreSQL',
        'MariaDB/MySQL: dbbackup restore pitr <backup> --archive … (binlog archive) on the command line.',
      );
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
      osUser: await serverUser(),
      keepArchiving: false,
      flags,
      unlockers: () => unlockersFor(r.keys),
    };
  }

  async previewPitr(r: PitrRequest): Promise<PitrPreview> {
    const { plan } = await planPitrRestore(await this.pitrInput(r));
    return { request: r, lines: pitrLines(plan), refusals: plan.refusals };
  }

  async runPitr(preview: PitrPreview, signal: AbortSignal): Promise<PitrDone> {
    const r = preview.request;
    return this.ctx.audited(
      { command: 'restore pitr', engine: this.ctx.engine(), server: this.ctx.serverKey(), database: '*' },
      () =>
        underLocks(
          () => takeRunLocks([dataDirTarget(r.dataDir.trim())]),
          async () => {
            const input = await this.pitrInput(r);
            // Planned again under the lock: the directory or the archive may have changed since the preview.
            const { plan, chosen } = await planPitrRestore(input);
            if (plan.refusals.length || !chosen)
              throw new SafetyError(`Restore refused: ${plan.refusals[0] ?? 'no base backup'}`, {
                hint: 'Nothing was changed. Go back and change the options.',
              });
            const done = await executePitrRestore(input, plan, chosen, signal);
            reportResult({ backup: plan.base?.name, bytes: done.storedBytes });
            const then = { promote: 'promotes', pause: 'pauses', shutdown: 'shuts down' }[r.action];
            return {
              dataDir: done.dataDir,
              seconds: done.seconds,
              next: `Start it as ${input.osUser.name} (pg_ctl start -D ${done.dataDir}); it recovers to ${plan.target} and then ${then}.`,
            };
          },
        ),
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

/** The server's OS user, as `restore pitr` picks it without --os-user: postgres as root, else you. */
async function serverUser(): Promise<OsUser> {
  if (!isRoot()) return { ...currentUser(), name: userInfo().username };
  const user = await userByName('postgres');
  if (!user)
    throw new DbBackupError('There is no OS user "postgres" to own the restored data directory', {
      hint: "Run the restore as the server's OS user, or with --os-user on the command line.",
    });
  return user;
}

/** The dry-run plan in the words `restore pitr` prints (shortened to fit the screen). */
export function pitrLines(p: PitrRestorePlan): string[] {
  const b = p.base;
  const lines = [
    `Archive:   ${isCloudUri(p.archive) ? maskUri(p.archive) : p.archive}`,
    b
      ? `Base:      ${b.name} (ended ${b.finishedAt}; timeline ${b.timeline}; ${formatBytes(b.storedBytes)} stored, ${formatBytes(b.dataBytes)} of data)`
      : 'Base:      none',
    `Target:    ${p.target}`,
    `Timelines: ${p.timelinePath ?? '?'} (recovery_target_timeline ${p.targetTimeline ?? '?'})`,
  ];
  if (p.window)
    lines.push(
      `WAL:       ${p.window.first} … ${p.window.last ?? '(none)'}${p.window.lastPushed ? `, newest archived ${p.window.lastPushed}` : ''}`,
    );
  lines.push(`Coverage:  ${p.coverage}`);
  if (b) lines.push(`Checksum:  ${b.checksum}`);
  lines.push(
    `Data dir:  ${p.dataDir.path} (${p.dataDir.exists ? `exists, ${p.dataDir.entries} entries` : 'will be created'}; owner ${p.dataDir.owner}, mode 0700)`,
  );
  for (const w of p.warnings) lines.push(`Warning:   ${w}`);
  for (const r of p.refusals) lines.push(`REFUSED:   ${r}`);
  return lines;
}
