import { chmod, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PhysicalMetadata } from '../../catalog/physical-backup.js';
import type { KeyUnlocker } from '../../crypto/index.js';
import type { ToolCommand } from '../../types.js';
import { serverFlavorOf } from '../../engines/flavor.js';
import { which, whichFirst } from '../../engines/tools.js';
import { DbBackupError, errorMessage, MissingToolError, SafetyError } from '../../errors.js';
import { ToolProcess } from '../../pipeline/process.js';
import type { Storage } from '../../storage/storage.js';
import { findPhysicalTool, physicalTool, toolMismatch } from '../../backup/physical.js';
import { giveTo, isRoot, type OsUser } from '../../os/user.js';
import { asUserCommand } from '../restore.js';
import { BINLOG_HINT } from './fetch.js';
import { readPhysicalFile } from './read.js';
import { checkBinlogsFor } from './verify-binlogs.js';
import { startMariadbd, type RunningServer } from './mariadbd.js';
import { nothingToReplay, replayBinlogs, type ReplayProgress, type ReplayTarget } from './replay.js';
import type { BinlogRestorePlan, PlannedRestore } from './restore-plan.js';
import { ExitCode } from '../../exit-codes.js';

/** The files `restore pitr` writes into a restored data directory besides the data. */
export const RESTORED_CNF = 'restored.cnf';

export interface ExecuteInput {
  storage: Storage;
  target: ReplayTarget;
  osUser: OsUser;
  port?: number;
  start: boolean;
  unlockers: () => Promise<readonly KeyUnlocker[]>;
  signal?: AbortSignal;
  onStep?: (line: string) => void;
  timeoutMs: number;
}

export interface PhysicalOutcome {
  dataDir: string;
  cnf: string;
  replay: ReplayProgress | null;
  server: { pid: number; port: number; socket: string } | null;
  seconds: number;
}

/** mariadb-binlog decoding stdin (`-`), in UTC (trap: --stop-datetime and friends read local time). */
export async function decoderCommand(extra: string[] = []): Promise<ToolCommand> {
  const found = await whichFirst(serverFlavorOf('mariadb').binlogTools);
  if (!found) throw new MissingToolError('mariadb-binlog was not found', { hint: BINLOG_HINT });
  return {
    file: found.path,
    args: ['--no-defaults', '--skip-gtid-strict-mode', ...extra, '-'],
    env: { ...process.env, TZ: 'UTC' },
    name: found.name,
  };
}

/**
 * The physical restore: each member of the chain is streamed (checksum verified on the way) into
 * mbstream as the server's user, the full backup prepared and every incremental applied, the
 * result moved into the empty data directory; a restored.cnf is written; binlogs are replayed into
 * a private instance (no network, no grants); with --start the server is started on its port.
 * On a failure or an interrupt everything it created is removed.
 */
