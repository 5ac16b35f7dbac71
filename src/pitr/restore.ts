import { appendFile, chmod, chown, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BaseBackupMetadata } from '../catalog/base-backup.js';
import type { EncryptionFlags, KeyUnlocker } from '../crypto/index.js';
import type { ToolCommand } from '../types.js';
import { which } from '../engines/tools.js';
import {
  DbBackupError,
  errnoCode,
  errorMessage,
  IntegrityError,
  MissingToolError,
  SafetyError,
  UsageError,
} from '../errors.js';
import { runReadGroup } from '../pipeline/filter-group.js';
import type { Storage } from '../storage/storage.js';
import { isCloudUri } from '../storage/cloud-uri.js';
import { analyzeArchive, type ArchiveAnalysis, type BaseWindow } from './analysis.js';
import { applyDelta, finishChain } from './incremental/apply.js';
import {
  carriesDelta,
  checkedChain,
  describeChain,
  restoredFiles,
  type ChainMember,
} from './incremental/chain.js';
import type { ArchiveIdentity } from './archive.js';
import type { Divergence } from './chain.js';
import { restoreCommandFor, walCommandSpec, type WalCommandSpec } from './commands.js';
import { checkReachable, makeOwnedDir, probeAsServer } from './enable.js';
import type { TimelineChoice } from './inventory.js';
import { accessProblems, giveTo, isRoot, type OsUser } from '../os/user.js';
import { describeTarget, recoveryLines, type RecoveryTarget, type TargetAction } from './recovery.js';
import {
  linkTablespaces,
  missingParts,
  planTablespaces,
  prepareTablespaceDir,
  removeTablespaces,
  type TablespacePlan,
} from './tablespaces.js';
import { pathContains, describePath } from './timeline.js';
import { formatLsn, parseLsn, segmentNumber } from './wal-names.js';
import { ExitCode } from '../exit-codes.js';

export interface PitrRestoreInput {
  storage: Storage;
  /** The archive as restore_command will name it. */
  archive: string;
  identity: ArchiveIdentity;
  /** A base backup's name, or `latest`. */
  base: string;
  target: RecoveryTarget;
  timeline: TimelineChoice;
  /** The user chose the timeline (a fork then is not a reason to stop). */
  timelineExplicit: boolean;
  action: TargetAction;
  inclusive: boolean;
  dataDir: string;
  force: boolean;
  osUser: OsUser;
  keepArchiving: boolean;
  port?: number;
  /** Key options for restore_command (an identity or key file the server's user can read). */
  flags: EncryptionFlags;
  envFile?: string;
  prefetch?: { count: number; spoolDir: string };
  unlockers: () => Promise<readonly KeyUnlocker[]>;
  /** Tablespaces somewhere else than their original directory: OID or old directory → new directory. */
  tablespaceMap?: ReadonlyMap<string, string>;
  /** The checks before writing, when the caller started them already (startRestoreChecks). */
  checks?: RestoreChecks;
}

export interface PitrRestorePlan {
  archive: string;
  base: {
    name: string;
    finishedAt: string;
    timeline: number;
    startLsn: string;
    stopLsn: string;
    storedBytes: number;
    dataBytes: number;
    sha256: string;
    checksum: string;
  } | null;
  /**
   * The backups the restore reads, full first (one for a full alone), each with its objects and
   * their SHA-256, and whether they are there with their recorded sizes; the bytes to read.
   */
  chain?: { members: ChainMember[]; readBytes: number } | null;
  target: string;
  timelinePath: string | null;
  targetTimeline: number | null;
  coverage: string;
  window: { first: string; last: string | null; lastPushed: string | null } | null;
  divergences: Array<Divergence & { switchAt: string }>;
  dataDir: { path: string; exists: boolean; entries: number; owner: string };
  restoreCommand: string;
  config: string[];
  /** Tablespaces outside the data directory, and where each one goes. */
  tablespaces?: TablespacePlan[];
  /** Reasons the restore is refused; empty: it may proceed. */
  refusals: string[];
  warnings: string[];
}

