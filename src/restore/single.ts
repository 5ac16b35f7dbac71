import type { BackupMetadata } from '../catalog/metadata.js';
import { readSidecar, type ReferenceBackupMetadata } from '../reference/metadata.js';
import type { DetectedFormat } from '../catalog/format.js';
import type { Engine } from '../catalog/naming.js';
import type { DatabaseEngine, ToolCommand } from '../engines/engine.js';
import { majorVersion, parseVersion, pgMajorFromPath, toolVersion } from '../engines/tools.js';
import {
  DbBackupError,
  errorMessage,
  IntegrityError,
  InterruptedError,
  MissingToolError,
  SafetyError,
  StorageError,
  UsageError,
} from '../errors.js';
import { ToolProcess } from '../pipeline/process.js';
import { sniff } from '../pipeline/sniff.js';
import { ByteMeter, formatBytes } from '../pipeline/progress.js';
import { createDecryptStream, type KeyUnlocker } from '../crypto/index.js';
import type { Storage } from '../storage/storage.js';
import { checkStored } from '../verify/checksum.js';
import { objectCount, type RestorePlan } from './plan.js';
import { TRAILERS } from '../catalog/trailers.js';
import type { CreationProperties } from '../catalog/properties.js';
import {
  applyDatabaseProperties,
  planDatabaseProperties,
  recordedInMetadata,
  type PropertyPlan,
  type RecordedProperties,
} from './properties.js';
import { PgRestorePhases } from './phase.js';
import {
  DEFAULT_SERVER_WAIT_SECONDS,
  dropPartial,
  explainLockWait,
  isLockWait,
  leftInPlace,
  restoreFailure,
} from './partial.js';
import { requireTempSpace, streamRestore, tempCopySize } from './feed.js';
import { verifiedCopy } from './verified-copy.js';
import { engineFamily } from '../engines/family.js';

export interface RestoreInputs {
  storage: Storage;
  key: string;
  /** Explicit target database (`--target`). */
  target?: string;
  create: boolean;
  clean: boolean;
  jobs: number;
  force: boolean;
  noOwner: boolean;
  /** --no-db-properties: create the database with the server's defaults, apply no settings or comment. */
  noDbProperties?: boolean;
  /** The database's properties from elsewhere (a cluster manifest), for a dump whose metadata has none. */
  properties?: RecordedProperties;
  workdir?: string;
  /** Keys for an encrypted backup (already checked against its header by inspectBackup). */
  unlockers?: readonly KeyUnlocker[];
  /** Checksum and size from elsewhere (a cluster manifest) for a dump that has no metadata sidecar. */
  expected?: { sha256: string; sizeBytes: number; database: string };
  /** SIGINT/SIGTERM: stop the tools, drop what was created, remove temporary files. */
  signal?: AbortSignal;
  /** How long to wait for an unreachable server to drop a database this restore created (--server-wait). */
  serverWaitMs?: number;
}

export interface PreparedRestore {
  plan: RestorePlan;
  metadata: BackupMetadata | undefined;
  detected: DetectedFormat;
  /** What the stored bytes must hash to: from our metadata, a cluster manifest or the reference tool's sidecar. */
  expected: { sha256: string; sizeBytes: number } | undefined;
  /** The database's own properties: given when it is created, applied after the data. */
  properties: PropertyPlan;
}

