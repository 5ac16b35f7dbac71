import { access, constants, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  BASE_SCHEMA,
  BASE_VERSION,
  baseDir,
  baseMetaKey,
  type BaseBackupMetadata,
} from '../../catalog/base-backup.js';
import { commitUnit, type Commit } from '../../catalog/commit.js';
import type { EncryptionDescription } from '../../crypto/index.js';
import { IntegrityError, UsageError } from '../../errors.js';
import { compressionFor, startWriteGroup } from '../../pipeline/filter-group.js';
import { Progress } from '../../pipeline/progress.js';
import { TOOL_VERSION } from '../../version.js';
import { checkServer, encrypting, freeName, waitForWal, type BaseBackupInput } from '../base-backup.js';
import { serverFacts, type ServerFacts } from '../server.js';
import { encodingSuffix, formatLsn, parseLsn, segmentBeforeLsn, segmentOfLsn } from '../wal-names.js';
import { archiverDone } from './archived.js';
import { chooseParent } from './chain.js';
import { deltaTar, emptyStats, type DeltaStats } from './delta-stream.js';
import { scanDataDir, type DataDirContents } from './scan.js';
import { startBackup, type BackupSession } from './session.js';

export interface DeltaBackupInput extends BaseBackupInput {
  /**
   * `full` reads every page (no pg_basebackup: a server newer than the client programs here),
   * and roots a chain like a pg_basebackup full.
   */
  kind: 'incremental' | 'differential' | 'full';
  /** The data directory as this host sees it; default: the server's data_directory. */
  pgdata?: string;
}

/**
 * The data directory must be readable here and be the connected server's: pg_control's first
 * 8 bytes are the system identifier.
 */
async function checkDataDir(dir: string, systemIdentifier: string): Promise<void> {
  const control = path.join(dir, 'global', 'pg_control');
  try {
    await access(dir, constants.R_OK | constants.X_OK);
    const bytes = await readFile(control);
    const id = bytes.readBigUInt64LE(0).toString();
    if (id !== systemIdentifier)
      throw new UsageError(
        `${dir} holds cluster ${id}, not the connected server's (${systemIdentifier})`,
        'Give the data directory of the server you connect to with --pgdata.',
      );
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(
      `Cannot read the data directory ${dir} here (${(err as NodeJS.ErrnoException).code ?? 'error'}): incremental and differential backups read it directly, on the database host`,
      "Run dbbackup on the database host as root or the server's user (or give --pgdata), or take a full backup: dbbackup backup base",
    );
  }
}

/**
 * An incremental or differential base backup: the pages of relation files changed since the
 * parent's start and every other file whole, read from the data directory between
 * pg_backup_start and pg_backup_stop (non-exclusive, one session), stored like a full base backup
 * (write group, commit protocol: meta.json last). WAL replay from this backup's start makes the
 * assembled chain consistent, as for any base backup.
 */
export async function backupDelta(o: DeltaBackupInput): Promise<BaseBackupMetadata> {
  const facts = await serverFacts(o.client, 'pitr');
  await checkServer(o, facts);
  const dir = o.pgdata ?? facts.dataDirectory;
  await checkDataDir(dir, facts.systemIdentifier);
  const timeline = await currentTimeline(o);
  // Looked for while pg_backup_start's checkpoint runs (it is awaited after the start): reading
  // the candidates' metadata, with zod loading for it, took 0.5-0.9 s of a 5 s incremental on the
  // loaded machine, the checkpoint 0.3-0.5 s.
  const parent: Promise<BaseBackupMetadata | undefined> =
    o.kind === 'full'
      ? Promise.resolve(undefined)
      : chooseParent(o.storage, o.kind, facts.systemIdentifier, timeline);
  parent.catch(() => undefined); // awaited in streamDelta; no unhandled rejection meanwhile
  const started = new Date();
  const name = await freeName(o.storage, started);
  const plan = await compressionFor(o.compression.algorithm, o.compression.level);
  const suffix = encodingSuffix({ compression: plan.algorithm, encrypted: o.protectors.length > 0 });
  const dataKey = `${baseDir(name)}delta.tar${suffix}`;
  return commitUnit([o.storage], { signal: o.signal }, async (commit) => {
    const taken = await streamDelta(
      o,
      { dir, name, parent, plan, dataKey, versionNum: facts.versionNum },
      commit,
    );
    await commit.verify(dataKey, taken.stored.storedBytes);
    const range = { timeline, startTimeline: timeline, start: taken.startLsn, stop: taken.stop.lsn };
    await archiverDone(
      dir,
      segmentBeforeLsn(timeline, taken.stop.lsn, facts.walSegmentSize),
      10_000,
      o.signal,
    );
    await waitForWal(o, range);
    const meta = deltaMetadata(o, {
      facts,
      timeline,
      parent: taken.parent,
      name,
      dir,
      dataKey,
      started,
      taken,
    });
    await commit.finish(baseMetaKey(name), `${JSON.stringify(meta, null, 2)}\n`);
    return meta;
  });
}

