import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import { detectDump, isTarHeader, type DetectedFormat, type PgDumpHeader } from '../catalog/format.js';
import type { DatabaseEngine } from '../engines/engine.js';
import {
  DbBackupError,
  errnoCode,
  errorMessage,
  IntegrityError,
  InterruptedError,
  SafetyError,
  StorageError,
  UsageError,
} from '../errors.js';
import { detectCompression } from '../pipeline/compression.js';
import { drainOrClose, ToolProcess } from '../pipeline/process.js';
import { ByteMeter, type ClusterProgressSink } from '../pipeline/progress.js';
import type { Storage } from '../storage/storage.js';
import {
  ClusterTally,
  dropExisting,
  includeFilter,
  globalsClassifier,
  globalsCommand,
  KEEP,
  memberOutcome,
  throwIfFailed,
} from './cluster.js';
import { readSidecar } from './reference-metadata.js';
import { TRAILERS } from '../catalog/trailers.js';
import type { RestorePlan } from './plan.js';
import { checkToolVersion, NOTHING_CHANGED, restoreFromStream } from './single.js';
import { explainLockWait } from './partial.js';

/**
 * Restoring the reference tool's cluster archives (`cluster_<ts>.tar.gz`, PostgreSQL only):
 *
 *   ./globals.sql          pg_dumpall --globals-only
 *   ./dumps/<db>.dump      pg_dump --format=custom
 *   ./dumps/<db>.sql.gz    pg_dump --format=plain | gzip   (the reference's databases over 5 GiB)
 *
 * The archive is read as a stream, twice: first to list its databases, read globals.sql (small, kept
 * in memory: tar may store it after the dumps), check every dump's header and the whole archive's
 * SHA-256 and gzip CRC, all before anything changes; then to feed each dump straight from the tar
 * stream into pg_restore or psql. Nothing is written to disk unless --jobs > 1 asks for parallel
 * pg_restore, which needs a seekable file: each custom dump is then extracted into --workdir, restored
 * and deleted before the next one.
 */

/** globals.sql is held in memory between the two reads; pg_dumpall output of this size is absurd. */
const MAX_GLOBALS = 256 * 1024 * 1024;
/** Enough of each dump to read its header (a custom archive's) or the first SQL lines (a plain one's). */
const HEAD_BYTES = 64 * 1024;

export interface LegacyMember {
  database: string;
  /** The entry's path in the archive without a leading `./`, e.g. `dumps/shop.dump`. */
  entry: string;
  format: 'custom' | 'plain';
  /** Of the entry's bytes: plain dumps of the reference's big databases are gzip-compressed. */
  compression: 'gzip' | 'none';
  size: number;
  pgHeader: PgDumpHeader | undefined;
}

export interface LegacyArchive {
  /** Bytes of the archive file. */
  bytes: number;
  sha256: string;
  globals: Buffer;
  members: LegacyMember[];
  /** Entries that are neither globals.sql nor a dump under dumps/. */
  ignored: string[];
  /** Dumps whose content is not a PostgreSQL dump, with the reason. */
  unreadable: Array<{ entry: string; database: string; reason: string }>;
}

export interface LegacyClusterInputs {
  storage: Storage;
  /** The archive's key in the storage, e.g. `cluster_20251126_120000.tar.gz`. */
  key: string;
  include: string[];
  cleanCluster: boolean;
  /** pg_restore jobs per database; above 1 each custom dump is extracted into `workdir` first. */
  jobs: number;
  workdir?: string;
  force: boolean;
  /** SIGINT/SIGTERM: stop the tools, drop the databases being restored, remove extracted dumps. */
  signal?: AbortSignal;
  /** How long to wait for an unreachable server to drop a database this restore created. */
  serverWaitMs?: number;
}

export interface LegacyClusterPlan {
  source: string;
  archive: LegacyArchive;
  members: LegacyMember[];
  existing: string[];
  checksum: string;
  workdir: string | undefined;
  actions: string[];
  warnings: string[];
}

/**
 * Is this stored object a gzip-compressed tar (a reference cluster archive is one)? Decided from
 * the first bytes, never the name.
 */
