import { Readable } from 'node:stream';
import {
  METADATA_SCHEMA,
  METADATA_VERSION,
  metadataKey,
  sha256Line,
  type BackupMetadata,
  type TableStats,
} from '../../catalog/metadata.js';
import type { DatabaseProperties } from '../../catalog/properties.js';
import { Commit, InterruptedError } from '../../catalog/commit.js';
import { SHA256_SUFFIX, extensionFor } from '../../catalog/naming.js';
import type { DatabaseEngine, ServerInfo } from '../../engines/engine.js';
import { toolVersion } from '../../engines/tools.js';
import { DbBackupError, IntegrityError, UsageError } from '../../errors.js';
import { ExitCode } from '../../exit-codes.js';
import {
  planCompression,
  type CompressionAlgorithm,
  type CompressionPlan,
} from '../../pipeline/compression.js';
import { startWriteGroup } from '../../pipeline/filter-group.js';
import { Sampler } from '../../pipeline/hash.js';
import { sniff } from '../../pipeline/sniff.js';
import type { Storage } from '../../storage/storage.js';
import { TOOL_VERSION } from '../../version.js';
import { claimFreeName, ownsObject, proveStored, TOKEN_METADATA, type ClaimedName } from '../claim.js';
import { samplerFor } from './engines.js';
import type { EngineSampler, SampleSource } from './source.js';
import { describeSpec, sampleFileName, type SampleSpec } from './spec.js';

export {
  describeSpec,
  sampleFileName,
  SAMPLE_STRATEGIES,
  validateSampleSpec,
  type SampleSpec,
  type SampleStrategy,
} from './spec.js';

/**
 * `backup sample`: one database → a plain SQL script with the whole schema and sampled rows, stored
 * like a single backup (write group: compress → SHA-256 → commit gate; commit protocol: data,
 * read-back, `.sha256`, `.meta.json` last). What differs per engine is an EngineSampler.
 */

