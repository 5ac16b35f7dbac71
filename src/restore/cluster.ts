import picomatch from 'picomatch';
import {
  memberProperties,
  readManifest,
  type ClusterManifest,
  type ClusterMember,
} from '../catalog/manifest.js';
import { creationProperties } from '../catalog/properties.js';
import type { DatabaseEngine, ToolCommand } from '../engines/engine.js';
import {
  DbBackupError,
  errorMessage,
  IntegrityError,
  InterruptedError,
  SafetyError,
  StorageError,
  ToolError,
  UsageError,
} from '../errors.js';
import type { StderrClassifier } from '../pipeline/process.js';
import { ByteMeter, type ClusterProgressSink } from '../pipeline/progress.js';
import { detectCompression } from '../pipeline/compression.js';
import type { Storage } from '../storage/storage.js';
import { hashStored } from '../verify/checksum.js';
import { NOTHING_CHANGED, restoreFromStream, streamRestore } from './single.js';
import { Readable, Writable, type Duplex, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { createZstdFramesDecompress } from '../pipeline/zstd-frames.js';
import {
  DEFAULT_SERVER_WAIT_SECONDS,
  dropPartial,
  explainLockWait,
  leftInPlace,
  type DropOutcome,
} from './partial.js';
import { createDecryptStream, EncryptionKeyError, isEncrypted, type KeyUnlocker } from '../crypto/index.js';
import { sniff } from '../pipeline/sniff.js';
import type { CompressionAlgorithm } from '../pipeline/compression.js';

export interface ClusterRestoreInputs {
  storage: Storage;
  /** The cluster backup's name (its directory or prefix), e.g. `cluster_20261126_050000`. */
  name: string;
  include: string[];
  cleanCluster: boolean;
  /** Databases restored in parallel. */
  jobs: number;
  force: boolean;
  /**
   * Where temporary files may go. A dbbackup cluster backup never needs one (every member streams
   * into its restore tool), so this is only recorded; reference-tool archives use it for --jobs.
   */
  workdir?: string;
  /** Keys for an encrypted cluster backup. */
  unlockers?: readonly KeyUnlocker[];
  /** SIGINT/SIGTERM: stop the tools, drop the databases being restored, report what was done. */
  signal?: AbortSignal;
  /** How long to wait for an unreachable server to drop a database this restore created. */
  serverWaitMs?: number;
}

/** PostgreSQL databases that always exist on a server and are never dropped. */
export const KEEP = ['postgres', 'template0', 'template1'];

export interface ClusterRestorePlan {
  manifest: ClusterManifest;
  members: ClusterMember[];
  /** Databases that exist on the target server and will be dropped (--clean-cluster) or conflict. */
  existing: string[];
  actions: string[];
  warnings: string[];
}

/**
 * `--include-database` globs as a filter. A plain name (no glob syntax) is a database name the user
 * typed: one too long for the server is a usage error, not "no database matches".
 */
export function includeFilter(engine: DatabaseEngine, include: readonly string[]): (name: string) => boolean {
  for (const pattern of include) if (!picomatch.scan(pattern).isGlob) engine.checkDatabaseName(pattern);
  return include.length ? picomatch([...include]) : () => true;
}

export async function loadClusterManifest(storage: Storage, name: string): Promise<ClusterManifest> {
  const manifest = await readManifest(storage, name);
  if (!manifest) {
    throw new IntegrityError(
      `${storage.location.replace(/\/$/, '')}/${name} has no manifest: the cluster backup is incomplete or not a cluster backup`,
      {
        hint: 'Run "dbbackup list backups" to see complete backups.',
      },
    );
  }
  return manifest;
}

/** Decide everything, change nothing; conflicts are all listed at once, before any change. */
export async function prepareClusterRestore(
  engine: DatabaseEngine,
  i: ClusterRestoreInputs,
): Promise<ClusterRestorePlan> {
  const manifest = await loadClusterManifest(i.storage, i.name);
  const family = (e: string): string => (e === 'postgres' ? 'postgres' : 'mysql');
  if (family(manifest.engine) !== family(engine.engine)) {
    throw new UsageError(
      `${i.name} is a ${manifest.engine} cluster backup, but the target is ${engine.engine}`,
      'Omit --db-type: it is detected from the manifest.',
    );
  }
  const include = includeFilter(engine, i.include);
  const members = manifest.databases.filter((m) => m.status === 'ok' && include(m.database));
  // Every member's name reaches the server as the database to create: none may be cut short there.
  for (const m of members) engine.checkDatabaseName(m.database);
  if (!members.length) throw new UsageError('No database of the backup matches --include-database');
  const warnings: string[] = [];
  if (manifest.status === 'partial') {
    const missing = manifest.databases.filter((m) => m.status === 'failed').map((m) => m.database);
    warnings.push(
      `this backup is partial: ${missing.join(', ')} could not be dumped and will not be restored`,
    );
  }
  const dropped = (manifest.dropped ?? []).filter((d) => include(d.database));
  if (dropped.length)
    warnings.push(
      `${dropped.map((d) => d.database).join(', ')} ${dropped.length === 1 ? 'was' : 'were'} dropped while the backup ran: not in this backup`,
    );
  const existing: string[] = [];
  for (const m of members) {
    if (!(await engine.databaseExists(m.database))) continue;
    // The maintenance database always exists: it only conflicts when it holds user objects.
    if (KEEP.includes(m.database) && (await engine.countUserObjects(m.database)) === 0) continue;
    existing.push(m.database);
  }
  if (existing.length && !i.cleanCluster) {
    throw new SafetyError(`These databases already exist on ${engine.endpoint}: ${existing.join(', ')}`, {
      hint: 'Nothing was changed. Add --clean-cluster to drop and replace them, or --include-database to restore others.',
    });
  }
  const actions: string[] = [];
  if (!i.force)
    actions.push(`verify the SHA-256 of globals and ${members.length} database dumps against the manifest`);
  actions.push(`restore roles/users and grants (${manifest.globals.file})`);
  if (existing.length) {
    const dropped = existing.filter((d) => !KEEP.includes(d));
    if (dropped.length) actions.push(`terminate sessions and drop ${dropped.join(', ')}`);
    if (existing.some((d) => KEEP.includes(d)))
      actions.push('replace the backed-up objects inside postgres (pg_restore --clean --if-exists)');
  }
  actions.push(
    `restore ${members.length} databases (${i.jobs} at a time), each with its owner, encoding, collation, grants and settings: ${members.map((m) => m.database).join(', ')}`,
  );
  if (engine.engine !== 'postgres')
    actions.push('replay the grants on tables and columns (they need the restored tables)');
  return { manifest, members, existing, actions, warnings };
}

export async function executeClusterRestore(
  engine: DatabaseEngine,
  i: ClusterRestoreInputs,
  plan: ClusterRestorePlan,
  onWarning: (line: string) => void,
  progress?: ClusterProgressSink,
): Promise<void> {
  const { storage, signal } = i;
  if (!i.force) {
    progress?.note(`verifying the checksums of globals and ${plan.members.length} database dumps`);
    for (const [key, expected] of [
      [plan.manifest.globals.file, plan.manifest.globals.sha256],
      ...plan.members.map((m) => [m.file ?? '', m.sha256 ?? '']),
    ] as Array<[string, string]>) {
      const actual = await hashStored(storage, key, new ByteMeter(signal));
      if (actual.sha256 !== expected) {
        throw new IntegrityError(`Checksum mismatch for ${key}: the cluster backup is corrupt`, {
          hint: 'Nothing was changed. Use another backup, or --force to restore anyway.',
        });
      }
    }
    progress?.note('checksums verified');
  }
  if (signal?.aborted) throw new InterruptedError(NOTHING_CHANGED);
  await restoreGlobals(
    engine,
    storage,
    plan.manifest.globals.file,
    onWarning,
    'first',
    i.unlockers,
    signal,
  ).catch((err: unknown) => {
    if (signal?.aborted)
      throw new InterruptedError(
        'Interrupted while restoring roles and grants: some may have been applied; no database was touched',
      );
    throw err;
  });
  progress?.note('roles and grants restored');
  await dropExisting(engine, plan.existing);
  progress?.begin(plan.members.map((m) => ({ name: m.database, estimate: m.sizeBytes })));

  const tally = new ClusterTally();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < plan.members.length && !signal?.aborted) {
      const m = plan.members[next++];
      if (!m?.file) continue;
      const meter = new ByteMeter(signal);
      progress?.start(m.database, () => meter.bytes);
      try {
        await restoreMember(engine, storage, m, plan.existing.includes(m.database), onWarning, i, meter);
        tally.restored.push(m.database);
        progress?.done(m.database, { bytes: m.sizeBytes });
      } catch (failure) {
        const err = await explainLockWait(engine, m.database, failure);
        const outcome = await memberOutcome(engine, m.database, i.serverWaitMs);
        tally.failed(m.database, err, outcome, signal);
        progress?.failed(m.database, errorMessage(err));
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(i.jobs, plan.members.length)) }, worker));
    if (!signal?.aborted && engine.engine !== 'postgres') {
      // MySQL/MariaDB table and column grants need their tables: replay the grants now that they exist.
      try {
        await restoreGlobals(
          engine,
          storage,
          plan.manifest.globals.file,
          onWarning,
          'again',
          i.unlockers,
          signal,
        );
        progress?.note('table and column grants restored');
      } catch (err) {
        tally.failures.push(`table and column grants: ${errorMessage(err)}`);
      }
    }
  } finally {
    progress?.end();
  }
  if (signal?.aborted) throw tally.interrupted(plan.members.map((m) => m.database));
  throwIfFailed(tally.failures, plan.members.length, 'The databases listed failed');
}