/** Read metadata and the first bytes of the backup: what is it, and which engine restores it. */
export async function inspectBackup(
  storage: Storage,
  key: string,
  unlock?: () => Promise<readonly KeyUnlocker[]>,
): Promise<{
  metadata: BackupMetadata | undefined;
  /** The reference tool's sidecar, when the backup was made by it. */
  reference: ReferenceSidecar | undefined;
  detected: DetectedFormat;
  size: number;
}> {
  const stat = await storage.stat(key);
  if (!stat) {
    throw new StorageError(`Backup not found: ${storage.location.replace(/\/$/, '')}/${key}`, {
      hint: 'Run "dbbackup list backups" to see the backups in the backup directory.',
    });
  }
  const sidecar = await readSidecar(storage, key);
  const metadata = sidecar.kind === 'dbbackup' ? sidecar.metadata : undefined;
  const reference =
    sidecar.kind === 'reference' && !sidecar.metadata.encrypted
      ? { file: sidecar.file, metadata: sidecar.metadata }
      : undefined;
  const detected = await sniff(storage, key, unlock);
  if (detected.encrypted && !unlock) {
    throw new UsageError(
      `${key} is encrypted`,
      'Give the key: --encryption-key-file, --passphrase-file or --identity-file.',
    );
  }
  if ((!detected.engine || !detected.format) && metadata) {
    // Unreadable content with metadata: say whether the bytes are the ones that were backed up.
    const verdict = await checkStored(storage, key, metadata, { read: true });
    if (verdict.state !== 'valid')
      throw corruptBackup(key, verdict.problem, 'Nothing was changed. Restore another backup.');
  }
  if (!detected.engine || !detected.format) {
    if (detected.tar) {
      throw new UsageError(
        `${key} is a tar archive (a cluster backup of the reference tool?), not a single dump`,
        `Restore it with "dbbackup restore cluster ${key}" (add --include-database NAME for one database).`,
      );
    }
    throw new UsageError(
      `${key} is not a dump this tool can restore (content not recognised as a PostgreSQL or MySQL dump)`,
      'Check the file; encrypted or cluster backups need their own commands.',
    );
  }
  return { metadata, reference, detected, size: stat.size };
}

/**
 * The backup's bytes are not the ones its metadata records, in verify-backup's words: "size mismatch:
 * expected N bytes, found M" becomes "Size mismatch for KEY: the backup is corrupt (expected N bytes, found M)".
 */
function corruptBackup(key: string, problem: string, hint: string): IntegrityError {
  const colon = problem.indexOf(': ');
  const what = colon > 0 ? problem.slice(0, colon) : problem;
  const facts = colon > 0 ? ` (${problem.slice(colon + 2)})` : '';
  return new IntegrityError(
    `${what.charAt(0).toUpperCase()}${what.slice(1)} for ${key}: the backup is corrupt${facts}`,
    {
      hint,
    },
  );
}

/** A reference-tool sidecar that gives a restore its expected checksum, size and database. */
export interface ReferenceSidecar {
  file: string;
  metadata: ReferenceBackupMetadata;
}

function referenceExpected(ref: ReferenceSidecar | undefined): RestoreInputs['expected'] {
  if (!ref) return undefined;
  return {
    sha256: ref.metadata.sha256.toLowerCase(),
    sizeBytes: ref.metadata.size_bytes,
    database: ref.metadata.database,
  };
}

/** The engine family a backup needs, from its content (and metadata for MariaDB vs MySQL). */
export function engineForBackup(
  detected: DetectedFormat,
  metadata: BackupMetadata | undefined,
  reference?: ReferenceSidecar,
): Engine {
  const { engines } = engineFamily(detected.engine ?? 'mariadb');
  const recorded = metadata?.engine ?? reference?.metadata.database_type;
  return engines.find((e) => e === recorded) ?? engines[0] ?? 'mariadb';
}

