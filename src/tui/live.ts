import { stat } from 'node:fs/promises';
import { backupSingle } from '../backup/single.js';
import { backupCluster } from '../backup/cluster.js';
import { backupSample, validateSampleSpec } from '../backup/sample/index.js';
import type { ClusterManifest } from '../catalog/manifest.js';
import { listBackups, type CatalogEntry } from '../verify/listing.js';
import type { Engine } from '../catalog/naming.js';
import { deleteBackup } from '../catalog/transfer.js';
import { readManifest } from '../catalog/manifest.js';
import { readMetadata } from '../catalog/metadata.js';
import { setConfigValue } from '../config/edit.js';
import { configLocation, loadConfig, type SettingValue } from '../config/file.js';
import { loadReferenceConfig } from '../reference/config.js';
import { describeSource, resolveSettings } from '../config/resolve.js';
import { SETTINGS_BY_KEY } from '../config/settings.js';
import type { DatabaseEngine, DatabaseInfo } from '../engines/engine.js';
import { defaultFormat, engineFamily } from '../engines/family.js';
import { openEngine } from '../engines/index.js';
import { DbBackupError, errorMessage, InterruptedError, UsageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { readHistory } from '../ops/audit.js';
import { beginOperation, finishOperation, reportResult, type OperationStart } from '../ops/operation.js';
import { planCompression } from '../pipeline/compression.js';
import { ByteMeter, formatBytes, formatDuration, type ClusterProgressSink } from '../pipeline/progress.js';
import { describePlan } from '../restore/plan.js';
import { executeRestore, NOTHING_CHANGED, prepareRestore, type RestoreInputs } from '../restore/single.js';
import { isCloudUri, maskUri } from '../storage/cloud-uri.js';
import type { Storage } from '../storage/storage.js';
import { openStore } from '../storage/uri.js';
import { verifyAny, type VerifyResult } from '../verify/verify.js';
import { backupTarget, destinationKey, prepareLocked } from '../locks/targets.js';
import { releaseRunLocks, takeRunLocks } from '../locks/run-lock.js';
import type { TuiConfig, TuiStart } from './config.js';
import { hasKey, protectorsFor, unlockersFor, type KeyEntry } from './keys.js';
import { DEFAULT_KEY_ENV } from '../crypto/index.js';
import { PitrServices } from './live-pitr.js';
import { previewPrune, PruneFailed, retentionForm, runPrune } from './live-prune.js';
import type { CleanupResult } from '../retention/cleanup.js';
import { RestoreServices, underLocks, type RestoreContext } from './live-restore.js';
import type {
  BackupOutcome,
  BackupRequest,
  BaseBackupList,
  ClusterRequest,
  ClusterRestoreDone,
  ClusterRestorePreview,
  ClusterRestoreRequest,
  PitrDone,
  PitrPreview,
  PitrWatch,
  PitrRequest,
  PrunePreview,
  RetentionForm,
  HistoryView,
  ProgressWatch,
  RestoreDone,
  RestorePreview,
  RestoreRequest,
  SettingsView,
  StatusReport,
  StepWatch,
  TuiServices,
} from './services.js';

/**
 * The screens' services on the real operation functions: the same calls, with the same checks, as
 * `backup single`, `list backups`, `verify-backup`, `cloud delete`, `restore single`, `status`,
 * `history` and `config` make. Each operation that changes or checks data leaves its audit record,
 * metrics and notifications exactly like its command does.
 */
export class LiveServices implements TuiServices {
  private config: TuiConfig;
  private current: Engine;
  private readonly restores: RestoreServices;
  private readonly pitr: PitrServices;

  constructor(private readonly start: TuiStart) {
    this.config = start.config;
    this.current = start.config.engine;
    const context: RestoreContext = {
      config: () => this.config,
      engine: () => this.current,
      serverKey: () => this.serverKey,
      audited: (op, fn) => this.audited(op, fn),
    };
    this.restores = new RestoreServices(context);
    this.pitr = new PitrServices(context);
  }

  /**
   * The server as the CLI names it in its audit records and backup run locks (serverOf in
   * src/cli/operation-run.ts): the same string, so a UI backup and a cron backup of one database
   * take the same lock and read alike in the history.
   */
  private get serverKey(): string {
    const c = this.config.connection(this.current);
    const family = engineFamily(this.current);
    const host = c.host ?? process.env[family.hostEnv] ?? 'localhost';
    const port = c.port ?? process.env[family.portEnv] ?? family.defaultPort;
    return host.startsWith('/') ? `${host}/.s.PGSQL.${port}` : `${host}:${port}`;
  }

  get pitrArchive(): string | undefined {
    return this.config.pitrArchive;
  }

  get keyFile(): string | undefined {
    return this.config.keyFile;
  }

  get engine(): Engine {
    return this.current;
  }

  get server(): string {
    const c = this.config.connection(this.current);
    const family = engineFamily(this.current);
    const host = c.host ?? process.env[family.hostEnv] ?? 'localhost';
    const port = c.port ?? process.env[family.portEnv] ?? family.defaultPort;
    return host.startsWith('/') ? `${host} (socket)` : `${host}:${port}`;
  }

  get destination(): string {
    return this.config.cloud ? maskUri(this.config.cloud) : this.config.backupDir;
  }

  get compression(): TuiConfig['compression'] {
    return this.config.compression;
  }

  switchEngine(engine: Engine): void {
    this.current = engine;
  }

  private async withEngine<T>(fn: (engine: DatabaseEngine) => Promise<T>): Promise<T> {
    const engine = await openEngine(this.config.connection(this.current));
    try {
      return await fn(engine);
    } finally {
      await engine.close();
    }
  }

  /**
   * A backup into `target` under the run lock `backup single`/`backup cluster` take on the same
   * database, server and destination: a cron run of the same backup is refused (or refuses this
   * one), with the holder named.
   */
  private backupLocked<T>(
    database: string,
    target: string,
    fn: (storage: Storage) => Promise<T>,
  ): Promise<T> {
    return underLocks(
      () => takeRunLocks([backupTarget(database, this.serverKey, destinationKey(target))]),
      async () =>
        fn(isCloudUri(target) ? await openStore(target, this.config.cloudSettings) : await openStore(target)),
    );
  }

  /** The archive the screens list: the configured cloud location, else the backup directory. */
  private async archive(): Promise<Storage> {
    const where = this.config.cloud;
    const storage = where
      ? await openStore(where, this.config.cloudSettings)
      : await openStore(this.config.backupDir);
    const local = storage.localPath?.('x');
    if (local && !(await stat(this.config.backupDir).catch(() => undefined))?.isDirectory())
      throw new UsageError(
        `${storage.location} is not a directory`,
        'Set the backup directory in Settings (storage.backup_dir), or create it.',
      );
    return storage;
  }

  /** One audited operation, recorded like the CLI's command of the same name (src/ops/). */
  private async audited<T>(start: Omit<OperationStart, 'audited'>, fn: () => Promise<T>): Promise<T> {
    const op = beginOperation({ ...start, audited: true, profile: this.config.profile });
    try {
      const result = await fn();
      await finishOperation(op, this.config.outputs, { exitCode: ExitCode.Ok });
      return result;
    } catch (err) {
      const exitCode = err instanceof DbBackupError ? err.exitCode : ExitCode.Internal;
      await finishOperation(op, this.config.outputs, {
        exitCode,
        error: err,
        interrupted: exitCode === ExitCode.Interrupted,
      });
      throw err;
    }
  }

  listDatabases(): Promise<DatabaseInfo[]> {
    return this.withEngine((engine) => engine.listDatabases());
  }

  async backupSingle(r: BackupRequest, watch: ProgressWatch, signal: AbortSignal): Promise<BackupOutcome> {
    const where = r.destination.trim();
    const destination = where ? (isCloudUri(where) ? maskUri(where) : where) : this.destination;
    return this.audited(
      {
        command: 'backup single',
        engine: this.current,
        server: this.serverKey,
        database: r.database,
        destination,
      },
      async () => {
        const target = where || this.config.cloud || this.config.backupDir;
        const encryption = await protectorsFor(r.keys);
        const result = await this.backupLocked(r.database, target, (storage) =>
          this.withEngine((engine) =>
            backupSingle({
              engine,
              database: r.database,
              storages: [storage],
              format: defaultFormat(this.current),
              compression: r.compression,
              level: r.level,
              progress: 'off',
              onWarning: () => undefined,
              signal,
              encryption,
              observe: watch,
            }),
          ),
        );
        reportResult({
          backup: result.key,
          bytes: result.metadata.sizeBytes,
          destination: result.locations.join(' and '),
        });
        return { locations: result.locations, metadata: result.metadata };
      },
    );
  }

  async backupSample(
    r: BackupRequest,
    onNote: (line: string) => void,
    signal: AbortSignal,
  ): Promise<BackupOutcome> {
    const spec = r.sample;
    if (!spec) throw new UsageError('No sample given');
    validateSampleSpec(spec.strategy, spec.value);
    const where = r.destination.trim();
    return this.audited(
      {
        command: 'backup sample',
        engine: this.current,
        server: this.serverKey,
        database: r.database,
        destination: where ? (isCloudUri(where) ? maskUri(where) : where) : this.destination,
      },
      async () => {
        const target = where || this.config.cloud || this.config.backupDir;
        const result = await this.backupLocked(r.database, target, (storage) =>
          this.withEngine((engine) =>
            backupSample({
              engine,
              database: r.database,
              storages: [storage],
              spec,
              compression: r.compression,
              level: r.level,
              onWarning: () => undefined,
              onProgress: onNote,
              signal,
            }),
          ),
        );
        reportResult({
          backup: result.key,
          bytes: result.metadata.sizeBytes,
          destination: result.locations.join(' and '),
        });
        return { locations: result.locations, metadata: result.metadata };
      },
    );
  }

  async backupCluster(
    r: ClusterRequest,
    watch: ClusterProgressSink,
    signal: AbortSignal,
  ): Promise<ClusterManifest> {
    return this.audited(
      {
        command: 'backup cluster',
        engine: this.current,
        server: this.serverKey,
        database: '*',
        destination: this.destination,
      },
      async () => {
        const target = this.config.cloud ?? this.config.backupDir;
        let location = '';
        const manifest = await this.backupLocked('*', target, (storage) => {
          location = storage.location;
          return this.withEngine((engine) =>
            backupCluster({
              engine,
              storage,
              compression: r.compression,
              level: r.level,
              parallelism: r.parallelism,
              include: r.include,
              exclude: r.exclude,
              allowPartial: false,
              onWarning: () => undefined,
              progress: watch,
              signal,
            }),
          );
        });
        const ok = manifest.databases.filter((d) => d.status === 'ok').length;
        reportResult({
          backup: manifest.name,
          bytes: manifest.totalBytes,
          destination: location,
          details: { databases: manifest.databases.length, failed: manifest.databases.length - ok },
        });
        return manifest;
      },
    );
  }

  async listArchive(): Promise<CatalogEntry[]> {
    return listBackups(await this.archive());
  }

  async verify(key: string, deep: boolean, keys?: KeyEntry): Promise<VerifyResult> {
    const storage = await this.archive();
    return this.audited({ command: 'verify-backup', backup: key }, async () => {
      const result = await verifyAny(storage, key, {
        quick: false,
        deep: deep ? { unlock: () => unlockersFor(keys) } : undefined,
      });
      reportResult({ bytes: result.sizeBytes ?? undefined, database: result.metadata?.database });
      return result;
    });
  }

  async info(key: string): Promise<string[]> {
    const storage = await this.archive();
    if (key.endsWith('/')) {
      const m = await readManifest(storage, key.slice(0, -1));
      if (!m) return [`${key}: no manifest (an incomplete cluster backup)`];
      return [
        `Cluster:     ${m.name} (${m.status})`,
        `Engine:      ${m.engine}`,
        `Created:     ${m.startedAt}`,
        `Duration:    ${formatDuration(m.durationSeconds)}`,
        `Size:        ${formatBytes(m.totalBytes)}`,
        `Databases:   ${m.databases.map((d) => `${d.database} (${d.status})`).join(', ')}`,
      ];
    }
    const m = await readMetadata(storage, key);
    if (!m) return [`${key}: no metadata (an incomplete backup, or not made by dbbackup)`];
    return [
      `File:        ${m.file}`,
      `Database:    ${m.database} (${m.engine} ${m.server.version})`,
      `Created:     ${m.startedAt}`,
      `Duration:    ${formatDuration(m.durationSeconds)}`,
      `Size:        ${formatBytes(m.sizeBytes)}${m.dumpBytes ? ` (dump ${formatBytes(m.dumpBytes)})` : ''}`,
      `SHA-256:     ${m.sha256}`,
      `Format:      ${m.format}, ${m.compression.algorithm} level ${m.compression.level}`,
      `Encryption:  ${m.encryption ? 'encrypted' : 'none'}`,
      `Dump tool:   ${m.dumpTool.name} ${m.dumpTool.version}`,
      `Tables:      ${m.tables.length}`,
      ...m.warnings.map((w) => `Warning:     ${w}`),
    ];
  }

  async deleteBackup(key: string): Promise<string[]> {
    const storage = await this.archive();
    return this.audited(
      // `cloud delete` is the command that deletes a backup with its sidecars: the same record.
      { command: 'cloud delete', backup: key, destination: storage.location },
      async () => {
        const report = await deleteBackup(storage, key);
        return report.removed;
      },
    );
  }

  retentionSettings(): Promise<RetentionForm> {
    return retentionForm(this.config);
  }

  async previewPrune(form: RetentionForm): Promise<PrunePreview> {
    return previewPrune(await this.archive(), form);
  }

  /** `cleanup`'s record; a run that deleted part is recorded as failed and shown as it ended. */
  async runPrune(preview: PrunePreview): Promise<CleanupResult> {
    const storage = await this.archive();
    const where = this.config.cloud ?? this.config.backupDir;
    try {
      return await this.audited({ command: 'cleanup', destination: storage.location }, () =>
        runPrune(storage, where, preview),
      );
    } catch (err) {
      if (err instanceof PruneFailed) return err.result;
      throw err;
    }
  }

  async previewRestore(request: RestoreRequest): Promise<RestorePreview> {
    const storage = await this.archive();
    const inputs = await this.restoreInputs(storage, request);
    const plan = await this.withEngine(async (engine) => (await prepareRestore(engine, inputs)).plan);
    return { request, plan, lines: describePlan(plan) };
  }

  private async restoreInputs(
    storage: Storage,
    r: RestoreRequest,
    signal?: AbortSignal,
  ): Promise<RestoreInputs> {
    // Keys are read only when some are given (a stray variable must not break plain restores, as in the CLI).
    const keyed = hasKey(r.keys) || Boolean(process.env[DEFAULT_KEY_ENV]);
    return {
      unlockers: keyed ? await unlockersFor(r.keys) : undefined,
      storage,
      key: r.key,
      target: r.target || undefined,
      create: r.create,
      clean: r.clean,
      jobs: r.jobs,
      force: false,
      noOwner: r.noOwner,
      signal,
    };
  }

  async runRestore(preview: RestorePreview, steps: StepWatch, signal: AbortSignal): Promise<RestoreDone> {
    const storage = await this.archive();
    const r = preview.request;
    return this.audited(
      {
        command: 'restore single',
        engine: this.current,
        server: this.serverKey,
        database: preview.plan.target,
        backup: r.key,
      },
      () =>
        this.withEngine(async (engine) => {
          const inputs = await this.restoreInputs(storage, r, signal);
          // Prepared again at the moment of the change (the preview may be minutes old), under the
          // run lock on the target database that `restore single --confirm` takes.
          const prepared = await prepareLocked({
            confirm: true,
            server: engine.endpoint,
            guess: [r.target || preview.plan.target],
            targets: (p) => [p.plan.target],
            prepare: () => prepareRestore(engine, inputs),
          });
          if (signal.aborted) throw new InterruptedError(NOTHING_CHANGED);
          const outcome = await executeRestore(engine, inputs, prepared, () => undefined, {
            begin: (step: string, meter: ByteMeter, total: number) =>
              steps.begin(step, () => meter.bytes, total),
            end: (outcome: string) => steps.end(outcome),
          });
          reportResult({ bytes: preview.plan.sizeBytes ?? undefined });
          return outcome;
        }).finally(() => releaseRunLocks()),
    );
  }

  previewClusterRestore(r: ClusterRestoreRequest): Promise<ClusterRestorePreview> {
    return this.restores.previewClusterRestore(r);
  }

  runClusterRestore(
    p: ClusterRestorePreview,
    watch: ClusterProgressSink,
    signal: AbortSignal,
  ): Promise<ClusterRestoreDone> {
    return this.restores.runClusterRestore(p, watch, signal);
  }

  listBaseBackups(archive: string, keys: KeyEntry): Promise<BaseBackupList> {
    return this.pitr.listBaseBackups(archive, keys);
  }

  previewPitr(r: PitrRequest): Promise<PitrPreview> {
    return this.pitr.previewPitr(r);
  }

  runPitr(p: PitrPreview, watch: PitrWatch, signal: AbortSignal): Promise<PitrDone> {
    return this.pitr.runPitr(p, watch, signal);
  }

  async status(): Promise<StatusReport> {
    const { algorithm, level } = this.config.compression;
    const compression = (await planCompression(algorithm, level)).implementation;
    const destination = await this.archive().then(
      async (s) => {
        const n = (await listBackups(s)).length;
        return { location: s.location, ok: true, detail: `reachable, ${n} backup${n === 1 ? '' : 's'}` };
      },
      (err: unknown) => ({ location: this.destination, ok: false, detail: errorMessage(err) }),
    );
    return this.withEngine(async (engine) => {
      const [connection, tools] = await Promise.all([
        engine.serverInfo().then(
          (s) => ({ ok: true as const, version: s.versionString }),
          (err: unknown) => ({
            ok: false as const,
            error: errorMessage(err),
            hint: err instanceof DbBackupError ? err.hint : undefined,
          }),
        ),
        engine.tools(),
      ]);
      return {
        engine: this.current,
        endpoint: engine.endpoint,
        user: engine.user,
        connection,
        tools,
        compression,
        destination,
      };
    });
  }

  async history(limit: number): Promise<HistoryView> {
    const file = this.config.outputs.auditFile;
    const { records } = await readHistory(file, { limit });
    return { file, records };
  }

  async settings(): Promise<SettingsView> {
    const location = configLocation(this.config.configFile);
    const loaded = await loadConfig({ ...location, via: 'default' });
    const reference = await loadReferenceConfig(process.cwd());
    const resolved = resolveSettings({
      flags: new Map(),
      env: process.env,
      config: loaded?.config,
      profile: this.config.profile,
      reference,
    });
    const rows = [...resolved.values()].map((r) => {
      const secret = Boolean(r.setting.secret);
      const value = r.value === undefined ? '' : Array.isArray(r.value) ? r.value.join(' ') : String(r.value);
      const set = r.value !== undefined || r.source.tier !== 'default';
      return {
        key: r.setting.key,
        description: r.setting.description,
        shown: secret ? (set ? '(set, hidden)' : '(not set)') : value || `(${r.setting.defaultText})`,
        source: describeSource(r.source),
        secret,
        choices: r.setting.type.kind === 'enum' ? r.setting.type.values : undefined,
      };
    });
    return { file: location.path, profile: this.config.profile, rows };
  }

  async saveSetting(key: string, text: string | undefined): Promise<void> {
    const setting = SETTINGS_BY_KEY.get(key);
    if (!setting) throw new UsageError(`Unknown setting ${key}`);
    let value: SettingValue | undefined = text?.trim() || undefined;
    if (value !== undefined && setting.type.kind === 'integer') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < setting.type.min || n > setting.type.max)
        throw new UsageError(
          `${key} must be a whole number from ${setting.type.min} to ${setting.type.max}`,
          'Type a number.',
        );
      value = n;
    } else if (value !== undefined && (setting.type.kind === 'strings' || setting.type.kind === 'argv')) {
      value = value.split(/\s+/);
    }
    await setConfigValue(this.config.configFile, this.config.profile, key, value);
    this.config = await this.start.reload();
  }
}