/** --clean-cluster: the databases in the way are dropped (never the maintenance ones); a lock is explained. */
export async function dropExisting(engine: DatabaseEngine, existing: readonly string[]): Promise<void> {
  for (const db of existing) {
    if (KEEP.includes(db)) continue;
    await engine.forceDropDatabase(db).catch(async (err: unknown) => {
      throw await explainLockWait(engine, db, err);
    });
  }
}

/** What a database whose restore failed became: dropped (verified), or left in place, said truthfully. */
export async function memberOutcome(
  engine: DatabaseEngine,
  database: string,
  serverWaitMs: number | undefined,
): Promise<DropOutcome> {
  // The maintenance database is restored into, never dropped.
  if (KEEP.includes(database)) return { dropped: false, line: leftInPlace(database) };
  return dropPartial(engine, database, serverWaitMs ?? DEFAULT_SERVER_WAIT_SECONDS * 1000);
}

/** How the databases of a cluster restore ended, for the final report or the one line of an interrupt. */
export class ClusterTally {
  readonly restored: string[] = [];
  readonly failures: string[] = [];
  /** Stopped by the interrupt, with what became of each. */
  private readonly stopped: string[] = [];
  private readonly left: string[] = [];
  private readonly ended: string[] = [];

  failed(database: string, err: unknown, outcome: DropOutcome, signal: AbortSignal | undefined): void {
    this.ended.push(database);
    if (!outcome.dropped) this.left.push(database);
    if (signal?.aborted) this.stopped.push(database);
    else this.failures.push(`${database}: ${errorMessage(err)} ${outcome.line}`);
  }