/** Everything decided before a byte is written: the dry run. */
export async function planPitrRestore(
  i: PitrRestoreInput,
): Promise<{ plan: PitrRestorePlan; chosen?: BaseWindow }> {
  // Independent reads side by side (the data directory, the archive), their errors in this order.
  const dirRead = dataDirState(i.dataDir);
  dirRead.catch(() => undefined); // awaited below
  const analysis = await analyzeArchive(i.storage, i.identity, i.timeline, i.unlockers);
  const refusals: string[] = [];
  const warnings: string[] = [];
  const chosen = chooseBase(analysis, i, refusals);
  const spec = restoreSpec(i);
  const restoreCommand = restoreCommandFor(spec);
  const dir = await dirRead;
  if (dir.entries > 0 && !i.force)
    refusals.push(
      `${i.dataDir} is not empty (${dir.entries} entries): give an empty or new directory, or --force to replace its contents`,
    );
  if (dir.running) refusals.push(`a server is running in ${i.dataDir} (postmaster.pid): stop it first`);
  let tablespaces: TablespacePlan[] = [];
  // Both stat the backup's objects (network round trips in a bucket): side by side.
  const chainRead = chosen?.meta ? describeChain(i.storage, chosen.meta) : undefined;
  chainRead?.catch(() => undefined); // awaited below
  if (chosen?.meta) {
    for (const m of await missingParts(i.storage, chosen.meta))
      refusals.push(`base backup ${chosen.name} is not whole: ${m}`);
    tablespaces = await planTablespaces(chosen.meta, i.tablespaceMap ?? new Map(), i.dataDir, refusals);
  } else if (i.tablespaceMap?.size) refusals.push('--tablespace-map: no base backup chosen');
  const chain = await chainRead;
  if (chosen?.meta?.parent && chain?.problem)
    refusals.push(
      `base backup ${chosen.name} (${chosen.meta.backupType}) cannot be restored: ${chain.problem}`,
    );
  let coverage = 'not checked';
  let window: PitrRestorePlan['window'] = null;
  const divergences = (chosen?.divergences ?? []).map((d) => ({ ...d, switchAt: formatLsn(d.switchLsn) }));
  if (chosen?.meta && chosen.window) {
    const w = chosen.window;
    window = { first: w.first, last: w.last, lastPushed: w.segments.at(-1)?.modified.toISOString() ?? null };
    if (chosen.state === 'wal-missing') refusals.push(`base backup ${chosen.name} is ${chosen.detail}`);
    const c = coverageOf(i.target, chosen, i.identity.walSegmentSize);
    coverage = c.detail;
    if (!c.covered) refusals.push(c.detail);
    if (divergences.length && !i.timelineExplicit)
      refusals.push(
        `the archive forks: ${divergences.map((d) => `timeline ${d.timeline} went on archiving (up to ${d.parentNewest}) after timeline ${d.child} branched from it at ${d.switchAt}`).join('; ')}; choose with --target-timeline (latest follows timeline ${chosen.targetTimeline ?? '?'}, ${divergences[0]?.timeline ?? '?'} stays on the older branch)`,
      );
  }
  if (i.keepArchiving)
    warnings.push(
      '--keep-archiving: the restored server will archive into the archive its configuration names (a new timeline)',
    );
  if (isCloudUri(i.archive) && !i.envFile)
    warnings.push(
      "restore_command runs with the server's environment: give --env-file unless it holds the cloud credentials",
    );
  const header = `Added by dbbackup restore pitr at ${new Date().toISOString()}: base ${chosen?.name ?? '?'}, target ${describeTarget(i.target)}`;
  const config = recoveryLines(
    {
      restoreCommand,
      target: i.target,
      timeline: i.timeline,
      action: i.action,
      inclusive: i.inclusive,
      keepArchiving: i.keepArchiving,
      port: i.port,
    },
    header,
  );
  const data = chosen?.meta ? restoredFiles(chosen.meta)[0] : undefined;
  const plan: PitrRestorePlan = {
    archive: i.storage.location,
    base: chosen?.meta
      ? {
          name: chosen.name,
          finishedAt: chosen.meta.finishedAt,
          timeline: chosen.meta.timeline,
          startLsn: chosen.meta.startLsn,
          stopLsn: chosen.meta.stopLsn,
          storedBytes: chosen.meta.sizeBytes,
          dataBytes: chosen.meta.manifest.bytes,
          sha256: data?.sha256 ?? '',
          checksum: chosen.meta.parent
            ? 'SHA-256 of every backup of the chain verified while it streams in; a mismatch removes what was written'
            : 'SHA-256 verified while it streams in; a mismatch removes what was written',
        }
      : null,
    chain: chain ? { members: chain.members, readBytes: chain.readBytes } : null,
    target: describeTarget(i.target),
    timelinePath: chosen?.path ? describePath(chosen.path) : null,
    targetTimeline: chosen?.targetTimeline ?? null,
    coverage,
    window,
    divergences,
    dataDir: {
      path: path.resolve(i.dataDir),
      exists: dir.exists,
      entries: dir.entries,
      owner: i.osUser.name,
    },
    restoreCommand,
    config,
    tablespaces,
    refusals,
    warnings,
  };
  return { plan, chosen };
}

