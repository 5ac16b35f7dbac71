import { pipeline } from 'node:stream';
import type { Readable, Transform } from 'node:stream';
import type { ToolCommand } from '../engines/engine.js';
import { ddBytes, type CompressionPlan } from './compression.js';
import type { Trailer } from '../catalog/trailers.js';
import { IntegrityError } from '../errors.js';
import { DecodedTail } from './decoded-tail.js';
import { CommitGate, HashCounter, Sampler } from './hash.js';
import { ToolProcess, waitAll, type StderrClassifier } from './process.js';
import { startWriteGroup, type GroupEncryption, type RawView, type WriteGroup } from './filter-group.js';

export interface DumpGroupOptions<D = unknown> {
  dump: ToolCommand;
  classify: StderrClassifier;
  compression: CompressionPlan;
  onWarning?: (line: string) => void;
  /** Applied after compression; the checksum describes the stored bytes. */
  encryption?: GroupEncryption<D>;
  /**
   * The dump must end with this (SQL dumps): checked on the raw bytes, or — when an external
   * compressor takes them — on the stored bytes, decoded beside the dump (DecodedTail).
   */
  trailer?: Trailer;
}

/**
 * A dump tool's output through the write group (compress → encrypt → SHA-256 → commit gate). The
 * group hands the dump's stdout to an external compressor as a kernel pipe, so only compressed
 * bytes reach JavaScript; it measures the raw dump (size, head, tail) and holds back the last byte
 * until the dump, the compressor and the dump's completeness were judged.
 */
export function startDumpGroup<D = unknown>(o: DumpGroupOptions<D>): WriteGroup<D> {
  const dump = new ToolProcess(o.dump, ['ignore', 'pipe', 'pipe'], o.classify, o.onWarning);
  return startWriteGroup<D>({
    source: dump,
    compression: o.compression,
    encryption: o.encryption,
    measureRaw: { tail: Boolean(o.trailer) },
    check: (raw) => checkDumpComplete(raw, o.trailer),
  });
}

/**
 * A dump tool that stops early can still exit 0 if something else kills its reader: an empty dump,
 * or one without the trailer it writes last, is not a backup.
 */
export function checkDumpComplete(raw: RawView, trailer: Trailer | undefined): void {
  if (raw.inProcess && raw.bytes === 0) throw new IntegrityError('The dump tool produced no output');
  const tail = raw.tail;
  if (!trailer || tail === undefined) return;
  if (tail.length === 0) throw new IntegrityError('The dump tool produced no output');
  if (!trailer.pattern.test(tail.toString('utf8'))) {
    throw new IntegrityError(
      `The dump ended without its completion trailer ("${trailer.text}"): it is incomplete`,
      { hint: 'The dump tool stopped early; check the server log and try again.' },
    );
  }
}

/** The stored-bytes side of a running dump: what to hand to Storage.put, and how it went. */
export interface DumpStream {
  /** Ends only after the dump tool and compressor have both been judged successful. */
  readable: Readable;
  hash: HashCounter;
  processes: ToolProcess[];
  dumpPid: number | undefined;
  /** Present when the raw dump passes through Node (no external compressor): header and trailer bytes. */
  raw: Sampler | undefined;
  /**
   * Bytes the dump tool produced, once the stream has ended: counted in Node (`raw`) or by the relay
   * in front of an external compressor; null when neither could count them.
   */
  rawBytes(): number | null;
  /** The end of the dump, once the stream has ended: from `raw`, or decoded beside an external compressor. */
  tail(): Buffer | undefined;
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
  /**
   * The dump must end with this (SQL dumps): checked on the raw bytes, or — when an external
   * compressor takes them — on the stored bytes, decoded beside the dump (DecodedTail).
   */
  trailer?: Trailer;
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
  let decoded: DecodedTail | undefined;
  const dumpOut = dump.child.stdout;
  if (!dumpOut) throw new Error('dump process has no stdout');

  let relayed: number | null = null;
  if (o.compression.external) {
    let input: Readable = dumpOut;
    if (o.compression.counter) {
      // dump tool → dd → compressor, kernel pipes all the way; dd's last words are the byte count.
      const counter = new ToolProcess(o.compression.counter, [dumpOut, 'pipe', 'pipe'], (line) => {
        const n = ddBytes(line);
        if (n !== null) relayed = n;
        return n === null && /^dd:/.test(line) ? 'error' : 'info';
      });
      processes.push(counter);
      dumpOut.pause();
      dumpOut.destroy();
      if (!counter.child.stdout) throw new Error('dd has no stdout');
      input = counter.child.stdout;
    }
    const compressor = new ToolProcess(o.compression.external, [input, 'pipe', 'pipe'], () => 'error');
    processes.push(compressor);
    // The compressor owns the pipe now; our copy of it must never be read.
    input.pause();
    input.destroy();
    const out = compressor.child.stdout;
    if (!out) throw new Error('compressor has no stdout');
    source = out;
    if (o.trailer && o.compression.checkDecoder) {
      decoded = new DecodedTail(o.compression.checkDecoder);
      stages.push(decoded);
    }
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
    rawBytes: () => raw?.bytes ?? relayed,
    tail: () => raw?.tail ?? decoded?.tail,
    abort: () => {
      for (const p of processes) p.kill();
    },
  };
  const gate = new CommitGate(async () => {
    await waitAll(processes);
    checkCompleteness(result, o.trailer);
  });
  result.readable = pipeline([source, ...stages, hash, gate], (err) => {
    if (err) result.abort();
  }) as unknown as Readable;
  return result;
}

/**
 * A dump tool that stops early can still exit 0 if something else kills its reader: an empty dump,
 * or one without the trailer it writes last, is not a backup.
 */
function checkCompleteness(stream: DumpStream, trailer: Trailer | undefined): void {
  if (stream.raw && stream.raw.bytes === 0) throw new IntegrityError('The dump tool produced no output');
  const tail = stream.tail();
  if (!trailer || tail === undefined) return;
  if (tail.length === 0) throw new IntegrityError('The dump tool produced no output');
  if (!trailer.pattern.test(tail.toString('utf8'))) {
    throw new IntegrityError(
      `The dump ended without its completion trailer ("${trailer.text}"): it is incomplete`,
      { hint: 'The dump tool stopped early; check the server log and try again.' },
    );
  }
}