/** Decide everything; change nothing. Throws for conditions that block a restore outright. */
export async function prepareRestore(
  engine: DatabaseEngine,
  inputs: RestoreInputs,
): Promise<PreparedRestore> {
  const { storage, key } = inputs;
  const unlockers = inputs.unlockers;
  const { metadata, reference, detected, size } = await inspectBackup(
    storage,
    key,
    unlockers ? async () => unlockers : undefined,
  );
  const fromReference = referenceExpected(reference);
  const target =
    inputs.target ??
    metadata?.database ??
    inputs.expected?.database ??
    fromReference?.database ??
    detected.pgHeader?.database ??
    undefined;
  if (!target) throw new UsageError(`No target database for ${key}`, 'Name one with --target <database>.');
  engine.checkDatabaseName(target);
  const warnings: string[] = [];
  const format = detected.format ?? 'plain';
  const restoreTool = await engine.restoreCommand({
    target,
    format,
    jobs: inputs.jobs,
    noOwner: inputs.noOwner,
  });

  await checkToolVersion(engine, detected, restoreTool, warnings);
  const server = await engine.serverInfo();
  const fromServer = metadata?.server.version ?? detected.pgHeader?.serverVersion ?? null;
  if (
    detected.engine &&
    engineFamily(detected.engine).warnsOnOlderTarget &&
    fromServer &&
    majorVersion(fromServer) > majorVersion(server.version)
  ) {
    warnings.push(
      `the backup comes from PostgreSQL ${fromServer} and the target runs ${server.version}: restoring to an older major version may fail`,
    );
  }

  const actions: string[] = [];
  const expected = metadata ?? inputs.expected ?? fromReference;
  if (!expected && !inputs.force) {
    throw new IntegrityError(`${key} has no metadata, so its checksum cannot be verified`, {
      hint: 'Restore it anyway with --force (for dumps not made by dbbackup), or pick a complete backup.',
    });
  }
  const checksum: RestorePlan['checksum'] = !expected
    ? 'not available (no metadata)'
    : inputs.force
      ? 'skipped (--force)'
      : 'to verify';
  if (checksum === 'to verify')
    actions.push(
      `verify the SHA-256 of the whole backup against ${!metadata && !inputs.expected && reference ? `the reference tool's metadata (${reference.file})` : 'its metadata'}`,
    );
  const {
    exists: targetExists,
    objects: targetObjects,
    action,
  } = await inspectTarget(engine, target, inputs);
  if (action) actions.push(action);
  const properties = await planDatabaseProperties(
    engine,
    target,
    inputs.properties ?? recordedInMetadata(metadata?.databaseProperties),
    {
      creates: !targetExists || inputs.clean,
      noOwner: inputs.noOwner,
      noDbProperties: Boolean(inputs.noDbProperties),
    },
  );
  warnings.push(...properties.warnings);
  const jobs = await planJobs(inputs, detected, metadata, size, restoreTool.name, { warnings, actions });
  // dbbackup checked the trailer when it took the backup, and the checksum proves these are those
  // bytes; anything else (another tool's dump, --force) is checked as it streams in.
  const vouched = checksum === 'to verify' && Boolean(metadata ?? inputs.expected);
  const trailer =
    format === 'plain' && !vouched
      ? TRAILERS[engineFamily(detected.engine ?? 'mariadb').plainTrailer]
      : undefined;
  if (trailer)
    actions.push(
      `check that the dump ends with "${trailer.text}" (a dump without it is incomplete: the restore then fails${targetExists && !inputs.clean ? '' : ' and the database is dropped'})`,
    );
  if (properties.statements.length)
    actions.push(
      `apply the database's recorded properties (${properties.statements.length} statements, listed below)`,
    );
  const plan: RestorePlan = {
    source: `${storage.location.replace(/\/$/, '')}/${key}`,
    sizeBytes: size,
    detected,
    metadata,
    checksum,
    target,
    endpoint: engine.endpoint,
    targetExists,
    targetObjects,
    actions,
    tool: restoreTool.name,
    jobs,
    trailer,
    warnings,
    databaseProperties: { apply: properties.apply, leave: properties.leave },
  };
  return {
    plan,
    metadata,
    detected,
    expected: expected ? { sha256: expected.sha256, sizeBytes: expected.sizeBytes } : undefined,
    properties,
  };
}

/**
 * How many pg_restore jobs, and the step that restores: a temporary copy for --jobs is checked for
 * room now, before the target is created or dropped.
 */
async function planJobs(
  inputs: RestoreInputs,
  detected: DetectedFormat,
  metadata: BackupMetadata | undefined,
  size: number,
  tool: string,
  out: { warnings: string[]; actions: string[] },
): Promise<number> {
  const format = detected.format ?? 'plain';
  // Parallel pg_restore needs a seekable plaintext file, which an encrypted backup must never become.
  const jobs = format === 'custom' && !detected.encrypted ? inputs.jobs : 1;
  if (inputs.jobs > 1 && detected.encrypted)
    out.warnings.push(
      '--jobs is ignored for encrypted backups: plaintext is never written to disk, so the restore streams with one job',
    );
  if (inputs.jobs > 1 && format !== 'custom')
    out.warnings.push('--jobs applies to PostgreSQL custom-format archives only; restoring with one job');
  const copy =
    jobs > 1 && (detected.compression !== 'none' || !inputs.storage.localPath)
      ? await requireTempSpace(inputs.workdir, tempCopySize(metadata, size, detected.compression))
      : undefined;
  out.actions.push(
    copy
      ? `restore with ${tool} from a temporary file in ${copy.dir} (${copy.size.estimated ? 'about ' : ''}${formatBytes(copy.size.bytes)}), decompressed before the target is touched`
      : `restore with ${tool}${detected.compression !== 'none' ? ` (streamed through ${detected.encrypted ? 'decryption and ' : ''}${detected.compression} decompression)` : ''}`,
  );
  return jobs;
}

