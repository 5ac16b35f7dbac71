import { pipeline } from 'node:stream';
import type { Readable, Transform } from 'node:stream';
import type { ToolCommand } from '../engines/engine.js';
import type { CompressionPlan } from './compression.js';
import { CommitGate, HashCounter, Sampler } from './hash.js';
import { ToolProcess, waitAll, type StderrClassifier } from './process.js';

/** The stored-bytes side of a running dump: what to hand to Storage.put, and how it went. */
export interface DumpStream {
  /** Ends only after the dump tool and compressor have both been judged successful. */
  readable: Readable;
  hash: HashCounter;
  processes: ToolProcess[];
  dumpPid: number | undefined;
  /** Present when the raw dump passes through Node (no external compressor): header and trailer bytes. */
  raw: Sampler | undefined;
  /** Stop everything (on a storage failure or an interrupt). */
  abort(): void;
}

export interface DumpStreamOptions {
  dump: ToolCommand;
  classify: StderrClassifier;
  compression: CompressionPlan;
  onWarning?: (line: string) => void;
  /** Encryption, after compression and before hashing: the checksum describes the stored bytes. */
  encrypt?: Transform;
  /** Extra checks run before the stream is allowed to end (e.g. the dump's trailer). */
  checks?: Array<(stream: DumpStream) => void>;
}

/**
 * dump tool → compressor → SHA-256/byte count → commit gate. With an external compressor the dump's
 * stdout is handed to it as its stdin (a kernel pipe), so only compressed bytes reach JavaScript.
 */
export function startDumpStream(o: DumpStreamOptions): DumpStream {
  const dump = new ToolProcess(o.dump, ['ignore', 'pipe', 'pipe'], o.classify, o.onWarning);
  const processes = [dump];
  let source: Readable;
  const stages: Transform[] = [];
  let raw: Sampler | undefined;
  const dumpOut = dump.child.stdout;
  if (!dumpOut) throw new Error('dump process has no stdout');

  if (o.compression.external) {
    const compressor = new ToolProcess(o.compression.external, [dumpOut, 'pipe', 'pipe'], () => 'error');
    processes.push(compressor);
    // The compressor owns the pipe now; our copy of it must never be read.
    dumpOut.pause();
    dumpOut.destroy();
    const out = compressor.child.stdout;
    if (!out) throw new Error('compressor has no stdout');
    source = out;
  } else {
    source = dumpOut;
    raw = new Sampler();
    stages.push(raw);
    if (o.compression.inProcess) stages.push(o.compression.inProcess());
  }

  if (o.encrypt) stages.push(o.encrypt);
  const hash = new HashCounter();
  const result: DumpStream = {
    readable: hash, // replaced below by the gate
    hash,
    processes,
    dumpPid: dump.child.pid,
    raw,
    abort: () => {
      for (const p of processes) p.kill();
    },
  };
  const gate = new CommitGate(async () => {
    await waitAll(processes);
    for (const check of o.checks ?? []) check(result);
  });
  result.readable = pipeline([source, ...stages, hash, gate], (err) => {
    if (err) result.abort();
  }) as unknown as Readable;
  return result;
}
