import { chown, open, stat } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import type { EncryptionFlags } from '../crypto/index.js';
import { findPgTool } from '../engines/tools.js';
import { errorMessage, SafetyError, UsageError } from '../errors.js';
import { readAll, type Storage } from '../storage/storage.js';
import { commitUnit } from '../catalog/commit.js';
import { isCloudUri } from '../storage/cloud-uri.js';
import { makeDirs } from '../storage/local/local.js';
import {
  ARCHIVE_FILE,
  describeArchiveEncryption,
  newIdentity,
  readIdentity,
  sameProtections,
  writeIdentity,
  type ArchiveIdentity,
  type ArchiveProtection,
} from './archive.js';
import {
  archiveCommandFor,
  commandOption,
  isDbbackupArchiveCommand,
  walCommandSpec,
  type WalCommandSpec,
} from './commands.js';
import { accessProblems, canActAs, giveTo, isRoot, ownerOf, runAsUser, type OsUser } from '../os/user.js';
import { applySettings, autoConfValues, currentWalFile, serverFacts, type ServerFacts } from './server.js';
import { archiveProtectors } from './wal-keys.js';

/** What `pitr enable` changed, kept in the archive so that `pitr disable` undoes exactly that. */
export const ENABLE_RECORD = 'pitr-enable.json';

export interface EnableInput {
  client: pg.Client;
  /** The archive as the user gave it (a directory path is made absolute). */
  archive: string;
  storage: Storage;
  flags: EncryptionFlags;
  envFile?: string;
  compression: ArchiveIdentity['compression'];
  /** Async push through this spool directory. */
  spoolDir?: string;
  asyncPush?: boolean;
}

export interface EnableReport {
  identity: ArchiveIdentity;
  created: boolean;
  serverUser: OsUser;
  archiveCommand: string;
  /** Settings changed: name → [before, after]. */
  changed: Record<string, [string, string]>;
  restartNeeded: string[];
  /** How the command was tried as the server's user, or why it could not be. */
  check: string;
  warnings: string[];
  dataDirectory: string;
}

const SETTINGS = ['wal_level', 'archive_mode', 'archive_command', 'archive_library'];

/**
 * Sets a server up for continuous archiving into `archive`: records the archive's identity, checks
 * that the archive command works as the server's OS user with the server's environment (before
 * the server is told to use it), then sets wal_level, archive_mode and archive_command with
 * ALTER SYSTEM. It never restarts the server; it says when a restart is needed.
 */
export async function enablePitr(o: EnableInput): Promise<EnableReport> {
  const facts = await serverFacts(o.client, 'pitr');
  if (!facts.superuser)
    throw new UsageError(
      'pitr enable needs a superuser connection (ALTER SYSTEM)',
      'Connect as postgres: --user postgres.',
    );
  if (facts.inRecovery)
    throw new UsageError('The server is in recovery (a standby)', 'Enable archiving on the primary.');
  const serverUser = await dataDirectoryOwner(facts.dataDirectory);
  const warnings: string[] = [];
  const { protections } = await archiveProtectors(o.flags);
  if (o.flags.encryptionKeyEnv)
    warnings.push(
      `--encryption-key-env ${o.flags.encryptionKeyEnv}: archive_command reads this variable from the server's environment, which must then hold it`,
    );
  const { identity, created } = await archiveIdentity(o, facts, protections);
  if (created && !isCloudUri(o.archive) && isRoot()) await giveLocalArchive(o.archive, serverUser);
  if (isCloudUri(o.archive) && /[?&](key|sas|sig|secret_key|secretKey)=/i.test(o.archive))
    warnings.push(
      'The archive URI holds a secret: archive_command shows it to superusers; prefer --env-file',
    );

  const spec = walCommandSpec(o, 'push');
  const command = archiveCommandFor(spec);
  if (spec.spoolDir) await makeOwnedDir(spec.spoolDir, serverUser);
  await checkReachable(serverUser, spec, o);
  const check = await probeAsServer(serverUser, spec, facts.dataDirectory, 'push');

  const before = await autoConfValues(o.client, SETTINGS);
  const wanted: Record<string, string | null> = { archive_command: command };
  if (facts.settings.wal_level === 'minimal') wanted.wal_level = 'replica';
  if (facts.settings.archive_mode === 'off') wanted.archive_mode = 'on';
  if (facts.settings.archive_library) wanted.archive_library = '';
  await recordBefore(o.storage, facts, before, Object.keys(wanted));
  const restartNeeded = await applySettings(o.client, wanted);
  const changed: Record<string, [string, string]> = {};
  for (const [name, value] of Object.entries(wanted))
    changed[name] = [
      name === 'archive_command' ? facts.settings.archive_command : facts.settings[name as 'wal_level'],
      value ?? '',
    ];
  return {
    identity,
    created,
    serverUser,
    archiveCommand: command,
    changed,
    restartNeeded,
    check,
    warnings,
    dataDirectory: facts.dataDirectory,
  };
}