/** restore_command's parts: this installation, the archive, the decrypt options (absolute paths). */
export function restoreSpec(
  i: Pick<PitrRestoreInput, 'archive' | 'flags' | 'envFile' | 'prefetch'>,
): WalCommandSpec {
  return walCommandSpec(
    {
      archive: i.archive,
      flags: i.flags,
      envFile: i.envFile,
      spoolDir: i.prefetch?.spoolDir,
      prefetch: i.prefetch?.count,
    },
    'fetch',
  );
}

function chooseBase(a: ArchiveAnalysis, i: PitrRestoreInput, refusals: string[]): BaseWindow | undefined {
  const valid = a.bases.filter((b) => b.meta && b.state !== 'incomplete' && b.state !== 'corrupt');
  if (i.base !== 'latest') {
    const named = a.bases.find((b) => b.name === i.base);
    if (!named) {
      refusals.push(
        `no base backup named ${i.base} in the archive (${a.bases.map((b) => b.name).join(', ') || 'none'})`,
      );
      return undefined;
    }
    if (!named.meta) refusals.push(`base backup ${named.name} is ${named.state}: ${named.detail}`);
    else if (!onPath(named)) refusals.push(`base backup ${named.name}: ${named.detail}`);
    else if (!beforeTarget(named.meta, i.target))
      refusals.push(
        `base backup ${named.name} ends after the target: recovery cannot stop before a base backup's end`,
      );
    return named;
  }
  const candidates = valid.filter((b) => onPath(b) && b.meta && beforeTarget(b.meta, i.target));
  const chosen = candidates
    .sort((x, y) => (x.meta?.finishedAt ?? '').localeCompare(y.meta?.finishedAt ?? ''))
    .at(-1);
  if (!chosen)
    refusals.push(
      valid.length
        ? `no base backup ends before ${describeTarget(i.target)} on timeline path ${String(i.timeline)}`
        : 'the archive holds no finished base backup: run "dbbackup backup base" first',
    );
  return chosen;
}

function onPath(b: BaseWindow): boolean {
  const start = b.meta ? parseLsn(b.meta.startLsn) : undefined;
  return Boolean(b.path && b.meta && start !== undefined && pathContains(b.path, b.meta.timeline, start));
}

function beforeTarget(meta: BaseBackupMetadata, t: RecoveryTarget): boolean {
  if (t.kind === 'time') return new Date(meta.finishedAt) <= t.time;
  if (t.kind === 'lsn') return (parseLsn(meta.stopLsn) ?? 0n) <= t.lsn;
  return true;
}

/**
 * A stored time with whole seconds, in the second before `target`: a store that keeps object times
 * to the second (S3's and Azure's listings) may have cut off the part after the target. Pure.
 */
function withinItsSecond(stored: Date, target: Date): boolean {
  const ahead = target.getTime() - stored.getTime();
  return stored.getUTCMilliseconds() === 0 && ahead > 0 && ahead < 1000;
}

