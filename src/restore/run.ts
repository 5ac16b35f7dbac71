import { memberProperties } from '../catalog/manifest.js';
import type { Engine } from '../catalog/naming.js';
import { EncryptionKeyError, type KeyUnlocker } from '../crypto/index.js';
import type { ConnectionOptions } from '../engines/connection.js';
import type { DatabaseEngine } from '../engines/engine.js';
import { openEngine } from '../engines/index.js';
import { errorMessage, InterruptedError, UsageError } from '../errors.js';
import { ByteMeter, type ClusterProgressSink } from '../pipeline/progress.js';
import { sniff } from '../pipeline/sniff.js';
import { isGzipTar } from '../reference/archive.js';
import type { CloudSettings } from '../storage/cloud.js';
import type { Storage } from '../storage/storage.js';
import {
  executeClusterRestore,
  planClusterRestore,
  type ClusterRestoreInputs,
  type ClusterRestorePlan,
  type SourceMember,
  type SourcePlan,
} from './cluster.js';
import { loadClusterManifest, planDbbackupCluster } from './cluster-dbbackup.js';
import { planReferenceCluster } from './cluster-reference.js';
import { resolveBackupArg, resolveClusterArg } from './locate.js';
import type { RestorePlan } from './plan.js';
import { executeReferenceMemberRestore, prepareReferenceMemberRestore } from './reference-member.js';
import {
  engineForBackup,
  executeRestore,
  inspectBackup,
  NOTHING_CHANGED,
  prepareRestore,
  type RestoreInputs,
  type RestoreOutcome,
  type StepReporter,
} from './single.js';
import { engineFamily } from '../engines/family.js';

/**
 * `restore single` and `restore cluster` as one call each: find the backup (ours or the reference
 * tool's, a file, a directory or a cloud prefix), open the engine that restores it, plan under the
 * run locks. What comes back is the plan to show and the restore to run; the caller closes the engine.
 */

/** Planning under run locks (src/cli/run-locks.ts prepareLocked): the caller's, so locks stay a CLI concern. */
export type LockedPrepare = <T>(o: {
  confirm: boolean;
  server: string;
  guess: ReadonlyArray<string | undefined>;
  targets: (prepared: T) => string[];
  prepare: () => Promise<T>;
  replan?: boolean;
}) => Promise<T>;

export interface RestoreRequest {
  backupDir: string;
  cloud: CloudSettings;
  /** --db-type, when given: it must match the backup. */
  askedEngine?: Engine;
  /** The connection to the server for an engine (from the flags). */
  connection: (engine: Engine) => ConnectionOptions;
  confirm: boolean;
  force: boolean;
  workdir?: string;
  /** The decryption keys given; read only if the backup turns out to be encrypted. */
  keys: () => Promise<KeyUnlocker[]>;
  locked: LockedPrepare;
  signal: AbortSignal;
  serverWaitMs: number;
  /** Notes about the request itself (an option that does not apply). */
  onNote: (line: string) => void;
}

export interface SingleRestoreRequest extends RestoreRequest {
  backup?: string;
  /** With --from-cluster: the cluster backup, and the member (--database) to restore out of it. */
  fromCluster?: string;
  member?: string;
  target?: string;
  create: boolean;
  clean: boolean;
  jobs: number;
  noOwner: boolean;
  noDbProperties: boolean;
}

export interface PlannedSingleRestore {
  engine: DatabaseEngine;
  plan: RestorePlan;
  execute(warn: (line: string) => void, reporter?: StepReporter): Promise<RestoreOutcome>;
}