export async function isGzipTar(storage: Storage, key: string): Promise<boolean> {
  const stream = await storage.get(key, { start: 0, end: 64 * 1024 - 1 });
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  if (detectCompression(raw) !== 'gzip') return false;
  const head = await new Promise<Buffer>((resolve) => {
    const out: Buffer[] = [];
    const gunzip = zlib.createGunzip();
    const finish = (): void => resolve(Buffer.concat(out));
    gunzip.on('data', (c: Buffer) => out.push(c));
    gunzip.on('error', finish); // the prefix ends mid-stream: what came out is enough
    gunzip.on('end', finish);
    gunzip.end(raw);
  });
  return isTarHeader(head);
}

/** `./dumps/x.dump` → `dumps/x.dump`. */
function entryPath(name: string): string {
  return name.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
}

/** The database a dump belongs to, by the reference's naming: `dumps/<db>.dump`, `dumps/<db>.sql.gz`. */
function databaseFromEntry(p: string): string {
  return p.slice('dumps/'.length).replace(/(\.dump|\.sql)?(\.gz)?$/, '');
}

/**
 * Read `storage/key` as gzip → tar, calling `onEntry` for each regular file in order. Every entry is
 * read to its end whatever `onEntry` does (a tar stream cannot skip). Corruption anywhere — a bad
 * gzip CRC, a truncated file, a broken tar header — is an IntegrityError.
 */
export async function walkArchive(
  storage: Storage,
  key: string,
  /** Returns 'stop' when nothing after this entry is needed: the rest of the archive is not read. */
  onEntry: (p: string, header: Header, entry: AsyncIterable<Buffer>) => Promise<void | 'stop'>,
  taps: Transform[],
): Promise<void> {
  const source = await storage.get(key);
  const tar = extract();
  const feeding = pipeline([source, ...taps, zlib.createGunzip(), tar]);
  feeding.catch(() => undefined); // judged below
  let failure: unknown;
  let stopped = false;
  try {
    for await (const entry of tar) {
      const header = entry.header;
      const body = entry as AsyncIterable<Buffer>;
      if (header.type === 'file' || header.type === 'contiguous-file') {
        try {
          stopped = (await onEntry(entryPath(header.name), header, body)) === 'stop';
        } catch (err) {
          failure = err;
          break;
        }
      }
      if (stopped) break;
      for await (const _chunk of body); // whatever onEntry left unread
    }
  } catch (err) {
    failure ??= err;
  }
  if (stopped && failure === undefined) {
    source.destroy();
    return;
  }
  if (failure !== undefined) {
    source.destroy();
    // A broken stream shows up in the entries as "destroyed"; the gzip or tar error says why.
    const feedError = await feeding.then(
      () => undefined,
      (err: unknown) => err,
    );
    if (failure instanceof DbBackupError) throw failure;
    throw damaged(key, feedError ?? failure);
  }
  await feeding.catch((err: unknown) => {
    throw damaged(key, err);
  });
}

function damaged(key: string, err: unknown): DbBackupError {
  if (err instanceof DbBackupError) return err;
  return new IntegrityError(`${key} is damaged: ${errorMessage(err)}`, {
    hint: 'Nothing was changed. The archive is truncated or corrupt (gzip or tar); use another backup.',
  });
}

/** Pass-through that hashes what flows through it. */
function hashTap(hash: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
}

