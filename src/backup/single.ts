import { backupFileName, extensionFor, type DumpFormat } from '../catalog/naming.js';
import {
  METADATA_SCHEMA,
  METADATA_VERSION,
  metadataJson,
  metadataKey,
  sha256Line,
  type BackupMetadata,
} from '../catalog/metadata.js';
import { SHA256_SUFFIX } from '../catalog/naming.js';
import { commitUnit } from '../catalog/commit.js';
import type { DatabaseEngine, ServerInfo, ToolCommand } from '../engines/engine.js';
import type { ProgressSource } from '../pipeline/progress.js';
import { majorVersion, pgMajorFromPath, toolVersion } from '../engines/tools.js';
import { dumpToolVersionFromHead } from '../catalog/format.js';
import { PgArchiveCheck } from '../catalog/pg-archive.js';
import { IntegrityError, MissingToolError, UsageError } from '../errors.js';
import { claimFreeName, ownsObject, proveStored, TOKEN_METADATA } from './claim.js';
import {
  inProcessLimit,
  planCompression,
  type CompressionAlgorithm,
  type CompressionPlan,
} from '../pipeline/compression.js';
import { startDumpGroup } from '../pipeline/dump-stream.js';
import { compressionFor, encryptionFor, type RawView, type WriteGroup } from '../pipeline/filter-group.js';
import { Progress, processBytesWritten, type ProgressMode } from '../pipeline/progress.js';
import { sniff } from '../pipeline/sniff.js';
import type { Storage } from '../storage/storage.js';
import { TOOL_VERSION } from '../version.js';
import type { EncryptionDescription, KeyProtector } from '../crypto/index.js';
import { checkPgCustomToc } from './checks.js';
import { recordableProperties } from '../catalog/properties.js';
import { dumpBinlogPosition, dumpTrailer, SNAPSHOT_POSITION_ARGS } from '../catalog/trailers.js';
import type { FactOptions } from '../catalog/facts.js';
import { recordFacts } from './facts.js';
import { engineFamily } from '../engines/family.js';

export interface SingleBackupOptions {
  engine: DatabaseEngine;
  database: string;
  /** Where the backup goes: one store, or several written at once from the same stream (e.g. a directory and a bucket). */
  storages: Storage[];
  format: DumpFormat;
  compression: CompressionAlgorithm;
  level: number;
  progress: ProgressMode;
  onWarning: (line: string) => void;
  /** Called when the first stage that can be interrupted is running. */
  signal?: AbortSignal;
  /** Encrypt for these keys/recipients (empty or absent: not encrypted). */
  encryption?: readonly KeyProtector[];
  /** Record the facts restore drills compare (issue 17); absent: none. */
  facts?: FactOptions;
  /**
   * Given the same byte counters and size estimate the progress display reads, once the dump runs:
   * another display (the interactive UI) shows the same numbers.
   */
  observe?: (source: ProgressSource, estimate: () => number | null) => void;
}

export interface SingleBackupResult {
  key: string;
  /** One per store, in the order given. */
  locations: string[];
  metadata: BackupMetadata;
}

/**
 * One database → one backup file plus its sidecars. The data is streamed into storage under its
 * final name only after every process succeeded; `.sha256` follows; `.meta.json` is written last,
 * so a backup without valid metadata is never mistaken for a good one.
 */