async function dataDirectoryOwner(dataDirectory: string): Promise<OsUser> {
  try {
    return await ownerOf(dataDirectory);
  } catch (err) {
    throw new UsageError(
      `The server's data directory ${dataDirectory} is not visible here (${errorMessage(err)})`,
      'Run "dbbackup pitr enable" on the database server\'s host: archive_command runs there, as the server\'s OS user.',
    );
  }
}

/** The archive's identity: created for this cluster, or the existing one checked against it. */
async function archiveIdentity(
  o: EnableInput,
  facts: ServerFacts,
  protections: ArchiveProtection[],
): Promise<{ identity: ArchiveIdentity; created: boolean }> {
  const existing = await readIdentity(o.storage);
  if (existing) {
    const problems: string[] = [];
    if (existing.systemIdentifier !== facts.systemIdentifier)
      problems.push(
        `it belongs to the cluster with system identifier ${existing.systemIdentifier}, this server is ${facts.systemIdentifier}`,
      );
    if (existing.walSegmentSize !== facts.walSegmentSize)
      problems.push(
        `its segments are ${existing.walSegmentSize} bytes, this server's ${facts.walSegmentSize}`,
      );
    if (existing.pgMajor !== facts.major)
      problems.push(`it holds PostgreSQL ${existing.pgMajor} WAL, this server is ${facts.major}`);
    if (!sameProtections(existing.encryption?.protections ?? [], protections))
      problems.push(
        `it is ${describeArchiveEncryption(existing)}, the options given say ${describeArchiveEncryption({ encryption: protections.length ? { protections } : null })}`,
      );
    if (problems.length)
      throw new SafetyError(`${o.storage.location} is another archive: ${problems.join('; ')}`, {
        hint: 'Use a new, empty location for this cluster (one archive per cluster), or the same key options as before.',
      });
    return { identity: existing, created: false };
  }
  const magic = await pageMagic(o.client, facts.dataDirectory);
  const identity = newIdentity({
    systemIdentifier: facts.systemIdentifier,
    pgMajor: facts.major,
    walSegmentSize: facts.walSegmentSize,
    walPageMagic: magic,
    compression: o.compression,
    encryption: protections.length ? { protections } : null,
  });
  await writeIdentity(o.storage, identity);
  return { identity, created: true };
}