/** The first pass: everything the plan needs, read without changing anything. */
export async function scanLegacyArchive(
  storage: Storage,
  key: string,
  meter?: ByteMeter,
): Promise<LegacyArchive> {
  const stat = await storage.stat(key);
  const hash = createHash('sha256');
  let globals: Buffer | undefined;
  const members: LegacyMember[] = [];
  const ignored: string[] = [];
  const unreadable: LegacyArchive['unreadable'] = [];
  const taps = [hashTap(hash)];
  if (meter) taps.unshift(meter.tap());
  await walkArchive(
    storage,
    key,
    async (p, header, body) => {
      if (p === 'globals.sql') {
        if (header.size > MAX_GLOBALS) {
          throw new UsageError(
            `${key}: globals.sql is ${header.size} bytes, more than the ${MAX_GLOBALS} this restore holds in memory`,
          );
        }
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(c);
        globals = Buffer.concat(chunks);
        return;
      }
      if (!p.startsWith('dumps/') || p.slice('dumps/'.length).includes('/')) {
        ignored.push(p);
        return;
      }
      const head = await readHead(body);
      const database = databaseFromEntry(p);
      const kind = classifyDump(head);
      if ('reason' in kind) {
        unreadable.push({ entry: p, database, reason: kind.reason });
        return;
      }
      members.push({
        // A custom archive names its database; pg_restore --create recreates that one.
        database: kind.pgHeader?.database ?? database,
        entry: p,
        format: kind.format,
        compression: kind.compression,
        size: header.size,
        pgHeader: kind.pgHeader,
      });
    },
    taps,
  );
  if (globals === undefined || (members.length === 0 && unreadable.length === 0)) {
    const missing = [globals === undefined ? 'globals.sql' : '', members.length ? '' : 'dumps/*']
      .filter(Boolean)
      .join(' and ');
    throw new UsageError(
      `${key} is a tar archive but not a cluster backup of the reference tool: it has no ${missing}`,
      'A reference cluster archive holds ./globals.sql and ./dumps/<db>.dump or ./dumps/<db>.sql.gz.',
    );
  }
  return {
    bytes: stat?.size ?? 0,
    sha256: hash.digest('hex'),
    globals,
    members: members.sort((a, b) => a.database.localeCompare(b.database)),
    ignored,
    unreadable,
  };
}

async function readHead(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of body) {
    if (total < HEAD_BYTES) {
      chunks.push(c);
      total += c.length;
    }
  }
  return Buffer.concat(chunks).subarray(0, HEAD_BYTES);
}

