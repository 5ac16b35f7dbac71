import type { DetectedFormat } from '../catalog/format.js';
import { TRAILERS } from '../catalog/trailers.js';
import type { DatabaseEngine } from '../engines/engine.js';
import { IntegrityError, UsageError } from '../errors.js';
import { ByteMeter } from '../pipeline/progress.js';
import type { Storage } from '../storage/storage.js';
import {
  archiveChecksum,
  feedEntry,
  scanReferenceArchive,
  walkArchive,
  type ReferenceMember,
} from '../reference/archive.js';
import type { RestorePlan } from './plan.js';
import { checkToolVersion, inspectTarget, intoTarget, type RestoreOutcome } from './single.js';
import { restoreFromStream } from './feed.js';
import { engineFamily } from '../engines/family.js';

/**
 * One database out of the reference tool's `cluster_<ts>.tar.gz`, into a database of the user's
 * choosing (`restore single --from-cluster … --database NAME --target COPY`): the archive is read
 * and checked whole first, as for a cluster restore, then the one dump streams from a second read
 * straight into pg_restore or psql. Roles are not touched.
 */
export interface ReferenceMemberInputs {
  storage: Storage;
  key: string;
  database: string;
  target?: string;
  create: boolean;
  clean: boolean;
  force: boolean;
  noOwner: boolean;
  /** SIGINT/SIGTERM: stop the tool, drop the database this restore created. */
  signal?: AbortSignal;
  /** How long to wait for an unreachable server to drop a database this restore created. */
  serverWaitMs?: number;
}

export interface ReferenceMemberPrepared {
  plan: RestorePlan;
  member: ReferenceMember;
}

export async function prepareReferenceMemberRestore(
  engine: DatabaseEngine,
  i: ReferenceMemberInputs,
  meter?: ByteMeter,
): Promise<ReferenceMemberPrepared> {
  if (!engineFamily(engine.engine).referenceClusterArchive) {
    throw new UsageError(
      `${i.key} is a PostgreSQL cluster archive of the reference tool, but the target is ${engine.engine}`,
      'Omit --db-type (or use --db-type postgres).',
    );
  }
  const archive = await scanReferenceArchive(i.storage, i.key, meter);
  const warnings: string[] = [];
  const checksum = await archiveChecksum(i.storage, i.key, archive, i.force, warnings);
  const member = archive.members.find((m) => m.database === i.database);
  if (!member) {
    const broken = archive.unreadable.find((u) => u.database === i.database);
    if (broken) {
      throw new IntegrityError(`${i.key}: ${broken.entry} is ${broken.reason}`, {
        hint: 'Nothing was changed. Use another backup.',
      });
    }
    throw new UsageError(
      `Database "${i.database}" is not in ${i.key}`,
      `It holds: ${archive.members.map((m) => m.database).join(', ')}.`,
    );
  }
  const detected: DetectedFormat = {
    encrypted: false,
    compression: member.compression,
    engine: 'postgres',
    format: member.format,
    pgHeader: member.pgHeader,
  };
  const target = i.target ?? member.database;
  engine.checkDatabaseName(target);
  const tool = await engine.restoreCommand({ target, format: member.format, jobs: 1, noOwner: i.noOwner });
  await checkToolVersion(engine, detected, tool, warnings);
  const { exists, objects, action } = await inspectTarget(engine, target, i);
  const actions = [`checked the whole archive: ${checksum.text}`];
  if (action) actions.push(action);
  actions.push(
    `restore ${member.entry} with ${tool.name}, streamed from a second read of the archive${member.compression === 'gzip' ? ' through gunzip' : ''} (roles are not restored: restore cluster does that)`,
  );
  const trailer = member.format === 'plain' ? TRAILERS.postgresPlain : undefined;
  if (trailer) {
    actions.push(`check that the dump ends with "${trailer.text}"`);
    warnings.push(
      `${member.entry} is a plain SQL dump: it does not record the database's owner, encoding, locale, grants or settings`,
    );
  }
  const plan: RestorePlan = {
    source: `${i.storage.location.replace(/\/$/, '')}/${i.key} → ${member.entry}`,
    sizeBytes: member.size,
    detected,
    metadata: undefined,
    checksum: checksum.state,
    target,
    endpoint: engine.endpoint,
    targetExists: exists,
    targetObjects: objects,
    actions,
    tool: tool.name,
    jobs: 1,
    trailer,
    warnings,
  };
  return { plan, member };
}

export async function executeReferenceMemberRestore(
  engine: DatabaseEngine,
  i: ReferenceMemberInputs,
  { plan, member }: ReferenceMemberPrepared,
  onWarning: (line: string) => void,
): Promise<RestoreOutcome> {
  const started = Date.now();
  const warnings = [...plan.warnings];
  const warn = (line: string): void => {
    warnings.push(line);
    onWarning(line);
  };
  const cmd = await engine.restoreCommand({
    target: plan.target,
    format: member.format,
    jobs: 1,
    noOwner: i.noOwner,
  });
  const classify = (l: string): ReturnType<DatabaseEngine['classifyStderr']> => engine.classifyStderr(l);
  const { signal } = i;
  const restore = async (): Promise<void> => {
    let found = false;
    await walkArchive(
      i.storage,
      i.key,
      async (p, _header, body) => {
        if (p !== member.entry) return;
        found = true;
        await feedEntry(body, (source) =>
          restoreFromStream(async () => source, member.compression, cmd, {
            classify,
            warn,
            trailer: plan.trailer,
            signal,
          }),
        );
        return 'stop';
      },
      [new ByteMeter(signal).tap()],
    );
    if (!found) {
      throw new IntegrityError(`${member.entry} was not found on the second read of ${i.key}`, {
        hint: 'The archive changed since the plan was made; run the restore again.',
      });
    }
  };
  await intoTarget(engine, plan.target, plan.targetExists, i.clean, restore, {
    signal,
    serverWaitMs: i.serverWaitMs,
    stopped: `the restore into "${plan.target}" was stopped and its processes ended`,
  });
  return { target: plan.target, seconds: (Date.now() - started) / 1000, warnings };
}