/** XLOG_PAGE_MAGIC, from the first bytes of the current segment; null when it cannot be read here. */
async function pageMagic(c: pg.Client, dataDirectory: string): Promise<number | null> {
  const name = await currentWalFile(c);
  if (!name) return null;
  try {
    const handle = await open(path.join(dataDirectory, 'pg_wal', name), 'r');
    try {
      const buf = Buffer.alloc(2);
      const { bytesRead } = await handle.read(buf, 0, 2, 0);
      return bytesRead === 2 ? buf.readUInt16LE(0) : null;
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
}

/** A directory the server's user writes into (a spool), created for it when missing. */
export async function makeOwnedDir(dir: string, user: OsUser): Promise<void> {
  const existed = await stat(dir).then(
    () => true,
    () => false,
  );
  if (existed) return;
  await makeDirs(dir, 0o700);
  await giveTo(dir, user);
}

/** A local archive directory created by root belongs to the server's user, who writes into it. */
async function giveLocalArchive(dir: string, user: OsUser): Promise<void> {
  await makeDirs(dir, 0o700);
  await chown(dir, user.uid, user.gid);
  await chown(path.join(dir, ARCHIVE_FILE), user.uid, user.gid);
}

/**
 * Everything archive_command touches must be reachable by the server's user: Node, the CLI and its
 * code, key and env files, a local archive directory, the spool. Checked from file modes, so the
 * error names the directory or file in the way.
 */
export async function checkReachable(
  user: OsUser,
  spec: WalCommandSpec,
  o: { flags: EncryptionFlags; archive: string },
  archiveNeed: 'write' | 'read-dir' = 'write',
): Promise<void> {
  const checks: Array<[string, 'read' | 'execute' | 'write' | 'read-dir']> = [
    [spec.node, 'execute'],
    [spec.cli, 'read'],
    [path.join(path.dirname(spec.cli), '..', 'dist'), 'read-dir'],
  ];
  for (const f of [
    o.flags.encryptionKeyFile,
    ...(o.flags.recipientsFile ?? []),
    ...(o.flags.identityFile ?? []),
    spec.envFile,
  ])
    if (f) checks.push([path.resolve(f), 'read']);
  if (!isCloudUri(o.archive)) checks.push([path.resolve(o.archive), archiveNeed]);
  if (spec.spoolDir) checks.push([spec.spoolDir, 'write']);
  const problems: string[] = [];
  for (const [file, need] of checks) problems.push(...(await accessProblems(user, file, need)));
  if (problems.length)
    throw new SafetyError(
      `archive_command would fail: the server's user ${user.name} cannot reach what it needs`,
      {
        details: problems,
        hint: `Give ${user.name} access (chmod o+x on a directory, or chown ${user.name} a key file, archive directory or spool), or install dbbackup where every user can run it.`,
      },
    );
  for (const f of [o.flags.encryptionKeyFile, ...(o.flags.identityFile ?? []), spec.envFile]) {
    if (!f) continue;
    const s = await stat(f);
    if (s.uid !== user.uid)
      throw new SafetyError(`${f} belongs to uid ${s.uid}, not to the server's user ${user.name}`, {
        hint: `Secret files must be readable by their owner only (0600): chown ${user.name} ${f}`,
      });
  }
}

/**
 * Runs the WAL command's own check (`wal probe`: archive identity, keys, a test write) as the
 * server's user, in its data directory, with a minimal environment like a service's. Throws with
 * the command's own error when it fails.
 */
export async function probeAsServer(
  user: OsUser,
  spec: WalCommandSpec,
  dataDirectory: string,
  mode: 'push' | 'fetch',
): Promise<string> {
  if (!canActAs(user)) return `not checked: only root or ${user.name} can run the command as ${user.name}`;
  const words = ['--archive', spec.archive, ...spec.keyArgs];
  if (spec.envFile) words.push('--env-file', spec.envFile);
  const r = await runAsUser(user, spec.node, [spec.cli, 'wal', 'probe', mode, ...words], {
    cwd: dataDirectory,
    env: serviceEnv(),
    timeoutMs: 120_000,
  });
  if (r.code !== 0) {
    const lines = r.stderr.trim().split('\n').filter(Boolean);
    throw new SafetyError(
      `The ${mode === 'push' ? 'archive' : 'restore'} command fails when run as ${user.name}: ${(lines[0] ?? `exit code ${r.code}`).replace(/^dbbackup: error: /, '')}`,
      {
        details: lines.slice(1),
        hint: 'The server runs it with its own environment: cloud credentials go into an --env-file readable only by the server user.',
      },
    );
  }
  return `checked as ${user.name}: the archive is reachable and writable${spec.keyArgs.length ? ', the keys load' : ''}`;
}

/** The environment a service manager gives a server: no credentials, no PATH beyond the system's. */
export function serviceEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: process.env.LANG ?? 'C.UTF-8',
  };
  for (const name of ['TZ', 'NODE_DISABLE_COMPILE_CACHE', 'DBBACKUP_NO_EXTERNAL_COMPRESSOR'])
    if (process.env[name]) env[name] = process.env[name];
  return env;
}