interface StreamContext {
  dir: string;
  name: string;
  parent: Promise<BaseBackupMetadata | undefined>;
  plan: Awaited<ReturnType<typeof compressionFor>>;
  dataKey: string;
  versionNum: number;
}

/** What the stream stored, and what the server said when the backup stopped. */
interface Taken {
  parent: BaseBackupMetadata | undefined;
  startLsn: bigint;
  stop: StopResult;
  contents: DataDirContents;
  stats: DeltaStats;
  settings: BlockSettings;
  stored: ReturnType<ReturnType<typeof startWriteGroup<EncryptionDescription>>['result']>;
}

type StopResult = Awaited<ReturnType<BackupSession['stop']>>;

/**
 * Between pg_backup_start and pg_backup_stop: scans the data directory and streams the delta tar
 * through the write group into `dataKey`; the stop happens after the last file (deltaTar's finish).
 */
async function streamDelta(o: DeltaBackupInput, c: StreamContext, commit: Commit): Promise<Taken> {
  const session: BackupSession = await startBackup(o.client, c.versionNum, `dbbackup ${c.name}`);
  let parent: BaseBackupMetadata | undefined;
  try {
    parent = await c.parent;
    // A parent committed while this backup started must still have started before it.
    if (parent && (parseLsn(parent.startLsn) ?? 0n) >= session.startLsn)
      throw new IntegrityError(
        `The newest base backup, ${parent.name}, started at ${parent.startLsn}, not before this one (${formatLsn(session.startLsn)})`,
        { hint: 'Another base backup of this cluster ran at the same time: run the backup again.' },
      );
  } catch (err) {
    await session.abort();
    throw err;
  }
  const contents = scanDataDir(c.dir);
  const stats = emptyStats();
  const settings = await blockSettings(o);
  let stop: StopResult | undefined;
  const source = Readable.from(
    deltaTar({
      root: c.dir,
      contents,
      parentFiles: new Map(parent?.contents?.files ?? []),
      parentStartLsn: parent ? (parseLsn(parent.startLsn) ?? 0n) : 0n,
      startLsn: session.startLsn,
      checksums: settings.checksums,
      blockSize: settings.blockSize,
      segmentBlocks: settings.segmentBlocks,
      stats,
      signal: o.signal,
      finish: async () => {
        stop = await session.stop();
        return [
          { name: 'backup_label', content: Buffer.from(stop.label) },
          ...(stop.tablespaceMap
            ? [{ name: 'tablespace_map', content: Buffer.from(stop.tablespaceMap) }]
            : []),
        ];
      },
    }),
    { objectMode: false },
  );
  const group = startWriteGroup<EncryptionDescription>({
    source,
    compression: c.plan,
    encryption: o.protectors.length ? await encrypting(o.protectors) : undefined,
  });
  const progress = new Progress(
    o.progress,
    `${o.kind} backup ${c.name}`,
    {
      stored: () => group.storedBytes(),
      produced: () => stats.wholeBytes + stats.blocksScanned * settings.blockSize,
    },
    () => null,
  );
  progress.start();
  try {
    await commit.put(c.dataKey, group, { metadata: { 'dbbackup-base-backup': c.name } });
  } catch (err) {
    await session.abort();
    throw err;
  } finally {
    progress.stop();
  }
  if (!stop) throw new IntegrityError('The delta stream ended before the backup was stopped');
  return { parent, startLsn: session.startLsn, stop, contents, stats, settings, stored: group.result() };
}

