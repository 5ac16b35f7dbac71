import { mkdtemp, readFile, rm } from 'node:fs/promises';
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
import { binlogFlavor, serverFlavorOf, type FlavorId, type PhysicalTool } from '../engines/flavor.js';
import { parseVersion, versionBanner, whichFirst } from '../engines/tools.js';
import { IntegrityError, MissingToolError, SafetyError, UsageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import {
  compressionFor,
  encryptionFor,
  startWriteGroup,
  type FileTarget,
  type WriteGroup,
  type WriteResult,
} from '../pipeline/filter-group.js';
import { ToolProcess } from '../pipeline/process.js';
import { processBytesWritten, Progress, type ProgressMode } from '../pipeline/progress.js';
import {
  claimBinlogArchive,
  prepareBinlogArchive,
  type BinlogArchiveIdentity,
  type PreparedBinlogArchive,
} from '../pitr/binlog/identity.js';
import { suffixOf } from '../pitr/binlog/names.js';
import { newestValidOf, readPhysicalBackups } from '../pitr/binlog/physical-catalog.js';
import { binlogServerFacts, type BinlogServerFacts } from '../pitr/binlog/server.js';
import { keyValues } from '../pitr/binlog/xbstream-tap.js';
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

/** A MySQL-family server: MariaDB (mariadb-backup) or MySQL/Percona Server (Percona XtraBackup). */
export type ServerFlavor = FlavorId;

/** The physical backup program of a server family, and what to install when it is missing. */
export function physicalTool(flavor: ServerFlavor, serverVersion?: string): PhysicalTool {
  return serverFlavorOf(flavor).physicalTool(serverVersion);
}

/** The backup program is missing: one line naming the package, exit code Failure (src/exit-codes.ts). */
export function missingPhysicalTool(flavor: ServerFlavor, serverVersion?: string): MissingToolError {
  const t = physicalTool(flavor, serverVersion);
  return new MissingToolError(
    `${t.names.join(' or ')} was not found: physical backups of ${serverFlavorOf(flavor).label} need the package ${t.package}`,
    { hint: t.hint, exitCode: ExitCode.Failure },
  );
}

/**
 * The backup program's arguments (after the connection options), the same for mariadb-backup and
 * xtrabackup (mariadb-backup is a fork of it and keeps these options): the xbstream on stdout, the
 * small files that describe the backup (LSNs, binlog position) also in `lsnDir`, and for an
 * incremental the LSN it starts at. Pure.
 */
export function physicalBackupCommand(
  flavor: ServerFlavor,
  o: { scratch: string; lsnDir: string; incrementalLsn?: string; serverVersion?: string },
): { names: string[]; args: string[]; hint: string } {
  const t = physicalTool(flavor, o.serverVersion);
  const args = ['--backup', '--stream=xbstream', `--target-dir=${o.scratch}`, `--extra-lsndir=${o.lsnDir}`];
  if (o.incrementalLsn !== undefined) args.push(`--incremental-lsn=${o.incrementalLsn}`);
  return { names: t.names, args, hint: t.hint };
}

/** The program's path and version, or a MissingToolError naming the package. */
export async function findPhysicalTool(
  flavor: ServerFlavor,
  serverVersion?: string,
): Promise<{ name: string; path: string; version: string | null }> {
  const found = await whichFirst(physicalTool(flavor).names);
  if (!found) throw missingPhysicalTool(flavor, serverVersion);
  return { ...found, version: await backupToolVersion(found.path) };
}

/**
 * mariadb-backup prints its version on stderr ("… based on MariaDB server 10.11.19-MariaDB …"),
 * xtrabackup likewise ("xtrabackup version 8.0.35-30 based on MySQL server 8.0.35 Linux …"):
 * versionBanner reads it there, once per program (the client layer's TLS choice asks it too).
 */
async function backupToolVersion(file: string): Promise<string | null> {
  const banner = await versionBanner(file);
  return banner === null ? null : toolVersionOf(banner);
}

/** The server version a backup program was built for, from its --version text. Pure. */
export function toolVersionOf(text: string): string | null {
  return /server (\d+\.\d+\.\d+)/.exec(text)?.[1] ?? parseVersion(text);
}

/** The backup program must be the server's own major.minor: InnoDB's formats change between them. */
export function toolMismatch(
  toolVersionText: string | null,
  serverVersion: string,
  toolName = 'mariadb-backup',
): string | undefined {
  const minor = (v: string): string => /^(\d+\.\d+)/.exec(v)?.[1] ?? v;
  if (!toolVersionText) return undefined;
  return minor(toolVersionText) === minor(serverVersion)
    ? undefined
    : `${toolName} ${toolVersionText} does not match the server's ${serverVersion} (they must share major.minor)`;
}

/**
 * `backup physical`: mariadb-backup's xbstream (full, or the changes since the newest valid backup
 * of this server) through the write group into `physical/<name>/` of the binlog archive: from
 * mariadb-backup to the compressor by a kernel pipe (no byte through this process, no copy on local
 * disk), its LSNs and binlog position from the small files it also writes with --extra-lsndir;
 * `meta.json` last. Interrupted or failed, it leaves nothing.
 */
export async function backupPhysical(i: PhysicalBackupInput): Promise<PhysicalMetadata> {
  // Independent work side by side: a program start costs as much as a small backup. The
  // client-program layer runs `<tool> --version` once more for a TCP connection (its TLS options
  // depend on the banner) just before the backup starts: started here, beside the archive's reading,
  // it is cached by then. Measured on the loaded 2-core machine: 0.18-0.23 s that were on the
  // critical path of a backup over TCP (strace, execve to execve).
  const warm = (flavor: ServerFlavor): void =>
    void whichFirst(physicalTool(flavor).names).then((f) => f && versionBanner(f.path));
  // The program is looked for before the server says which one it needs: the one of the --db-type.
  const likely: ServerFlavor = binlogFlavor(i.engine.engine)?.id ?? 'mariadb';
  warm(likely);
  const finding = findPhysicalTool(likely);
  finding.catch(() => undefined); // judged below, after the server says which family it is
  let asked: Promise<ServerSide> | undefined;
  const ask = (): Promise<ServerSide> => (asked ??= serverSide(i.engine));
  // A full backup starts before the server is asked anything: loading the driver, connecting and
  // three queries took 45-60 ms on this machine (mysql2 alone 35 ms, which also holds up the event
  // loop), 2-3 % of a 2 s backup of 211 MB. The answers are judged while the program runs (judge);
  // nothing is kept until they pass.
  const [archive, early] = await Promise.all([
    prepareBinlogArchive(i.storage, { compression: i.compression, flags: i.flags }),
    i.incremental ? undefined : finding.catch(() => undefined),
  ]);
  if (early) {
    const done = await takeBackup(i, { flavor: likely, tool: early, archive, server: ask }).catch(
      (err: unknown) => {
        if (err instanceof OtherFlavor) return undefined; // then as below, with the server's own program
        throw err;
      },
    );
    if (done) return done;
  }
  const side = await ask();
  const flavor = side.facts.engine;
  if (flavor !== likely) warm(flavor);
  const tool = flavor === likely ? await finding : await findPhysicalTool(flavor, side.facts.server.version);
  let parent: PhysicalMetadata | undefined;
  if (i.incremental) {
    const entries = await readPhysicalBackups(i.storage);
    parent = newestValidOf(entries, side.facts.server.serverId)?.meta;
    if (!parent)
      throw new UsageError(
        `No valid physical backup of this server (server_id ${side.facts.server.serverId}) to take an incremental from`,
        'Take a full one first: dbbackup backup physical --archive …',
      );
  }
  return takeBackup(i, { flavor, tool, archive, server: ask, parent });
}

/** The server turned out to be of another family than the program started for it. */
class OtherFlavor extends Error {}

interface ServerSide {
  facts: BinlogServerFacts;
  serverOptions: Record<string, string>;
}

interface BackupPlan {
  flavor: ServerFlavor;
  tool: { name: string; path: string; version: string | null };
  archive: PreparedBinlogArchive;
  /** Asks the server (once): judged while the program runs. */
  server: () => Promise<ServerSide>;
  /** The backup an incremental starts from. */
  parent?: PhysicalMetadata;
}

/**
 * What the server said, judged (while the program already runs): its family is the one the program
 * is for, the program is of its version, and the archive is this server's (a new one gets its
 * archive.json now).
 */
async function judge(i: PhysicalBackupInput, o: BackupPlan): Promise<ServerSide> {
  const side = await o.server();
  const { facts } = side;
  if (facts.engine !== o.flavor) throw new OtherFlavor();
  const mismatch = toolMismatch(o.tool.version, facts.server.version, o.tool.name);
  if (mismatch)
    throw new MissingToolError(mismatch, { hint: physicalTool(o.flavor, facts.server.version).hint });
  if (!facts.logBin)
    i.onNote?.(
      'note: the server writes no binary log: this backup can be restored, but not rolled forward to a point in time',
    );
  const { identity } = await claimBinlogArchive(i.storage, o.archive, {
    engine: facts.engine,
    server: facts.server,
  });
  if (JSON.stringify(identity.compression) !== JSON.stringify(o.archive.compression))
    throw new SafetyError(
      `${i.storage.location} was created by another command at the same moment, with another compression`,
      { hint: "Run the backup again: it then uses the archive's compression." },
    );
  return side;
}

async function takeBackup(i: PhysicalBackupInput, o: BackupPlan): Promise<PhysicalMetadata> {
  const started = new Date();
  const name = await freeName(i.storage, started);
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'dbbackup-xb-'));
  // The small files that describe the backup (LSNs, binlog position) are also written here, so the
  // stream itself can go from mariadb-backup to the compressor by a kernel pipe, never through Node.
  const lsnDir = path.join(scratch, 'lsn');
  const built = physicalBackupCommand(o.flavor, { scratch, lsnDir, incrementalLsn: o.parent?.toLsn });
  const command = await i.engine.clientProgram(built.names, built.args, built.hint);
  const plan = await compressionFor(o.archive.compression.algorithm, o.archive.compression.level);
  const encrypted = o.archive.protectors.length > 0;
  const dataKey = `${physicalDir(name)}backup.xb${suffixOf({ compression: plan.algorithm, encrypted })}`;
  try {
    return await commitUnit([i.storage], { signal: i.signal }, async (commit) => {
      let completed = false;
      let refused: unknown;
      const produced = { bytes: 0 };
      const encryption = await encryptionFor(o.archive.protectors);
      const held: { group?: WriteGroup<EncryptionDescription>; proc?: ToolProcess } = {};
      // Unencrypted into a directory, zstd writes the file itself (see WriteGroupOptions.intoFile).
      // The program starts here, in the same tick as its group: its output must not wait unread.
      // A refusal stops the program at once; it is the error reported, not the program's "stopped".
      let judging: Promise<ServerSide> | undefined;
      const judgeNow = (): Promise<ServerSide> => {
        judging ??= judge(i, o).catch((err: unknown) => {
          refused = err;
          held.group?.abort();
          throw err;
        });
        judging.catch(() => undefined);
        return judging;
      };
      const start = (intoFile?: FileTarget): WriteGroup<EncryptionDescription> => {
        if (refused) throw refused;
        held.proc = new ToolProcess(command, ['ignore', 'pipe', 'pipe'], (line) => {
          if (/completed OK!/.test(line)) completed = true;
          return classifyBackupTool(line);
        });
        held.group = startWriteGroup<EncryptionDescription>({
          source: held.proc,
          compression: plan,
          encryption,
          intoFile,
          check: async () => {
            // Its last word, printed only once everything is written to its output.
            if (!completed)
              throw new IntegrityError(
                `${o.tool.name} exited without saying "completed OK!": the backup cannot be trusted`,
              );
          },
        });
        // Only now: the driver's loading holds up the event loop, and the programs are running.
        judgeNow();
        return held.group;
      };
      const progress = new Progress(
        i.progress,
        `physical backup ${name}`,
        {
          stored: () => held.group?.storedBytes() ?? 0,
          produced: () => (produced.bytes = processBytesWritten(held.proc?.child.pid) ?? produced.bytes),
        },
        () => null,
      );
      progress.start();
      const [put] = await Promise.allSettled([
        commit.put(dataKey, start, { metadata: { 'dbbackup-physical-backup': name } }),
      ]).finally(() => progress.stop());
      // Never started (the file could not be created): nothing ran that the server's answers could stop.
      if (!judging && put.status === 'rejected') throw put.reason;
      const [judged] = await Promise.allSettled([judgeNow()]);
      if (judged.status === 'rejected') throw judged.reason;
      if (put.status === 'rejected') throw put.reason;
      if (!held.group || !held.proc) throw new Error('the write group never started');
      const stored = held.group.result();
      await commit.verify(dataKey, stored.storedBytes);
      const meta = describe({
        name,
        facts: judged.value.facts,
        parent: o.parent,
        info: await readLsnDir(lsnDir, o.tool.name),
        serverOptions: judged.value.serverOptions,
        tool: o.tool,
        args: command.args,
        started,
        stored,
        dataKey,
        i,
        warnings: held.proc.warnings,
      });
      await commit.finish(physicalMetaKey(name), `${JSON.stringify(meta, null, 2)}\n`);
      return meta;
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The server's facts and the InnoDB settings a prepared copy of its files needs (what backup-my.cnf records). */
async function serverSide(engine: MysqlEngine): Promise<ServerSide> {
  const names = [
    'innodb_checksum_algorithm',
    'innodb_data_file_path',
    'innodb_log_file_size',
    'innodb_page_size',
    'innodb_undo_tablespaces',
    'innodb_compression_level',
  ];
  const conn = await engine.connect();
  try {
    const facts = await binlogServerFacts(conn);
    // SHOW VARIABLES, not SELECT @@…: a variable this server lacks (MySQL 8.0.14+ has no
    // innodb_undo_tablespaces) is left out instead of failing the query.
    const [rows] = await conn.query(
      `SHOW GLOBAL VARIABLES WHERE Variable_name IN (${names.map(() => '?').join(', ')})`,
      names,
    );
    return { facts, serverOptions: serverOptionsOf(rows as Array<Record<string, unknown>>) };
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** backup-my.cnf's settings from SHOW VARIABLES rows, as option names (innodb-page-size). Pure. */
export function serverOptionsOf(rows: ReadonlyArray<Record<string, unknown>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of rows) {
    const name = r.Variable_name;
    const value = r.Value;
    if (typeof name === 'string' && value !== null && value !== undefined && value !== '')
      out[name.replace(/_/g, '-')] = String(value as string | number);
  }
  return out;
}

/** xtrabackup_checkpoints and xtrabackup_info, as mariadb-backup wrote them with --extra-lsndir. */
async function readLsnDir(
  dir: string,
  tool: string,
): Promise<{ checkpoints: Record<string, string>; info: Record<string, string> }> {
  const read = async (f: string): Promise<Record<string, string>> => {
    const text = await readFile(path.join(dir, f), 'utf8').catch(() => {
      throw new IntegrityError(`${tool} wrote no ${f}: the backup cannot be described`);
    });
    return keyValues(text);
  };
  return { checkpoints: await read('xtrabackup_checkpoints'), info: await read('xtrabackup_info') };
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
  info: { checkpoints: Record<string, string>; info: Record<string, string> };
  serverOptions: Record<string, string>;
  tool: { name: string; version: string | null };
  args: string[];
  started: Date;
  stored: WriteResult<EncryptionDescription>;
  dataKey: string;
  i: PhysicalBackupInput;
  warnings: string[];
}): PhysicalMetadata {
  const checkpoints = o.info.checkpoints;
  const lsn = (k: string): string => {
    const v = checkpoints[k];
    if (!v || !/^\d+$/.test(v))
      throw new IntegrityError(`${o.tool.name}'s xtrabackup_checkpoints has no ${k}`, {
        hint: 'The backup is not one this dbbackup understands.',
      });
    return v;
  };
  const expectedType = o.parent ? 'incremental' : 'full-backuped';
  if (checkpoints.backup_type !== expectedType)
    throw new IntegrityError(
      `${o.tool.name} made a "${checkpoints.backup_type ?? '?'}" backup, not "${expectedType}"`,
    );
  const binlog = parseBinlogPos(o.info.info.binlog_pos ?? '');
  const warnings = [...o.warnings];
  if (o.facts.logBin && !binlog)
    warnings.push(`${o.tool.name} recorded no binlog position: this backup cannot be rolled forward`);
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
    serverOptions: o.serverOptions,
    backupTool: { name: o.tool.name, version: o.tool.version ?? 'unknown', args: redactArgs(o.args) },
    compression: o.stored.compression,
    encryption: o.stored.encryption,
    files: [
      {
        key: o.dataKey,
        role: 'xbstream',
        sizeBytes: o.stored.storedBytes,
        sha256: o.stored.storedSha256,
        rawBytes: null,
      },
    ],
    stream: null,
    sizeBytes: o.stored.storedBytes,
    startedAt: o.started.toISOString(),
    finishedAt: finished.toISOString(),
    durationSeconds: (finished.getTime() - o.started.getTime()) / 1000,
    warnings,
  };
}

/** xtrabackup_info's `binlog_pos = filename 'mysql-bin.000002', position '607', GTID of the last change '0-1-4'`. */
export function parseBinlogPos(text: string): { file: string; position: number; gtid: string } | null {
  const m = /filename '([^']+)', position '(\d+)'(?:, GTID of the last change '([^']*)')?/.exec(text);
  if (!m?.[1] || !m[2]) return null;
  return { file: m[1], position: Number(m[2]), gtid: m[3] ?? '' };
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
