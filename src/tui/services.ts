import type { Engine } from '../catalog/naming.js';
import type { CatalogEntry } from '../verify/listing.js';
import type { SampleSpec } from '../backup/sample/index.js';
import type { BackupMetadata } from '../catalog/metadata.js';
import type { DatabaseInfo, ToolStatus } from '../engines/engine.js';
import type { OperationRecord } from '../ops/record.js';
import type { CompressionAlgorithm } from '../pipeline/compression.js';
import type { ClusterProgressSink, ProgressSource } from '../pipeline/progress.js';
import type { ClusterManifest } from '../catalog/manifest.js';
import type { RestorePlan } from '../restore/plan.js';
import type { VerifyResult } from '../verify/verify.js';
import type { TargetAction } from '../pitr/recovery.js';
import type { CleanupResult } from '../retention/cleanup.js';
import type { RetentionOptions } from '../retention/policy-options.js';
import type { KeyEntry } from './keys.js';

/**
 * What the screens can do, and nothing more: each method is a thin call into the same operation
 * functions the CLI commands call (src/tui/live.ts). Screens depend on this interface only, so
 * their flow tests drive them with a recorded double and the end-to-end tests with the real thing.
 */
export interface TuiServices {
  /** The engine the screens talk to now (switch engine changes it). */
  readonly engine: Engine;
  /** The server as configured, e.g. `127.0.0.1:5432`. */
  readonly server: string;
  /** The backup directory, or the cloud URI (masked) when one is configured. */
  readonly destination: string;
  /** The WAL archive of the PITR commands as configured (pitr.archive, --archive), if any. */
  readonly pitrArchive: string | undefined;
  /** The configured key file (encryption.key_file), the key fields' starting value. */
  readonly keyFile: string | undefined;
  readonly compression: { algorithm: CompressionAlgorithm; level: number };
  switchEngine(engine: Engine): void;
  listDatabases(): Promise<DatabaseInfo[]>;
  backupSingle(request: BackupRequest, watch: ProgressWatch, signal: AbortSignal): Promise<BackupOutcome>;
  /** `backup sample`: no byte counts, only notes of what it is doing. */
  backupSample(
    request: BackupRequest,
    onNote: (line: string) => void,
    signal: AbortSignal,
  ): Promise<BackupOutcome>;
  backupCluster(
    request: ClusterRequest,
    watch: ClusterProgressSink,
    signal: AbortSignal,
  ): Promise<ClusterManifest>;
  listArchive(): Promise<CatalogEntry[]>;
  /** `keys`: for a deep verify of an encrypted backup (and the environment key, as the CLI reads it). */
  verify(key: string, deep: boolean, keys?: KeyEntry): Promise<VerifyResult>;
  /** What a backup's metadata (or a cluster's manifest) records, one line per fact. */
  info(key: string): Promise<string[]>;
  /** Removes a backup with its sidecars (a cluster backup as one unit); returns the files removed. */
  deleteBackup(key: string): Promise<string[]>;
  /** The retention settings as configured (file, profile, environment): the prune form's start. */
  retentionSettings(): Promise<RetentionForm>;
  /** `cleanup --dry-run` on the archive with these rules: the plan, nothing deleted. */
  previewPrune(form: RetentionForm): Promise<PrunePreview>;
  /**
   * `cleanup` (audited as it is, under its run lock) with the preview's rules; refused, nothing
   * deleted, when the plan would now delete other backups than the preview showed.
   */
  runPrune(preview: PrunePreview): Promise<CleanupResult>;
  previewRestore(request: RestoreRequest): Promise<RestorePreview>;
  runRestore(preview: RestorePreview, steps: StepWatch, signal: AbortSignal): Promise<RestoreDone>;
  /** `restore cluster` without --confirm: the plan and its checks, nothing changed. */
  previewClusterRestore(request: ClusterRestoreRequest): Promise<ClusterRestorePreview>;
  /** `restore cluster --confirm`, under the run locks of every database it restores into. */
  runClusterRestore(
    preview: ClusterRestorePreview,
    watch: ClusterProgressSink,
    signal: AbortSignal,
  ): Promise<ClusterRestoreDone>;
  /** The base backups of a WAL archive, with their state. */
  listBaseBackups(archive: string, keys: KeyEntry): Promise<BaseBackupList>;
  /** `restore pitr` without --confirm: the dry-run plan, with what would refuse it. */
  previewPitr(request: PitrRequest): Promise<PitrPreview>;
  /**
   * `restore pitr --confirm` (and --start), under the run lock of the data directory (a MariaDB
   * logical backup: of the server it restores into); bytes read of each step to `watch`.
   */
  runPitr(preview: PitrPreview, watch: PitrWatch, signal: AbortSignal): Promise<PitrDone>;
  status(): Promise<StatusReport>;
  history(limit: number): Promise<HistoryView>;
  settings(): Promise<SettingsView>;
  /** Saves one setting in the configuration file; undefined removes it. */
  saveSetting(key: string, value: string | undefined): Promise<void>;
}

/** The retention rules as typed, one field per `cleanup` option; blank: not set. */
export type RetentionForm = Required<{ [K in keyof RetentionOptions]: string }>;

export interface PrunePreview {
  form: RetentionForm;
  /** The instant the plan was made for; the run uses it too, so age rules decide alike. */
  now: Date;
  /** The dry run's result: every backup with kept/would delete and why. */
  plan: CleanupResult;
}