export async function planSingleRestore(r: SingleRestoreRequest): Promise<PlannedSingleRestore> {
  let storage: Storage;
  let key: string;
  let expected: RestoreInputs['expected'];
  let recorded: RestoreInputs['properties'];
  if (!r.fromCluster) {
    if (!r.backup)
      throw new UsageError(
        'Name the backup to restore',
        'dbbackup restore single <backup> …, or --from-cluster <cluster> --database NAME.',
      );
    ({ storage, key } = await resolveBackupArg(r.backup, r.backupDir, r.cloud));
  } else {
    const member = r.member;
    if (!member)
      throw new UsageError(
        '--from-cluster needs --database NAME',
        'Name the database to restore out of the cluster backup.',
      );
    const cluster = await resolveClusterArg(r.fromCluster, r.backupDir, r.cloud);
    // A file, not a cluster directory: the reference tool's cluster_<ts>.tar.gz.
    if (await cluster.storage.stat(cluster.name))
      return planReferenceMember(r, cluster.storage, cluster.name, member);
    const manifest = await loadClusterManifest(cluster.storage, cluster.name);
    const found = manifest.databases.find((m) => m.database === member);
    const dropped = manifest.dropped?.some((d) => d.database === member);
    if (!found?.file || !found.sha256) {
      throw new UsageError(
        `Database "${member}" is not in ${cluster.name}${found ? ' (its dump failed)' : dropped ? ' (it was dropped while the backup ran)' : ''}`,
        `It holds: ${manifest.databases.map((m) => m.database).join(', ')}.`,
      );
    }
    ({ storage, key } = { storage: cluster.storage, key: found.file });
    expected = { sha256: found.sha256, sizeBytes: found.sizeBytes, database: found.database };
    recorded = memberProperties(found);
  }
  // Keys are read only if the backup turns out to be encrypted (a stray key variable must not break plain restores).
  let unlockers: KeyUnlocker[] | undefined;
  const unlock = async (): Promise<KeyUnlocker[]> => {
    unlockers ??= await r.keys();
    if (!unlockers.length) {
      throw new EncryptionKeyError(`${key} is encrypted and no key was given`, {
        hint: 'Give --encryption-key-file, --passphrase-file or --identity-file (or set DBBACKUP_ENCRYPTION_KEY).',
      });
    }
    return unlockers;
  };
  const { metadata, reference, detected } = await inspectBackup(storage, key, unlock);
  const needed = engineForBackup(detected, metadata, reference);
  if (r.askedEngine && engineFamily(r.askedEngine) !== engineFamily(needed)) {
    throw new UsageError(
      `${key} is a ${engineFamily(needed).label} backup, but --db-type is ${r.askedEngine}`,
      'Omit --db-type: the engine is detected from the backup.',
    );
  }
  const inputs: RestoreInputs = {
    storage,
    key,
    target: r.target,
    create: r.create,
    clean: r.clean,
    jobs: r.jobs,
    force: r.force,
    noOwner: r.noOwner,
    noDbProperties: r.noDbProperties,
    properties: recorded,
    workdir: r.workdir,
    expected,
    unlockers,
    signal: r.signal,
    serverWaitMs: r.serverWaitMs,
  };
  return withEngine(r, r.askedEngine ?? needed, async (engine) => {
    // Run lock on the target database (issue 17).
    const prepared = await r.locked({
      confirm: r.confirm,
      server: engine.endpoint,
      guess: [r.target ?? metadata?.database ?? expected?.database],
      targets: (p) => [p.plan.target],
      prepare: () => prepareRestore(engine, inputs),
    });
    if (r.signal.aborted) throw new InterruptedError(NOTHING_CHANGED);
    return {
      engine,
      plan: prepared.plan,
      execute: (warn, reporter) => executeRestore(engine, inputs, prepared, warn, reporter),
    };
  });
}

/** `restore single --from-cluster <reference .tar.gz> --database NAME`: one database out of the archive. */
async function planReferenceMember(
  r: SingleRestoreRequest,
  storage: Storage,
  key: string,
  database: string,
): Promise<PlannedSingleRestore> {
  await requireReferenceArchive(storage, key, r.askedEngine);
  if (r.jobs > 1)
    r.onNote('warning: --jobs is ignored here: the dump streams out of the archive with one job');
  const inputs = {
    storage,
    key,
    database,
    target: r.target,
    create: r.create,
    clean: r.clean,
    force: r.force,
    noOwner: r.noOwner,
    signal: r.signal,
    serverWaitMs: r.serverWaitMs,
  };
  return withEngine(r, 'postgres', async (engine) => {
    // Run lock on the target database (issue 17).
    const prepared = await r.locked({
      confirm: r.confirm,
      server: engine.endpoint,
      guess: [r.target ?? database],
      targets: (p) => [p.plan.target],
      prepare: () => prepareReferenceMemberRestore(engine, inputs, new ByteMeter(r.signal)),
    });
    if (r.signal.aborted) throw new InterruptedError(NOTHING_CHANGED);
    return {
      engine,
      plan: prepared.plan,
      execute: (warn) => executeReferenceMemberRestore(engine, inputs, prepared, warn),
    };
  });
}

export interface ClusterRestoreRequest extends RestoreRequest {
  backup: string;
  include: string[];
  cleanCluster: boolean;
  /** --jobs as given (undefined: the default of the kind of backup). */
  jobs: number | undefined;
  /** Planning a reference archive reads all of it: `reading` shows how far, ended with an outcome. */
  onArchiveRead?: (key: string, size: number, meter: ByteMeter) => { end(outcome: string): void };
}

export interface PlannedClusterRestore {
  engine: DatabaseEngine;
  plan: ClusterRestorePlan;
  execute(warn: (line: string) => void, progress?: ClusterProgressSink): Promise<void>;
}

