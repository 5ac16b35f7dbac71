import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { BackupFacts } from '../catalog/facts.js';
import { listBackups } from '../verify/listing.js';
import { memberProperties, readManifest, type ClusterManifest } from '../catalog/manifest.js';
import { readMetadata } from '../catalog/metadata.js';
import { timestampTag, type Engine } from '../catalog/naming.js';
import type { KeyUnlocker } from '../crypto/index.js';
import type { DatabaseEngine } from '../engines/engine.js';
import { DbBackupError, errorMessage, IntegrityError, InterruptedError, UsageError } from '../errors.js';
import { takeRunLock } from '../locks/run-lock.js';
import type { RecordedProperties } from '../restore/properties.js';
import { dropPartial } from '../restore/partial.js';
import { executeRestore, prepareRestore, type RestoreInputs } from '../restore/single.js';
import type { Storage } from '../storage/storage.js';
import { hashStored } from '../verify/checksum.js';
import { compareFacts, type Comparison } from './compare.js';

/**
 * A restore drill (issue 17): the backup restored into a scratch database with a generated name,
 * compared with the facts recorded when it was taken, timed (the restore's wall time is the RTO),
 * and the scratch database always dropped afterwards — after a success, a failure, Ctrl-C or
 * SIGTERM — unless kept for inspection.
 */

/** One database to restore and compare. */
export interface DrillUnit {
  database: string;
  /** The dump's key in the store. */
  key: string;
  facts: BackupFacts | undefined;
  /** A cluster member's checksum and properties, from the manifest. */
  expected?: RestoreInputs['expected'];
  properties?: RecordedProperties;
}

/** What a drill proves: a single backup, one member of a cluster backup, or all of them. */
export interface DrillSubject {
  storage: Storage;
  /** The backup entry: `x.dump.zst` or `cluster_x/` (its drill history is beside it). */
  entry: string;
  /** For messages and records: directory or URI and name. */
  location: string;
  engine: Engine;
  /** When the backup was taken. */
  takenAt: string;
  /** The server it was taken from (`host:port`). */
  source: string;
  /** The database drilled, or `*` for a whole cluster. */
  label: string;
  units: DrillUnit[];
  /** A cluster's roles and grants: read back against their checksum (a drill never applies them). */
  globals?: { file: string; sha256: string };
}

function where(storage: Storage, key: string): string {
  return `${storage.location.replace(/\/$/, '')}/${key}`;
}

function clusterSubject(
  storage: Storage,
  manifest: ClusterManifest,
  database: string | undefined,
): DrillSubject {
  const ok = manifest.databases.filter((m) => m.status === 'ok' && m.file && m.sha256);
  const members = database === undefined ? ok : ok.filter((m) => m.database === database);
  if (!members.length)
    throw new UsageError(
      database === undefined
        ? `${manifest.name} holds no database that was backed up`
        : `Database "${database}" is not in ${manifest.name}`,
      `It holds: ${ok.map((m) => m.database).join(', ') || 'nothing'}.`,
    );
  return {
    storage,
    entry: `${manifest.name}/`,
    location: where(storage, `${manifest.name}/`),
    engine: manifest.engine,
    takenAt: manifest.startedAt,
    source: `${manifest.connection.host}:${manifest.connection.port}`,
    label: database ?? '*',
    units: members.map((m) => ({
      database: m.database,
      key: m.file ?? '',
      facts: m.facts,
      expected: { sha256: m.sha256 ?? '', sizeBytes: m.sizeBytes, database: m.database },
      properties: memberProperties(m),
    })),
    globals:
      database === undefined ? { file: manifest.globals.file, sha256: manifest.globals.sha256 } : undefined,
  };
}