export async function backupSingle(o: SingleBackupOptions): Promise<SingleBackupResult> {
  const { engine, database, storages } = o;
  if (!storages.length) throw new UsageError('No backup destination given');
  // Table statistics (metadata only) are gathered while the dump runs, so a small database is not
  // slowed down by them.
  const { dump, server, plan, inProcess, size } = await prepareDump(o);
  const stats = Promise.all([engine.tableStats(database), size]);
  stats.catch(() => undefined);
  // Read as the dump starts: what a restore that creates the database gives it back.
  const properties = engine.databaseProperties(database);
  properties.catch(() => undefined);
  const started = new Date();
  const extension = extensionFor(engine.engine, o.format, o.compression, Boolean(o.encryption?.length));
  // Owned by this run until released: a concurrent backup of the same database takes the next name.
  const claim = await claimFreeName(
    storages,
    (attempt) => backupFileName(database, started, extension, attempt),
    database,
  );
  const key = claim.key;
  // Until the statistics arrive, progress shows bytes and rate without a percentage.
  let estimate: number | null = null;
  void stats.then(
    ([tables]) => (estimate = tables.reduce((sum, t) => sum + t.bytes, 0)),
    () => undefined,
  );
  const warnings: string[] = [];
  const onWarning = (line: string): void => {
    warnings.push(line);
    o.onWarning(line);
  };

  // Issue 17: the facts drills compare, read in the dump's snapshot (may add to the dump's arguments).
  const facts = await recordFacts(engine, database, dump, o.facts, onWarning);
  let group: WriteGroup<EncryptionDescription> | undefined;
  const onAbort = (): void => group?.abort();
  o.signal?.addEventListener('abort', onAbort);
  let progress: Progress | undefined;
  let completed = false;
  try {
    // A failure or an interrupt deletes what was stored, metadata first, but only where the data is
    // provably this run's: a name another writer took is theirs, sidecars included.
    const owns = (st: Storage): Promise<boolean> => ownsObject(st, key, claim.token);
    return await commitUnit(storages, { signal: o.signal, owns }, async (commit) => {
      // A fresh data key per backup; the header records how each protector can recover it.
      const encryption = await encryptionFor(o.encryption ?? []);
      // The raw archive passes through this process anyway: walked on the way (see verifyDump).
      const archive = inProcess && o.format === 'custom' ? new PgArchiveCheck() : undefined;
      const stream = startDumpGroup({
        encryption,
        dump,
        classify: (line) => engine.classifyStderr(line),
        compression: plan,
        onWarning,
        trailer: dumpTrailer(engine.engine, o.format),
        archive,
      });
      group = stream;
      const meter = dumpMeter(stream);
      progress = new Progress(o.progress, `${database}`, meter, () => estimate);
      o.observe?.(meter, () => estimate);
      progress.start();
      await commit.put(key, stream, {
        metadata: {
          'dbbackup-database': database,
          'dbbackup-engine': engine.engine,
          [TOKEN_METADATA]: claim.token,
        },
      });
      const written = stream.result();
      // What is under the name now is this run's (a server that ignores conditional writes lets a
      // foreign writer replace it); never report a backup that is not the one we stored.
      await proveStored(storages, key, claim.token);
      for (const storage of storages)
        await verifyDump(storage, key, engine, o.format, written.storedBytes, Boolean(encryption), archive);
      const dumpVersion = (await dumpToolVersion(dump, stream.raw())) ?? 'unknown';
      const finished = new Date();
      const recorded = recordableProperties(await properties, Boolean(encryption));
      if (recorded.warning) onWarning(recorded.warning);
      const metadata: BackupMetadata = {
        schema: METADATA_SCHEMA,
        schemaVersion: METADATA_VERSION,
        tool: { name: 'dbbackup', version: TOOL_VERSION },
        kind: 'single',
        engine: server.flavor,
        database,
        server: { version: server.version, versionString: server.versionString },
        connection: { host: engine.host, port: engine.port, user: engine.user },
        dumpTool: { name: dump.name, version: dumpVersion, args: redactArgs(dump.args) },
        format: o.format,
        compression: written.compression,
        encryption: written.encryption,
        file: key,
        sizeBytes: written.storedBytes,
        sha256: written.storedSha256,
        dumpBytes: stream.raw().bytes,
        databaseSizeBytes: (await stats)[1],
        startedAt: started.toISOString(),
        finishedAt: finished.toISOString(),
        durationSeconds: (finished.getTime() - started.getTime()) / 1000,
        tables: (await stats)[0],
        warnings,
        databaseProperties: recorded.properties,
        ...snapshotPosition(dump.args, stream.raw()),
        ...(await facts.done()),
      };
      // Sidecars only after the data is in every store; metadata last of all.
      await commit.putSmall(key + SHA256_SUFFIX, sha256Line(metadata.sha256, key.split('/').pop() ?? key));
      await commit.finish(metadataKey(key), metadataJson(metadata));
      completed = true;
      return { key, locations: storages.map((st) => describe(st, key)), metadata };
    });
  } catch (err) {
    group?.abort();
    throw err;
  } finally {
    progress?.stop(completed);
    o.signal?.removeEventListener('abort', onAbort);
    await facts.close();
    await claim.release();
  }
}

/**
 * Below this database size (the server's own figure: files on disk, indexes included) the dump is
 * compressed in this process instead of by an external compressor behind a `dd` byte counter: two
 * program starts cost more than compressing a few megabytes, and the raw bytes passing through
 * Node let the archive be walked (src/catalog/pg-archive.ts) and the dump tool's version be read
 * from the dump's own header, so no `pg_dump --version` and no `pg_restore --list` read-back run
 * either (issue 16: a 100-row PostgreSQL backup went from 6 processes to 1; numbers in
 * docs/performance.md). A dump can be larger than the files (compressed TOAST values are written
 * out in full): at this bound a worst case of a few hundred MB single-threaded is still well under
 * a second of zstd -3.
 */
export const IN_PROCESS_DUMP_BYTES = 64 * 1024 * 1024;

/**
 * Everything the dump needs, checked before anything is written: the format fits the engine, the
 * database exists, pg_dump is new enough for the server. The server queries run one after another
 * on one connection (the engine reuses it), the local look-ups beside them.
 */
