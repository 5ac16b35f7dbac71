import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { commitUnit } from '../catalog/commit.js';
import { timestampTag } from '../catalog/naming.js';
import {
  PHYSICAL_SCHEMA,
  PHYSICAL_VERSION,
  physicalDir,
  physicalMetaKey,
  type PhysicalMetadata,
} from '../catalog/physical-backup.js';
import type { EncryptionDescription, EncryptionFlags } from '../crypto/index.js';
import type { MysqlEngine } from '../engines/mysql.js';
import { parseVersion, whichFirst } from '../engines/tools.js';
import { IntegrityError, MissingToolError, SafetyError, UsageError } from '../errors.js';
import {
  compressionFor,
  encryptionFor,
  startWriteGroup,
  type WriteResult,
} from '../pipeline/filter-group.js';
import { ToolProcess } from '../pipeline/process.js';
import { Progress, type ProgressMode } from '../pipeline/progress.js';
import { openBinlogArchive, type BinlogArchiveIdentity } from '../pitr/binlog/identity.js';
import { suffixOf } from '../pitr/binlog/names.js';
import { newestValidOf, readPhysicalBackups } from '../pitr/binlog/physical-catalog.js';
import { binlogServerFacts, type BinlogServerFacts } from '../pitr/binlog/server.js';
import { keyValues, parseBinlogInfo, XbstreamTap } from '../pitr/binlog/xbstream-tap.js';
import { parseOptionGroups } from '../engines/mysql-options.js';
import type { Storage } from '../storage/storage.js';
import { TOOL_VERSION } from '../version.js';
import { redactArgs } from './single.js';

export interface PhysicalBackupInput {
  engine: MysqlEngine;
  storage: Storage;
  flags: EncryptionFlags;
  compression: BinlogArchiveIdentity['compression'];
  incremental: boolean;
  progress: ProgressMode;
  signal?: AbortSignal;
  onNote?: (line: string) => void;
}

/** The physical backup program of a server family, and what to install when it is missing. */
export function physicalTool(engine: 'mariadb' | 'mysql'): { names: string[]; hint: string } {
  return engine === 'mariadb'
    ? {
        names: ['mariadb-backup', 'mariabackup'],
        hint: 'Install mariadb-backup, of the same version as the server (Debian/Ubuntu: apt-get install mariadb-backup).',
      }
    : {
        names: ['xtrabackup'],
        hint: 'Physical backups of MySQL need Percona XtraBackup matching the server (Debian/Ubuntu: apt-get install percona-xtrabackup-80, from the Percona repository).',
      };
}

/** The program's path and version, or a MissingToolError naming the package. */
export async function findPhysicalTool(
  engine: 'mariadb' | 'mysql',
): Promise<{ name: string; path: string; version: string | null }> {
  const tool = physicalTool(engine);
  const found = await whichFirst(tool.names);
  if (!found) throw new MissingToolError(`${tool.names.join(' or ')} was not found`, { hint: tool.hint });
  return { ...found, version: await backupToolVersion(found.path) };
}

/** mariadb-backup prints its version on stderr ("… based on MariaDB server 10.11.19-MariaDB …"). */
async function backupToolVersion(file: string): Promise<string | null> {
  const { execFile } = await import('node:child_process');
  const text = await new Promise<string>((resolve) =>
    execFile(file, ['--version'], { timeout: 10_000 }, (_err, stdout, stderr) =>
      resolve(`${stdout}${stderr}`),
    ),
  );
  return /server (\d+\.\d+\.\d+)/.exec(text)?.[1] ?? parseVersion(text);
}

/** The backup program must be the server's own major.minor: InnoDB's formats change between them. */
export function toolMismatch(toolVersionText: string | null, serverVersion: string): string | undefined {
  const minor = (v: string): string => /^(\d+\.\d+)/.exec(v)?.[1] ?? v;
  if (!toolVersionText) return undefined;
  return minor(toolVersionText) === minor(serverVersion)
    ? undefined
    : `mariadb-backup ${toolVersionText} does not match the server's ${serverVersion} (they must share major.minor)`;
}