/** Whether the archive holds the WAL up to the target, from a listing (push times and names). */
export function coverageOf(
  t: RecoveryTarget,
  b: BaseWindow,
  segSize: number,
): { covered: boolean; detail: string } {
  const w = b.window;
  if (!w || !b.meta) return { covered: false, detail: 'no WAL window' };
  const lastName = w.last;
  const gap = w.gap ? ` (${w.gap.missing} is missing; the archive resumes at ${w.gap.resumesAt})` : '';
  const stopSeg = segmentNumber(b.meta.stopSegment, segSize);
  const lastSeg = lastName ? segmentNumber(lastName, segSize) : -1n;
  if (lastSeg < stopSeg)
    return {
      covered: false,
      detail: `the WAL up to the base backup's end (${b.meta.stopSegment}) is not all in the archive${gap}`,
    };
  switch (t.kind) {
    case 'immediate':
      return {
        covered: true,
        detail: `covered: the base backup's own WAL (${b.meta.startSegment} … ${b.meta.stopSegment}) is archived`,
      };
    case 'end':
      if (w.gap)
        return {
          covered: false,
          detail: `recovery to the end of the archive would stop at a gap after ${lastName}${gap}: refused (give a target before it)`,
        };
      return {
        covered: true,
        detail: `to the end of the archive: through ${lastName}, pushed ${w.segments.at(-1)?.modified.toISOString() ?? '?'}`,
      };
    case 'time': {
      const hit = w.segments.find((s) => s.modified >= t.time);
      if (hit)
        return {
          covered: true,
          detail: `covered: ${hit.file.name} was archived at ${hit.modified.toISOString()}, after the target`,
        };
      const newestAt = w.segments.at(-1)?.modified;
      const newest = newestAt?.toISOString() ?? '?';
      if (!w.gap && newestAt && withinItsSecond(newestAt, t.time))
        return {
          covered: false,
          detail: `the archive's newest WAL on this path (${lastName}) was archived at ${newest}, in the same second as ${t.text}, and its time has whole seconds (as S3's and Azure's listings give them): whether it comes after the target cannot be told; archive one more segment (on the server: SELECT pg_switch_wal()) and try again`,
        };
      return {
        covered: false,
        detail: w.gap
          ? `the WAL of ${t.text} lies beyond a gap after ${lastName}${gap}: refused`
          : `the archive ends before ${t.text}: its newest WAL on this path was archived at ${newest} (on the server, SELECT pg_switch_wal() archives the current segment; archive_timeout does it regularly)`,
      };
    }
    case 'lsn': {
      const end = (lastSeg + 1n) * BigInt(segSize);
      if (end > t.lsn)
        return { covered: true, detail: `covered: the archive holds WAL up to ${formatLsn(end)}` };
      return {
        covered: false,
        detail: `the archive ends at ${formatLsn(end)}, before ${formatLsn(t.lsn)}${gap}`,
      };
    }
    default:
      return {
        covered: true,
        detail: `cannot be checked from the archive (WAL through ${lastName}${w.gap ? `, then a gap${gap}` : ''}); if the target is not reached, recovery stops with an error and nothing is promoted`,
      };
  }
}

async function dataDirState(dir: string): Promise<{ exists: boolean; entries: number; running: boolean }> {
  const names = await readdir(dir).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return undefined;
    if (errnoCode(err) === 'ENOTDIR') throw new UsageError(`--data-dir ${dir} is not a directory`);
    throw err;
  });
  if (!names) return { exists: false, entries: 0, running: false };
  return { exists: true, entries: names.length, running: names.includes('postmaster.pid') };
}

export interface RestoreOutcome {
  dataDir: string;
  seconds: number;
  storedBytes: number;
}

/** The checks of a restore before a byte is written: `ready` gives tar's path, `probe` settles after it. */
export interface RestoreChecks {
  ready: Promise<string>;
  probe: Promise<unknown>;
}

/**
 * Starts the checks of a restore that write nothing into the data directory: restore_command's
 * paths reachable by the server's user, tar, the data directory's parent, then the restore command
 * itself run as the server's user (`wal probe fetch`, a second Node process: 0.2 s of CPU). The
 * probe needs no data directory (every path in the command is absolute): it runs from the parent
 * directory, which the server's user can enter (checked first). executePitrRestore awaits them in
 * this order; `restore pitr --confirm` starts them beside its plan (issue 13: they ran after it),
 * unless --prefetch's spool must be created first. Rejections surface where they are awaited.
 */
