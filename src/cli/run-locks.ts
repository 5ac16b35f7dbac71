import type { Command } from 'commander';
import { log } from '../log/logger.js';
import { configureRunLocks, defaultLockDir, takeRunLocks, type RunLockTarget } from '../locks/run-lock.js';
import {
  backupTarget,
  cleanupTarget,
  dataDirTarget,
  destinationKey,
  restoreTarget,
} from '../locks/targets.js';
import { currentOperation } from '../ops/operation.js';
import { backupDir, backupDirGiven, cloudUri, commandPath, globals, type GlobalOptions } from './context.js';
import { parseInteger } from './numbers.js';

/**
 * Which run locks each command takes before its action (src/locks/run-lock.ts). Restores and
 * drills take theirs later, once they know their target (the database a backup restores into,
 * the backup a drill proves): see lockRestoreTargets and src/drill/.
 */

interface LockContext {
  cmd: Command;
  g: GlobalOptions;
  /** The server as configured, `host:port`. */
  server: string;
}

type Targets = (c: LockContext) => RunLockTarget[];

function option(cmd: Command, name: string): string | undefined {
  const v: unknown = cmd.getOptionValue(name);
  return typeof v === 'string' ? v : undefined;
}

/** Where a backup command writes: the directory, the URI, or both (as backupStores decides). */
function backupDestinations(c: LockContext): string[] {
  const cloud = cloudUri(c.g, option(c.cmd, 'cloud'));
  const local = !cloud || backupDirGiven(c.g) ? backupDir(c.g) : undefined;
  return [local, cloud].filter((d): d is string => Boolean(d)).map(destinationKey);
}

/** The retention options of `backup single`: with any of them, it also cleans up its destinations. */
function hasRetention(cmd: Command): boolean {
  return cmd.options.some(
    (o) =>
      /^(keep|retention|minBackups)/.test(o.attributeName()) && cmd.getOptionValue(o.attributeName()) != null,
  );
}

const singleBackup: Targets = (c) => {
  const database = c.cmd.args[0] ?? '';
  const destinations = backupDestinations(c);
  return [
    ...destinations.map((d) => backupTarget(database, c.server, d)),
    // Retention afterwards deletes in the same places a cleanup would.
    ...(hasRetention(c.cmd) ? destinations.map(cleanupTarget) : []),
  ];
};

/** An archive command's destination: --archive, else what the command finds (the server's own setting). */
const archiveBackup: Targets = (c) => {
  const archive = option(c.cmd, 'archive');
  return [backupTarget('*', c.server, archive ? destinationKey(archive) : '(its archive)')];
};

export const LOCKED: Readonly<Record<string, Targets>> = {
  'backup single': singleBackup,
  'backup sample': singleBackup,
  'backup cluster': (c) => backupDestinations(c).map((d) => backupTarget('*', c.server, d)),
  'backup base': archiveBackup,
  'backup physical': archiveBackup,
  cleanup: (c) => {
    const where = option(c.cmd, 'archive') ?? c.cmd.args[0];
    return where ? [cleanupTarget(destinationKey(where))] : [];
  },
  // A PostgreSQL PITR restore fills a data directory; a MariaDB one replays into the server.
  'restore pitr': (c) => {
    const dir = option(c.cmd, 'dataDir');
    return [dir ? dataDirTarget(dir) : restoreTarget(c.server, '*')];
  },
};

interface LockOptions {
  waitLock?: string;
}

/**
 * preAction, after the operation began: the run-lock settings for this command, then the locks of
 * the commands in LOCKED. Dry runs (no --confirm, --dry-run) change nothing and take no lock.
 */
export async function lockRun(action: Command, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const o = action.optsWithGlobals<LockOptions>();
  const seconds =
    o.waitLock !== undefined
      ? parseInteger('--wait-lock', o.waitLock, { min: 0, max: 86_400 })
      : env.DBBACKUP_WAIT_LOCK !== undefined
        ? parseInteger('DBBACKUP_WAIT_LOCK', env.DBBACKUP_WAIT_LOCK, { min: 0, max: 86_400 })
        : 0;
  const command = commandPath(action);
  configureRunLocks({
    dir: defaultLockDir(env),
    waitMs: seconds * 1000,
    command,
    onStale: (holder, target) =>
      log.warn(
        `took over the lock for the ${target.description}: it was left by process ${holder.pid}${holder.command ? ` ("${holder.command}")` : ''}, started ${holder.since}, which is gone (killed or crashed); what it was doing may have been left unfinished`,
      ),
  });
  const targets = LOCKED[command];
  const operation = currentOperation();
  if (!targets || operation?.dryRun) return;
  await takeRunLocks(targets({ cmd: action, g: globals(action), server: operation?.server ?? '-' }));
}