/** The restore tool must be able to read the archive: pg_restore refuses archives from a newer pg_dump. */
export async function checkToolVersion(
  engine: DatabaseEngine,
  detected: DetectedFormat,
  tool: ToolCommand,
  warnings: string[],
): Promise<void> {
  if (!engineFamily(engine.engine).restoreToolMustBeNewer) return;
  const raw = detected.pgHeader?.dumpVersion;
  const dumpVersion = raw ? parseVersion(raw) : null;
  if (!dumpVersion) return;
  // Only majors are compared: read from Debian's path when it names one, without starting the tool
  // (which is asked only for the message, when the check fails).
  const pathMajor = pgMajorFromPath(tool.file);
  if (pathMajor !== null && pathMajor >= majorVersion(dumpVersion)) return;
  const version = (await toolVersion(tool.file)) ?? pathMajor?.toString();
  if (!version) return;
  if (majorVersion(version) < majorVersion(dumpVersion)) {
    const message = `This backup was written by pg_dump ${dumpVersion}, but the local ${tool.name} is ${version}`;
    if (detected.format === 'custom') {
      throw new MissingToolError(`${message}: ${tool.name} cannot read archives from a newer pg_dump`, {
        hint: `Install the PostgreSQL ${majorVersion(dumpVersion)} client programs (or newer), or set DBBACKUP_PG_BINDIR.`,
      });
    }
    warnings.push(`${message}; the SQL may use syntax this server does not know`);
  }
}

export interface RestoreOutcome {
  target: string;
  seconds: number;
  warnings: string[];
}

/**
 * What restoring into `target` takes: nothing (it exists and is empty), creating it (--create), or
 * dropping and recreating it (--clean). Anything else is refused here, before a change.
 */
export async function inspectTarget(
  engine: DatabaseEngine,
  target: string,
  o: { create: boolean; clean: boolean },
): Promise<{ exists: boolean; objects: number; action: string | undefined }> {
  const exists = await engine.databaseExists(target);
  const objects = exists ? await engine.countUserObjects(target) : 0;
  if (exists && o.clean) return { exists, objects, action: `drop database "${target}" and create it empty` };
  if (exists && objects > 0) {
    throw new SafetyError(
      `Target database "${target}" already exists and is not empty (${objectCount(objects)})`,
      {
        hint: 'Add --clean to drop and recreate it, or choose another --target.',
      },
    );
  }
  if (!exists) {
    if (!o.create) {
      throw new SafetyError(`Target database "${target}" does not exist on ${engine.endpoint}`, {
        hint: 'Add --create to create it, or choose another --target.',
      });
    }
    return { exists, objects, action: `create database "${target}"` };
  }
  return { exists, objects, action: undefined };
}

/** How a restore reacts to an interrupt or a failure (see partial.ts). */
export interface TargetOptions {
  /** SIGINT/SIGTERM: the restore's tools are stopped through it; a failure then becomes an InterruptedError. */
  signal?: AbortSignal;
  /** How long to wait for an unreachable server to drop a database this restore created. */
  serverWaitMs?: number;
  /** What an interrupt stopped, for its one line, e.g. `the restore into "x" was stopped`. */
  stopped?: string;
  /** Encoding, locale… of the database this creates (see createDatabase); the server's defaults without. */
  properties?: CreationProperties;
}

/**
 * Runs `restore` into `target`, created (or dropped and recreated with `clean`) first. A database
 * created here is dropped again if the restore fails or is interrupted — and said to be dropped only
 * once the server confirms it: half-restored must never look restored.
 */