async function singleSubject(
  storage: Storage,
  key: string,
  database: string | undefined,
): Promise<DrillSubject> {
  if (/^(?:base|physical)\//.test(key))
    throw new UsageError(
      `${key} is a backup in a point-in-time archive: name the archive with --archive`,
      'dbbackup drill <base_… | phys_… | latest> --archive <dir|uri> restores it into a scratch data directory, replays the archive to its end on a scratch server, checks it and removes it.',
    );
  const metadata = await readMetadata(storage, key);
  if (!metadata)
    throw new IntegrityError(
      `${where(storage, key)} has no dbbackup metadata: there is nothing to drill it against`,
      {
        hint: 'Drill a backup dbbackup made (dbbackup list backups shows them).',
      },
    );
  if (database !== undefined && database !== metadata.database)
    throw new UsageError(
      `${key} is a backup of "${metadata.database}", not of "${database}"`,
      'Omit --database, or name a backup of that database.',
    );
  return {
    storage,
    entry: key,
    location: where(storage, key),
    engine: metadata.engine,
    takenAt: metadata.startedAt,
    source: `${metadata.connection.host}:${metadata.connection.port}`,
    label: metadata.database,
    units: [{ database: metadata.database, key, facts: metadata.facts }],
  };
}

/**
 * `latest` (the newest complete single or cluster backup in the store; with --database, the newest
 * holding that database), a cluster backup's name, or a single backup's key.
 */
export async function resolveSubject(
  storage: Storage,
  name: string,
  database: string | undefined,
): Promise<DrillSubject> {
  if (name === 'latest') return latestSubject(storage, database);
  const trimmed = name.replace(/\/+$/, '');
  if (!(await storage.stat(trimmed))) {
    const manifest = await readManifest(storage, trimmed);
    if (manifest) return clusterSubject(storage, manifest, database);
  }
  return singleSubject(storage, trimmed, database);
}

async function latestSubject(storage: Storage, database: string | undefined): Promise<DrillSubject> {
  const entries = (await listBackups(storage)).filter(
    (e) =>
      (e.state === 'unverified' || e.state === 'valid') &&
      e.producer !== 'reference' &&
      (e.kind === 'single' || e.kind === 'cluster'),
  );
  for (const e of entries) {
    if (e.kind === 'single' && (database === undefined || e.database === database))
      return singleSubject(storage, e.key, database);
    if (e.kind === 'cluster') {
      const manifest = await readManifest(storage, e.key.replace(/\/$/, ''));
      const holds = manifest?.databases.some((m) => m.status === 'ok' && m.database === database);
      if (manifest && (database === undefined || holds)) return clusterSubject(storage, manifest, database);
    }
  }
  throw new UsageError(
    `No complete backup${database === undefined ? '' : ` of "${database}"`} in ${storage.location}`,
    'Run "dbbackup list backups" to see what is there.',
  );
}

export interface DrillOptions {
  /** Keep the scratch databases (--keep). */
  keep: boolean;
  /** --sample-rows N (0: no row checksums compared). */
  sampleRows: number;
  unlockers?: readonly KeyUnlocker[];
  signal: AbortSignal;
  serverWaitMs: number;
  onNote: (line: string) => void;
  onWarning: (line: string) => void;
}

export interface UnitResult {
  database: string;
  scratch: string;
  restoreSeconds: number | null;
  comparison?: Comparison;
  /** Facts were recorded with the backup (else only restorability is proven). */
  compared: boolean;
  error?: string;
  /** What became of the scratch database, in words. */
  dropped: string;
}

export interface DrillResult {
  outcome: 'passed' | 'failed' | 'interrupted';
  restoreSeconds: number | null;
  totalSeconds: number;
  units: UnitResult[];
  differences: string[];
  warnings: string[];
  server: string;
  error?: unknown;
  /** A point-in-time drill: what was read per database (printed instead of the units' lines). */
  lines?: string[];
  /** A point-in-time drill: what became of the scratch server and directory, in words. */
  cleanup?: string;
  /** A point-in-time drill: what was read (recorded in the drill history instead of the units' sums). */
  checked?: Record<string, number>;
  /** A point-in-time drill: rows counted per database and table (for --json). */
  tables?: Record<string, Record<string, number>>;
}

/** `dbbackup_drill_<UTC time>_<random>`: never a user's database, never too long for either engine. */
export function scratchName(date = new Date()): string {
  return `dbbackup_drill_${timestampTag(date)}_${randomBytes(3).toString('hex')}`;
}

/** Rejects when the signal fires: a long comparison is not waited for after Ctrl-C/SIGTERM. */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = (): void => reject(new InterruptedError('Interrupted'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

/**
 * Runs the drill. Never throws for what happens to the backup (a failed restore, a difference):
 * that is the result. Throws only for a refused run lock before anything started.
 */
export async function runDrill(
  engine: DatabaseEngine,
  subject: DrillSubject,
  o: DrillOptions,
): Promise<DrillResult> {
  await takeRunLock({
    family: 'drill',
    parts: [subject.location],
    description: `drill of ${subject.location}`,
  });
  const started = Date.now();
  const base = scratchName();
  const units: UnitResult[] = [];
  const differences: string[] = [];
  const warnings: string[] = [];
  let restoreSeconds = 0;
  let error: unknown;
  try {
    if (subject.globals) {
      const g = subject.globals;
      const actual = await Promise.race([hashStored(subject.storage, g.file), aborted(o.signal)]);
      if (actual.sha256 !== g.sha256)
        throw new IntegrityError(
          `Checksum mismatch for ${g.file}: the roles and grants of this cluster backup are corrupt`,
        );
      o.onNote(
        `roles and grants: ${g.file} matches its checksum (a drill does not apply them to the server)`,
      );
    }
    for (const [i, unit] of subject.units.entries()) {
      const scratch = subject.units.length > 1 ? `${base}_${i + 1}` : base;
      const result = await drillUnit(engine, subject, unit, scratch, o);
      units.push(result);
      restoreSeconds += result.restoreSeconds ?? 0;
      const prefix = subject.units.length > 1 ? `${unit.database}: ` : '';
      differences.push(...(result.comparison?.differences ?? []).map((d) => prefix + d));
      warnings.push(...(result.comparison?.warnings ?? []).map((w) => prefix + w));
      if (result.error) {
        error = new DbBackupError(`${prefix}${result.error}`);
        break;
      }
      if (o.signal.aborted) break;
    }
  } catch (err) {
    error = err;
  }
  const interrupted = o.signal.aborted;
  const failed = error !== undefined || differences.length > 0;
  return {
    outcome: interrupted ? 'interrupted' : failed ? 'failed' : 'passed',
    restoreSeconds: units.every((u) => u.restoreSeconds !== null) && units.length ? restoreSeconds : null,
    totalSeconds: (Date.now() - started) / 1000,
    units,
    differences,
    warnings,
    server: engine.endpoint,
    error,
  };
}

async function drillUnit(
  engine: DatabaseEngine,
  subject: DrillSubject,
  unit: DrillUnit,
  scratch: string,
  o: DrillOptions,
): Promise<UnitResult> {
  const result: UnitResult = {
    database: unit.database,
    scratch,
    restoreSeconds: null,
    compared: Boolean(unit.facts),
    dropped: '',
  };
  const inputs: RestoreInputs = {
    storage: subject.storage,
    key: unit.key,
    target: scratch,
    create: true,
    clean: false,
    jobs: 1,
    force: false,
    // Roles are the server's: the scratch copy belongs to the drilling user, its contents are compared.
    noOwner: true,
    expected: unit.expected,
    properties: unit.properties,
    unlockers: o.unlockers,
    signal: o.signal,
    serverWaitMs: o.serverWaitMs,
  };
  try {
    o.onNote(`${unit.database}: restoring ${unit.key} into ${scratch} on ${engine.endpoint}`);
    const started = Date.now();
    const prepared = await prepareRestore(engine, inputs);
    await executeRestore(engine, inputs, prepared, o.onWarning);
    result.restoreSeconds = (Date.now() - started) / 1000;
    if (!unit.facts) {
      o.onWarning(
        `${unit.database}: no facts were recorded with this backup: it restores, but nothing was compared`,
      );
      return result;
    }
    const recorded = unit.facts;
    const counted = new Set(
      recorded.tables
        .filter((t) => t.rows !== null)
        .map((t) => (t.schema ? `${t.schema}.${t.name}` : t.name)),
    );
    const restored = await Promise.race([
      engine.readFacts(scratch, {
        countLimitBytes: null,
        sampleRows: o.sampleRows > 0 ? recorded.sampleRows : 0,
        count: (t) => counted.has(t),
      }),
      aborted(o.signal),
    ]);
    result.comparison = compareFacts(recorded, restored, { sampleRows: o.sampleRows });
  } catch (err) {
    result.error = errorMessage(err);
  } finally {
    result.dropped = await dropScratch(engine, scratch, o);
  }
  return result;
}

/** Drops the scratch database (verified), or says it was kept, or that it could NOT be dropped. */
async function dropScratch(engine: DatabaseEngine, scratch: string, o: DrillOptions): Promise<string> {
  if (o.keep) {
    const exists = await engine.databaseExists(scratch).catch(() => false);
    return exists ? `kept (--keep): ${scratch} on ${engine.endpoint}` : `${scratch} was not created`;
  }
  const outcome = await dropPartial(engine, scratch, o.serverWaitMs);
  if (outcome.dropped) return `${scratch} dropped`;
  o.onWarning(outcome.line);
  return `${scratch} NOT dropped: DROP DATABASE ${engine.quoteIdentifier(scratch)}`;
}

/** The host name, for the drill history. */
export function hostName(): string {
  return os.hostname();
}
