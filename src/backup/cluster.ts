import os from 'node:os';
import { Readable } from 'node:stream';
import picomatch from 'picomatch';
import { commitUnit, type Commit } from '../catalog/commit.js';
import { manifestJson, manifestKey, type ClusterManifest, type ClusterMember } from '../catalog/manifest.js';
import { propertySummary, recordableProperties } from '../catalog/properties.js';
import { extensionFor, safeName, timestampTag, type DumpFormat } from '../catalog/naming.js';
import type { DatabaseEngine, GlobalsSource } from '../engines/engine.js';
import { ToolError, UsageError, errorMessage } from '../errors.js';
import { planCompression, type CompressionAlgorithm, type CompressionPlan } from '../pipeline/compression.js';
import { startDumpGroup } from '../pipeline/dump-stream.js';
import { encryptionFor, startWriteGroup, type WriteResult } from '../pipeline/filter-group.js';
import type { ClusterProgressSink } from '../pipeline/progress.js';
import type { Storage } from '../storage/storage.js';
import { TOOL_VERSION } from '../version.js';
import type { EncryptionDescription, KeyProtector } from '../crypto/index.js';
import { dumpTrailer } from '../catalog/trailers.js';
import { dumpMeter, snapshotPosition, verifyDump } from './single.js';
import type { FactOptions } from '../catalog/facts.js';
import { recordFacts } from './facts.js';
import { ExitCode } from '../exit-codes.js';
import { engineFamily } from '../engines/family.js';

export interface ClusterBackupOptions {
  engine: DatabaseEngine;
  storage: Storage;
  compression: CompressionAlgorithm;
  level: number;
  parallelism: number;
  include: string[];
  exclude: string[];
  allowPartial: boolean;
  onWarning: (line: string) => void;
  /** Per-database state, bytes and ETA (ClusterProgress shows them; nothing when omitted). */
  progress?: ClusterProgressSink;
  signal?: AbortSignal;
  /** Encrypt every member for these keys/recipients (each member gets its own data key). */
  encryption?: readonly KeyProtector[];
  /** Record the facts restore drills compare, per database (issue 17); absent: none. */
  facts?: FactOptions;
}

/** Exit code of a cluster backup that completed with --allow-partial but is missing databases. */
export const PARTIAL_EXIT_CODE = ExitCode.Partial;

export function defaultParallelism(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()));
}

/** Which databases a cluster backup covers: every database, then --include, then --exclude (globs). */
export function selectDatabases(all: string[], include: string[], exclude: string[]): string[] {
  const inc = include.length ? picomatch(include) : () => true;
  const exc = exclude.length ? picomatch(exclude) : () => false;
  return all.filter((d) => inc(d) && !exc(d));
}

/**
 * Every database plus the server's roles/users in one named unit: `cluster_<ts>/` holding
 * `globals.sql.<ext>`, one dump per database, and `manifest.json` written last. No temporary copy:
 * each database streams through the same dump → compress → hash → storage pipeline as a single backup.
 */
