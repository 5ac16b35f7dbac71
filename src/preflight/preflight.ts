import { randomBytes } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import type { DatabaseEngine, ServerInfo } from '../engines/engine.js';
import { majorVersion } from '../engines/tools.js';
import { DbBackupError, errorMessage } from '../errors.js';
import { planCompression, type CompressionAlgorithm } from '../pipeline/compression.js';
import { formatBytes } from '../units.js';
import { putBuffer, readAll, type Storage } from '../storage/storage.js';
import { engineFamily } from '../engines/family.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skipped';

export interface CheckResult {
  check: string;
  status: CheckStatus;
  detail: string;
  hint?: string;
}

export interface PreflightOptions {
  engine: DatabaseEngine;
  /** The database a `backup single` would dump; undefined checks for a cluster backup. */
  database?: string;
  /** Where the backup would go (the directory, the bucket, or both). */
  stores: Storage[];
  compression: CompressionAlgorithm;
  level: number;
}

const SERVER_NAMES: Record<ServerInfo['flavor'], string> = {
  postgres: 'PostgreSQL',
  mysql: 'MySQL',
  mariadb: 'MariaDB',
};

const ok = (check: string, detail: string): CheckResult => ({ check, status: 'ok', detail });

function failure(check: string, err: unknown, status: CheckStatus = 'fail'): CheckResult {
  return {
    check,
    status,
    detail: errorMessage(err),
    hint: err instanceof DbBackupError ? err.hint : undefined,
  };
}

/**
 * Everything a backup needs, checked for real before one runs: the server answers, the tools exist
 * and can dump this server, this user can read what the dump reads, the destination accepts a write
 * (and gives it back), and there is room. Checks that depend on a failed one are reported as skipped.
 */
export async function runPreflight(o: PreflightOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let server: ServerInfo | undefined;
  try {
    server = await o.engine.serverInfo();
    results.push(
      ok(
        'connection',
        `${o.engine.endpoint} as ${o.engine.user}: ${SERVER_NAMES[server.flavor]} ${server.version}`,
      ),
    );
  } catch (err) {
    results.push(failure('connection', err));
  }
  results.push(await checkTools(o.engine, server));
  results.push(await checkCompressor(o.compression, o.level));

  let size: number | null = null;
  if (!server) {
    const why = 'needs a connection';
    results.push({ check: 'database', status: 'skipped', detail: why });
    results.push({ check: 'privileges', status: 'skipped', detail: why });
  } else {
    const db = await checkDatabase(o.engine, o.database);
    results.push(db.result);
    size = db.size;
    results.push(
      db.result.status === 'fail'
        ? { check: 'privileges', status: 'skipped', detail: 'needs the database' }
        : await checkPrivileges(o.engine, o.database),
    );
  }
  for (const store of o.stores) results.push(...(await checkStore(store, size)));
  return results;
}

async function checkTools(engine: DatabaseEngine, server: ServerInfo | undefined): Promise<CheckResult> {
  const tools = await engine.tools();
  const missing = tools.filter((t) => !t.path).map((t) => t.name);
  if (missing.length) {
    return {
      check: 'tools',
      status: 'fail',
      detail: `missing: ${missing.join(', ')}`,
      hint: engineFamily(engine.engine).installHint,
    };
  }
  const dump = tools[0];
  const detail = tools.map((t) => `${t.name} ${t.version ?? '?'}`).join(', ');
  // pg_dump refuses servers newer than itself; checked now rather than at 3 a.m.
  if (
    engineFamily(engine.engine).dumpToolMustBeNewer &&
    server &&
    dump?.version &&
    server.version !== 'unknown'
  ) {
    if (majorVersion(dump.version) < majorVersion(server.version)) {
      return {
        check: 'tools',
        status: 'fail',
        detail: `${dump.name} ${dump.version} cannot dump a PostgreSQL ${server.version} server`,
        hint: `Install the PostgreSQL ${majorVersion(server.version)} client programs, or set DBBACKUP_PG_BINDIR.`,
      };
    }
  }
  return ok('tools', detail);
}