interface EnableRecord {
  systemIdentifier: string;
  at: string;
  /** Each changed setting's postgresql.auto.conf value before enable (null: not set there). */
  before: Record<string, string | null>;
}

async function recordBefore(
  storage: Storage,
  facts: ServerFacts,
  before: Record<string, string | null>,
  changing: string[],
): Promise<void> {
  // Enable run again: the first record holds the settings from before dbbackup.
  const previous = await readEnableRecord(storage);
  if (previous && isDbbackupArchiveCommand(facts.settings.archive_command)) {
    for (const name of changing) if (!(name in previous.before)) previous.before[name] = before[name] ?? null;
    await writeRecord(storage, previous);
    return;
  }
  const record: EnableRecord = {
    systemIdentifier: facts.systemIdentifier,
    at: new Date().toISOString(),
    before: Object.fromEntries(changing.map((n) => [n, before[n] ?? null])),
  };
  await writeRecord(storage, record);
}

async function writeRecord(storage: Storage, record: EnableRecord): Promise<void> {
  // Replaced as a whole when enable runs again; the identity beside it never is.
  await commitUnit([storage], {}, (c) =>
    c.putSmall(ENABLE_RECORD, `${JSON.stringify(record, null, 2)}\n`, { noOverwrite: false }),
  );
}

async function readEnableRecord(storage: Storage): Promise<EnableRecord | undefined> {
  if (!(await storage.stat(ENABLE_RECORD))) return undefined;
  try {
    return JSON.parse((await readAll(storage, ENABLE_RECORD, 1024 * 1024)).toString('utf8')) as EnableRecord;
  } catch {
    return undefined;
  }
}

export interface DisableReport {
  restored: Record<string, string | null>;
  restartNeeded: string[];
  archive: string | undefined;
}

/**
 * Undoes `pitr enable`: every setting it changed goes back to its postgresql.auto.conf value from
 * before (or is reset when it had none). Without the record (or an archive), only a dbbackup
 * archive_command is reset.
 */
export async function disablePitr(c: pg.Client, storage: Storage | undefined): Promise<DisableReport> {
  const facts = await serverFacts(c, 'pitr');
  if (!facts.superuser)
    throw new UsageError(
      'pitr disable needs a superuser connection (ALTER SYSTEM)',
      'Connect as postgres: --user postgres.',
    );
  const ours = isDbbackupArchiveCommand(facts.settings.archive_command);
  const archive = ours ? commandOption(facts.settings.archive_command, '--archive') : undefined;
  const record = storage ? await readEnableRecord(storage) : undefined;
  if (!ours && !record)
    throw new UsageError(
      'Archiving is not set up by dbbackup on this server',
      "Nothing to undo: archive_command is not dbbackup's.",
    );
  const restore: Record<string, string | null> =
    record && record.systemIdentifier === facts.systemIdentifier
      ? { ...record.before }
      : { archive_command: null };
  const restartNeeded = await applySettings(c, restore);
  if (storage && record) await storage.delete(ENABLE_RECORD);
  return { restored: restore, restartNeeded, archive };
}

/** Restart through pg_ctl as the server's user (pitr enable --restart). */
export async function restartServer(user: OsUser, dataDirectory: string, serverLog?: string): Promise<void> {
  const pgCtl = await findPgTool('pg_ctl');
  if (!pgCtl)
    throw new UsageError(
      'pg_ctl was not found',
      'Install the PostgreSQL server programs, or restart the server yourself.',
    );
  // With -l the server's output goes to that file, not to pg_ctl's pipes (which it would keep open).
  const args = [
    'restart',
    '-D',
    dataDirectory,
    '-m',
    'fast',
    '-w',
    '-t',
    '120',
    '-l',
    serverLog ? path.resolve(serverLog) : '/dev/null',
  ];
  const r = await runAsUser(user, pgCtl, args, { cwd: dataDirectory, timeoutMs: 180_000 });
  if (r.code !== 0)
    throw new SafetyError(
      `pg_ctl restart failed: ${r.stderr.trim().split('\n')[0] ?? `exit code ${r.code}`}`,
      {
        hint: 'Check the server log, then restart the server yourself.',
      },
    );
}