/**
 * `backup physical`: mariadb-backup's xbstream (full, or the changes since the newest valid backup
 * of this server) through the write group into `physical/<name>/` of the binlog archive, the stream
 * read on the way to prove it complete and to keep its LSNs and binlog position; `meta.json` last.
 * No copy of the data is made on local disk. Interrupted or failed, it leaves nothing.
 */
export async function backupPhysical(i: PhysicalBackupInput): Promise<PhysicalMetadata> {
  const conn = await i.engine.connect();
  let facts: BinlogServerFacts;
  try {
    facts = await binlogServerFacts(conn);
  } finally {
    await conn.end().catch(() => undefined);
  }
  if (facts.engine === 'mysql') {
    await findPhysicalTool('mysql');
    throw new UsageError(
      'Physical backups of MySQL (with xtrabackup) are not implemented yet',
      'Use "backup single" or "backup cluster" for MySQL.',
    );
  }
  const tool = await findPhysicalTool('mariadb');
  const mismatch = toolMismatch(tool.version, facts.server.version);
  if (mismatch) throw new MissingToolError(mismatch, { hint: physicalTool('mariadb').hint });
  if (!facts.logBin)
    i.onNote?.(
      'note: the server writes no binary log: this backup can be restored, but not rolled forward to a point in time',
    );
  const { identity, protectors } = await openBinlogArchive(i.storage, {
    engine: facts.engine,
    server: facts.server,
    compression: i.compression,
    flags: i.flags,
  });
  let parent: PhysicalMetadata | undefined;
  if (i.incremental) {
    const entries = await readPhysicalBackups(i.storage);
    parent = newestValidOf(entries, facts.server.serverId)?.meta;
    if (!parent)
      throw new UsageError(
        `No valid physical backup of this server (server_id ${facts.server.serverId}) to take an incremental from`,
        'Take a full one first: dbbackup backup physical --archive …',
      );
  }
  const started = new Date();
  const name = await freeName(i.storage, started);
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'dbbackup-xb-'));
  const args = ['--backup', '--stream=xbstream', `--target-dir=${scratch}`];
  if (parent) args.push(`--incremental-lsn=${parent.toLsn}`);
  const command = await i.engine.clientProgram(
    physicalTool('mariadb').names,
    args,
    physicalTool('mariadb').hint,
  );
  const plan = await compressionFor(identity.compression.algorithm, identity.compression.level);
  const dataKey = `${physicalDir(name)}backup.xb${suffixOf({ compression: plan.algorithm, encrypted: protectors.length > 0 })}`;
  try {
    return await commitUnit([i.storage], { signal: i.signal }, async (commit) => {
      const tap = new XbstreamTap();
      let completed = false;
      const proc = new ToolProcess(command, ['ignore', 'pipe', 'pipe'], (line) => {
        if (/completed OK!/.test(line)) completed = true;
        return classifyBackupTool(line);
      });
      const group = startWriteGroup<EncryptionDescription>({
        source: proc,
        taps: [tap],
        compression: plan,
        encryption: await encryptionFor(protectors),
        check: async () => {
          if (!tap.complete)
            throw new IntegrityError(`mariadb-backup's stream is incomplete: ${tap.problem}`);
          if (!completed)
            throw new IntegrityError(
              'mariadb-backup exited without saying "completed OK!": the backup cannot be trusted',
            );
        },
      });
      const progress = new Progress(
        i.progress,
        `physical backup ${name}`,
        { stored: () => group.storedBytes(), produced: () => tap.bytes },
        () => null,
      );
      progress.start();
      try {
        await commit.put(dataKey, group, { metadata: { 'dbbackup-physical-backup': name } });
      } finally {
        progress.stop();
      }
      const stored = group.result();
      await commit.verify(dataKey, stored.storedBytes);
      const meta = describe({
        name,
        facts,
        parent,
        tap,
        tool,
        args: command.args,
        started,
        stored,
        dataKey,
        i,
        warnings: proc.warnings,
      });
      await commit.finish(physicalMetaKey(name), `${JSON.stringify(meta, null, 2)}\n`);
      return meta;
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** mariadb-backup narrates on stderr; its [ERROR] lines are errors. */
function classifyBackupTool(line: string): 'error' | 'warning' | 'info' {
  if (/\[ERROR\]|^\s*Error:|FATAL ERROR/.test(line)) return 'error';
  if (/\[Warning\]|\bWARNING\b/.test(line)) return 'warning';
  return 'info';
}

function describe(o: {
  name: string;
  facts: BinlogServerFacts;
  parent: PhysicalMetadata | undefined;
  tap: XbstreamTap;
  tool: { name: string; version: string | null };
  args: string[];
  started: Date;
  stored: WriteResult<EncryptionDescription>;
  dataKey: string;
  i: PhysicalBackupInput;
  warnings: string[];
}): PhysicalMetadata {
  const text = (f: string): string => o.tap.captured.get(f)?.toString('utf8') ?? '';
  const checkpoints = keyValues(text('xtrabackup_checkpoints'));
  const lsn = (k: string): string => {
    const v = checkpoints[k];
    if (!v || !/^\d+$/.test(v))
      throw new IntegrityError(`mariadb-backup's xtrabackup_checkpoints has no ${k}`, {
        hint: 'The stream is not a mariadb-backup backup this dbbackup understands.',
      });
    return v;
  };
  const expectedType = o.parent ? 'incremental' : 'full-backuped';
  if (checkpoints.backup_type !== expectedType)
    throw new IntegrityError(
      `mariadb-backup made a "${checkpoints.backup_type ?? '?'}" backup, not "${expectedType}"`,
    );
  const binlog = parseBinlogInfo(text('xtrabackup_binlog_info')) ?? null;
  const warnings = [...o.warnings];
  if (o.facts.logBin && !binlog)
    warnings.push('mariadb-backup recorded no binlog position: this backup cannot be rolled forward');
  const finished = new Date();
  return {
    schema: PHYSICAL_SCHEMA,
    schemaVersion: PHYSICAL_VERSION,
    tool: { name: 'dbbackup', version: TOOL_VERSION },
    kind: 'physical',
    backupType: o.parent ? 'incremental' : 'full',
    engine: o.facts.engine,
    name: o.name,
    parent: o.parent?.name ?? null,
    chain: [...(o.parent?.chain ?? []), o.name],
    server: { ...o.facts.server, versionString: o.facts.versionString },
    connection: { host: o.i.engine.host, port: o.i.engine.port, user: o.i.engine.user },
    fromLsn: lsn('from_lsn'),
    toLsn: lsn('to_lsn'),
    lastLsn: lsn('last_lsn'),
    binlog,
    serverOptions: parseOptionGroups(text('backup-my.cnf'), ['mysqld']),
    backupTool: { name: o.tool.name, version: o.tool.version ?? 'unknown', args: redactArgs(o.args) },
    compression: o.stored.compression,
    encryption: o.stored.encryption,
    files: [
      {
        key: o.dataKey,
        role: 'xbstream',
        sizeBytes: o.stored.storedBytes,
        sha256: o.stored.storedSha256,
        rawBytes: o.tap.bytes,
      },
    ],
    stream: { files: o.tap.files.size, bytes: o.tap.payloadBytes },
    sizeBytes: o.stored.storedBytes,
    startedAt: o.started.toISOString(),
    finishedAt: finished.toISOString(),
    durationSeconds: (finished.getTime() - o.started.getTime()) / 1000,
    warnings,
  };
}

async function freeName(storage: Storage, date: Date): Promise<string> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const name = `phys_${timestampTag(date)}${attempt ? `-${attempt}` : ''}`;
    let taken = false;
    for await (const _ of storage.list(physicalDir(name))) {
      taken = true;
      break;
    }
    if (!taken) return name;
  }
  throw new SafetyError('Could not find a free physical backup name');
}
