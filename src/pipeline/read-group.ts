import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform, type Duplex, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ToolCommand } from '../engines/engine.js';
import { DbBackupError, errorMessage, IntegrityError, StorageError } from '../errors.js';
import { inProcessLimit, planDecompression, type CompressionAlgorithm } from './compression.js';
import { HashCounter, Sampler } from './hash.js';
import { settleFeed, ToolProcess, waitAll, type StderrClassifier } from './process.js';
import type { ByteMeter } from './progress.js';

/**
 * The read group with a program or a file at its end: a stored dump read back (storage → decrypt →
 * decompress) into a restore tool's stdin (pg_restore, psql, mariadb), or into a plaintext file
 * (the copy parallel pg_restore needs). runReadGroup (filter-group.ts) is the same group for
 * checks and small objects, whose sink is a stream in this process.
 *
 * What it adds for a restore: the kernel-pipe shortcuts for a local file (file → decompressor →
 * tool, no byte through Node), a transfer cut by the store told from a tool that died (the first
 * error in the pipeline is its origin; a stream that ends short of the stored size was cut too),
 * the last decoded bytes for a trailer check, and the order in which failures are reported:
 *
 *   1. the store cut the transfer (the tool's complaint, "end of file", is named as what followed);
 *   2. decryption failed (the tool then fails on its cut-off input);
 *   3. the tool's own failure (its stderr is the cause; our broken pipe is its consequence);
 *   4. reading or decompressing the stored bytes.
 */

/** A program reading the decoded bytes on its stdin. */
export interface ProcessReadSink {
  kind: 'process';
  command: ToolCommand;
  classify: StderrClassifier;
  warn?: (line: string) => void;
  /** Every stderr line of the program (e.g. pg_restore --verbose, for the phase shown). */
  onLine?: (line: string) => void;
}

/** A file the decoded bytes are written to (created 0600). */
export interface FileReadSink {
  kind: 'file';
  path: string;
  /** 'wx' (default): a file already there fails the read. */
  flags?: string;
  /**
   * Writing the file failed (a full disk) while decoding in this process: the error to report
   * instead of the bare one (what to do about the disk).
   */
  writeFailure?: (err: unknown) => unknown;
  /**
   * Pass-through stages the decoded bytes go through on their way into the file (an archive walk):
   * an external decompressor then writes into this process instead of the file.
   */
  decoded?: Transform[];
}

export interface SinkReadOptions {
  /** Opens the stored bytes (Storage.get). */
  open: () => Promise<Readable>;
  /** The stored object as a local file: with no stage needing the bytes in Node, read by kernel pipes. */
  localFile?: string;
  /** Where the bytes come from, for a message when the store fails mid-transfer (e.g. `s3://b/x.dump.zst`). */
  label?: string;
  /** The stored object's size: a transfer that ends short of it was cut by the store. */
  expectedBytes?: number;
  compression: CompressionAlgorithm;
  /** Decryption (a fresh createDecryptStream), when the object is encrypted. */
  decrypt?: () => Transform;
  /** Counts the stored bytes consumed (progress); its taps also stop the read on an interrupt. */
  meter?: ByteMeter;
  /** Keep the last this-many decoded bytes (a trailer check): the decoded bytes then pass through Node. */
  tailBytes?: number;
  /** Stops the programs on SIGINT/SIGTERM. */
  signal?: AbortSignal;
  sink: ProcessReadSink | FileReadSink;
}

export interface SinkReadResult {
  /** Stored bytes read, and their SHA-256: null where the bytes never passed through Node (kernel pipes). */
  storedBytes: number | null;
  storedSha256: string | null;
  /** The decoded bytes' count and their last tailBytes, when asked for. */
  tail?: { bytes: number; tail: Buffer };
}

/**
 * Tells a stored object's stream failing on its own (the store or the network cut the transfer) from
 * one torn down after a later stage failed: the first error event in a pipeline is its origin. A
 * stream that ends cleanly but short of the object's size was cut too. It counts and hashes what the
 * source delivers (`counter`, right after the source).
 */
