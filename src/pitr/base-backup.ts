import path from 'node:path';
import { Readable } from 'node:stream';
import { isCloudUri } from '../storage/cloud-uri.js';
import type pg from 'pg';
import {
  BASE_SCHEMA,
  BASE_VERSION,
  baseDir,
  baseMetaKey,
  type BaseBackupFile,
  type BaseBackupMetadata,
} from '../catalog/base-backup.js';
import { commitUnit, type Commit } from '../catalog/commit.js';
import { timestampTag } from '../catalog/naming.js';
import type { EncryptionDescription, KeyProtector } from '../crypto/index.js';
import type { ToolCommand } from '../types.js';
import { majorVersion, toolVersion } from '../engines/tools.js';
import { IntegrityError, MissingToolError, SafetyError, UsageError } from '../errors.js';
import type { CompressionPlan } from '../pipeline/compression.js';
import {
  compressionFor,
  startWriteGroup,
  type GroupEncryption,
  type WriteResult,
} from '../pipeline/filter-group.js';
import { ToolProcess } from '../pipeline/process.js';
import { Progress, type ProgressMode } from '../pipeline/progress.js';
import type { Storage } from '../storage/storage.js';
import { TOOL_VERSION } from '../version.js';
import type { ArchiveIdentity } from './archive.js';
import { parseBackupManifest, type BackupManifest } from './backup-manifest.js';
import { walkWindow } from './chain.js';
import { isDbbackupArchiveCommand, commandOption } from './commands.js';
import { readInventory } from './inventory.js';
import { archiverStats, serverFacts, type ServerFacts } from './server.js';
import { TarTap } from './tar-tap.js';
import { compressedBaseBackup, pgCompresses } from './base-compressed.js';
import { baseBackupCommand, runBaseBackup } from './base-protocol.js';
import { timelinePath } from './timeline.js';
import { encodingSuffix, formatLsn, segmentBeforeLsn, segmentNumber, segmentOfLsn } from './wal-names.js';

export interface BaseBackupInput {
  client: pg.Client;
  /** pg_basebackup with the connection's environment (PostgresEngine.clientProgram). */
  program: (args: string[]) => Promise<ToolCommand>;
  connection: { host: string; port: number; user: string };
  storage: Storage;
  /** The archive as written in archive_command (to check the server archives here). */
  archiveUri: string;
  identity: ArchiveIdentity;
  compression: { algorithm: CompressionPlan['algorithm']; level: number };
  protectors: readonly KeyProtector[];
  progress: ProgressMode;
  signal?: AbortSignal;
  /** How long to wait for the backup's last WAL segment to appear in the archive. */
  walTimeoutMs?: number;
  onNote?: (line: string) => void;
  /** A replication session (walsender): needed for a cluster with tablespaces outside its data directory. */
  replication?: () => Promise<pg.Client>;
}

/** What one way of reading the server produced: the stored tars and the server's manifest. */
interface Streamed {
  files: BaseBackupFile[];
  /** As the write groups reported them (the same plan and keys for every tar). */
  compression: BaseBackupMetadata['compression'];
  encryption: EncryptionDescription | null;
  tablespaces: NonNullable<BaseBackupMetadata['tablespaces']>;
  manifest: Buffer;
  warnings: string[];
  tool: BaseBackupMetadata['backupTool'];
}

interface StreamContext {
  o: BaseBackupInput;
  commit: Commit;
  name: string;
  label: string;
  plan: CompressionPlan;
  suffix: string;
}

/**
 * A physical base backup into the archive: pg_basebackup's tar stream (through the replication
 * protocol, WAL left to the archive) goes through the write group into `base/<name>/` — or, with
 * tablespaces outside the data directory, one tar per tablespace read from the server's
 * BASE_BACKUP (base-protocol.ts), each its own object; then the server's backup_manifest is stored
 * beside them, the WAL from the backup's start to its stop segment is checked in the archive, and
 * `meta.json` is written last. Interrupted or failed, it leaves nothing.
 */