  /** One line: what was restored, what was stopped (and dropped or not), what was never started. */
  interrupted(all: readonly string[]): InterruptedError {
    const done = new Set([...this.restored, ...this.ended]);
    const notStarted = all.filter((d) => !done.has(d));
    const stoppedDropped = this.stopped.filter((d) => !this.left.includes(d));
    const stoppedLeft = this.stopped.filter((d) => this.left.includes(d));
    const parts = [
      'the cluster restore was stopped and its processes ended',
      `restored: ${list(this.restored)}`,
      ...(stoppedDropped.length ? [`stopped and dropped: ${list(stoppedDropped)}`] : []),
      ...(stoppedLeft.length ? [`stopped and NOT dropped (drop them yourself): ${list(stoppedLeft)}`] : []),
      ...(this.failures.length ? [`failed: ${this.failures.length}`] : []),
      `not restored: ${list(notStarted)}`,
    ];
    return new InterruptedError(`Interrupted: ${parts.join('; ')}`, { details: this.failures });
  }
}

function list(names: readonly string[]): string {
  return names.length ? names.join(', ') : 'none';
}

/** A cluster restore goes on past a failed database; at the end the failures, if any, are the error. */
export function throwIfFailed(failures: string[], total: number, what: string): void {
  if (!failures.length) return;
  throw new DbBackupError(`Cluster restore failed for ${failures.length} of ${total} databases`, {
    details: failures,
    hint: `${what}; the others were restored. Fix the cause and restore those with --include-database.`,
  });
}