export class SourceWatch {
  private first: { stream: unknown; err: unknown } | undefined;
  private ended = false;
  readonly counter = new HashCounter();

  constructor(
    private readonly source: Readable,
    others: ReadonlyArray<Readable | Writable>,
    private readonly expected?: number,
  ) {
    for (const s of [source, this.counter, ...others])
      s.once('error', (err) => (this.first ??= { stream: s, err }));
    source.once('end', () => (this.ended = true));
  }

  /** The store's failure, if the transfer was cut; undefined otherwise. */
  failure(): unknown {
    if (this.first?.stream === this.source) return this.first.err;
    const bytes = this.counter.bytes;
    if (this.ended && this.expected !== undefined && bytes < this.expected)
      return new Error(`the transfer ended after ${bytes} of ${this.expected} bytes`);
    return undefined;
  }

  /** What was read: its SHA-256 only once the whole stream passed. */
  measured(): Pick<SinkReadResult, 'storedBytes' | 'storedSha256'> {
    let sha: string | null;
    try {
      sha = this.counter.sha256;
    } catch {
      sha = null;
    }
    return { storedBytes: this.counter.bytes, storedSha256: sha };
  }
}

/** The store failed mid-transfer: it is named as the cause, the tool's complaint shown as what followed. */
export function storageCut(source: string | undefined, err: unknown, toolFailure?: unknown): StorageError {
  return new StorageError(
    `Reading the backup from ${source ?? 'its store'} failed while restoring: ${errorMessage(err)}`,
    {
      details: toolFailure
        ? [`(then, its input cut off: ${errorMessage(toolFailure).split('\n')[0] ?? ''})`]
        : [],
      hint: 'The store, or the network to it, failed mid-transfer; the backup itself may be intact. Check the store and run the restore again.',
      cause: err,
    },
  );
}

/** Reads one stored object to its end into a program or a file; see the module comment for the order of failures. */
export async function runSinkRead(o: SinkReadOptions): Promise<SinkReadResult> {
  if (o.sink.kind === 'file') return readIntoFile(o, o.sink);
  const viaKernel = o.decrypt || o.tailBytes !== undefined || isSmall(o) ? undefined : o.localFile;
  if (viaKernel) {
    const done = await localIntoProcess(o, o.sink, viaKernel);
    if (done) return { storedBytes: null, storedSha256: null };
  }
  return streamIntoProcess(o, o.sink);
}

function toolOf(o: SinkReadOptions, sink: ProcessReadSink, stdin: 'pipe' | Readable | number): ToolProcess {
  return new ToolProcess(sink.command, [stdin, 'ignore', 'pipe'], sink.classify, sink.warn, {
    signal: o.signal,
    onLine: sink.onLine,
  });
}

/** A local file into a program by kernel pipes; false when the compression needs Node in between. */
async function localIntoProcess(o: SinkReadOptions, sink: ProcessReadSink, file: string): Promise<boolean> {
  const decompress = await planDecompression(o.compression);
  if (decompress.external) {
    // File → decompressor → restore tool, joined by kernel pipes: no byte passes through Node.
    const dec = new ToolProcess(
      { ...decompress.external, args: [...decompress.external.args, file] },
      ['ignore', 'pipe', 'pipe'],
      () => 'error',
      undefined,
      { signal: o.signal },
    );
    o.meter?.watch(dec.child.pid);
    const out = dec.child.stdout;
    if (!out) throw new Error('decompressor has no stdout');
    const tool = toolOf(o, sink, out);
    out.destroy();
    await waitAll([tool, dec]);
    return true;
  }
  if (o.compression !== 'none') return false;
  const handle = await open(file, 'r');
  try {
    const tool = toolOf(o, sink, handle.fd);
    o.meter?.watch(tool.child.pid);
    await tool.done;
  } finally {
    await handle.close();
  }
  return true;
}