function classifyDump(
  head: Buffer,
):
  | { format: 'custom' | 'plain'; compression: 'gzip' | 'none'; pgHeader: PgDumpHeader | undefined }
  | { reason: string } {
  const compression = detectCompression(head);
  if (compression === 'zstd') return { reason: 'zstd-compressed, which the reference tool never wrote' };
  let content = head;
  if (compression === 'gzip') {
    try {
      content = zlib.gunzipSync(head, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    } catch (err) {
      return { reason: `gzip data is damaged (${errorMessage(err)})` };
    }
  }
  const d = detectDump(content);
  if (d.engine !== 'postgres' || !d.format) return { reason: 'not a PostgreSQL dump' };
  if (d.format === 'custom' && compression === 'gzip')
    return { reason: 'a gzip-compressed custom archive, which the reference tool never wrote' };
  return { format: d.format, compression, pgHeader: d.pgHeader };
}

/** The reference's sidecar `<archive>.meta.json` records the archive's SHA-256 in extra_info.archive_sha256. */
async function referenceChecksum(
  storage: Storage,
  key: string,
): Promise<{ sha256: string; file: string } | undefined> {
  const sidecar = await readSidecar(storage, key).catch(() => ({ kind: 'none' as const }));
  if (sidecar.kind !== 'reference-cluster') return undefined;
  const sha = sidecar.metadata.extra_info?.archive_sha256;
  return sha && /^[0-9a-f]{64}$/i.test(sha) ? { sha256: sha.toLowerCase(), file: sidecar.file } : undefined;
}

/**
 * The archive's SHA-256 against the reference's sidecar: the plan's checksum line, a warning with
 * --force, or an IntegrityError before anything changes.
 */
export async function archiveChecksum(
  storage: Storage,
  key: string,
  archive: LegacyArchive,
  force: boolean,
  warnings: string[],
): Promise<{ text: string; state: RestorePlan['checksum'] }> {
  const recorded = await referenceChecksum(storage, key);
  if (!recorded) {
    return {
      text: 'no reference metadata with an archive checksum; gzip CRC-32 and tar structure verified',
      state: 'not available (no metadata)',
    };
  }
  if (recorded.sha256 === archive.sha256) {
    return {
      text: `SHA-256 verified against ${recorded.file}; gzip CRC-32 and tar structure verified`,
      state: 'verified',
    };
  }
  if (force) {
    warnings.push(
      `the archive's SHA-256 ${archive.sha256} differs from ${recorded.file} (${recorded.sha256}); restoring anyway (--force)`,
    );
    return {
      text: `SHA-256 MISMATCH against ${recorded.file} (ignored: --force)`,
      state: 'skipped (--force)',
    };
  }
  throw new IntegrityError(
    `Checksum mismatch for ${key}: expected sha256 ${recorded.sha256} (${recorded.file}), computed ${archive.sha256}`,
    { hint: 'Nothing was changed. Use another backup, or --force to restore this one anyway.' },
  );
}

/** Decide everything and change nothing: the archive is read once here, completely. */
export async function prepareLegacyClusterRestore(
  engine: DatabaseEngine,
  i: LegacyClusterInputs,
  meter?: ByteMeter,
): Promise<LegacyClusterPlan> {
  const source = `${i.storage.location.replace(/\/$/, '')}/${i.key}`;
  if (engine.engine !== 'postgres') {
    throw new UsageError(
      `${i.key} is a PostgreSQL cluster archive of the reference tool, but the target is ${engine.engine}`,
      'Omit --db-type (or use --db-type postgres).',
    );
  }
  const workdir = i.jobs > 1 ? path.resolve(i.workdir ?? os.tmpdir()) : undefined;
  if (workdir) await checkWorkdir(workdir);
  const archive = await scanLegacyArchive(i.storage, i.key, meter);
  const warnings: string[] = [];

  const checksum = (await archiveChecksum(i.storage, i.key, archive, i.force, warnings)).text;

  const include = includeFilter(engine, i.include);
  const seen = new Map<string, string>();
  for (const m of archive.members) {
    const other = seen.get(m.database);
    if (other) {
      throw new UsageError(
        `${i.key} holds two dumps of database "${m.database}": ${other} and ${m.entry}`,
        'Restore one of them with --include-database after extracting the archive, or fix the archive.',
      );
    }
    seen.set(m.database, m.entry);
  }
  const members = archive.members.filter((m) => include(m.database));
  for (const m of members) engine.checkDatabaseName(m.database);
  const broken = archive.unreadable.filter((u) => include(u.database));
  if (broken.length) {
    throw new IntegrityError(`${i.key}: ${broken.map((b) => `${b.entry} is ${b.reason}`).join('; ')}`, {
      hint: 'Nothing was changed. Leave those databases out with --include-database, or use another backup.',
    });
  }
  if (!members.length) {
    throw new UsageError(
      'No database of the archive matches --include-database',
      `It holds: ${archive.members.map((m) => m.database).join(', ')}.`,
    );
  }
  for (const m of archive.members) {
    const fileName = databaseFromEntry(m.entry);
    if (m.format === 'custom' && fileName !== m.database)
      warnings.push(`${m.entry} is a dump of database "${m.database}": it is restored under that name`);
  }

  // pg_restore must be able to read every custom archive (an archive from a newer pg_dump cannot be read).
  const probe = await engine.restoreCommand({
    target: 'postgres',
    format: 'custom',
    jobs: 1,
    noOwner: false,
  });
  for (const m of members.filter((x) => x.format === 'custom')) {
    const detected: DetectedFormat = {
      encrypted: false,
      compression: 'none',
      engine: 'postgres',
      format: 'custom',
      pgHeader: m.pgHeader,
    };
    await checkToolVersion(engine, detected, probe, warnings);
  }

  const existing: string[] = [];
  for (const m of members) {
    if (!(await engine.databaseExists(m.database))) continue;
    if (KEEP.includes(m.database) && (await engine.countUserObjects(m.database)) === 0) continue;
    existing.push(m.database);
  }
  if (existing.length && !i.cleanCluster) {
    throw new SafetyError(`These databases already exist on ${engine.endpoint}: ${existing.join(', ')}`, {
      hint: 'Nothing was changed. Add --clean-cluster to drop and replace them, or --include-database to restore others.',
    });
  }

  if (workdir) {
    const largest = Math.max(0, ...members.filter((m) => m.format === 'custom').map((m) => m.size));
    if (largest > 0) await checkFreeSpace(workdir, largest);
  }

  const actions: string[] = [];
  actions.push('restore roles and tablespaces (globals.sql, held in memory)');
  const dropped = existing.filter((d) => !KEEP.includes(d));
  if (dropped.length) actions.push(`terminate sessions and drop ${dropped.join(', ')}`);
  if (existing.some((d) => KEEP.includes(d)))
    actions.push('replace the backed-up objects inside postgres (pg_restore --clean --if-exists)');
  const custom = members.filter((m) => m.format === 'custom');
  const plain = members.filter((m) => m.format === 'plain');
  if (custom.length) {
    actions.push(
      `restore ${custom.length} custom-format dumps with pg_restore --create (owner, encoding, collation, grants and settings as dumped)${
        workdir
          ? `, each extracted into ${workdir} first and restored with ${i.jobs} jobs, then deleted`
          : ', streamed from the archive'
      }: ${custom.map((m) => m.database).join(', ')}`,
    );
  }
  if (plain.length) {
    actions.push(
      `create and restore ${plain.length} plain SQL dumps with psql (streamed${plain.some((m) => m.compression === 'gzip') ? ' through gunzip' : ''}): ${plain.map((m) => m.database).join(', ')}`,
    );
    warnings.push(
      `plain SQL dumps do not record their database's owner, encoding, locale, grants or settings: ${plain.map((m) => m.database).join(', ')} are created with the server defaults, owned by ${engine.user}`,
    );
  }
  if (archive.ignored.length)
    warnings.push(`entries ignored (not globals.sql or dumps/*): ${archive.ignored.join(', ')}`);
  return { source, archive, members, existing, checksum, workdir, actions, warnings };
}

async function checkWorkdir(dir: string): Promise<void> {
  const s = await stat(dir).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new StorageError(`Cannot use --workdir ${dir}: ${errorMessage(err)}`);
  });
  if (!s?.isDirectory()) {
    throw new UsageError(`--workdir ${dir} is not a directory`, 'Create it first, or name another one.');
  }
}