export async function intoTarget(
  engine: DatabaseEngine,
  target: string,
  exists: boolean,
  clean: boolean,
  restore: () => Promise<void>,
  o: TargetOptions = {},
): Promise<void> {
  if (exists && clean) {
    await engine.dropDatabase(target).catch(async (err: unknown) => {
      const locked = isLockWait(err);
      throw await explainLockWait(
        engine,
        target,
        new SafetyError(`Could not drop database "${target}": ${(err as Error).message}`, {
          hint: locked
            ? 'Nothing was changed. End the sessions listed (or wait for them), then run the restore again; --lock-timeout sets how long to wait.'
            : 'Close other sessions using it and try again.',
        }),
      );
    });
  }
  const created = !exists || clean;
  if (created)
    await engine.createDatabase(target, o.properties).catch((err: unknown) => {
      if (err instanceof DbBackupError) throw err;
      throw new DbBackupError(
        `Could not create database "${target}" on ${engine.endpoint}: ${errorMessage(err)}`,
        {
          hint: exists
            ? `Database "${target}" was dropped (--clean) and could not be created again: check the server log and the user's CREATEDB privilege.`
            : "Check the user's privilege to create databases (PostgreSQL: CREATEDB) and the server log.",
          cause: err,
        },
      );
    });
  try {
    if (o.signal?.aborted) throw new InterruptedError('Interrupted');
    await restore();
  } catch (failure) {
    // Who held the lock, asked before the drop ends the sessions in the database.
    const err = await explainLockWait(engine, target, failure);
    const outcome = created
      ? await dropPartial(engine, target, o.serverWaitMs ?? DEFAULT_SERVER_WAIT_SECONDS * 1000)
      : undefined;
    throw restoreFailure(err, {
      signal: o.signal,
      stopped: o.stopped ?? `the restore into "${target}" was stopped`,
      // With --clean the database's former contents went before the restore began: said, not implied.
      outcome: outcome
        ? `${outcome.line}${exists ? ` Its previous contents had been dropped by --clean before the restore began.` : ''}`
        : leftInPlace(target),
      notDropped: outcome ? !outcome.dropped : false,
    });
  }
}

/** Where a long step of a restore is shown (a bar or lines): bytes of the backup read so far, of `total`. */
export interface StepReporter {
  begin(step: string, meter: ByteMeter, total: number): void;
  end(outcome: string): void;
}

/** Where a restore's steps are shown, and the signal that stops them. */
interface StepContext {
  reporter: StepReporter | undefined;
  signal: AbortSignal | undefined;
  /** For a step that only reads the backup: where from, to name the store when a read fails. */
  reads?: string;
}

/** Runs `fn` as one reported step, ended as done or failed whatever happens; an interrupt stops its reads. */
async function step<T>(
  progress: StepContext,
  name: string,
  total: number,
  fn: (meter: ByteMeter) => Promise<T>,
): Promise<T> {
  const meter = new ByteMeter(progress.signal);
  progress.reporter?.begin(name, meter, total);
  try {
    const result = await fn(meter);
    progress.reporter?.end('done');
    return result;
  } catch (err) {
    progress.reporter?.end('failed');
    // A step that only reads fails because the store did (a cut connection), not because of a bug.
    if (progress.reads && !(err instanceof DbBackupError))
      throw new StorageError(`Reading the backup from ${progress.reads} failed: ${errorMessage(err)}`, {
        hint: 'Nothing was changed. The store, or the network to it, failed; check it and run the restore again.',
        cause: err,
      });
    throw err;
  }
}

