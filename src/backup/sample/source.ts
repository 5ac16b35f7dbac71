import type { SampleTable } from '../../catalog/metadata.js';
import type { DatabaseEngine, ServerInfo, ToolCommand } from '../../engines/engine.js';
import { IntegrityError } from '../../errors.js';
import { ToolProcess } from '../../pipeline/process.js';
import type { SampleSpec } from './spec.js';

/**
 * What differs per engine in a sample: how rows are picked in one consistent snapshot and how the
 * script around them is produced. The orchestrator (index.ts) only sees this interface; one module
 * per engine family implements it (postgres.ts, mysql.ts), chosen by engines.ts.
 */
export interface EngineSampler {
  /** What a read-back of the stored script must sniff as (src/pipeline/sniff.ts). */
  readonly dumpFamily: 'postgres' | 'mysql';
  /** Throws when the dump tool cannot dump this server (checked before anything is written). */
  checkDumpTool(dumpVersion: string, server: ServerInfo): void;
  /** Opens the snapshot and picks the rows; the script is produced later, while it is stored. */
  open(o: SampleOpenOptions): Promise<SampleSource>;
}

export interface SampleOpenOptions {
  engine: DatabaseEngine;
  /** The plain-format dump command of the database (schema sections come from it). */
  dump: ToolCommand;
  dumpVersion: string;
  database: string;
  spec: SampleSpec;
  /** Source row counts (for comments in the script), known once table statistics arrived. */
  rowsOf: (schema: string, name: string) => number | undefined;
  onWarning: (line: string) => void;
  signal?: AbortSignal;
}

/** One script: schema from the dump tool, the sampled rows, then indexes, constraints and triggers. */
export interface SampleSource {
  tables: SampleTable[];
  dumpTool: { name: string; version: string; args: string[] };
  /** The SQL, produced while it is read. */
  script(): AsyncGenerator<Buffer>;
  /** Stop running child processes (interrupt, storage failure). */
  abort(): void;
  /** End the snapshot transaction and close the connection. */
  close(): Promise<void>;
}

/** Runs a dump tool and yields its stdout; throws (after the output) if it failed or stopped early. */
export async function* toolOutput(
  cmd: ToolCommand,
  engine: DatabaseEngine,
  running: Set<ToolProcess>,
  trailer: RegExp,
  onWarning: (line: string) => void,
): AsyncGenerator<Buffer> {
  const tool = new ToolProcess(cmd, ['ignore', 'pipe', 'pipe'], (l) => engine.classifyStderr(l), onWarning);
  running.add(tool);
  let tail = '';
  try {
    const out = tool.child.stdout;
    if (!out) throw new Error(`${cmd.name} has no stdout`);
    for await (const chunk of out as AsyncIterable<Buffer>) {
      tail = (tail + chunk.toString('latin1')).slice(-4096);
      yield chunk;
    }
    await tool.done;
    if (!trailer.test(tail)) {
      throw new IntegrityError(`${cmd.name} ended without its completion trailer: the schema is incomplete`, {
        hint: 'The dump tool stopped early; check the server log and try again.',
      });
    }
  } finally {
    tool.kill();
    running.delete(tool);
  }
}

/** Text inside a one-line SQL comment. */
export function sqlComment(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}