export async function backupBase(o: BaseBackupInput): Promise<BaseBackupMetadata> {
  const facts = await serverFacts(o.client);
  await checkServer(o, facts, { tablespaces: true });
  const spaces = await tablespacesOf(o.client);
  if (spaces.length && facts.major < 15)
    throw new UsageError(
      `The cluster has tablespaces outside its data directory (${spaces.map((t) => t.location).join(', ')}): dbbackup reads them through the BASE_BACKUP protocol of PostgreSQL 15 and newer`,
      'Use pg_basebackup -Ft into a directory for this cluster, or move the tablespaces into pg_default.',
    );
  const version = spaces.length ? null : await checkedToolVersion(o, facts);
  const started = new Date();
  const name = await freeName(o.storage, started);
  const label = `dbbackup ${name}`;
  const plan = await compressionFor(o.compression.algorithm, o.compression.level);
  const suffix = encodingSuffix({ compression: plan.algorithm, encrypted: o.protectors.length > 0 });
  return commitUnit([o.storage], { signal: o.signal }, async (commit) => {
    const ctx: StreamContext = { o, commit, name, label, plan, suffix };
    const streamed = spaces.length ? await viaProtocol(ctx) : await viaPgBasebackup(ctx, version);
    const manifest = parseBackupManifest(streamed.manifest);
    const manifestFile = await storeSmall(
      commit,
      `${baseDir(name)}backup_manifest${suffix}`,
      streamed.manifest,
      o,
    );
    const range = walRangeOf(manifest);
    await waitForWal(o, range);
    const finished = new Date();
    const files: BaseBackupFile[] = [...streamed.files, manifestFile];
    const meta: BaseBackupMetadata = {
      schema: BASE_SCHEMA,
      schemaVersion: BASE_VERSION,
      tool: { name: 'dbbackup', version: TOOL_VERSION },
      kind: 'base',
      backupType: 'full',
      engine: 'postgres',
      name,
      systemIdentifier: facts.systemIdentifier,
      server: { version: facts.version, major: facts.major },
      connection: o.connection,
      walSegmentSize: facts.walSegmentSize,
      timeline: range.timeline,
      startLsn: formatLsn(range.start),
      stopLsn: formatLsn(range.stop),
      startSegment: segmentOfLsn(range.startTimeline, range.start, facts.walSegmentSize),
      stopSegment: segmentBeforeLsn(range.timeline, range.stop, facts.walSegmentSize),
      label,
      backupTool: streamed.tool,
      compression: streamed.compression,
      encryption: streamed.encryption,
      files,
      ...(streamed.tablespaces.length ? { tablespaces: streamed.tablespaces } : {}),
      manifest: {
        files: manifest.files.length,
        bytes: manifest.files.reduce((n, f) => n + f.size, 0),
        checksumAlgorithm: manifest.checksumAlgorithm,
      },
      // The parent's file list for a later incremental (src/pitr/incremental/).
      contents: { files: manifest.files.map((f) => [f.path, f.size]), dirs: [] },
      sizeBytes: files.reduce((n, f) => n + f.sizeBytes, 0),
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationSeconds: (finished.getTime() - started.getTime()) / 1000,
      warnings: streamed.warnings,
    };
    await commit.finish(baseMetaKey(name), `${JSON.stringify(meta, null, 2)}\n`);
    return meta;
  });
}

async function checkedToolVersion(o: BaseBackupInput, facts: ServerFacts): Promise<string | null> {
  const file = await o.program(['--version']);
  const version = await toolVersion(file.file);
  if (version && majorVersion(version) < facts.major)
    throw new MissingToolError(
      `pg_basebackup ${version} cannot back up a PostgreSQL ${facts.major} server (it must be at least as new)`,
      {
        hint: `Install the PostgreSQL ${facts.major} client programs, or set DBBACKUP_PG_BINDIR; on the database host, "backup base --from-pgdata" reads the data directory without them.`,
      },
    );
  return version;
}

/** Tablespaces outside the data directory: OID and directory. */
export async function tablespacesOf(client: pg.Client): Promise<Array<{ oid: string; location: string }>> {
  const r = await client.query<{ oid: string; location: string }>(
    "SELECT oid::text AS oid, pg_tablespace_location(oid) AS location FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid",
  );
  return r.rows;
}