async function checkFreeSpace(dir: string, need: number): Promise<void> {
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (free < need * 1.1) {
    throw new StorageError(
      `Not enough space in ${dir} to extract a dump for --jobs (${need} bytes needed, ${free} free)`,
      { hint: 'Nothing was changed. Use --workdir on a larger disk, or --jobs 1 (streams, needs no space).' },
    );
  }
}

/** Carry out a prepared plan: roles first, then every selected dump in archive order. */
export async function executeLegacyClusterRestore(
  engine: DatabaseEngine,
  i: LegacyClusterInputs,
  plan: LegacyClusterPlan,
  onWarning: (line: string) => void,
  progress?: ClusterProgressSink,
): Promise<void> {
  const { signal } = i;
  if (signal?.aborted) throw new InterruptedError(NOTHING_CHANGED);
  const globalsCmd = await globalsCommand(engine);
  await restoreFromStream(async () => Readable.from([plan.archive.globals]), 'none', globalsCmd, {
    classify: globalsClassifier(engine, 'first'),
    warn: onWarning,
    signal,
  }).catch((err: unknown) => {
    if (signal?.aborted)
      throw new InterruptedError(
        'Interrupted while restoring roles: some may have been applied; no database was touched',
      );
    if (err instanceof DbBackupError) throw err;
    throw new StorageError(`Could not restore roles: ${errorMessage(err)}`);
  });
  progress?.note('roles and tablespaces restored');
  await dropExisting(engine, plan.existing);

  const byEntry = new Map(plan.members.map((m) => [m.entry, m]));
  const pending = new Set(plan.members.map((m) => m.database));
  const tally = new ClusterTally();
  progress?.begin(plan.members.map((m) => ({ name: m.database, estimate: m.size })));
  try {
    await walkArchive(
      i.storage,
      i.key,
      async (p, _header, body) => {
        const m = byEntry.get(p);
        if (!m || !pending.has(m.database) || signal?.aborted) return;
        pending.delete(m.database);
        const meter = new ByteMeter(signal);
        progress?.start(m.database, () => meter.bytes);
        if (!KEEP.includes(m.database) && (await engine.databaseExists(m.database))) {
          // Created by someone else since the plan was made: it is not ours to fill, nor to drop.
          const reason = `appeared on ${engine.endpoint} after the plan was made; it was left alone (run the restore again to see the conflicts)`;
          tally.failures.push(`${m.database}: ${reason}`);
          progress?.failed(m.database, reason);
          return;
        }
        try {
          await restoreMember(engine, m, body, plan, i, onWarning, meter);
          tally.restored.push(m.database);
          progress?.done(m.database, { bytes: m.size });
        } catch (failure) {
          const err = await explainLockWait(engine, m.database, failure);
          // A database this restore created is dropped again: half-restored must not look restored.
          const outcome = await memberOutcome(engine, m.database, i.serverWaitMs);
          tally.failed(m.database, err, outcome, signal);
          progress?.failed(m.database, errorMessage(err));
        }
      },
      [new ByteMeter(signal).tap()],
    );
  } catch (err) {
    // The archive changed or broke between the two reads: what is not restored yet is named.
    if (!signal?.aborted)
      for (const db of pending) tally.failures.push(`${db}: not restored (${errorMessage(err)})`);
    pending.clear();
  } finally {
    progress?.end();
  }
  if (signal?.aborted) throw tally.interrupted(plan.members.map((m) => m.database));
  for (const db of pending)
    tally.failures.push(`${db}: its dump was not found on the second read of the archive`);
  throwIfFailed(tally.failures, plan.members.length, 'The databases listed failed');
}