export async function executePhysicalRestore(
  i: ExecuteInput,
  planned: PlannedRestore,
): Promise<PhysicalOutcome> {
  const { plan, chain, binlogs, from } = planned;
  if (plan.refusals.length) throw new SafetyError(`Restore refused: ${plan.refusals[0]}`);
  if (!plan.dataDir || !chain.length) throw new SafetyError('Restore refused: nothing to restore');
  const started = Date.now();
  const tools = await physicalTools(chain[0] as PhysicalMetadata);
  await checkBinlogsFor(i, binlogs, [{ what: 'the backup', from }]);
  const dir = plan.dataDir.path;
  const work = path.join(path.dirname(dir), `.${path.basename(dir)}.dbbackup-restore`);
  const created = !plan.dataDir.exists;
  const servers: RunningServer[] = [];
  try {
    await ownedDir(dir, i.osUser, plan.dataDir.exists);
    await rm(work, { recursive: true, force: true });
    await ownedDir(work, i.osUser, false);
    for (const [n, m] of chain.entries()) {
      const into = path.join(work, String(n));
      await ownedDir(into, i.osUser, false);
      await extract(i, m, into, tools.mbstream);
      i.onStep?.(`Extracted ${m.name} (${m.backupType}, sha256 verified while it streamed)`);
    }
    const full = path.join(work, '0');
    const defaults = `--defaults-file=${path.join(full, 'backup-my.cnf')}`;
    await runAs(i, tools.backup, [defaults, '--prepare', `--target-dir=${full}`]);
    for (let n = 1; n < chain.length; n++)
      await runAs(i, tools.backup, [
        defaults,
        '--prepare',
        `--target-dir=${full}`,
        `--incremental-dir=${path.join(work, String(n))}`,
      ]);
    i.onStep?.(
      `Prepared ${chain.length === 1 ? 'the full backup' : `the full backup and ${chain.length - 1} incremental(s)`}`,
    );
    // With a trailing separator: mariadb-backup appends innodb_undo_directory (./) to the data
    // directory as written, and would otherwise create "<dir>./" beside it.
    await runAs(i, tools.backup, [
      defaults,
      '--move-back',
      `--target-dir=${full}`,
      `--datadir=${dir}${path.sep}`,
    ]);
    await rm(work, { recursive: true, force: true });
    const cnf = await writeCnf(dir, chain.at(-1) as PhysicalMetadata, i, plan);
    let replay: ReplayProgress | null = null;
    if (binlogs.length && nothingToReplay(binlogs, from, i.target)) {
      replay = { applied: 0, skipped: 0, last: null, stoppedAt: null, reached: true };
      i.onStep?.(`Replayed 0 transaction(s): the ${binlogs.length} binlog(s) hold none after the backup`);
    } else if (binlogs.length) {
      const server = await startMariadbd({
        ...serverFiles(dir),
        cnf,
        socket: path.join(dir, 'replay.sock'),
        user: i.osUser,
        private: true,
        timeoutMs: i.timeoutMs,
        signal: i.signal,
      });
      servers.push(server);
      replay = await replayBinlogs({
        storage: i.storage,
        files: binlogs,
        from,
        target: i.target,
        decoder: await decoderCommand(),
        client: await clientCommand([
          '--no-defaults',
          `--socket=${server.socket}`,
          '--user=root',
          '--binary-mode',
        ]),
        unlockers: i.unlockers,
        signal: i.signal,
      });
      checkReached(i.target, replay, plan);
      await server.stop();
      servers.pop();
      i.onStep?.(`Replayed ${replay.applied} transaction(s) from ${binlogs.length} binlog(s)`);
    }
    let server: PhysicalOutcome['server'] = null;
    if (i.start && i.port !== undefined) {
      const s = await startMariadbd({
        ...serverFiles(dir),
        cnf,
        socket: serverFiles(dir).socket,
        user: i.osUser,
        private: false,
        timeoutMs: i.timeoutMs,
        signal: i.signal,
      });
      server = { pid: s.pid, port: i.port, socket: s.socket };
    }
    return { dataDir: dir, cnf, replay, server, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    for (const s of servers) await s.stop().catch(() => undefined);
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
    await removeRestored(dir, created);
    const what = created ? `${dir} was removed` : `the files written into ${dir} were removed`;
    if (i.signal?.aborted)
      throw new DbBackupError(`Interrupted; ${what}`, { exitCode: ExitCode.Interrupted });
    const e = err instanceof DbBackupError ? err : undefined;
    throw new DbBackupError(`${e ? e.message : `Restore failed: ${errorMessage(err)}`}; ${what}`, {
      exitCode: e?.exitCode ?? ExitCode.Failure,
      hint: e?.hint,
      details: e?.details,
      cause: err,
    });
  }
}

/** A replay that ended without reaching a target the plan said was covered is a failure, never a silent stop. */
export function checkReached(t: ReplayTarget, r: ReplayProgress, plan: BinlogRestorePlan): void {
  if (r.reached || t.kind === 'end') return;
  // A time target the archive covers by being current after it, with no event at or after it.
  if (t.kind === 'time' && /archive was current/.test(plan.coverage)) return;
  throw new SafetyError(`The binlogs ended before the target (${plan.target}) was reached`, {
    hint: `The last transaction replayed was ${r.last?.gtid ?? 'none'}; the archive may have changed since the plan.`,
  });
}

export function serverFiles(dir: string): { socket: string; pidFile: string; errorLog: string } {
  return {
    socket: path.join(dir, 'mysqld.sock'),
    pidFile: path.join(dir, 'mysqld.pid'),
    errorLog: path.join(dir, 'mysqld.err'),
  };
}

/** restored.cnf: what the restored server needs (the backup's InnoDB settings), in its data directory. */
async function writeCnf(
  dir: string,
  meta: PhysicalMetadata,
  i: ExecuteInput,
  plan: BinlogRestorePlan,
): Promise<string> {
  const f = serverFiles(dir);
  const lines = [
    `# Written by dbbackup restore pitr at ${new Date().toISOString()}: ${meta.name}, ${plan.target}`,
    `# Start: mariadbd --defaults-file=${path.join(dir, RESTORED_CNF)}${isRoot() ? ` --user=${i.osUser.name}` : ''}`,
    '[mysqld]',
    `datadir=${dir}`,
    `socket=${f.socket}`,
    `pid-file=${f.pidFile}`,
    `log-error=${f.errorLog}`,
    ...(i.port !== undefined ? [`port=${i.port}`, 'bind-address=127.0.0.1'] : ['skip-networking']),
    ...Object.entries(meta.serverOptions)
      .filter(([k]) => /^innodb[-_]/.test(k))
      .map(([k, v]) => `${k}=${v}`),
    '',
  ];
  const file = path.join(dir, RESTORED_CNF);
  await writeFile(file, lines.join('\n'), { mode: 0o644 });
  await giveTo(file, i.osUser);
  return file;
}

async function physicalTools(meta: PhysicalMetadata): Promise<{ backup: string; mbstream: string }> {
  const backup = await findPhysicalTool('mariadb');
  const mismatch = toolMismatch(backup.version, meta.server.version);
  if (mismatch)
    throw new MissingToolError(`${mismatch}: it cannot prepare this backup`, {
      hint: physicalTool('mariadb').hint,
    });
  const { extractor } = serverFlavorOf('mariadb');
  const mbstream = await which(extractor);
  if (!mbstream)
    throw new MissingToolError(`${extractor} was not found`, { hint: physicalTool('mariadb').hint });
  return { backup: backup.path, mbstream };
}

async function extract(i: ExecuteInput, m: PhysicalMetadata, into: string, mbstream: string): Promise<void> {
  for (const f of m.files) {
    const command = await asUserCommand(i.osUser, {
      file: mbstream,
      args: ['-x', '-C', into],
      env: process.env,
      name: 'mbstream',
    });
    await readPhysicalFile(
      i.storage,
      m,
      f,
      { kind: 'process', command, classify: () => 'error' },
      i.unlockers,
      i.signal,
    );
  }
}

/** mariadb-backup as the server's user; an interrupt stops it. */
async function runAs(i: ExecuteInput, file: string, args: string[]): Promise<void> {
  if (i.signal?.aborted) throw new DbBackupError('Interrupted', { exitCode: ExitCode.Interrupted });
  const cmd = await asUserCommand(i.osUser, { file, args, env: process.env, name: 'mariadb-backup' });
  let ok = false;
  const p = new ToolProcess(cmd, ['ignore', 'ignore', 'pipe'], (line) => {
    if (/completed OK!/.test(line)) ok = true;
    return /\[ERROR\]|^\s*Error:|FATAL ERROR/.test(line) ? 'error' : 'info';
  });
  const stop = (): void => p.kill();
  i.signal?.addEventListener('abort', stop);
  try {
    await p.done;
  } finally {
    i.signal?.removeEventListener('abort', stop);
  }
  if (!ok) throw new SafetyError(`mariadb-backup ${args[1] ?? ''} did not say "completed OK!"`);
}

/** The mariadb client (for replays into a server). */
export async function clientCommand(args: string[]): Promise<ToolCommand> {
  const found = await whichFirst(['mariadb', 'mysql']);
  if (!found)
    throw new MissingToolError('the mariadb client was not found', {
      hint: 'Install the MariaDB client programs (Debian: apt-get install mariadb-client).',
    });
  return { file: found.path, args, env: process.env, name: found.name };
}

/** A directory owned by the server's user, mode 0750 (emptied first when it existed and --force said so). */
async function ownedDir(dir: string, user: OsUser, existed: boolean): Promise<void> {
  if (existed)
    for (const n of await readdir(dir)) await rm(path.join(dir, n), { recursive: true, force: true });
  else await mkdir(dir, { recursive: true, mode: 0o750 });
  await chmod(dir, 0o750);
  await giveTo(dir, user);
  const s = await stat(dir);
  if (s.uid !== user.uid)
    throw new SafetyError(`${dir} belongs to uid ${s.uid}, not to ${user.name}`, {
      hint: `Run the restore as root or as ${user.name}, or give a directory ${user.name} owns.`,
    });
}

async function removeRestored(dir: string, created: boolean): Promise<void> {
  if (created) {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    return;
  }
  for (const n of await readdir(dir).catch(() => [] as string[]))
    await rm(path.join(dir, n), { recursive: true, force: true }).catch(() => undefined);
}
