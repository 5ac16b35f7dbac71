import { createElement } from 'react';
import { render } from 'ink-testing-library';
import type { CatalogEntry } from '../../src/verify/listing.js';
import type { Engine } from '../../src/catalog/naming.js';
import type { BackupMetadata } from '../../src/catalog/metadata.js';
import type { DatabaseInfo } from '../../src/engines/engine.js';
import { SafetyError } from '../../src/errors.js';
import type { OperationRecord } from '../../src/ops/record.js';
import type { ClusterProgressSink, ProgressSource } from '../../src/pipeline/progress.js';
import type { ClusterManifest } from '../../src/catalog/manifest.js';
import type { RestorePlan } from '../../src/restore/plan.js';
import type { VerifyResult } from '../../src/verify/verify.js';
import { App } from '../../src/tui/app.js';
import type { CleanupResult, PlannedBackup } from '../../src/retention/cleanup.js';
import { EMPTY_RETENTION } from '../../src/tui/live-prune.js';
import type { KeyEntry } from '../../src/tui/keys.js';
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
  PitrRequest,
  PitrWatch,
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
} from '../../src/tui/services.js';

/** Keys as a terminal sends them. */
export const KEY = {
  up: '\u001B[A',
  down: '\u001B[B',
  left: '\u001B[D',
  right: '\u001B[C',
  enter: '\r',
  esc: '\u001B',
  backspace: '\u007F',
  ctrlC: '\u0003',
} as const;

/** A promise settled from outside: an operation the test lets finish (or fail) when it wants. */
export function deferred<T>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export function entry(key: string, state: CatalogEntry['state'], detail = ''): CatalogEntry {
  return {
    key,
    group: null,
    database: key.split('_')[0] ?? null,
    engine: 'postgres',
    created: new Date('2026-12-01T05:00:00Z'),
    sizeBytes: 2048,
    state,
    detail,
    producer: 'dbbackup',
    kind: key.endsWith('/') ? 'cluster' : 'single',
  };
}

/**
 * The services double for flow tests: answers from fields the test sets, records every call, and
 * lets a test hold a long operation open (`backupGate`, `restoreGate`) to look at it mid-way.
 */
export class FakeServices implements TuiServices {
  engine: Engine = 'postgres';
  readonly server = '127.0.0.1:5432';
  readonly destination = '/srv/backups';
  readonly compression = { algorithm: 'zstd' as const, level: 3 };
  pitrArchive: string | undefined = '/srv/wal-archive';
  keyFile: string | undefined = undefined;
  calls: string[] = [];
  databases: DatabaseInfo[] = [
    { name: 'shop', sizeBytes: 5 * 1024 * 1024 },
    { name: 'shop_archive', sizeBytes: 1024 },
    { name: 'analytics', sizeBytes: null },
  ];
  archive: CatalogEntry[] = [
    entry('shop_20261201_050000.dump.zst', 'unverified'),
    entry('cluster_20261201_050000/', 'unverified'),
  ];
  verdicts = new Map<string, VerifyResult['state']>();
  backupGate = deferred<void>();
  lastBackup: BackupRequest | undefined;
  backupSignal: AbortSignal | undefined;
  counters = { produced: 0, stored: 0 };
  restoreGate = deferred<void>();
  previewError: unknown;
  restoreSignal: AbortSignal | undefined;
  saved: Array<[string, string | undefined]> = [];
  records: OperationRecord[] = [];

  switchEngine(engine: Engine): void {
    this.calls.push(`switchEngine ${engine}`);
    this.engine = engine;
  }

  async listDatabases(): Promise<DatabaseInfo[]> {
    this.calls.push('listDatabases');
    return this.databases;
  }

  async backupSingle(
    request: BackupRequest,
    watch: ProgressWatch,
    signal: AbortSignal,
  ): Promise<BackupOutcome> {
    this.calls.push(`backupSingle ${request.database}`);
    this.lastBackup = request;
    this.backupSignal = signal;
    const source: ProgressSource = {
      produced: () => this.counters.produced,
      stored: () => this.counters.stored,
    };
    watch(source, () => 10 * 1024 * 1024);
    const stop = new Promise<never>((_res, rej) =>
      signal.addEventListener('abort', () => rej(new Error('Interrupted; nothing was kept'))),
    );
    await Promise.race([this.backupGate.promise, stop]);
    const metadata = {
      sizeBytes: 1234567,
      sha256: 'ab'.repeat(32),
      durationSeconds: 4,
    } as unknown as BackupMetadata;
    return { locations: [`/srv/backups/${request.database}_20261207_120000.dump.zst`], metadata };
  }

  sampleNotes = ['sampling 3 tables'];