/**
 * Below this stored size a restore decodes in this process and feeds the tool itself: a tiny
 * restore then starts one program (the restore tool) instead of two (issue 16; a zstd start costs
 * more CPU than decoding a few megabytes here).
 */
export const IN_PROCESS_READ_BYTES = 8 * 1024 * 1024;

function isSmall(o: SinkReadOptions): boolean {
  return o.expectedBytes !== undefined && o.expectedBytes <= inProcessLimit(IN_PROCESS_READ_BYTES);
}

/** Stored bytes through Node (decryption, in-process or external decompression) into a program's stdin. */
async function streamIntoProcess(o: SinkReadOptions, sink: ProcessReadSink): Promise<SinkReadResult> {
  const decompress = await planDecompression(o.compression, isSmall(o));
  const processes: ToolProcess[] = [];
  const stages: Duplex[] = [];
  if (o.meter) stages.push(o.meter.tap());
  if (o.decrypt) stages.push(o.decrypt());
  const tail = o.tailBytes !== undefined ? new Sampler(o.tailBytes) : undefined;
  let input: Writable;
  const tool = toolOf(o, sink, 'pipe');
  processes.push(tool);
  if (!tool.child.stdin) throw new Error('restore tool has no stdin');
  /** Decompressor → tail sampler → tool, when the decompressed bytes must be seen. */
  let relay: { done: Promise<void>; stages: Array<Readable | Writable> } | undefined;
  if (decompress.external) {
    const dec = new ToolProcess(
      decompress.external,
      ['pipe', tail ? 'pipe' : tool.child.stdin, 'pipe'],
      () => 'error',
      undefined,
      { signal: o.signal },
    );
    processes.push(dec);
    if (tail && dec.child.stdout) {
      const parts = [dec.child.stdout, tail, tool.child.stdin];
      relay = { done: pipeline(parts), stages: parts };
      relay.done.catch(() => undefined); // judged below, once the tools have exited
    } else tool.child.stdin.destroy();
    if (!dec.child.stdin) throw new Error('decompressor has no stdin');
    input = dec.child.stdin;
  } else {
    if (decompress.inProcess) stages.push(decompress.inProcess());
    if (tail) stages.push(tail);
    input = tool.child.stdin;
  }
  let source: Readable;
  try {
    source = await o.open();
  } catch (err) {
    for (const p of processes) p.kill();
    input.destroy();
    await Promise.allSettled(processes.map((p) => p.done));
    throw err;
  }
  const watch = new SourceWatch(source, [...stages, input], o.expectedBytes);
  const feeding = pipeline([source, watch.counter, ...stages, input]);
  feeding.catch(() => undefined); // judged below, once the tools have exited
  const toolFailure = await settled(waitAll(processes));
  const feedFailure = await settled(settleFeed(feeding, [source, ...stages, input]));
  const relayFailure = relay ? await settled(settleFeed(relay.done, relay.stages)) : undefined;
  // The store cut the transfer: the tool's complaint ("end of file", "premature end") is its consequence.
  const cut = watch.failure();
  if (cut !== undefined) throw storageCut(o.label, cut, toolFailure?.err);
  // A damaged encrypted backup stops the feed, and the tool then fails on the cut-off input ("end of
  // file"): the decryption failure is the cause, so it is reported first, as is.
  if (o.decrypt && feedFailure?.err instanceof IntegrityError) throw feedFailure.err;
  // A tool failure explains a broken pipe on our side, so it is reported first.
  if (toolFailure) throw toolFailure.err;
  for (const failure of [feedFailure, relayFailure]) {
    if (!failure) continue;
    if (failure.err instanceof DbBackupError) throw failure.err;
    throw new StorageError(`Could not read the backup while restoring: ${errorMessage(failure.err)}`);
  }
  return { ...watch.measured(), tail: tail && { bytes: tail.bytes, tail: tail.tail } };
}