/** One tar through a write group into `key`: its stored size and checksum, its raw bytes. */
async function storeTar(
  ctx: StreamContext,
  key: string,
  role: string,
  source: Readable | ToolProcess,
): Promise<{ file: BaseBackupFile; tap: TarTap; stored: WriteResult<EncryptionDescription> }> {
  // The raw tar passes through this process on its way to the compressor, so that the server's
  // backup_manifest (the stream's last member when pg_basebackup writes it) can be kept.
  const tap = new TarTap(new Set(['backup_manifest']));
  const group = startWriteGroup<EncryptionDescription>({
    source,
    taps: [tap],
    compression: ctx.plan,
    encryption: ctx.o.protectors.length ? await encrypting(ctx.o.protectors) : undefined,
    check: async () => {
      if (!tap.complete)
        throw new IntegrityError(`The tar stream of ${key} ended without its end-of-archive marker`);
    },
  });
  const progress = new Progress(
    ctx.o.progress,
    `base backup ${ctx.name}${role === 'base' ? '' : ` (tablespace ${role})`}`,
    { stored: () => group.storedBytes(), produced: () => tap.bytes },
    () => null,
  );
  progress.start();
  try {
    await ctx.commit.put(key, group, { metadata: { 'dbbackup-base-backup': ctx.name } });
  } finally {
    progress.stop();
  }
  const stored = group.result();
  await ctx.commit.verify(key, stored.storedBytes);
  const file: BaseBackupFile = {
    key,
    role,
    sizeBytes: stored.storedBytes,
    sha256: stored.storedSha256,
    rawBytes: tap.bytes,
  };
  return { file, tap, stored };
}

/** The data directory alone: pg_basebackup's one tar on its stdout, with the manifest inside. */
async function viaPgBasebackup(ctx: StreamContext, version: string | null): Promise<Streamed> {
  const args = [
    '--format=tar',
    '--wal-method=none',
    '--checkpoint=fast',
    '--no-password',
    `--label=${ctx.label}`,
    '--verbose',
  ];
  const key = `${baseDir(ctx.name)}base.tar${ctx.suffix}`;
  const tools = await pgCompresses(ctx.plan.algorithm, version ? majorVersion(version) : null);
  if (tools) {
    const s = await compressedBaseBackup({
      tools,
      commit: ctx.commit,
      key,
      program: ctx.o.program,
      args,
      level: ctx.plan.level,
      protectors: ctx.o.protectors,
      progress: ctx.o.progress,
      progressLabel: `base backup ${ctx.name}`,
      backupName: ctx.name,
      signal: ctx.o.signal,
      classify,
    });
    return {
      files: [s.file],
      compression: s.compression,
      encryption: s.encryption,
      tablespaces: [],
      manifest: s.manifest,
      warnings: s.warnings,
      tool: { name: 'pg_basebackup', version: version ?? 'unknown', args: s.args },
    };
  }
  const tool = new ToolProcess(
    await ctx.o.program(['--pgdata=-', ...args]),
    ['ignore', 'pipe', 'pipe'],
    classify,
  );
  const { file, tap, stored } = await storeTar(ctx, key, 'base', tool);
  const manifest = tap.captured.get('backup_manifest');
  if (!manifest)
    throw new IntegrityError("pg_basebackup's stream holds no backup_manifest as its last member", {
      hint: 'dbbackup needs PostgreSQL 13 or newer (and pg_basebackup without --no-manifest); a manifest over 64 MiB (some 450,000 files) is not supported yet.',
    });
  return {
    files: [file],
    compression: stored.compression,
    encryption: stored.encryption,
    tablespaces: [],
    manifest,
    warnings: tool.warnings,
    tool: { name: 'pg_basebackup', version: version ?? 'unknown', args: ['--pgdata=-', ...args] },
  };
}