  async backupSample(
    request: BackupRequest,
    onNote: (line: string) => void,
    signal: AbortSignal,
  ): Promise<BackupOutcome> {
    this.calls.push(`backupSample ${request.database}`);
    this.lastBackup = request;
    this.backupSignal = signal;
    for (const n of this.sampleNotes) onNote(n);
    await this.backupGate.promise;
    const metadata = {
      sizeBytes: 2048,
      sha256: 'ef'.repeat(32),
      durationSeconds: 2,
    } as unknown as BackupMetadata;
    return { locations: [`/srv/backups/${request.database}_20261207_120000.sample.sql.zst`], metadata };
  }

  clusterGate = deferred<void>();
  lastCluster: ClusterRequest | undefined;

  async backupCluster(
    request: ClusterRequest,
    watch: ClusterProgressSink,
    signal: AbortSignal,
  ): Promise<ClusterManifest> {
    this.calls.push('backupCluster');
    this.lastCluster = request;
    watch.begin([
      { name: 'shop', estimate: 4096 },
      { name: 'analytics', estimate: 8192 },
    ]);
    watch.start('shop', () => 4096);
    watch.done('shop', { bytes: 4096, stored: 1024 });
    watch.start('analytics', () => 4096);
    const stop = new Promise<never>((_res, rej) =>
      signal.addEventListener('abort', () => rej(new Error('Interrupted'))),
    );
    await Promise.race([this.clusterGate.promise, stop]);
    watch.done('analytics', { bytes: 8192 });
    watch.end();
    return {
      name: 'cluster_20261207_120000',
      status: 'complete',
      databases: [
        { database: 'shop', status: 'ok' },
        { database: 'analytics', status: 'ok' },
      ],
      totalBytes: 3 * 1024 * 1024,
      durationSeconds: 75,
    } as unknown as ClusterManifest;
  }

  async listArchive(): Promise<CatalogEntry[]> {
    this.calls.push('listArchive');
    return this.archive;
  }

  verifyKeys: KeyEntry | undefined;

  async verify(key: string, deep: boolean, keys?: KeyEntry): Promise<VerifyResult> {
    this.calls.push(`verify ${key}${deep ? ' deep' : ''}`);
    this.verifyKeys = keys;
    const state = this.verdicts.get(key) ?? 'valid';
    return {
      key,
      location: `/srv/backups/${key}`,
      state,
      detail:
        state === 'valid'
          ? 'data and sidecars match their checksums'
          : 'checksum mismatch: expected aa, found bb',
      sizeBytes: 2048,
    };
  }

  async info(key: string): Promise<string[]> {
    this.calls.push(`info ${key}`);
    return [`File:        ${key}`, 'SHA-256:     ' + 'cd'.repeat(32)];
  }

  async deleteBackup(key: string): Promise<string[]> {
    this.calls.push(`delete ${key}`);
    this.archive = this.archive.filter((e) => e.key !== key);
    return [key, `${key}.sha256`, `${key}.meta.json`];
  }

  /** The retention settings the prune form starts with (as if from the configuration file). */
  retention: RetentionForm = { ...EMPTY_RETENTION, keepLast: '1' };

  /** When set, the prune fails to remove the oldest backup with this error. */
  pruneFailure: string | undefined;

  async retentionSettings(): Promise<RetentionForm> {
    this.calls.push('retentionSettings');
    return this.retention;
  }

  /** keep-last only, over the archive in its listed order (newest first): the screens' double. */
  private prunePlan(form: RetentionForm, dryRun: boolean): CleanupResult {
    const last = Number(form.keepLast || '0');
    const decisions: PlannedBackup[] = this.archive.map((e, i) => ({
      key: e.key,
      group: 'postgres/shop',
      time: e.created ?? new Date(0),
      valid: true,
      keep: i < last,
      holdsSlot: i < last,
      reasons: i < last ? [`last ${i + 1}`] : ['no rule keeps it'],
      sizeBytes: e.sizeBytes,
      state: e.state,
      outcome: i < last ? 'kept' : dryRun ? 'would delete' : 'deleted',
      files: [],
    }));
    const deleted = decisions.filter((d) => !d.keep).map((d) => d.key);
    return {
      location: this.destination,
      decisions,
      incomplete: [],
      deleted: dryRun ? [] : deleted,
      freedBytes: dryRun ? 0 : deleted.length * 2048,
      errors: [],
      leftAlone: [],
      notOurs: [],
      checked: [],
      hints: [],
    };
  }

  async previewPrune(form: RetentionForm): Promise<PrunePreview> {
    this.calls.push(`previewPrune last=${form.keepLast}`);
    return { form, now: new Date('2026-12-07T12:00:00Z'), plan: this.prunePlan(form, true) };
  }