async function restoreMember(
  engine: DatabaseEngine,
  storage: Storage,
  m: ClusterMember,
  existed: boolean,
  warn: (l: string) => void,
  i: ClusterRestoreInputs,
  meter: ByteMeter,
): Promise<void> {
  const file = m.file ?? '';
  const { signal } = i;
  const { compression, decrypt } = await readerFor(storage, file, i.unlockers);
  const classify = (l: string): ReturnType<DatabaseEngine['classifyStderr']> => engine.classifyStderr(l);
  if (engine.engine === 'postgres') {
    // The maintenance database is restored into, not recreated; the others create themselves
    // from the archive with their owner, encoding, locale, grants and settings.
    const intoExisting = KEEP.includes(m.database);
    const cmd = await engine.restoreCommand({
      target: m.database,
      format: m.format,
      jobs: 1,
      noOwner: false,
      create: !intoExisting,
      cleanFirst: intoExisting && existed,
    });
    await streamRestore(storage, file, compression, cmd, { classify, warn, decrypt, meter, signal });
    return;
  }
  await engine.createDatabase(m.database, creationProperties(memberProperties(m).properties));
  const cmd = await engine.restoreCommand({
    target: m.database,
    format: m.format,
    jobs: 1,
    noOwner: false,
  });
  await streamRestore(storage, file, compression, cmd, { classify, warn, decrypt, meter, signal });
}

/** Compression (of the decrypted bytes) and, for an encrypted member, the decrypting stage. */
async function readerFor(
  storage: Storage,
  key: string,
  unlockers: readonly KeyUnlocker[] | undefined,
): Promise<{ compression: CompressionAlgorithm; decrypt?: () => Transform }> {
  const raw = await head(storage, key);
  if (!isEncrypted(raw)) return { compression: detectCompression(raw) };
  if (!unlockers?.length) {
    throw new EncryptionKeyError(`${key} is encrypted and no key was given`, {
      hint: 'Give --encryption-key-file, --passphrase-file or --identity-file.',
    });
  }
  const detected = await sniff(storage, key, async () => unlockers);
  return { compression: detected.compression, decrypt: () => createDecryptStream(unlockers) };
}

