import { Readable } from 'node:stream';
import type { DatabaseEngine } from '../engines/engine.js';
import { engineFamily } from '../engines/family.js';
import { DbBackupError, errorMessage, StorageError, ToolError } from '../errors.js';
import type { StderrClassifier } from '../pipeline/process.js';
import { restoreFromStream } from './feed.js';

/** Where a cluster's globals (roles/users and grants) come from, and what the restore calls them. */
export interface ClusterGlobals {
  /** The SQL text (small: users and grants). */
  text(): Promise<string>;
  /** What they are called in messages: `roles and grants`, `roles and tablespaces`. */
  label: string;
  /** Whether a second pass after the databases applies grants on tables (MySQL/MariaDB). */
  again: boolean;
}

/**
 * Roles/users first: databases reference them as owners and grantees. Roles that already exist are
 * updated, not an error. MySQL/MariaDB grants on tables and columns fail until their tables exist:
 * the `first` pass passes over them, the pass run `again` after the databases applies them (and
 * warns about tables that are still missing, e.g. in databases left out by --include-database).
 */
export async function restoreGlobals(
  engine: DatabaseEngine,
  globals: ClusterGlobals,
  warn: (l: string) => void,
  pass: 'first' | 'again',
  signal?: AbortSignal,
): Promise<void> {
  // Small (users and grants): held as text, so an error's line number names its statement.
  const sql = await globals.text();
  const lines = sql.split('\n');
  const skipped: string[] = [];
  const cmd = await engine.globalsRestoreCommand();
  await restoreFromStream(async () => Readable.from([Buffer.from(sql)]), 'none', cmd, {
    classify: globalsClassifier(engine, pass, (n) => lines[n - 1], skipped),
    warn,
    signal,
  }).catch((err: unknown) => {
    throw partlyApplied(err, engine, pass);
  });
  for (const s of skipped)
    warn(
      `skipped, the connecting user "${engine.user}" cannot grant it: ${s} (grant it as a user who holds it)`,
    );
}

/**
 * The globals replay runs every statement (one role that exists must not undo the others), so when
 * some fail the others have changed the server: said plainly, never "nothing was kept".
 */
function partlyApplied(err: unknown, engine: DatabaseEngine, pass: 'first' | 'again'): DbBackupError {
  if (!(err instanceof ToolError))
    return err instanceof DbBackupError
      ? err
      : new StorageError(`Could not read the roles and grants: ${errorMessage(err)}`);
  const what =
    pass === 'first'
      ? 'Roles and grants were restored only in part'
      : 'Table and column grants were restored only in part';
  return new DbBackupError(`${what}: ${err.message}`, {
    details: [
      ...err.details,
      `The other statements ran: users and grants on ${engine.endpoint} were changed${pass === 'first' ? '; no database was restored yet' : ''}.`,
    ],
    hint: 'Fix the cause of the failing statements (often a privilege the connecting user lacks) and run the restore again: the statements that ran are safe to repeat.',
    cause: err,
  });
}

/**
 * Roles that already exist are fine; MySQL grants on tables not there yet wait for the second pass.
 * A MySQL `GRANT PROXY` the connecting user may not give (root@localhost's `GRANT PROXY ON ''@'%'`,
 * replayed over TCP as another account) is skipped and named in `skipped` (first pass only): it is
 * the installation's own, not something a restore can or must recreate.
 */
export function globalsClassifier(
  engine: DatabaseEngine,
  pass: 'first' | 'again',
  statementAt?: (line: number) => string | undefined,
  skipped?: string[],
): StderrClassifier {
  const benign = /already exists|role "[^"]+" cannot be dropped|current user cannot be/i;
  const missingTable = /^ERROR 1146 /;
  const denied = /^ERROR (?:1044|1045|1227|1698) \(\w+\) at line (\d+): (.*)$/;
  const { grantsAfterData } = engineFamily(engine.engine);
  return (line) => {
    const kind = engine.classifyStderr(line);
    if (kind === 'error' && grantsAfterData && missingTable.test(line))
      return pass === 'first' ? 'info' : 'warning';
    // Only the MySQL/MariaDB client reports an error as `ERROR <number> (<state>) at line <n>`.
    const refused = kind === 'error' ? denied.exec(line) : null;
    const statement = refused ? statementAt?.(Number(refused[1]))?.trim() : undefined;
    if (refused && statement && /^GRANT PROXY ON /i.test(statement)) {
      if (pass === 'first') skipped?.push(`${statement.replace(/;$/, '')} (${refused[2]})`);
      return 'info';
    }
    return kind === 'error' && benign.test(line) ? 'info' : kind;
  };
}