/** Tablespaces too: BASE_BACKUP on a replication session, one object per tar. */
async function viaProtocol(ctx: StreamContext): Promise<Streamed> {
  if (!ctx.o.replication)
    throw new UsageError('A cluster with tablespaces needs a replication connection for its base backup');
  const client = await ctx.o.replication();
  const files: BaseBackupFile[] = [];
  let written: WriteResult<EncryptionDescription> | undefined;
  try {
    const onAbort = () => void client.end().catch(() => undefined);
    ctx.o.signal?.addEventListener('abort', onAbort, { once: true });
    const result = await runBaseBackup(client, ctx.label, async (archive) => {
      const oid = /^([0-9]+)\.tar$/.exec(archive.name)?.[1];
      if (archive.name !== 'base.tar' && !oid)
        throw new IntegrityError(`BASE_BACKUP sent an archive named ${archive.name}`);
      const key = `${baseDir(ctx.name)}${archive.name}${ctx.suffix}`;
      const { file, stored } = await storeTar(ctx, key, oid ?? 'base', archive.stream);
      files.push(file);
      written ??= stored;
    }).finally(() => ctx.o.signal?.removeEventListener('abort', onAbort));
    const keyOf = (oid: string) => files.find((f) => f.role === oid)?.key;
    const tablespaces = result.tablespaces.map((t) => {
      const key = keyOf(t.oid);
      if (!key) throw new IntegrityError(`BASE_BACKUP sent no tar for tablespace ${t.oid} (${t.location})`);
      return { ...t, key };
    });
    if (!written || !files.some((f) => f.role === 'base'))
      throw new IntegrityError('BASE_BACKUP sent no tar of the data directory');
    // The data directory first, as in a backup without tablespaces.
    files.sort((a, b) => (a.role === 'base' ? -1 : b.role === 'base' ? 1 : 0));
    return {
      files,
      compression: written.compression,
      encryption: written.encryption,
      tablespaces,
      manifest: result.manifest,
      warnings: [],
      // dbbackup itself read the server (the replication command it sent).
      tool: { name: 'dbbackup', version: TOOL_VERSION, args: [baseBackupCommand(ctx.label)] },
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** pg_basebackup --verbose narrates on stderr; only its error lines count as errors. */
function classify(line: string): 'error' | 'warning' | 'info' {
  if (/^pg_basebackup: error:|FATAL:|ERROR:/.test(line)) return 'error';
  if (/^pg_basebackup: warning:|WARNING:/.test(line)) return 'warning';
  return 'info';
}

/**
 * The server must archive into this archive, successfully: pg_basebackup without WAL waits until
 * the backup's last segment is archived, and with a failing archive_command it would wait forever.
 */
export async function checkServer(
  o: BaseBackupInput,
  facts: ServerFacts,
  allow: { tablespaces?: boolean } = {},
): Promise<void> {
  if (facts.systemIdentifier !== o.identity.systemIdentifier)
    throw new SafetyError(
      `The server (system identifier ${facts.systemIdentifier}) is not the cluster this archive belongs to (${o.identity.systemIdentifier})`,
      { hint: 'Check --archive, or --host/--port.' },
    );
  if (facts.settings.archive_mode === 'off')
    throw new UsageError(
      'The server does not archive WAL (archive_mode is off)',
      'Run "dbbackup pitr enable", then restart the server.',
    );
  const command = facts.settings.archive_command;
  if (!isDbbackupArchiveCommand(command))
    throw new UsageError(
      'The server does not archive with dbbackup: a base backup here would have no WAL',
      'Run "dbbackup pitr enable --archive …" first.',
    );
  const target = commandOption(command, '--archive');
  const same = (a: string, b: string): boolean =>
    isCloudUri(a) || isCloudUri(b) ? a === b : path.resolve(a) === path.resolve(b);
  if (target && o.archiveUri && !same(target, o.archiveUri))
    o.onNote?.(`note: the server archives into ${target}; this backup goes to ${o.archiveUri}`);
  const stats = await archiverStats(o.client);
  if (stats.lastFailedTime && (!stats.lastArchivedTime || stats.lastFailedTime > stats.lastArchivedTime))
    throw new SafetyError(
      `Archiving is failing (last failure ${stats.lastFailedTime.toISOString()} on ${stats.lastFailedWal ?? '?'}): the base backup would wait for WAL forever`,
      { hint: 'Run "dbbackup pitr status" to see the error, fix it, then take the base backup.' },
    );
  if (allow.tablespaces) return;
  const spaces = await tablespacesOf(o.client);
  if (spaces.length)
    throw new UsageError(
      `The cluster has tablespaces outside its data directory (${spaces.map((t) => t.location).join(', ')}): incremental and differential base backups, and --from-pgdata, do not back them up yet`,
      'Take a full "dbbackup backup base" (without --incremental, --differential or --from-pgdata): it stores every tablespace.',
    );
}

export async function freeName(storage: Storage, date: Date): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const name = `base_${timestampTag(date)}${attempt ? `-${attempt}` : ''}`;
    let taken = false;
    for await (const _ of storage.list(baseDir(name))) {
      taken = true;
      break;
    }
    if (!taken) return name;
  }
  throw new SafetyError('Could not find a free base backup name');
}

export async function encrypting(
  protectors: readonly KeyProtector[],
): Promise<GroupEncryption<EncryptionDescription>> {
  const { createEncryptStream, describeEncryption } = await import('../crypto/index.js');
  const { stream, header } = createEncryptStream(protectors);
  return { stream, description: describeEncryption(header) };
}

export async function storeSmall(
  commit: Commit,
  key: string,
  bytes: Buffer,
  o: BaseBackupInput,
): Promise<BaseBackupFile> {
  const group = startWriteGroup({
    source: Readable.from([bytes]),
    compression: await compressionFor(o.compression.algorithm, o.compression.level, bytes.length),
    encryption: o.protectors.length ? await encrypting(o.protectors) : undefined,
  });
  await commit.put(key, group);
  const r = group.result();
  await commit.verify(key, r.storedBytes);
  return { key, role: 'manifest', sizeBytes: r.storedBytes, sha256: r.storedSha256, rawBytes: bytes.length };
}

export interface WalRange {
  timeline: number;
  startTimeline: number;
  start: bigint;
  stop: bigint;
}

function walRangeOf(m: BackupManifest): WalRange {
  const first = m.walRanges[0];
  const last = m.walRanges.at(-1);
  if (!first || !last) throw new IntegrityError('The backup_manifest names no WAL range');
  return { timeline: last.timeline, startTimeline: first.timeline, start: first.startLsn, stop: last.endLsn };
}

/**
 * A base backup is only restorable with the WAL from its start through its stop segment. The
 * server waited for it to be archived; this checks it is in this archive, waiting a little for a
 * push still in flight.
 */
export async function waitForWal(o: BaseBackupInput, range: WalRange): Promise<void> {
  const segSize = o.identity.walSegmentSize;
  const startSeg = segmentNumber(segmentOfLsn(range.startTimeline, range.start, segSize), segSize);
  const stopSeg = segmentNumber(segmentBeforeLsn(range.timeline, range.stop, segSize), segSize);
  const path = timelinePath(
    range.timeline,
    range.startTimeline === range.timeline
      ? []
      : [{ timeline: range.startTimeline, switchLsn: range.start, reason: '' }],
  );
  const deadline = Date.now() + (o.walTimeoutMs ?? 120_000);
  for (;;) {
    const inv = await readInventory(o.storage);
    const window = walkWindow(inv.segments, path, startSeg, segSize);
    const lastSeg = window.last ? segmentNumber(window.last, segSize) : startSeg - 1n;
    if (lastSeg >= stopSeg) return;
    if (Date.now() > deadline || o.signal?.aborted) {
      const missing =
        window.last === null
          ? window.first
          : segmentBeforeLsn(range.timeline, BigInt(segSize) * (lastSeg + 2n), segSize);
      throw new IntegrityError(
        `The WAL this base backup needs is not in the archive: ${missing} is missing`,
        {
          hint: 'Archiving into this archive is failing or lagging: "dbbackup pitr status" shows why. Nothing was kept.',
        },
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
