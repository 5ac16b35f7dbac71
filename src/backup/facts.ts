import type { BackupFacts, FactOptions } from '../catalog/facts.js';
import type { DatabaseEngine, ToolCommand } from '../engines/engine.js';
import { errorMessage } from '../errors.js';

/**
 * The facts a restore drill compares (src/catalog/facts.ts), recorded beside one dump: started
 * before the dump (whose arguments it may extend), read while it runs, ended after it. Facts that
 * cannot be read never fail the backup: it is stored without them, with a warning saying so (a
 * drill of it then proves it restores, but compares nothing).
 */
export interface FactRecording {
  /**
   * `{ facts }` for the metadata, or `{}` (after a warning); ends the sessions. Call it once the
   * dump has ended successfully. Never throws.
   */
  done(): Promise<{ facts?: BackupFacts }>;
  /** Ends the sessions (and any lock) after a failure. Never throws. */
  close(): Promise<void>;
}

const NONE: FactRecording = { done: async () => ({}), close: async () => undefined };

export async function recordFacts(
  engine: DatabaseEngine,
  database: string,
  dump: ToolCommand,
  options: FactOptions | undefined,
  onWarning: (line: string) => void,
): Promise<FactRecording> {
  if (!options) return NONE;
  const warn = (err: unknown): void =>
    onWarning(`the facts for restore drills were not recorded: ${errorMessage(err)}`);
  let snapshot;
  try {
    snapshot = await engine.snapshotFacts(database, options);
  } catch (err) {
    warn(err);
    return NONE;
  }
  // Before `--` (the MySQL family's end of options), else at the end.
  const end = dump.args.indexOf('--');
  dump.args.splice(end < 0 ? dump.args.length : end, 0, ...snapshot.dumpArgs);
  const s = snapshot;
  return {
    done: async () => {
      // Called once the dump has been stored: it has ended, and its snapshot with it.
      s.dumpEnded?.();
      try {
        return { facts: await s.facts };
      } catch (err) {
        warn(err);
        return {};
      } finally {
        await s.close();
      }
    },
    close: () => s.close(),
  };
}