export function startRestoreChecks(i: PitrRestoreInput): RestoreChecks {
  const spec = restoreSpec(i);
  const dir = path.resolve(i.dataDir);
  const ready = (async () => {
    if (spec.spoolDir) await makeOwnedDir(spec.spoolDir, i.osUser);
    // restore_command runs as the server's user: it must reach Node, dbbackup, the keys, the archive.
    await checkReachable(i.osUser, spec, { flags: i.flags, archive: i.archive }, 'read-dir');
    const tar = await which('tar');
    if (!tar) throw new MissingToolError('tar was not found', { hint: 'Install GNU tar.' });
    const blocked = await accessProblems(i.osUser, path.dirname(dir), 'execute');
    if (blocked.length)
      throw new SafetyError(`The server's user ${i.osUser.name} could not reach ${dir}`, {
        details: blocked,
        hint: `Restore under a directory ${i.osUser.name} can enter (create the parent first, owned by ${i.osUser.name}).`,
      });
    return tar;
  })();
  const probe = ready.then(() => probeAsServer(i.osUser, spec, path.dirname(dir), 'fetch'));
  ready.catch(() => undefined); // both are awaited by executePitrRestore, or dropped with a refused plan
  probe.catch(() => undefined);
  return { ready, probe };
}

/**
 * Restores the planned base backup into the data directory as the server's user, writes
 * recovery.signal and the recovery settings. On a failure or an interrupt, it removes what it
 * wrote (the whole directory when it created it) before reporting.
 */
export async function executePitrRestore(
  i: PitrRestoreInput,
  plan: PitrRestorePlan,
  chosen: BaseWindow,
  signal?: AbortSignal,
): Promise<RestoreOutcome> {
  if (plan.refusals.length) throw new SafetyError(`Restore refused: ${plan.refusals[0]}`);
  const meta = chosen.meta;
  if (!meta) throw new SafetyError('Restore refused: no base backup');
  const checks = i.checks ?? startRestoreChecks(i);
  const tar = await checks.ready;
  const started = Date.now();
  const dir = path.resolve(i.dataDir);
  // The chain's proof (every parent's SHA-256, read whole) runs beside the restore command's probe
  // (a Node process as the server's user), which `restore pitr --confirm` started beside its plan.
  const proof = checkedChain(i.storage, meta);
  proof.catch(() => undefined); // awaited first below; no unhandled rejection while the probe runs
  const chain = await proof;
  const full = chain[0] ?? meta;
  const created = await prepareDataDir(dir, i.osUser, plan.dataDir.exists);
  // The probe is not waited for before the extraction (it was 0.2-0.3 s of a 3.9 s restore of the
  // scale-50 bench cluster on a quiet machine, all of it on the critical path): it settles while
  // the tar streams in. A failing probe stops the extraction at once, and what was written is
  // removed as after any failure, before the probe's error is reported.
  const work = new AbortController();
  const stop = (): void => work.abort();
  if (signal?.aborted) stop();
  signal?.addEventListener('abort', stop, { once: true });
  let probeFailure: unknown;
  checks.probe.catch((err: unknown) => {
    probeFailure = err;
    stop();
  });
  const spaces = plan.tablespaces ?? [];
  try {
    for (const t of spaces) await prepareTablespaceDir(t, i.osUser);
    // The data directory's tar, then each tablespace's (its role is its OID).
    for (const f of full.files.filter((x) => x.role === 'base' || /^[0-9]+$/.test(x.role))) {
      const into = f.role === 'base' ? dir : spaces.find((t) => t.oid === f.role)?.to;
      if (!into) throw new SafetyError(`${f.key}: no place planned for a part with role ${f.role}`);
      await blame(chain, full, extractPart(i, full, f, into, tar, work.signal));
    }
    // An incremental or differential (or a full read by dbbackup): its deltas in chain order, streamed.
    for (const m of chain.filter(carriesDelta))
      await blame(
        chain,
        m,
        applyDelta({
          dir,
          storage: i.storage,
          meta: m,
          user: i.osUser,
          unlockers: i.unlockers,
          signal: work.signal,
        }),
      );
    await checks.probe;
    if (carriesDelta(meta)) await finishChain(dir, meta, i.osUser);
    if (signal?.aborted) throw new DbBackupError('Interrupted', { exitCode: ExitCode.Interrupted });
    await linkTablespaces(dir, spaces, i.osUser);
    await writeRecoveryFiles(dir, plan.config, i.osUser);
  } catch (caught) {
    // The extraction stopped for a failing probe fails as interrupted: the probe's error is the cause.
    const err = probeFailure !== undefined && !signal?.aborted ? probeFailure : caught;
    await removeRestored(dir, created);
    await removeTablespaces(spaces);
    const interrupted =
      signal?.aborted || (err instanceof DbBackupError && err.exitCode === ExitCode.Interrupted);
    const what = created ? `${dir} was removed` : `the files written into ${dir} were removed`;
    if (interrupted) throw new DbBackupError(`Interrupted; ${what}`, { exitCode: ExitCode.Interrupted });
    if (err instanceof DbBackupError)
      throw new DbBackupError(`${err.message}; ${what}`, {
        exitCode: err.exitCode,
        hint: err.hint,
        details: err.details,
        cause: err,
      });
    throw new DbBackupError(`Restore failed: ${errorMessage(err)}; ${what}`, { cause: err });
  } finally {
    signal?.removeEventListener('abort', stop);
  }
  return { dataDir: dir, seconds: (Date.now() - started) / 1000, storedBytes: meta.sizeBytes };
}