async function head(storage: Storage, key: string): Promise<Buffer> {
  const stream = await storage.get(key, { start: 0, end: 63 });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Roles/users first: databases reference them as owners and grantees. Roles that already exist are
 * updated, not an error. MySQL/MariaDB grants on tables and columns fail until their tables exist:
 * the `first` pass passes over them, the pass run `again` after the databases applies them (and
 * warns about tables that are still missing, e.g. in databases left out by --include-database).
 */
async function restoreGlobals(
  engine: DatabaseEngine,
  storage: Storage,
  file: string,
  warn: (l: string) => void,
  pass: 'first' | 'again',
  unlockers: readonly KeyUnlocker[] | undefined,
  signal?: AbortSignal,
): Promise<void> {
  // Small (users and grants): held as text, so an error's line number names its statement.
  const sql = await readSmall(storage, file, unlockers);
  const lines = sql.split('\n');
  const skipped: string[] = [];
  const cmd = await globalsCommand(engine);
  await restoreFromStream(async () => Readable.from([Buffer.from(sql)]), 'none', cmd, {
    classify: globalsClassifier(engine, pass, (n) => lines[n - 1], skipped),
    warn,
    signal,
  }).catch((err: unknown) => {
    throw partlyApplied(err, engine, pass);
  });
  for (const s of skipped)
    warn(
      `skipped, the connecting user "${engine.user}" cannot grant it: ${s} (grant it as a user who holds it)`,
    );
}

/**
 * The globals replay runs every statement (one role that exists must not undo the others), so when
 * some fail the others have changed the server: said plainly, never "nothing was kept".
 */
function partlyApplied(err: unknown, engine: DatabaseEngine, pass: 'first' | 'again'): DbBackupError {
  if (!(err instanceof ToolError))
    return err instanceof DbBackupError
      ? err
      : new StorageError(`Could not read the roles and grants: ${errorMessage(err)}`);
  const what =
    pass === 'first'
      ? 'Roles and grants were restored only in part'
      : 'Table and column grants were restored only in part';
  return new DbBackupError(`${what}: ${err.message}`, {
    details: [
      ...err.details,
      `The other statements ran: users and grants on ${engine.endpoint} were changed${pass === 'first' ? '; no database was restored yet' : ''}.`,
    ],
    hint: 'Fix the cause of the failing statements (often a privilege the connecting user lacks) and run the restore again: the statements that ran are safe to repeat.',
    cause: err,
  });
}

/** The whole (small) object, decrypted and decompressed in Node; at most 256 MiB. */
async function readSmall(
  storage: Storage,
  key: string,
  unlockers: readonly KeyUnlocker[] | undefined,
): Promise<string> {
  const { compression, decrypt } = await readerFor(storage, key, unlockers);
  const stages: Duplex[] = [];
  if (decrypt) stages.push(decrypt());
  if (compression === 'zstd') stages.push(createZstdFramesDecompress());
  if (compression === 'gzip') stages.push(zlib.createGunzip());
  const chunks: Buffer[] = [];
  let total = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      if (total > MAX_GLOBALS)
        return cb(new IntegrityError(`${key} is larger than ${MAX_GLOBALS} bytes: not a globals file`));
      chunks.push(chunk);
      cb();
    },
  });
  await pipeline([await storage.get(key), ...stages, sink]);
  return Buffer.concat(chunks).toString('utf8');
}

/** A globals file is users and grants; anything this large is not one. */
const MAX_GLOBALS = 256 * 1024 * 1024;

/**
 * The tool that replays a globals dump: psql on the maintenance database without ON_ERROR_STOP or a
 * transaction (one role that exists must not undo the others), or mysql with --force.
 */
export async function globalsCommand(engine: DatabaseEngine): Promise<ToolCommand> {
  const base = await engine.restoreCommand({
    target: engine.engine === 'postgres' ? 'postgres' : '',
    format: 'plain',
    jobs: 1,
    noOwner: false,
  });
  return engine.engine === 'postgres'
    ? {
        ...base,
        args: base.args.filter((a) => a !== '--set=ON_ERROR_STOP=1' && a !== '--single-transaction'),
      }
    : { ...base, args: [...base.args.filter((a) => !a.startsWith('--database=')), '--force'] };
}

/**
 * Roles that already exist are fine; MySQL grants on tables not there yet wait for the second pass.
 * A MySQL `GRANT PROXY` the connecting user may not give (root@localhost's `GRANT PROXY ON ''@'%'`,
 * replayed over TCP as another account) is skipped and named in `skipped` (first pass only): it is
 * the installation's own, not something a restore can or must recreate.
 */
export function globalsClassifier(
  engine: DatabaseEngine,
  pass: 'first' | 'again',
  statementAt?: (line: number) => string | undefined,
  skipped?: string[],
): StderrClassifier {
  const benign = /already exists|role "[^"]+" cannot be dropped|current user cannot be/i;
  const missingTable = /^ERROR 1146 /;
  const denied = /^ERROR (?:1044|1045|1227|1698) \(\w+\) at line (\d+): (.*)$/;
  return (line) => {
    const kind = engine.classifyStderr(line);
    if (kind === 'error' && engine.engine !== 'postgres' && missingTable.test(line))
      return pass === 'first' ? 'info' : 'warning';
    const refused = kind === 'error' && engine.engine !== 'postgres' ? denied.exec(line) : null;
    const statement = refused ? statementAt?.(Number(refused[1]))?.trim() : undefined;
    if (refused && statement && /^GRANT PROXY ON /i.test(statement)) {
      if (pass === 'first') skipped?.push(`${statement.replace(/;$/, '')} (${refused[2]})`);
      return 'info';
    }
    return kind === 'error' && benign.test(line) ? 'info' : kind;
  };
}