export type ProgressWatch = (source: ProgressSource, estimate: () => number | null) => void;

export interface BackupRequest {
  database: string;
  compression: CompressionAlgorithm;
  level: number;
  /** Empty: the configured backup directory. */
  destination: string;
  /** A 32-byte key file (keygen --symmetric) and/or a passphrase; both empty: not encrypted. */
  keys: KeyEntry;
  /** A sample of the rows (`backup sample`) instead of the whole database. */
  sample?: SampleSpec;
}

export interface ClusterRequest {
  compression: CompressionAlgorithm;
  level: number;
  /** Globs; empty: every database. */
  include: string[];
  exclude: string[];
  parallelism: number;
}

export interface BackupOutcome {
  locations: string[];
  metadata: BackupMetadata;
}

export interface RestoreRequest {
  key: string;
  target: string;
  create: boolean;
  clean: boolean;
  jobs: number;
  noOwner: boolean;
  /** For an encrypted backup. */
  keys?: KeyEntry;
}

export interface RestorePreview {
  request: RestoreRequest;
  plan: RestorePlan;
  /** The plan in the CLI's dry-run words. */
  lines: string[];
}

export interface RestoreDone {
  target: string;
  seconds: number;
  warnings: string[];
}

/** A long step of a restore (checksum, restore tool): bytes of the backup read so far. */
export interface StepWatch {
  begin(step: string, bytes: () => number, total: number): void;
  end(outcome: string): void;
}

export interface StatusReport {
  engine: Engine;
  endpoint: string;
  user: string;
  connection: { ok: true; version: string } | { ok: false; error: string; hint?: string };
  tools: ToolStatus[];
  compression: string;
  destination: { location: string; ok: boolean; detail: string };
}

export interface HistoryView {
  file: string;
  records: OperationRecord[];
}

export interface SettingRow {
  key: string;
  description: string;
  /** Shown value; secrets are never shown, only whether one is set. */
  shown: string;
  /** Where the value comes from: file, profile, environment, default. */
  source: string;
  secret: boolean;
  /** enum choices, for a picker. */
  choices?: readonly string[];
}

export interface SettingsView {
  file: string;
  profile?: string;
  rows: SettingRow[];
}

export interface ClusterRestoreRequest {
  /** The cluster backup's name in the archive (cluster_…/). */
  key: string;
  /** Globs; empty: every database of the backup. */
  include: string[];
  /** Drop and replace the databases that exist (--clean-cluster). */
  cleanCluster: boolean;
  /** Databases restored at the same time. */
  jobs: number;
  keys: KeyEntry;
}

export interface ClusterRestorePreview {
  request: ClusterRestoreRequest;
  /** The plan in the CLI's dry-run words: header, numbered steps, warnings. */
  lines: string[];
  databases: string[];
  /** Databases of the backup that exist on the server (dropped with cleanCluster). */
  existing: string[];
}

export interface ClusterRestoreDone {
  /** e.g. `2 databases on 127.0.0.1:5432`. */
  done: string;
  seconds: number;
  warnings: string[];
}

export interface BaseBackupRow {
  /** What restore pitr takes: a base or physical backup's name, a logical backup's location. */
  name: string;
  /** As listed, when not the name (a logical backup's name in the backup directory). */
  shown?: string;
  /** MariaDB: physical full / incremental, or a logical backup (single, cluster). */
  kind?: string;
  /** A logical backup (MariaDB): restored into the server, its binlogs replayed there. */
  logical?: boolean;
  state: string;
  detail: string;
  finishedAt?: string;
  timeline?: number;
  sizeBytes?: number;
}

export interface BaseBackupList {
  /** The archive as shown (a URI masked). */
  location: string;
  bases: BaseBackupRow[];
}

/** PostgreSQL: end, time, lsn, xid, name, immediate; MariaDB: end, time, gtid, position. */
export type PitrTargetKind = 'end' | 'time' | 'lsn' | 'xid' | 'name' | 'immediate' | 'gtid' | 'position';

export interface PitrRequest {
  archive: string;
  /** A base backup's name, or `latest`. */
  base: string;
  targetKind: PitrTargetKind;
  /** The time, LSN, transaction or restore point (unused for end and immediate). */
  targetValue: string;
  /** current, latest or a number. */
  timeline: string;
  action: TargetAction;
  inclusive: boolean;
  dataDir: string;
  /** Replace the contents of a data directory that is not empty. */
  force: boolean;
  keys: KeyEntry;
  /** Start the restored server on `port` and wait until recovery reaches the target (--start). */
  start: boolean;
  /** The restored server's port (typed; checked by the service). */
  port: string;
  /** MariaDB, a logical backup: drop and recreate each database first (--clean). */
  clean: boolean;
}

export interface PitrPreview {
  request: PitrRequest;
  /** Where the restore writes: the data directory, or the server a logical backup goes into. */
  into: string;
  /** The dry-run plan as the CLI prints it. */
  lines: string[];
  /** Why it would be refused; empty: it may run. */
  refusals: string[];
}

export interface PitrDone {
  seconds: number;
  /** What was done, in the command's words: restored, replayed, the server started or how to start it. */
  lines: string[];
}

/** A point-in-time restore's long steps (bytes read), and each step done in words. */
export interface PitrWatch extends StepWatch {
  note(line: string): void;
}