/**
 * A damaged backup of a chain (a checksum mismatch or a damaged stream while it streams in) is
 * named: `parent <full> is corrupt: …`, as verify-backup says it.
 */
async function blame<T>(chain: BaseBackupMetadata[], m: BaseBackupMetadata, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (chain.length < 2 || !(err instanceof IntegrityError)) throw err;
    const who = m === chain.at(-1) ? m.name : `parent ${m.name}`;
    throw new IntegrityError(`${who} is corrupt: ${err.message}`, {
      hint: err.hint,
      exitCode: err.exitCode,
      cause: err,
    });
  }
}

/** One stored tar, its SHA-256 checked as it streams in, extracted into `into` as the server's user. */
async function extractPart(
  i: PitrRestoreInput,
  meta: BaseBackupMetadata,
  f: BaseBackupMetadata['files'][number],
  into: string,
  tar: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  await runReadGroup({
    source: await i.storage.get(f.key),
    expected: { sha256: f.sha256, bytes: f.sizeBytes },
    decrypt: meta.encryption
      ? (await import('../crypto/index.js')).createDecryptStream(await i.unlockers())
      : undefined,
    compression: meta.compression.algorithm,
    sink: {
      kind: 'process',
      command: await asUserCommand(i.osUser, {
        file: tar,
        args: ['-x', '-f', '-', '-C', into],
        env: { ...process.env, LC_ALL: 'C' },
        name: 'tar',
      }),
      classify: () => 'error',
    },
    signal,
  });
}

/** The data directory, empty, mode 0700, owned by the server's user; true when this call created it. */
async function prepareDataDir(dir: string, user: OsUser, existed: boolean): Promise<boolean> {
  if (existed) {
    for (const name of await readdir(dir)) await rm(path.join(dir, name), { recursive: true, force: true });
  } else await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  await giveTo(dir, user);
  const s = await stat(dir);
  if (s.uid !== user.uid)
    throw new SafetyError(`${dir} belongs to uid ${s.uid}, not to ${user.name}`, {
      hint: `Run the restore as root or as ${user.name}, or give a directory ${user.name} owns.`,
    });
  return !existed;
}

async function removeRestored(dir: string, created: boolean): Promise<void> {
  if (created) {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    return;
  }
  for (const name of await readdir(dir).catch(() => [] as string[]))
    await rm(path.join(dir, name), { recursive: true, force: true }).catch(() => undefined);
}

/** A program run as the server's user: through setpriv when this process is root. */
export async function asUserCommand(user: OsUser, cmd: ToolCommand): Promise<ToolCommand> {
  if (!isRoot() || user.uid === 0) return cmd;
  const setpriv = await which('setpriv');
  if (!setpriv)
    throw new MissingToolError('setpriv was not found (util-linux)', {
      hint: `Run the restore as ${user.name}, or install util-linux.`,
    });
  return {
    ...cmd,
    file: setpriv,
    args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', cmd.file, ...cmd.args],
  };
}

async function writeRecoveryFiles(dir: string, lines: string[], user: OsUser): Promise<void> {
  const signalFile = path.join(dir, 'recovery.signal');
  await writeFile(signalFile, '', { mode: 0o600 });
  const auto = path.join(dir, 'postgresql.auto.conf');
  await appendFile(auto, `\n${lines.join('\n')}\n`, { mode: 0o600 });
  if (isRoot()) for (const f of [signalFile, auto]) await chown(f, user.uid, user.gid);
}
