import { mkdtemp, rm, stat, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PgArchiveCheck } from '../catalog/pg-archive.js';
import { writeOffsets } from '../catalog/pg-archive-offsets.js';
import type { DetectedFormat } from '../catalog/format.js';
import { TRAILERS } from '../catalog/trailers.js';
import type { DatabaseEngine } from '../engines/engine.js';
import { errnoCode, errorMessage, IntegrityError, StorageError, UsageError } from '../errors.js';
import { ToolProcess } from '../pipeline/process.js';
import { ByteMeter } from '../pipeline/progress.js';
import { runSinkRead } from '../pipeline/read-group.js';
import {
  archiveChecksum,
  databaseFromEntry,
  feedEntry,
  scanReferenceArchive,
  walkArchive,
  type ReferenceArchive,
  type ReferenceMember,
} from '../reference/archive.js';
import {
  includeFilter,
  KEEP,
  type ClusterRestoreInputs,
  type MemberContext,
  type MemberRunner,
  type SourcePlan,
} from './cluster.js';
import { restoreFromStream } from './feed.js';
import { checkToolVersion } from './single.js';
import { engineFamily } from '../engines/family.js';

/**
 * The reference tool's `cluster_<ts>.tar.gz` (src/reference/archive.ts) as a source of the
 * cluster-restore path. Planning reads the archive once, completely: its databases, globals.sql
 * (held in memory), every dump's header, the whole archive's SHA-256 and gzip CRC, all before
 * anything changes. The restore reads it a second time and feeds each dump straight from the tar
 * stream into pg_restore or psql, in archive order. Nothing is written to disk unless --jobs > 1
 * asks for parallel pg_restore, which needs a seekable file: each custom dump is then extracted into
 * --workdir, restored and deleted before the next one.
 */

export type ReferenceClusterMember = ReferenceMember & { sizeBytes: number };

export interface ReferenceClusterPlan extends SourcePlan<ReferenceClusterMember> {
  /** `<store>/<key>`. */
  source: string;
  archive: ReferenceArchive;
  checksum: string;
  workdir: string | undefined;
}

/** What is particular to a reference archive in the plan; reads the whole archive, changes nothing. */
export async function planReferenceCluster(
  engine: DatabaseEngine,
  i: ClusterRestoreInputs,
  meter?: ByteMeter,
): Promise<ReferenceClusterPlan> {
  const key = i.name;
  const source = `${i.storage.location.replace(/\/$/, '')}/${key}`;
  if (!engineFamily(engine.engine).referenceClusterArchive) {
    throw new UsageError(
      `${key} is a PostgreSQL cluster archive of the reference tool, but the target is ${engine.engine}`,
      'Omit --db-type (or use --db-type postgres).',
    );
  }
  const workdir = i.jobs > 1 ? path.resolve(i.workdir ?? os.tmpdir()) : undefined;
  if (workdir) await checkWorkdir(workdir);
  const archive = await scanReferenceArchive(i.storage, key, meter);
  const warnings: string[] = [];
  const checksum = (await archiveChecksum(i.storage, key, archive, i.force, warnings)).text;
  const members = selectMembers(engine, i, archive, warnings);
  await checkRestoreTool(engine, members, warnings);
  if (workdir) {
    const largest = Math.max(0, ...members.filter((m) => m.format === 'custom').map((m) => m.size));
    if (largest > 0) await checkFreeSpace(workdir, largest);
  }
  const stepsAfter = memberSteps(engine, i, members, workdir, warnings);
  if (archive.ignored.length)
    warnings.push(`entries ignored (not globals.sql or dumps/*): ${archive.ignored.join(', ')}`);
  const first = archive.members[0]?.pgHeader;
  return {
    source,
    archive,
    checksum,
    workdir,
    header: [
      `Cluster archive: ${source} (reference tool, ${archive.bytes} bytes${first?.serverVersion ? `, PostgreSQL ${first.serverVersion}` : ''}, ${archive.members.length} databases: ${archive.members.map((m) => m.database).join(', ')})`,
      `Checksum:        ${checksum}`,
      `Target:          ${engine.endpoint}`,
    ],
    format: 'reference-tar',
    members,
    stepsBefore: ['restore roles and tablespaces (globals.sql, held in memory)'],
    stepsAfter,
    warnings,
    done: `${members.length} databases on ${engine.endpoint} from ${source}`,
    globals: {
      label: 'roles and tablespaces',
      again: false,
      text: () => Promise.resolve(archive.globals.toString('utf8')),
    },
    verify: () => Promise.resolve(),
    restoreMembers: (run, ctx) => restoreFromArchive(engine, i, members, workdir, run, ctx),
  };
}