  async runPrune(preview: PrunePreview): Promise<CleanupResult> {
    this.calls.push('runPrune');
    const result = this.prunePlan(preview.form, false);
    if (this.pruneFailure) {
      // The oldest one could not be removed: what a read-only file or a lost connection leaves.
      const last = result.decisions.at(-1);
      if (last && !last.keep) {
        last.outcome = 'not deleted';
        last.error = this.pruneFailure;
        result.deleted = result.deleted.filter((k) => k !== last.key);
        result.freedBytes -= 2048;
        result.errors.push(`${last.key}: ${this.pruneFailure}`);
      }
    }
    this.archive = this.archive.filter((e) => !result.deleted.includes(e.key));
    return result;
  }

  async previewRestore(request: RestoreRequest): Promise<RestorePreview> {
    this.calls.push(`previewRestore ${request.key} -> ${request.target || '(recorded)'}`);
    if (this.previewError) throw this.previewError;
    const target = request.target || 'shop';
    const plan = { target, source: `/srv/backups/${request.key}`, sizeBytes: 2048 } as RestorePlan;
    return {
      request,
      plan,
      lines: [
        `Backup:    ${plan.source}`,
        'Checksum:  to verify',
        `Target:    database "${target}" (does not exist)`,
      ],
    };
  }

  async runRestore(preview: RestorePreview, steps: StepWatch, signal: AbortSignal): Promise<RestoreDone> {
    this.calls.push(`runRestore ${preview.plan.target}`);
    this.restoreSignal = signal;
    steps.begin('verifying the checksum', () => 1024, 2048);
    await this.restoreGate.promise;
    steps.end('done');
    return { target: preview.plan.target, seconds: 3, warnings: [] };
  }

  clusterRestoreGate = deferred<void>();
  clusterPreviewError: unknown;
  lastClusterRestore: ClusterRestoreRequest | undefined;
  clusterRestoreSignal: AbortSignal | undefined;

  async previewClusterRestore(request: ClusterRestoreRequest): Promise<ClusterRestorePreview> {
    this.calls.push(`previewClusterRestore ${request.key}${request.cleanCluster ? ' clean' : ''}`);
    this.lastClusterRestore = request;
    if (this.clusterPreviewError) throw this.clusterPreviewError;
    return {
      request,
      lines: [
        `Restore cluster backup ${request.key} onto 127.0.0.1:5432`,
        'Steps:',
        '  1. verify the SHA-256 of every file',
        '  2. restore roles',
        '  3. restore shop, analytics',
      ],
      databases: ['shop', 'analytics'],
      existing: request.cleanCluster ? ['shop'] : [],
    };
  }

  async runClusterRestore(
    preview: ClusterRestorePreview,
    watch: ClusterProgressSink,
    signal: AbortSignal,
  ): Promise<ClusterRestoreDone> {
    this.calls.push(`runClusterRestore ${preview.request.key}`);
    this.clusterRestoreSignal = signal;
    watch.note('checksums verified');
    watch.begin([
      { name: 'shop', estimate: 4096 },
      { name: 'analytics', estimate: 8192 },
    ]);
    watch.start('shop', () => 4096);
    watch.done('shop', { bytes: 4096 });
    watch.start('analytics', () => 2048);
    const stop = new Promise<never>((_res, rej) =>
      signal.addEventListener('abort', () => rej(new Error('Interrupted'))),
    );
    await Promise.race([this.clusterRestoreGate.promise, stop]);
    watch.done('analytics', { bytes: 8192 });
    watch.end();
    return { done: '2 databases on 127.0.0.1:5432', seconds: 12, warnings: [] };
  }

  bases: BaseBackupList['bases'] = [
    {
      name: 'base_20261206_050000',
      state: 'valid',
      detail: 'restorable',
      finishedAt: '2026-12-06T05:01:00Z',
      timeline: 1,
      sizeBytes: 3 * 1024 * 1024,
    },
    { name: 'base_20261207_050000', state: 'incomplete', detail: 'no meta.json', timeline: 1 },
  ];

  /** A MariaDB binlog archive's backups: physical ones, then the logical ones of the backup directory. */
  binlogBases: BaseBackupList['bases'] = [
    {
      name: 'phys_20261206_050000',
      kind: 'physical full',
      state: 'valid',
      detail: 'every file present',
      finishedAt: '2026-12-06T05:01:00Z',
      sizeBytes: 9 * 1024 * 1024,
    },
    {
      name: '/srv/backups/cluster_20261206_060000',
      shown: 'cluster_20261206_060000/',
      kind: 'logical cluster',
      logical: true,
      state: 'unverified',
      detail: '2 databases',
      finishedAt: '2026-12-06T06:00:00Z',
      sizeBytes: 4096,
    },
  ];
  lastPitr: PitrRequest | undefined;
  pitrRefusals: string[] = [];
  pitrGate = deferred<void>();
  /** Bytes the running restore has read (the test moves it). */
  pitrBytes = 0;
  pitrSignal: AbortSignal | undefined;