/** meta.json of a delta (or a full read from the data directory). */
function deltaMetadata(
  o: DeltaBackupInput,
  m: {
    facts: ServerFacts;
    timeline: number;
    parent: BaseBackupMetadata | undefined;
    name: string;
    dir: string;
    dataKey: string;
    started: Date;
    taken: Taken;
  },
): BaseBackupMetadata {
  const { facts, timeline, taken } = m;
  const { stop, stored, contents } = taken;
  const finished = new Date();
  const extra: Array<[string, number]> = [['backup_label', Buffer.byteLength(stop.label)]];
  if (stop.tablespaceMap) extra.push(['tablespace_map', Buffer.byteLength(stop.tablespaceMap)]);
  return {
    schema: BASE_SCHEMA,
    schemaVersion: BASE_VERSION,
    tool: { name: 'dbbackup', version: TOOL_VERSION },
    kind: 'base',
    backupType: o.kind,
    parent: m.parent?.name,
    engine: 'postgres',
    name: m.name,
    systemIdentifier: facts.systemIdentifier,
    server: { version: facts.version, major: facts.major },
    connection: o.connection,
    walSegmentSize: facts.walSegmentSize,
    timeline,
    startLsn: formatLsn(taken.startLsn),
    stopLsn: formatLsn(stop.lsn),
    startSegment: segmentOfLsn(timeline, taken.startLsn, facts.walSegmentSize),
    stopSegment: segmentBeforeLsn(timeline, stop.lsn, facts.walSegmentSize),
    label: `dbbackup ${m.name}`,
    backupTool: { name: 'dbbackup', version: TOOL_VERSION, args: [`--${o.kind}`, `--pgdata=${m.dir}`] },
    compression: stored.compression,
    encryption: stored.encryption,
    files: [
      {
        key: m.dataKey,
        role: 'delta',
        sizeBytes: stored.storedBytes,
        sha256: stored.storedSha256,
        rawBytes: null,
      },
    ],
    manifest: {
      files: contents.files.length,
      bytes: contents.files.reduce((n, f) => n + f.size, 0),
      checksumAlgorithm: 'none',
    },
    contents: {
      files: [...contents.files.map((f): [string, number] => [f.path, f.size]), ...extra],
      dirs: contents.dirs,
    },
    delta: {
      parentStartLsn: m.parent?.startLsn ?? '0/0',
      blockSize: taken.settings.blockSize,
      dataChecksums: taken.settings.checksums,
      ...taken.stats,
    },
    sizeBytes: stored.storedBytes,
    startedAt: m.started.toISOString(),
    finishedAt: finished.toISOString(),
    durationSeconds: (finished.getTime() - m.started.getTime()) / 1000,
    warnings: [],
  };
}

async function currentTimeline(o: DeltaBackupInput): Promise<number> {
  const r = await o.client.query<{ tli: number }>('SELECT timeline_id AS tli FROM pg_control_checkpoint()');
  return Number(r.rows[0]?.tli ?? 1);
}

interface BlockSettings {
  checksums: boolean;
  blockSize: number;
  segmentBlocks: number;
}

async function blockSettings(o: DeltaBackupInput): Promise<BlockSettings> {
  const r = await o.client.query<{ name: string; setting: string }>(
    "SELECT name, setting FROM pg_settings WHERE name IN ('data_checksums', 'block_size', 'segment_size')",
  );
  const get = (n: string): string => r.rows.find((x) => x.name === n)?.setting ?? '';
  return {
    checksums: get('data_checksums') === 'on',
    blockSize: Number(get('block_size')) || 8192,
    segmentBlocks: Number(get('segment_size')) || 131072,
  };
}
