import path from 'node:path';
import type { Engine } from '../catalog/naming.js';
import { prepareLocked } from '../locks/targets.js';
import { releaseRunLocks } from '../locks/run-lock.js';
import { reportResult, type OperationStart } from '../ops/operation.js';
import type { ClusterProgressSink } from '../pipeline/progress.js';
import { DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_SERVER_WAIT_SECONDS } from '../restore/partial.js';
import { planClusterRestoreFor, type ClusterRestoreRequest as DomainClusterRequest } from '../restore/run.js';
import type { TuiConfig } from './config.js';
import { unlockersFor } from './keys.js';
import type { ClusterRestoreDone, ClusterRestorePreview, ClusterRestoreRequest } from './services.js';

/**
 * `restore cluster` for the UI: the same domain calls as the command (planClusterRestoreFor), the
 * preview being the command's dry run and the run its --confirm, under the same run locks, audited
 * under the same name. (`restore pitr`: live-pitr.ts.)
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
}