export async function backupCluster(o: ClusterBackupOptions): Promise<ClusterManifest> {
  const { engine, storage } = o;
  const server = await engine.serverInfo();
  const databases = selectDatabases(await engine.clusterDatabases(), o.include, o.exclude);
  if (!databases.length)
    throw new UsageError('No databases match', 'Check --include-database / --exclude-database.');
  const plan = await planCompression(o.compression, o.level);
  // Database sizes are the first estimate (one query); each database's table data refines it when its dump starts.
  const sizes = new Map(
    (await engine.listDatabases().catch(() => [])).map((d) => [d.name, d.sizeBytes] as const),
  );
  const progress = o.progress;
  const started = new Date();
  const name = await freeClusterName(storage, started);
  const format: DumpFormat = engineFamily(engine.engine).clusterFormat;
  const members: ClusterMember[] = [];
  const dropped: NonNullable<ClusterManifest['dropped']> = [];
  const abort = new AbortController();
  const stopAll = (): void => abort.abort();
  o.signal?.addEventListener('abort', stopAll);
  try {
    // One unit: the manifest is written last; a failure or an interrupt removes every file (and the
    // directory a local store made for them).
    return await commitUnit([storage], { signal: o.signal }, async (commit) => {
      const encrypted = Boolean(o.encryption?.length);
      const globalsFile = `${name}/globals${extensionFor('mysql', 'plain', plan.algorithm, encrypted)}`;
      const { globals, encryption: described } = await dumpGlobalsMember(
        engine,
        commit,
        globalsFile,
        plan,
        o.onWarning,
        o.encryption ?? [],
      );
      progress?.begin(databases.map((d) => ({ name: d, estimate: sizes.get(d) ?? null })));
      progress?.note(`roles and grants dumped (${globals.sizeBytes} bytes stored)`);

      let next = 0;
      let failure: unknown;
      const worker = async (): Promise<void> => {
        while (next < databases.length && !abort.signal.aborted) {
          const db = databases[next++] ?? '';
          const member = await dumpMember(engine, commit, name, db, format, plan, o, abort.signal);
          if (member === DROPPED) {
            // Listed when the backup started, gone when its turn came: nothing to back up, nothing failed.
            dropped.push({ database: db, reason: DROPPED });
            o.progress?.skipped(db, DROPPED);
            o.onWarning(`database "${db}" was ${DROPPED}: it is not in this backup`);
            continue;
          }
          members.push(member);
          if (member.status === 'failed' && !o.allowPartial) {
            failure ??= new ToolError(
              `Cluster backup failed: database "${db}" could not be dumped: ${member.error}`,
              {
                hint: 'Nothing was kept. Fix the cause, or use --allow-partial to keep the other databases (the backup is then marked partial).',
              },
            );
            abort.abort();
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(o.parallelism, databases.length) }, worker));
      commit.checkpoint();
      if (failure) throw failure;

      const finished = new Date();
      members.sort((a, b) => a.database.localeCompare(b.database));
      const manifest: ClusterManifest = {
        schema: 'dbbackup.cluster',
        schemaVersion: 1,
        tool: { name: 'dbbackup', version: TOOL_VERSION },
        engine: server.flavor,
        server: { version: server.version, versionString: server.versionString },
        connection: { host: engine.host, port: engine.port, user: engine.user },
        name,
        status: members.some((m) => m.status === 'failed') ? 'partial' : 'complete',
        compression: { algorithm: plan.algorithm, level: plan.level, implementation: plan.implementation },
        encryption: described ?? null,
        globals,
        databases: members,
        ...(dropped.length ? { dropped: dropped.sort((a, b) => a.database.localeCompare(b.database)) } : {}),
        startedAt: started.toISOString(),
        finishedAt: finished.toISOString(),
        durationSeconds: (finished.getTime() - started.getTime()) / 1000,
        totalBytes: globals.sizeBytes + members.reduce((s, m) => s + m.sizeBytes, 0),
      };
      await commit.finish(manifestKey(name), manifestJson(manifest));
      return manifest;
    });
  } catch (err) {
    abort.abort();
    throw err;
  } finally {
    progress?.end();
    o.signal?.removeEventListener('abort', stopAll);
  }
}

async function freeClusterName(storage: Storage, date: Date): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const name = `cluster_${timestampTag(date)}${attempt ? `-${attempt}` : ''}`;
    let taken = false;
    for await (const _o of storage.list(`${name}/`)) {
      taken = true;
      break;
    }
    if (!taken) return name;
  }
  throw new UsageError('Could not find a free cluster backup name');
}

/** How the manifest and the warning describe a database that no longer exists when its turn comes. */
const DROPPED = 'dropped during backup';