/** dbbackup's cluster backup (a directory or prefix) or the reference tool's archive (a file), planned. */
export async function planClusterRestoreFor(r: ClusterRestoreRequest): Promise<PlannedClusterRestore> {
  const cluster = await resolveClusterArg(r.backup, r.backupDir, r.cloud);
  const inputs: ClusterRestoreInputs = {
    storage: cluster.storage,
    name: cluster.name,
    include: r.include,
    cleanCluster: r.cleanCluster,
    jobs: r.jobs ?? 1,
    force: r.force,
    workdir: r.workdir,
    signal: r.signal,
    serverWaitMs: r.serverWaitMs,
  };
  if (await cluster.storage.stat(cluster.name)) {
    await requireReferenceArchive(cluster.storage, cluster.name, r.askedEngine);
    return withEngine(r, 'postgres', async (engine) => {
      const size = (await cluster.storage.stat(cluster.name))?.size ?? 0;
      const meter = new ByteMeter(r.signal);
      // The plan reads the whole archive (to list its databases and check it): show how far it got.
      const reading = r.onArchiveRead?.(cluster.name, size, meter);
      const plan = await planLocked(
        r,
        engine,
        inputs,
        () => planReferenceCluster(engine, inputs, meter),
        false,
      ).then(
        (p) => {
          reading?.end('done');
          return p;
        },
        (err: unknown) => {
          reading?.end(`failed: ${errorMessage(err)}`);
          throw err;
        },
      );
      return {
        engine,
        plan,
        execute: (warn, progress) => executeClusterRestore(engine, inputs, plan, warn, progress),
      };
    });
  }
  const manifest = await loadClusterManifest(cluster.storage, cluster.name);
  if (manifest.encryption) {
    const keys = await r.keys();
    if (!keys.length) {
      throw new EncryptionKeyError(`${cluster.name} is encrypted and no key was given`, {
        hint: 'Give --encryption-key-file, --passphrase-file or --identity-file.',
      });
    }
    // A wrong key fails here, before anything is changed.
    await sniff(cluster.storage, manifest.globals.file, async () => keys);
    inputs.unlockers = keys;
  }
  inputs.jobs = r.jobs ?? 2;
  return withEngine(r, r.askedEngine ?? manifest.engine, async (engine) => {
    const plan = await planLocked(r, engine, inputs, () => planDbbackupCluster(engine, inputs, manifest));
    return {
      engine,
      plan,
      execute: (warn, progress) => executeClusterRestore(engine, inputs, plan, warn, progress),
    };
  });
}

/** A source's plan and the shared one, under run locks on every database it restores into (issue 17). */
async function planLocked<M extends SourceMember>(
  r: ClusterRestoreRequest,
  engine: DatabaseEngine,
  inputs: ClusterRestoreInputs,
  source: () => Promise<SourcePlan<M>>,
  replan?: boolean,
): Promise<ClusterRestorePlan<M>> {
  const plan = await r.locked<ClusterRestorePlan<M>>({
    confirm: r.confirm,
    server: engine.endpoint,
    guess: [],
    targets: (p) => p.members.map((m) => m.database),
    prepare: async () => planClusterRestore(engine, inputs, await source()),
    // A reference archive's plan reads the whole archive: locked after it, not planned twice.
    ...(replan === false ? { replan } : {}),
  });
  if (r.signal.aborted) throw new InterruptedError(NOTHING_CHANGED);
  return plan;
}

/** Opens the engine for `work`; closed again only when `work` fails (else the caller closes it). */
async function withEngine<T>(
  r: RestoreRequest,
  engine: Engine,
  work: (e: DatabaseEngine) => Promise<T>,
): Promise<T> {
  const opened = await openEngine(r.connection(engine));
  try {
    return await work(opened);
  } catch (err) {
    await opened.close();
    throw err;
  }
}

/**
 * A stored file named as a cluster must be the reference tool's archive (gzip → tar) — or the user
 * hears what it is — and, being PostgreSQL, cannot go to another --db-type.
 */
async function requireReferenceArchive(
  storage: Storage,
  key: string,
  asked: Engine | undefined,
): Promise<void> {
  if (await isGzipTar(storage, key)) {
    if (asked && !engineFamily(asked).referenceClusterArchive) {
      throw new UsageError(
        `${key} is a PostgreSQL cluster archive of the reference tool, but --db-type is ${asked}`,
        'Omit --db-type: reference cluster archives are PostgreSQL.',
      );
    }
    return;
  }
  const detected = await sniff(storage, key).catch(() => undefined);
  throw new UsageError(
    `${key} is a file, but not a cluster backup (neither a dbbackup cluster directory nor a reference cluster_<ts>.tar.gz)`,
    detected?.engine
      ? `It is a single dump: restore it with "dbbackup restore single ${key}".`
      : 'Name a dbbackup cluster backup (cluster_<ts>, a directory with manifest.json) or a reference cluster_<ts>.tar.gz.',
  );
}