/** Stored bytes decoded into a file: by an external decompressor writing it, or by Node. */
async function readIntoFile(o: SinkReadOptions, sink: FileReadSink): Promise<SinkReadResult> {
  let watch: SourceWatch | undefined;
  try {
    const decompress = await planDecompression(o.compression);
    const decoded = sink.decoded ?? [];
    if (decompress.external) {
      const source = await o.open();
      const stages: Duplex[] = o.meter ? [o.meter.tap()] : [];
      await externalIntoFile(o, sink, decompress.external, source, stages, (w) => (watch = w));
    } else {
      const stages: Duplex[] = o.meter ? [o.meter.tap()] : [];
      if (decompress.inProcess) stages.push(decompress.inProcess());
      const source = await o.open();
      const file = createWriteStream(sink.path, { mode: 0o600, flags: sink.flags ?? 'wx' });
      const w = new SourceWatch(source, [...stages, ...decoded, file], o.expectedBytes);
      watch = w;
      await pipeline([source, w.counter, ...stages, ...decoded, file]).catch((err: unknown) => {
        // Writing the file failed (a full disk): said so, not blamed on the backup or a bug.
        if (err instanceof DbBackupError || w.failure() !== undefined || !sink.writeFailure) throw err;
        throw sink.writeFailure(err);
      });
    }
    const done = watch as SourceWatch | undefined;
    if (!done) throw new Error('the read was never started');
    const cut = done.failure();
    if (cut !== undefined) throw storageCut(o.label, cut);
    return done.measured();
  } catch (err) {
    const cut = (watch as SourceWatch | undefined)?.failure();
    throw cut !== undefined && !(err instanceof StorageError) ? storageCut(o.label, cut, err) : err;
  }
}

/**
 * An external decompressor fed from here (the stored bytes through `stages`), writing the file itself —
 * or, with decoded-bytes stages, writing into this process, which writes the file. A failed write
 * (a full disk) is reported before the decompressor's broken pipe, which is its consequence.
 */
async function externalIntoFile(
  o: SinkReadOptions,
  sink: FileReadSink,
  command: ToolCommand,
  source: Readable,
  stages: Duplex[],
  watching: (watch: SourceWatch) => void,
): Promise<void> {
  const decoded = sink.decoded ?? [];
  const out = decoded.length ? undefined : await open(sink.path, sink.flags ?? 'wx', 0o600);
  try {
    const dec = new ToolProcess(command, ['pipe', out ? out.fd : 'pipe', 'pipe'], () => 'error', undefined, {
      signal: o.signal,
    });
    if (!dec.child.stdin) throw new Error('decompressor has no stdin');
    const watch = new SourceWatch(source, [...stages, dec.child.stdin], o.expectedBytes);
    watching(watch);
    const feed = [source, watch.counter, ...stages];
    let draining: Promise<void> | undefined;
    if (!out) {
      if (!dec.child.stdout) throw new Error('decompressor has no stdout');
      const file = createWriteStream(sink.path, { mode: 0o600, flags: sink.flags ?? 'wx' });
      draining = pipeline([dec.child.stdout, ...decoded, file]);
      draining.catch(() => undefined); // judged below, before the decompressor
    }
    const feeding = pipeline([...feed, dec.child.stdin]);
    feeding.catch(() => undefined); // settled below, after the decompressor
    const decFailure = await settled(dec.done);
    const drainFailure = draining ? await settled(draining) : undefined;
    if (!decFailure && !drainFailure) await settleFeed(feeding, [...feed, dec.child.stdin]);
    if (drainFailure) {
      const err = drainFailure.err;
      throw err instanceof DbBackupError || !sink.writeFailure ? err : sink.writeFailure(err);
    }
    if (decFailure) throw decFailure.err;
  } finally {
    await out?.close();
  }
}

async function settled(p: Promise<void>): Promise<{ err: unknown } | undefined> {
  return p.then(
    () => undefined,
    (err: unknown) => ({ err }),
  );
}