async function dumpMember(
  engine: DatabaseEngine,
  commit: Commit,
  cluster: string,
  database: string,
  format: DumpFormat,
  plan: CompressionPlan,
  o: ClusterBackupOptions,
  signal: AbortSignal,
): Promise<ClusterMember | typeof DROPPED> {
  const started = Date.now();
  // Each database gets its own data key; the manifest describes the protection once (from globals).
  const encryption = await encryptionFor(o.encryption ?? []);
  const file = `${cluster}/${safeName(database)}${extensionFor(engine.engine, format, plan.algorithm, Boolean(encryption))}`;
  const [read, tables] = await Promise.all([
    engine.databaseProperties(database),
    engine.tableStats(database).catch(() => []),
  ]);
  const { properties, warning } = recordableProperties(read, Boolean(encryption));
  if (warning) o.onWarning(`${database}: ${warning}`);
  const base = {
    database,
    format,
    properties: propertySummary(properties),
    databaseProperties: properties,
    tables,
  };
  if (tables.length)
    o.progress?.estimate(
      database,
      tables.reduce((sum, t) => sum + t.bytes, 0),
    );
  const dump = await engine.dumpCommand(database, format);
  // Issue 17: the facts drills compare, read in the dump's snapshot (may add to the dump's arguments).
  const facts = await recordFacts(engine, database, dump, o.facts, (line) =>
    o.onWarning(`${database}: ${line}`),
  );
  const stream = startDumpGroup({
    encryption,
    dump,
    classify: (line) => engine.classifyStderr(line),
    compression: plan,
    onWarning: (line) => o.onWarning(`${database}: ${line}`),
    trailer: dumpTrailer(engine.engine, format),
  });
  const onAbort = (): void => stream.abort();
  signal.addEventListener('abort', onAbort);
  // Bytes the dump tool produced: counted in Node, or read from /proc when a compressor takes them directly.
  o.progress?.start(database, dumpMeter(stream).produced);
  try {
    await commit.put(file, stream);
    const written = stream.result();
    const [storage] = commit.stores;
    if (storage) await verifyDump(storage, file, engine, format, written.storedBytes, Boolean(encryption));
    const raw = stream.raw();
    o.progress?.done(database, {
      bytes: raw.inProcess ? (raw.bytes ?? undefined) : undefined,
      stored: written.storedBytes,
    });
    return {
      ...base,
      file,
      status: 'ok',
      error: null,
      sizeBytes: written.storedBytes,
      sha256: written.storedSha256,
      durationSeconds: (Date.now() - started) / 1000,
      ...snapshotPosition(dump.args, raw),
      ...(await facts.done()),
    };
  } catch (err) {
    stream.abort();
    await commit.discard(file);
    // A dump fails when its database is dropped under it; only a database that still exists failed.
    if (!signal.aborted && !(await engine.databaseExists(database).catch(() => true))) return DROPPED;
    o.progress?.failed(database, errorMessage(err));
    return {
      ...base,
      file: null,
      status: 'failed',
      error: errorMessage(err),
      sizeBytes: 0,
      sha256: null,
      durationSeconds: (Date.now() - started) / 1000,
    };
  } finally {
    signal.removeEventListener('abort', onAbort);
    await facts.close();
  }
}

/**
 * Roles, users, grants (and PostgreSQL tablespaces) into `globals.sql`. A PostgreSQL user who may
 * not read password hashes gets a dump without them and a warning saying so.
 */
async function dumpGlobalsMember(
  engine: DatabaseEngine,
  commit: Commit,
  file: string,
  plan: CompressionPlan,
  onWarning: (line: string) => void,
  protectors: readonly KeyProtector[],
): Promise<{ globals: ClusterManifest['globals']; encryption: EncryptionDescription | null }> {
  const warnings: string[] = [];
  const attempt = async (noRolePasswords: boolean): Promise<WriteResult<EncryptionDescription>> => {
    const source = await engine.dumpGlobals(noRolePasswords);
    if ('warnings' in source) {
      for (const w of source.warnings) {
        warnings.push(w);
        onWarning(w);
      }
    }
    return storeGlobals(source, commit, file, plan, engine, protectors);
  };
  let result: WriteResult<EncryptionDescription>;
  try {
    result = await attempt(false);
  } catch (err) {
    if (!/permission denied/i.test(errorMessage(err))) throw err;
    const why =
      'role passwords were not dumped: this user may not read pg_authid (a superuser can); roles will need new passwords after a restore';
    warnings.push(why);
    onWarning(why);
    result = await attempt(true);
  }
  return {
    globals: { file, sizeBytes: result.storedBytes, sha256: result.storedSha256, warnings },
    encryption: result.encryption,
  };
}

/** The globals through the write group: a dump program's output, or SQL built by the driver. */
async function storeGlobals(
  source: GlobalsSource,
  commit: Commit,
  file: string,
  plan: CompressionPlan,
  engine: DatabaseEngine,
  protectors: readonly KeyProtector[],
): Promise<WriteResult<EncryptionDescription>> {
  const encryption = await encryptionFor(protectors);
  const group =
    'command' in source
      ? startDumpGroup({
          encryption,
          dump: source.command,
          classify: (l) => engine.classifyStderr(l),
          compression: plan,
        })
      : startWriteGroup({ source: Readable.from([Buffer.from(source.sql)]), compression: plan, encryption });
  await commit.put(file, group);
  return group.result();
}
