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
import { commitUnit } from '../../catalog/commit.js';
import type { EncryptionDescription } from '../../crypto/index.js';
import { IntegrityError, UsageError } from '../../errors.js';
import { compressionFor, startWriteGroup } from '../../pipeline/filter-group.js';
import { Progress } from '../../pipeline/progress.js';
import { TOOL_VERSION } from '../../version.js';
import { checkServer, encrypting, freeName, waitForWal, type BaseBackupInput } from '../base-backup.js';
import { serverFacts } from '../server.js';
import { encodingSuffix, formatLsn, parseLsn, segmentBeforeLsn, segmentOfLsn } from '../wal-names.js';
import { chooseParent } from './chain.js';
import { deltaTar, emptyStats } from './delta-stream.js';
import { scanDataDir } from './scan.js';
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
  const parent =
    o.kind === 'full' ? undefined : await chooseParent(o.storage, o.kind, facts.systemIdentifier, timeline);
  const parentStart = parent ? (parseLsn(parent.startLsn) ?? 0n) : 0n;
  const started = new Date();
  const name = await freeName(o.storage, started);
  const label = `dbbackup ${name}`;
  const plan = await compressionFor(o.compression.algorithm, o.compression.level);
  const suffix = encodingSuffix({ compression: plan.algorithm, encrypted: o.protectors.length > 0 });
  return commitUnit([o.storage], { signal: o.signal }, async (commit) => {
    const session: BackupSession = await startBackup(o.client, facts.versionNum, label);
    const contents = await scanDataDir(dir);
    const stats = emptyStats();
    const settings = await blockSettings(o);
    let stop: Awaited<ReturnType<BackupSession['stop']>> | undefined;
    const source = Readable.from(
      deltaTar({
        root: dir,
        contents,
        parentFiles: new Map(parent?.contents?.files ?? []),
        parentStartLsn: parentStart,
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
      compression: plan,
      encryption: o.protectors.length ? await encrypting(o.protectors) : undefined,
    });
    const progress = new Progress(
      o.progress,
      `${o.kind} backup ${name}`,
      {
        stored: () => group.storedBytes(),
        produced: () => stats.wholeBytes + stats.blocksScanned * settings.blockSize,
      },
      () => null,
    );
    progress.start();
    const dataKey = `${baseDir(name)}delta.tar${suffix}`;
    try {
      await commit.put(dataKey, group, { metadata: { 'dbbackup-base-backup': name } });
    } catch (err) {
      await session.abort();
      throw err;
    } finally {
      progress.stop();
    }
    const stored = group.result();
    await commit.verify(dataKey, stored.storedBytes);
    if (!stop) throw new IntegrityError('The delta stream ended before the backup was stopped');
    const range = { timeline, startTimeline: timeline, start: session.startLsn, stop: stop.lsn };
    await waitForWal(o, range);
    const finished = new Date();
    const files = [
      {
        key: dataKey,
        role: 'delta',
        sizeBytes: stored.storedBytes,
        sha256: stored.storedSha256,
        rawBytes: null,
      },
    ];
    const dataBytes = contents.files.reduce((n, f) => n + f.size, 0);
    const meta: BaseBackupMetadata = {
      schema: BASE_SCHEMA,
      schemaVersion: BASE_VERSION,
      tool: { name: 'dbbackup', version: TOOL_VERSION },
      kind: 'base',
      backupType: o.kind,
      parent: parent?.name,
      engine: 'postgres',
      name,
      systemIdentifier: facts.systemIdentifier,
      server: { version: facts.version, major: facts.major },
      connection: o.connection,
      walSegmentSize: facts.walSegmentSize,
      timeline,
      startLsn: formatLsn(session.startLsn),
      stopLsn: formatLsn(stop.lsn),
      startSegment: segmentOfLsn(timeline, session.startLsn, facts.walSegmentSize),
      stopSegment: segmentBeforeLsn(timeline, stop.lsn, facts.walSegmentSize),
      label,
      backupTool: { name: 'dbbackup', version: TOOL_VERSION, args: [`--${o.kind}`, `--pgdata=${dir}`] },
      compression: stored.compression,
      encryption: stored.encryption,
      files,
      manifest: { files: contents.files.length, bytes: dataBytes, checksumAlgorithm: 'none' },
      contents: {
        files: [
          ...contents.files.map((f): [string, number] => [f.path, f.size]),
          ['backup_label', Buffer.byteLength(stop.label)],
          ...(stop.tablespaceMap
            ? [['tablespace_map', Buffer.byteLength(stop.tablespaceMap)] as [string, number]]
            : []),
        ],
        dirs: contents.dirs,
      },
      delta: {
        parentStartLsn: parent?.startLsn ?? '0/0',
        blockSize: settings.blockSize,
        dataChecksums: settings.checksums,
        ...stats,
      },
      sizeBytes: stored.storedBytes,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationSeconds: (finished.getTime() - started.getTime()) / 1000,
      warnings: [],
    };
    await commit.finish(baseMetaKey(name), `${JSON.stringify(meta, null, 2)}\n`);
    return meta;
  });
}

async function currentTimeline(o: DeltaBackupInput): Promise<number> {
  const r = await o.client.query<{ tli: number }>('SELECT timeline_id AS tli FROM pg_control_checkpoint()');
  return Number(r.rows[0]?.tli ?? 1);
}

async function blockSettings(
  o: DeltaBackupInput,
): Promise<{ checksums: boolean; blockSize: number; segmentBlocks: number }> {
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