async function prepareDump(o: SingleBackupOptions): Promise<{
  dump: ToolCommand;
  server: ServerInfo;
  plan: CompressionPlan;
  /** The dump's raw bytes pass through this process (small databases, or no external compressor). */
  inProcess: boolean;
  /** The database's size on the server (metadata's databaseSizeBytes). */
  size: number | null;
}> {
  const { engine, database } = o;
  engine.checkDatabaseName(database);
  if (!engineFamily(engine.engine).dumpFormats.includes(o.format)) {
    throw new UsageError(
      '--format custom is PostgreSQL only',
      'MySQL and MariaDB dumps are SQL (--format plain).',
    );
  }
  const queries = (async () => {
    const server = await engine.serverInfo();
    const exists = await engine.databaseExists(database);
    const size = exists ? await engine.databaseSize(database).catch(() => null) : null;
    return { server, exists, size };
  })();
  queries.catch(() => undefined);
  const dump = await engine.dumpCommand(database, o.format);
  const mustBeNewer = engineFamily(engine.engine).dumpToolMustBeNewer;
  // Debian's layout names the major version; elsewhere pg_dump is asked (its banner is cached).
  const toolMajor = mustBeNewer
    ? (pgMajorFromPath(dump.file) ??
      toolVersion(dump.file).then((v) => (v === null ? null : majorVersion(v))))
    : null;
  const { server, exists, size } = await queries;
  if (!exists) {
    throw new UsageError(
      `Database "${database}" does not exist on ${engine.endpoint}`,
      'Run "dbbackup list" to see the databases on this server.',
    );
  }
  const major = await toolMajor;
  if (major !== null && major < majorVersion(server.version)) {
    const version = (await toolVersion(dump.file)) ?? String(major);
    throw new MissingToolError(
      `pg_dump ${version} cannot dump a PostgreSQL ${server.version} server (pg_dump must be at least as new as the server)`,
      {
        hint: `Install the PostgreSQL ${majorVersion(server.version)} client programs, or set DBBACKUP_PG_BINDIR.`,
      },
    );
  }
  const small = size !== null && size <= inProcessLimit(IN_PROCESS_DUMP_BYTES);
  const plan = small
    ? await compressionFor(o.compression, o.level, size)
    : await planCompression(o.compression, o.level);
  return { dump, server, plan, inProcess: !plan.external, size };
}

/** Progress of a dump: bytes stored, and bytes the dump tool produced (counted here, or read from /proc). */
export function dumpMeter(group: WriteGroup): { stored: () => number; produced: () => number | null } {
  let produced: number | null = null;
  return {
    stored: () => group.storedBytes(),
    produced: () => {
      const raw = group.raw();
      produced = raw.inProcess ? raw.bytes : (processBytesWritten(group.sourcePid) ?? produced);
      return produced;
    },
  };
}

/** Read the head of what was stored back (`storedBytes` of it) and check it is the dump we meant to write. */
export async function verifyDump(
  storage: Storage,
  key: string,
  engine: DatabaseEngine,
  format: DumpFormat,
  storedBytes: number,
  encrypted = false,
  archive?: PgArchiveCheck,
): Promise<void> {
  if (storedBytes === 0) throw new IntegrityError('The backup is empty (0 bytes were stored)');
  // The backup host may hold only public recipients: encrypted content cannot be read back here.
  // The dump's own exit status, stderr and (when visible) trailer were checked on the way.
  if (encrypted) return;
  const detected = await sniff(storage, key);
  const family = engineFamily(engine.engine).id;
  if (detected.engine !== family || detected.format !== format) {
    throw new IntegrityError(`The stored backup does not look like a ${family} ${format} dump`, {
      hint: 'The dump tool wrote something unexpected; run with --debug and check its output.',
    });
  }
  // A custom archive (PostgreSQL's: checked above) has a table of contents pg_restore must read.
  // Walked on its way into storage (archive: a valid verdict), it was read field by field as
  // pg_restore reads it, data blocks included, from the very bytes that were compressed and hashed;
  // the stored head was decoded back just above. Otherwise (an external compressor kept the raw
  // bytes out of this process, or an archive version the walk does not know) pg_restore --list
  // reads the table of contents back from the store.
  if (format === 'custom' && archive?.verdict()?.state !== 'valid')
    await checkPgCustomToc(storage, key, engine);
}

/** The dump tool's version: from the dump's own head when it passed through here, else asked (cached). */
async function dumpToolVersion(dump: ToolCommand, raw: RawView): Promise<string | null> {
  return (raw.inProcess ? dumpToolVersionFromHead(raw.head) : null) ?? (await toolVersion(dump.file));
}

export function redactArgs(args: string[]): string[] {
  return args.map((a) => (a.startsWith('--defaults-extra-file=') ? '--defaults-extra-file=<secret>' : a));
}

function describe(storage: Storage, key: string): string {
  return storage.localPath ? storage.localPath(key) : `${storage.location.replace(/\/$/, '')}/${key}`;
}

/** The binlog position a dump made with SNAPSHOT_POSITION_ARGS recorded (metadata.binlog), for restore pitr. */
export function snapshotPosition(args: readonly string[], raw: RawView): Pick<BackupMetadata, 'binlog'> {
  if (!SNAPSHOT_POSITION_ARGS.every((a) => args.includes(a))) return {};
  return { binlog: dumpBinlogPosition(raw.head, raw.tail) };
}