/** The archive's members selected by --include-database; duplicates and unreadable dumps refused. */
function selectMembers(
  engine: DatabaseEngine,
  i: ClusterRestoreInputs,
  archive: ReferenceArchive,
  warnings: string[],
): ReferenceClusterMember[] {
  const include = includeFilter(engine, i.include);
  const seen = new Map<string, string>();
  for (const m of archive.members) {
    const other = seen.get(m.database);
    if (other) {
      throw new UsageError(
        `${i.name} holds two dumps of database "${m.database}": ${other} and ${m.entry}`,
        'Restore one of them with --include-database after extracting the archive, or fix the archive.',
      );
    }
    seen.set(m.database, m.entry);
  }
  const members = archive.members
    .filter((m) => include(m.database))
    .map((m) => ({ ...m, sizeBytes: m.size }));
  for (const m of members) engine.checkDatabaseName(m.database);
  const broken = archive.unreadable.filter((u) => include(u.database));
  if (broken.length) {
    throw new IntegrityError(`${i.name}: ${broken.map((b) => `${b.entry} is ${b.reason}`).join('; ')}`, {
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
    if (m.format === 'custom' && databaseFromEntry(m.entry) !== m.database)
      warnings.push(`${m.entry} is a dump of database "${m.database}": it is restored under that name`);
  }
  return members;
}

/** pg_restore must be able to read every custom archive (an archive from a newer pg_dump cannot be read). */
async function checkRestoreTool(
  engine: DatabaseEngine,
  members: readonly ReferenceMember[],
  warnings: string[],
): Promise<void> {
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
}

function memberSteps(
  engine: DatabaseEngine,
  i: ClusterRestoreInputs,
  members: readonly ReferenceMember[],
  workdir: string | undefined,
  warnings: string[],
): string[] {
  const steps: string[] = [];
  const custom = members.filter((m) => m.format === 'custom');
  const plain = members.filter((m) => m.format === 'plain');
  if (custom.length) {
    steps.push(
      `restore ${custom.length} custom-format dumps with pg_restore --create (owner, encoding, collation, grants and settings as dumped)${
        workdir
          ? `, each extracted into ${workdir} first and restored with ${i.jobs} jobs, then deleted`
          : ', streamed from the archive'
      }: ${custom.map((m) => m.database).join(', ')}`,
    );
  }
  if (plain.length) {
    steps.push(
      `create and restore ${plain.length} plain SQL dumps with psql (streamed${plain.some((m) => m.compression === 'gzip') ? ' through gunzip' : ''}): ${plain.map((m) => m.database).join(', ')}`,
    );
    warnings.push(
      `plain SQL dumps do not record their database's owner, encoding, locale, grants or settings: ${plain.map((m) => m.database).join(', ')} are created with the server defaults, owned by ${engine.user}`,
    );
  }
  return steps;
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

/** The second read of the archive: every selected dump in archive order. */
async function restoreFromArchive(
  engine: DatabaseEngine,
  i: ClusterRestoreInputs,
  members: readonly ReferenceClusterMember[],
  workdir: string | undefined,
  run: MemberRunner<ReferenceClusterMember>,
  ctx: MemberContext,
): Promise<void> {
  const { signal } = i;
  const byEntry = new Map(members.map((m) => [m.entry, m]));
  const pending = new Set(members.map((m) => m.database));
  try {
    await walkArchive(
      i.storage,
      i.name,
      async (p, _header, body) => {
        const m = byEntry.get(p);
        if (!m || !pending.has(m.database) || signal?.aborted) return;
        pending.delete(m.database);
        if (!KEEP.includes(m.database) && (await engine.databaseExists(m.database))) {
          // Created by someone else since the plan was made: it is not ours to fill, nor to drop.
          ctx.refuse(
            m.database,
            `appeared on ${engine.endpoint} after the plan was made; it was left alone (run the restore again to see the conflicts)`,
          );
          return;
        }
        await run(m, (meter) => restoreMember(engine, m, body, workdir, i, ctx, meter));
      },
      [new ByteMeter(signal).tap()],
    );
  } catch (err) {
    // The archive changed or broke between the two reads: what is not restored yet is named.
    if (!signal?.aborted)
      for (const db of pending) ctx.failures.push(`${db}: not restored (${errorMessage(err)})`);
    pending.clear();
  }
  if (signal?.aborted) return;
  for (const db of pending)
    ctx.failures.push(`${db}: its dump was not found on the second read of the archive`);
}

async function restoreMember(
  engine: DatabaseEngine,
  m: ReferenceMember,
  body: AsyncIterable<Buffer>,
  workdir: string | undefined,
  i: ClusterRestoreInputs,
  ctx: MemberContext,
  meter: ByteMeter,
): Promise<void> {
  const { signal } = i;
  const { warn } = ctx;
  const classify = (l: string): ReturnType<DatabaseEngine['classifyStderr']> => engine.classifyStderr(l);
  const intoExisting = KEEP.includes(m.database);
  if (m.format === 'custom') {
    const options = {
      target: m.database,
      format: 'custom' as const,
      noOwner: false,
      create: !intoExisting,
      cleanFirst: intoExisting && ctx.existing.includes(m.database),
    };
    if (workdir && i.jobs > 1) {
      const { file, cleanup } = await extractToWorkdir(workdir, m, body, meter);
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

/** Extract one dump into a private temporary directory for parallel pg_restore. */
async function extractToWorkdir(
  workdir: string,
  m: ReferenceMember,
  body: AsyncIterable<Buffer>,
  meter: ByteMeter,
): Promise<{ file: string; cleanup: () => Promise<void> }> {
  await checkFreeSpace(workdir, m.size);
  const dir = await mkdtemp(path.join(workdir, 'dbbackup-restore-'));
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  const file = path.join(dir, 'archive.dump');
  // Walked on its way into the file, for any data offsets its pg_dump could not write (see feed.ts).
  const walk = new PgArchiveCheck();
  try {
    await feedEntry(body, (source) =>
      runSinkRead({
        open: async () => source,
        label: m.entry,
        compression: 'none',
        meter,
        sink: { kind: 'file', path: file, decoded: [walk] },
      }),
    );
    await writeOffsets(file, walk.missingOffsets());
    return { file, cleanup };
  } catch (err) {
    await cleanup();
    throw new StorageError(`Could not extract ${m.entry} into ${workdir}: ${errorMessage(err)}`, {
      hint: 'Use --workdir on a disk with space, or --jobs 1 (streams, needs no space).',
    });
  }
}