  async listBaseBackups(archive: string): Promise<BaseBackupList> {
    this.calls.push(`listBaseBackups ${archive}`);
    return { location: archive, bases: this.engine === 'postgres' ? this.bases : this.binlogBases };
  }

  async previewPitr(request: PitrRequest): Promise<PitrPreview> {
    this.calls.push(`previewPitr ${request.base} ${request.targetKind} ${request.targetValue}`);
    this.lastPitr = request;
    return {
      request,
      into: request.dataDir || `the server ${this.server}`,
      lines: [
        `Archive:   ${request.archive}`,
        `Base:      ${request.base} (timeline 1)`,
        `Target:    ${request.targetKind} ${request.targetValue}`,
        'Coverage:  covered: 000000010000000000000005 was archived after the target',
        ...this.pitrRefusals.map((r) => `REFUSED:   ${r}`),
      ],
      refusals: this.pitrRefusals,
    };
  }

  async runPitr(preview: PitrPreview, watch: PitrWatch, signal: AbortSignal): Promise<PitrDone> {
    this.calls.push(`runPitr ${preview.into}`);
    this.pitrSignal = signal;
    const r = preview.request;
    if (this.engine === 'postgres') watch.begin(`reading ${r.base}`, () => this.pitrBytes, 8 * 1024 * 1024);
    else {
      watch.note('Checked 2 binlog(s): every checksum matches');
      watch.begin(`extracting ${r.base}`, () => this.pitrBytes, 8 * 1024 * 1024);
    }
    await this.pitrGate.promise;
    watch.end('done');
    return {
      seconds: 9,
      lines: r.start
        ? [`Server started on port ${r.port} (pid 4242, socket ${r.dataDir}/mysqld.sock)`]
        : [`Start it (pg_ctl start -D ${r.dataDir})`],
    };
  }

  async status(): Promise<StatusReport> {
    this.calls.push('status');
    return {
      engine: this.engine,
      endpoint: this.server,
      user: 'backup',
      connection: { ok: true, version: 'PostgreSQL 16.4' },
      tools: [
        { name: 'pg_dump', path: '/usr/bin/pg_dump', version: '16.4' },
        { name: 'pg_restore', path: null, version: null },
      ],
      compression: 'zstd -3',
      destination: { location: this.destination, ok: true, detail: 'reachable, 2 backups' },
    };
  }

  async history(limit: number): Promise<HistoryView> {
    this.calls.push(`history ${limit}`);
    return { file: '/home/u/.local/state/dbbackup/audit.jsonl', records: this.records };
  }

  async settings(): Promise<SettingsView> {
    this.calls.push('settings');
    return {
      file: '/home/u/.config/dbbackup/config.toml',
      rows: [
        {
          key: 'connection.host',
          description: 'server host',
          shown: 'db1',
          source: 'top level',
          secret: false,
        },
        {
          key: 'connection.password',
          description: 'password',
          shown: '(set, hidden)',
          source: 'env',
          secret: true,
        },
        {
          key: 'storage.backup_dir',
          description: 'where backups go',
          shown: '/srv/backups',
          source: 'default',
          secret: false,
        },
      ],
    };
  }

  async saveSetting(key: string, value: string | undefined): Promise<void> {
    this.calls.push(`saveSetting ${key}`);
    this.saved.push([key, value]);
  }
}

export { SafetyError };

/** The app on a fake terminal, with helpers to type and to wait for what a user would see. */
export function start(services: TuiServices, color = false) {
  const exits: boolean[] = [];
  const ui = render(
    createElement(App, { services, color, onExit: (stopped: boolean) => exits.push(stopped) }),
  );
  const frame = (): string => ui.lastFrame() ?? '';
  const until = async (text: string | RegExp | (() => boolean), timeoutMs = 5000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = frame();
      const seen =
        typeof text === 'string' ? f.includes(text) : text instanceof RegExp ? text.test(f) : text();
      if (seen) {
        // Ink subscribes a new screen's key handlers just after drawing it: a key sent in that
        // instant would be lost, as it would not be for a person reading the screen first.
        await new Promise((r) => setTimeout(r, 60));
        return f;
      }
      if (Date.now() > deadline) throw new Error(`waited for ${String(text)}; the screen shows:\n${f}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  /** One key, then a moment for Ink to take it (keys are separate reads, as when a person types). */
  const press = async (...keys: string[]): Promise<void> => {
    for (const k of keys) {
      ui.stdin.write(k);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const type = async (text: string): Promise<void> => press(...text.split(''));
  return { ui, frame, until, press, type, exits };
}