async function restoreMember(
  engine: DatabaseEngine,
  m: LegacyMember,
  body: AsyncIterable<Buffer>,
  plan: LegacyClusterPlan,
  i: LegacyClusterInputs,
  warn: (l: string) => void,
  meter: ByteMeter,
): Promise<void> {
  const { signal } = i;
  const classify = (l: string): ReturnType<DatabaseEngine['classifyStderr']> => engine.classifyStderr(l);
  const intoExisting = KEEP.includes(m.database);
  if (m.format === 'custom') {
    const options = {
      target: m.database,
      format: 'custom' as const,
      noOwner: false,
      create: !intoExisting,
      cleanFirst: intoExisting && plan.existing.includes(m.database),
    };
    if (plan.workdir && i.jobs > 1) {
      const { file, cleanup } = await extractToWorkdir(plan.workdir, m, body, meter);
      try {
        const cmd = await engine.restoreCommand({ ...options, jobs: i.jobs, file });
        await new ToolProcess(cmd, ['ignore', 'ignore', 'pipe'], classify, warn, { signal }).done;
      } finally {
        await cleanup();
      }
      return;
    }
    const cmd = await engine.restoreCommand({ ...options, jobs: 1 });
    await feedEntry(body, (source) =>
      restoreFromStream(async () => source, 'none', cmd, { classify, warn, meter, signal }),
    );
    return;
  }
  if (!intoExisting) await engine.createDatabase(m.database);
  const cmd = await engine.restoreCommand({ target: m.database, format: 'plain', jobs: 1, noOwner: false });
  await feedEntry(body, (source) =>
    restoreFromStream(async () => source, m.compression, cmd, {
      classify,
      warn,
      meter,
      trailer: TRAILERS.postgresPlain,
      signal,
    }),
  );
}

/**
 * Hand a tar entry to `consume` as a Node stream. The entry itself is never destroyed (that would
 * abort the whole archive): when the consumer stops early, the rest of the entry is read and
 * discarded, so the next entry can follow.
 */
export async function feedEntry(
  body: AsyncIterable<Buffer>,
  consume: (source: Readable) => Promise<void>,
): Promise<void> {
  const source = new PassThrough({ highWaterMark: 1024 * 1024 });
  const pumping = (async (): Promise<void> => {
    for await (const chunk of body) {
      if (source.destroyed || source.writableEnded) continue;
      if (!source.write(chunk)) await drainOrClose(source);
    }
    if (!source.destroyed) source.end();
  })();
  try {
    await consume(source);
  } finally {
    if (!source.destroyed) source.destroy();
    await pumping;
  }
}

/** Extract one dump into a private temporary directory for parallel pg_restore. */
async function extractToWorkdir(
  workdir: string,
  m: LegacyMember,
  body: AsyncIterable<Buffer>,
  meter: ByteMeter,
): Promise<{ file: string; cleanup: () => Promise<void> }> {
  await checkFreeSpace(workdir, m.size);
  const dir = await mkdtemp(path.join(workdir, 'dbbackup-restore-'));
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  const file = path.join(dir, 'archive.dump');
  try {
    await feedEntry(body, (source) =>
      pipeline(source, meter.tap(), createWriteStream(file, { mode: 0o600, flags: 'wx' })),
    );
    return { file, cleanup };
  } catch (err) {
    await cleanup();
    throw new StorageError(`Could not extract ${m.entry} into ${workdir}: ${errorMessage(err)}`, {
      hint: 'Use --workdir on a disk with space, or --jobs 1 (streams, needs no space).',
    });
  }
}