/** Carry out a prepared plan. */
export async function executeRestore(
  engine: DatabaseEngine,
  inputs: RestoreInputs,
  prepared: PreparedRestore,
  onWarning: (line: string) => void,
  reporter?: StepReporter,
): Promise<RestoreOutcome> {
  const { storage, key } = inputs;
  const { plan, detected, expected } = prepared;
  const started = Date.now();
  const size = plan.sizeBytes ?? 0;
  const progress: StepContext = { reporter, signal: inputs.signal, reads: plan.source };
  const localFile = storage.localPath?.(key);
  // pg_restore --jobs needs a seekable, uncompressed archive: decoded (and verified) before the target is touched.
  const copy =
    plan.jobs > 1 && !(localFile && detected.compression === 'none')
      ? await step(
          progress,
          plan.checksum === 'to verify' ? 'verifying and decompressing' : 'decompressing',
          size,
          (meter) =>
            verifiedCopy(storage, key, detected, plan, {
              expected,
              workdir: inputs.workdir,
              meter,
              signal: inputs.signal,
              corrupt: (problem) => corruptBackup(key, problem, CORRUPT_HINT),
              interrupted: `${NOTHING_CHANGED}; its temporary files were removed`,
            }),
        )
      : undefined;
  if (plan.checksum === 'to verify' && expected && !copy) {
    // The same verdict as verify-backup: size, the .sha256 file and every byte against the metadata.
    const verdict = await step(progress, 'verifying the checksum', size, (meter) =>
      checkStored(storage, key, expected, { read: true, meter }),
    );
    if (verdict.state !== 'valid') throw corruptBackup(key, verdict.problem, CORRUPT_HINT);
  }
  if (inputs.signal?.aborted) {
    await copy?.cleanup();
    throw new InterruptedError(NOTHING_CHANGED);
  }
  const warnings: string[] = [...plan.warnings];
  const warn = (line: string): void => {
    warnings.push(line);
    onWarning(line);
  };
  try {
    await intoTarget(
      engine,
      plan.target,
      plan.targetExists,
      inputs.clean,
      () =>
        step({ reporter, signal: inputs.signal }, `restoring with ${plan.tool}`, size, (meter) =>
          runRestore(engine, inputs, plan, detected, warn, meter, Boolean(reporter), copy?.file),
        ),
      {
        signal: inputs.signal,
        serverWaitMs: inputs.serverWaitMs,
        stopped: `the restore into "${plan.target}" was stopped and its processes ended${plan.jobs > 1 ? '; its temporary files were removed' : ''}`,
        properties: prepared.properties.create,
      },
    );
  } finally {
    await copy?.cleanup();
  }
  // Owner, privileges, settings, comment: only once the data is in (a setting such as
  // default_transaction_read_only would stop the restore itself).
  await applyDatabaseProperties(engine, plan.target, prepared.properties);
  return { target: plan.target, seconds: (Date.now() - started) / 1000, warnings };
}

const CORRUPT_HINT =
  'Nothing was changed. Restore another backup, or add --force to restore this one anyway.';

/** An interrupt before the target was touched. */
export const NOTHING_CHANGED = 'Interrupted before the restore changed anything; nothing was changed';

async function runRestore(
  engine: DatabaseEngine,
  inputs: RestoreInputs,
  plan: RestorePlan,
  detected: DetectedFormat,
  warn: (l: string) => void,
  meter: ByteMeter,
  /** Progress is shown: the tool says what it is doing (pg_restore --verbose), for the phase beside the bar. */
  phases: boolean,
  /** --jobs: the verified temporary copy (executeRestore made it and removes it). */
  copy: string | undefined,
): Promise<void> {
  const { storage, key, signal } = inputs;
  const format = detected.format ?? 'plain';
  const classify = (line: string): ReturnType<DatabaseEngine['classifyStderr']> =>
    engine.classifyStderr(line);
  const localFile = storage.localPath?.(key);
  const tracker = phases && format === 'custom' ? new PgRestorePhases() : undefined;
  const onLine = tracker
    ? (line: string): void => {
        tracker.line(line);
        meter.phase = tracker.current();
      }
    : undefined;

  const file = copy ?? (plan.jobs > 1 ? localFile : undefined);
  if (file) {
    const cmd = await engine.restoreCommand({
      target: plan.target,
      format,
      jobs: plan.jobs,
      file,
      noOwner: inputs.noOwner,
      verbose: Boolean(tracker),
    });
    const tool = new ToolProcess(cmd, ['ignore', 'ignore', 'pipe'], classify, warn, { signal, onLine });
    await tool.done;
    return;
  }

  const cmd = await engine.restoreCommand({
    target: plan.target,
    format,
    jobs: 1,
    noOwner: inputs.noOwner,
    verbose: Boolean(tracker),
  });
  const unlockers = inputs.unlockers ?? [];
  const decrypt = detected.encrypted ? () => createDecryptStream(unlockers) : undefined;
  await streamRestore(storage, key, detected.compression, cmd, {
    classify,
    warn,
    decrypt,
    meter,
    trailer: plan.trailer,
    signal,
    onLine,
  });
}