async function checkCompressor(algorithm: CompressionAlgorithm, level: number): Promise<CheckResult> {
  const plan = await planCompression(algorithm, level);
  if (plan.algorithm !== 'none' && !plan.external) {
    return {
      check: 'compressor',
      status: 'warn',
      detail: `${plan.implementation} (no ${algorithm === 'zstd' ? 'zstd' : 'pigz'} program found)`,
      hint: `Install ${algorithm === 'zstd' ? 'zstd' : 'pigz'}: the external compressor is faster and keeps dump bytes out of Node.`,
    };
  }
  return ok('compressor', plan.implementation);
}

async function checkDatabase(
  engine: DatabaseEngine,
  database: string | undefined,
): Promise<{ result: CheckResult; size: number | null }> {
  try {
    if (database === undefined) {
      const names = await engine.clusterDatabases();
      const sizes = await Promise.all(names.map((n) => engine.databaseSize(n).catch(() => null)));
      const size = sizes.reduce<number>((sum, s) => sum + (s ?? 0), 0);
      return {
        result: ok('database', `cluster: ${names.length} databases, ${formatBytes(size)}`),
        size,
      };
    }
    if (!(await engine.databaseExists(database))) {
      return {
        result: {
          check: 'database',
          status: 'fail',
          detail: `"${database}" does not exist on ${engine.endpoint}`,
          hint: 'Run "dbbackup list" to see the databases on this server.',
        },
        size: null,
      };
    }
    const size = await engine.databaseSize(database);
    return {
      result: ok('database', `"${database}", ${size === null ? 'size unknown' : formatBytes(size)}`),
      size,
    };
  } catch (err) {
    return { result: failure('database', err), size: null };
  }
}

async function checkPrivileges(engine: DatabaseEngine, database: string | undefined): Promise<CheckResult> {
  try {
    const problems = await engine.privilegeProblems(database);
    if (!problems.length) {
      return ok(
        'privileges',
        database === undefined ? 'can read roles and every database' : 'can read everything the dump reads',
      );
    }
    const shown =
      problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; and ${problems.length - 5} more` : '');
    // Without superuser a cluster backup still works (role passwords are left out): a warning.
    const onlyPasswords = database === undefined && problems.every((p) => p.includes('superuser'));
    return {
      check: 'privileges',
      status: onlyPasswords ? 'warn' : 'fail',
      detail: shown,
      hint: onlyPasswords
        ? 'Run cluster backups as a superuser to keep role passwords.'
        : `Grant the missing privileges to "${engine.user}", or back up as a user who has them.`,
    };
  } catch (err) {
    return failure('privileges', err);
  }
}

/** Write, read back and remove a small object; on a local directory, also measure the free space. */
async function checkStore(store: Storage, databaseSize: number | null): Promise<CheckResult[]> {
  const check = `destination ${store.location}`;
  const key = `.dbbackup-preflight-${process.pid}-${randomBytes(4).toString('hex')}`;
  const payload = randomBytes(64);
  try {
    await putBuffer(store, key, payload, { noOverwrite: true });
    try {
      const back = await readAll(store, key);
      if (!back.equals(payload)) {
        return [
          {
            check,
            status: 'fail',
            detail: `a test object read back ${back.length} bytes that differ from the ${payload.length} written`,
            hint: 'The storage does not return what it stores; do not keep backups there.',
          },
        ];
      }
    } finally {
      await store.delete(key);
    }
  } catch (err) {
    return [failure(check, err)];
  }
  const results = [ok(check, 'write, read back and delete work')];
  const local = store.localPath?.(key);
  if (local) {
    const fs = await statfs(path.dirname(local));
    const free = fs.bavail * fs.bsize;
    const space = `free space ${store.location}`;
    // The backup's size is unknown until it is made; the database's size bounds a compressed dump.
    if (databaseSize !== null && free < databaseSize) {
      results.push({
        check: space,
        status: 'warn',
        detail: `${formatBytes(free)} free for a database of ${formatBytes(databaseSize)}`,
        hint: 'A compressed dump is usually a fraction of the database, but check it fits, or use another --backup-dir.',
      });
    } else results.push(ok(space, `${formatBytes(free)} free`));
  }
  return results;
}