export interface SampleBackupOptions {
  engine: DatabaseEngine;
  database: string;
  storages: Storage[];
  spec: SampleSpec;
  compression: CompressionAlgorithm;
  level: number;
  onWarning: (line: string) => void;
  /** Short notes about what is happening (sampling, dumping the schema…). */
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

export interface SampleBackupResult {
  key: string;
  locations: string[];
  metadata: BackupMetadata;
}

/** What is known once the sample was taken and before it is written. */
interface Prepared {
  sampler: EngineSampler;
  source: SampleSource;
  server: ServerInfo;
  plan: CompressionPlan;
  claim: ClaimedName;
  started: Date;
  tableStats: TableStats[];
  databaseSize: number | null;
  databaseProperties: DatabaseProperties;
  warnings: string[];
}

export async function backupSample(o: SampleBackupOptions): Promise<SampleBackupResult> {
  const { engine, database, storages } = o;
  if (!storages.length) throw new UsageError('No backup destination given');
  engine.checkDatabaseName(database);
  const started = new Date();
  // Everything the sample needs is checked first, in parallel.
  const dump = await engine.dumpCommand(database, 'plain');
  const [server, exists, version, plan, sampler] = await Promise.all([
    engine.serverInfo(),
    engine.databaseExists(database),
    toolVersion(dump.file),
    planCompression(o.compression, o.level),
    samplerFor(engine.engine),
  ]);
  if (!exists) {
    throw new UsageError(
      `Database "${database}" does not exist on ${engine.endpoint}`,
      'Run "dbbackup list" to see the databases on this server.',
    );
  }
  const dumpVersion = version ?? 'unknown';
  sampler.checkDumpTool(dumpVersion, server);
  const extension = extensionFor(engine.engine, 'plain', plan.algorithm);
  // Owned by this run until released: a concurrent sample of the same database takes the next name.
  const claim = await claimFreeName(
    storages,
    (attempt) => sampleFileName(database, o.spec, started, extension, attempt),
    database,
  );
  try {
    const warnings: string[] = [];
    const onWarning = (line: string): void => {
      warnings.push(line);
      o.onWarning(line);
    };
    // Table statistics (source row counts for the summary) are gathered while the sample is taken.
    let tableStats: TableStats[] = [];
    const rowsOf = (schema: string, name: string): number | undefined =>
      tableStats.find((t) => t.schema === schema && t.name === name)?.rows;
    o.onProgress?.(`sampling ${database}: ${describeSpec(o.spec)}`);
    const [stats, opened] = await Promise.allSettled([
      Promise.all([
        engine.tableStats(database),
        engine.databaseSize(database),
        engine.databaseProperties(database),
      ]),
      sampler.open({
        engine,
        dump,
        dumpVersion,
        database,
        spec: o.spec,
        rowsOf,
        onWarning,
        signal: o.signal,
      }),
    ]);
    if (opened.status === 'rejected') {
      if (o.signal?.aborted) throw new InterruptedError();
      throw opened.reason;
    }
    const source = opened.value;
    try {
      if (stats.status === 'rejected') throw stats.reason;
      const [statsValue, databaseSize, databaseProperties] = stats.value;
      tableStats = statsValue;
      for (const t of source.tables) t.rows = rowsOf(t.schema, t.name) ?? 0;
      const prepared: Prepared = {
        sampler,
        source,
        server,
        plan,
        claim,
        started,
        tableStats,
        databaseSize,
        databaseProperties,
        warnings,
      };
      return await storeSample(o, prepared);
    } finally {
      await source.close();
    }
  } finally {
    await claim.release();
  }
}

/** Writes the script through the write group and commits it with its sidecars; nothing stays on failure. */
async function storeSample(o: SampleBackupOptions, p: Prepared): Promise<SampleBackupResult> {
  const { engine, database, storages } = o;
  const { source, claim } = p;
  const key = claim.key;
  // A failure or an interrupt deletes what was stored, metadata first, but only where the data is
  // provably this run's: a name another writer took (a server that ignores conditional writes) is theirs.
  const owns = (st: Storage): Promise<boolean> => ownsObject(st, key, claim.token);
  const commit = new Commit(storages, { signal: o.signal, owns });
  // The commit stops the write group on an interrupt; the sampler's connection is dropped here.
  const onAbort = (): void => source.abort();
  o.signal?.addEventListener('abort', onAbort);
  const raw = new Sampler();
  let group: ReturnType<typeof startWriteGroup> | undefined;
  try {
    commit.checkpoint();
    o.onProgress?.('writing the sample');
    group = startWriteGroup({
      source: Readable.from(source.script(), { objectMode: false, highWaterMark: 1024 * 1024 }),
      taps: [raw],
      compression: p.plan,
      check: () => {
        if (raw.bytes === 0) throw new IntegrityError('The sample script is empty');
        return Promise.resolve();
      },
    });
    await commit.put(key, group, {
      metadata: {
        'dbbackup-database': database,
        'dbbackup-engine': engine.engine,
        'dbbackup-kind': 'sample',
        [TOKEN_METADATA]: claim.token,
      },
    });
    await proveStored(storages, key, claim.token);
    const written = group.result();
    await commit.verify(key, written.storedBytes, (st, k) => checkScript(st, k, p.sampler.dumpFamily));
    const metadata = sampleMetadata(o, p, key, { ...written, rawBytes: raw.bytes });
    await commit.putSmall(key + SHA256_SUFFIX, sha256Line(metadata.sha256, key.split('/').pop() ?? key));
    await commit.finish(metadataKey(key), `${JSON.stringify(metadata, null, 2)}\n`);
    return { key, locations: storages.map((st) => describe(st, key)), metadata };
  } catch (err) {
    source.abort();
    group?.abort();
    await commit.rollback();
    if (o.signal?.aborted && !(err instanceof DbBackupError && err.exitCode === ExitCode.Interrupted)) {
      throw new InterruptedError();
    }
    throw err;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}

function sampleMetadata(
  o: SampleBackupOptions,
  p: Prepared,
  key: string,
  written: { storedBytes: number; storedSha256: string; rawBytes: number },
): BackupMetadata {
  const { engine, database, spec } = o;
  const finished = new Date();
  return {
    schema: METADATA_SCHEMA,
    schemaVersion: METADATA_VERSION,
    tool: { name: 'dbbackup', version: TOOL_VERSION },
    kind: 'sample',
    engine: p.server.flavor,
    database,
    server: { version: p.server.version, versionString: p.server.versionString },
    connection: { host: engine.host, port: engine.port, user: engine.user },
    dumpTool: p.source.dumpTool,
    format: 'plain',
    compression: { algorithm: p.plan.algorithm, level: p.plan.level, implementation: p.plan.implementation },
    encryption: null,
    file: key,
    sizeBytes: written.storedBytes,
    sha256: written.storedSha256,
    dumpBytes: written.rawBytes,
    databaseSizeBytes: p.databaseSize,
    startedAt: p.started.toISOString(),
    finishedAt: finished.toISOString(),
    durationSeconds: (finished.getTime() - p.started.getTime()) / 1000,
    tables: p.tableStats,
    warnings: p.warnings,
    sample: {
      strategy: spec.strategy,
      value: spec.value,
      keepReferences: spec.keepReferences,
      tables: p.source.tables,
    },
    // A sample restored with --create gets the source database's owner, encoding, settings…
    databaseProperties: p.databaseProperties,
  };
}

/** Read the head of what was stored back and check it is the plain dump we meant to write. */
async function checkScript(storage: Storage, key: string, family: 'postgres' | 'mysql'): Promise<void> {
  const detected = await sniff(storage, key);
  if (detected.engine !== family || detected.format !== 'plain') {
    throw new IntegrityError(`The stored backup does not look like a ${family} plain dump`, {
      hint: 'The dump tool wrote something unexpected; run with --debug and check its output.',
    });
  }
}

function describe(storage: Storage, key: string): string {
  return storage.localPath ? storage.localPath(key) : `${storage.location.replace(/\/$/, '')}/${key}`;
}
