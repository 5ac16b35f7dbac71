import { readFileSync } from 'node:fs';
import { Transform } from 'node:stream';
import { InterruptedError } from '../errors.js';

/*
 * Progress as the domain reports it: what is measured (bytes stored, bytes a tool produced or
 * read, each database of a cluster), never how it is drawn. The CLI renders it (src/cli/progress.ts)
 * and so can a TUI: a renderer is registered once with setProgressRenderer; without one, nothing
 * is shown.
 */

export { formatBytes, formatDuration } from '../units.js';

/** A counter of Linux /proc/<pid>/io (`rchar`, `wchar`); null where /proc is not available. */
function processIo(pid: number | undefined, field: 'rchar' | 'wchar'): number | null {
  if (!pid) return null;
  try {
    const m = new RegExp(`^${field}:\\s*(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m?.[1] ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Bytes a process has written so far: how far the dump tool got, without its output passing through JavaScript. */
export function processBytesWritten(pid: number | undefined): number | null {
  return processIo(pid, 'wchar');
}

export interface ProgressSource {
  /** Bytes stored so far (compressed). */
  stored(): number;
  /** Bytes the dump tool produced so far, when known. */
  produced(): number | null;
}

export type ProgressMode = 'bar' | 'lines' | 'off';

/** What a renderer of one operation's progress is given: what to measure and how it was asked to show. */
export interface ProgressTask {
  mode: ProgressMode;
  label: string;
  source: ProgressSource;
  /** Expected dump size, when known (it may arrive after the dump started). */
  estimate: () => number | null;
}

/** A rendering of one operation's progress, from start to stop. */
export interface ProgressView {
  start(): void;
  /** `completed`: the work is done (a bar ends at 100 %); otherwise it stopped short. */
  stop(completed: boolean): void;
}

export type ProgressRenderer = (task: ProgressTask) => ProgressView;

let renderer: ProgressRenderer | undefined;

/** Who draws progress from now on (the CLI at start-up, a TUI); undefined: nobody. */
export function setProgressRenderer(next: ProgressRenderer | undefined): void {
  renderer = next;
}

/**
 * One operation's progress (a dump, a base backup): started and stopped by the domain, drawn by
 * the registered renderer, if any, in the mode asked for ('off' draws nothing).
 */
export class Progress {
  private view: ProgressView | undefined;

  constructor(
    private readonly mode: ProgressMode,
    private readonly label: string,
    private readonly source: ProgressSource,
    private readonly estimate: () => number | null,
  ) {}

  start(): void {
    if (this.mode === 'off' || !renderer) return;
    this.view = renderer({
      mode: this.mode,
      label: this.label,
      source: this.source,
      estimate: this.estimate,
    });
    this.view.start();
  }

  stop(completed = false): void {
    this.view?.stop(completed);
    this.view = undefined;
  }
}

/** Bytes a process has read so far: how far a decompressor or restore tool that reads a file itself got. */
export function processBytesRead(pid: number | undefined): number | null {
  return processIo(pid, 'rchar');
}

/**
 * How many bytes of a backup a restore has consumed: counted where the bytes pass through Node
 * (`tap`), or read from /proc for a process that reads the file itself (`watch`).
 */
export class ByteMeter {
  private counted = 0;
  private pid: number | undefined;
  private lastFromProc = 0;
  /** What the reading tool is doing, when it says (e.g. pg_restore's verbose output): shown beside the bytes. */
  phase: string | undefined;

  /** With a signal, every tap fails with an InterruptedError when it fires: the read it is part of stops. */
  constructor(private readonly signal?: AbortSignal) {}

  add(n: number): void {
    this.counted += n;
  }

  /** A pass-through stage that counts what flows through it. */
  tap(): Transform {
    const tap = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        this.counted += chunk.length;
        cb(null, chunk);
      },
    });
    const { signal } = this;
    if (signal) {
      const stop = (): void => {
        tap.destroy(new InterruptedError('Interrupted'));
      };
      if (signal.aborted) stop();
      else {
        signal.addEventListener('abort', stop, { once: true });
        tap.once('close', () => signal.removeEventListener('abort', stop));
      }
    }
    return tap;
  }

  /** Count the bytes this process reads (it reads the backup itself). */
  watch(pid: number | undefined): void {
    this.pid = pid;
  }

  get bytes(): number {
    const fromProc = processBytesRead(this.pid);
    if (fromProc !== null) this.lastFromProc = fromProc;
    return Math.max(this.counted, this.lastFromProc);
  }
}

export type ClusterMemberState = 'waiting' | 'active' | 'done' | 'failed' | 'skipped';

/** What a cluster backup or restore reports as it goes; `ClusterProgress` shows it. */
export interface ClusterProgressSink {
  begin(databases: ReadonlyArray<{ name: string; estimate: number | null }>): void;
  /** A better estimate for one database (e.g. its table data, once known). */
  estimate(name: string, bytes: number | null): void;
  start(name: string, read: () => number | null): void;
  /** Finished: `bytes` are the exact count when known (else the last sample stands), `stored` what it occupies. */
  done(name: string, result?: { bytes?: number; stored?: number }): void;
  failed(name: string, reason: string): void;
  /** Left out, and not a failure (e.g. a database dropped while the cluster backup ran). */
  skipped(name: string, reason: string): void;
  /** A step that is not about one database: "checksums verified", "roles restored". */
  note(text: string): void;
  end(): void;
}
