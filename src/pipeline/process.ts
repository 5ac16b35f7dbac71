import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable, Writable } from 'node:stream';
import type { StderrClass, ToolCommand } from '../engines/engine.js';
import { MissingToolError, ToolError } from '../errors.js';

export type StderrClassifier = (line: string) => StderrClass;

export interface ToolProcessOptions {
  /** Stops the process (SIGTERM) when it fires, also if it fired before the process started. */
  signal?: AbortSignal;
  /** Every non-empty stderr line with its class, e.g. to follow a restore tool's verbose output. */
  onLine?: (line: string, kind: StderrClass) => void;
}

/** A running child process whose exit status and classified stderr decide success. */
export class ToolProcess {
  readonly child: ChildProcess;
  readonly name: string;
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  /** The last stderr lines of any class, for context when the exit status alone explains nothing. */
  private readonly tail: string[] = [];
  /** Resolves when the process has exited and its stderr is fully read; rejects with ToolError on failure. */
  readonly done: Promise<void>;
  private killedByUs = false;

  constructor(
    command: ToolCommand,
    stdio: StdioOptions,
    classify: StderrClassifier,
    onWarning?: (line: string) => void,
    options: ToolProcessOptions = {},
  ) {
    this.name = command.name;
    // Arguments never carry secrets (passwords travel in the environment or a 0600 file).
    if (process.env.DBBACKUP_DEBUG)
      process.stderr.write(`debug: exec ${command.file} ${command.args.join(' ')}\n`);
    this.child = spawn(command.file, command.args, { env: command.env, stdio, windowsHide: true });
    const stderrDone = new Promise<void>((resolve) => {
      if (!this.child.stderr) return resolve();
      const rl = createInterface({ input: this.child.stderr, crlfDelay: Infinity });
      rl.on('line', (line) => {
        if (!line.trim()) return;
        this.tail.push(line);
        if (this.tail.length > 20) this.tail.shift();
        const kind = classify(line);
        options.onLine?.(line, kind);
        if (kind === 'error' && this.errors.length < 50) this.errors.push(line);
        if (kind === 'warning' && this.warnings.length < 50) {
          this.warnings.push(line);
          onWarning?.(line);
        }
      });
      rl.on('close', resolve);
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      this.child.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') {
          reject(
            new MissingToolError(`${command.name} could not be started: ${command.file} not found`, {
              hint: 'Install it or check PATH.',
            }),
          );
        } else reject(new ToolError(`${command.name} could not be started: ${err.message}`));
      });
      this.child.once('close', (code, signal) => resolve({ code, signal }));
    });
    this.done = Promise.all([exited, stderrDone]).then(([{ code, signal }]) => this.judge(code, signal));
    // Callers await `done` later; avoid an unhandled rejection in between.
    this.done.catch(() => undefined);
    const { signal } = options;
    if (signal) {
      const stop = (): void => this.kill();
      if (signal.aborted) stop();
      else {
        signal.addEventListener('abort', stop, { once: true });
        void exited.finally(() => signal.removeEventListener('abort', stop)).catch(() => undefined);
      }
    }
  }

  private judge(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.killedByUs) throw new ToolError(`${this.name} was stopped`);
    if (signal) {
      throw new ToolError(`${this.name} was killed by ${signal}`, {
        hint: 'Something stopped the process (out of memory, an operator, a timeout); nothing was kept.',
        details: this.tail.slice(-5),
      });
    }
    if (code !== 0) {
      const shown = this.errors.length ? this.errors : this.tail;
      throw new ToolError(`${this.name} failed (exit code ${code})${shown[0] ? `: ${shown[0]}` : ''}`, {
        hint: toolFailureHint(shown),
        details: shown.slice(1, 8),
      });
    }
    if (this.errors.length) {
      throw new ToolError(`${this.name} reported errors although it exited 0: ${this.errors[0]}`, {
        hint: 'The output cannot be trusted; nothing was kept.',
        details: this.errors.slice(1, 8),
      });
    }
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.killedByUs = true;
      this.child.kill('SIGTERM');
    }
  }
}

/** What to do about a dump or restore tool's failure, from its own error lines. */
export function toolFailureHint(lines: readonly string[]): string {
  const text = lines.join('\n');
  if (/references invalid table|invalid view/i.test(text))
    return 'A view is broken (it refers to a table, column or function that is gone, or its definer lacks rights): fix or drop it.';
  if (
    /permission denied|access denied|command denied|lack rights|must be owner|insufficient privilege/i.test(
      text,
    )
  )
    return 'The user lacks a privilege this needs: "dbbackup preflight <database>" lists every one a backup needs.';
  if (/no space left|disk full|ENOSPC|could not extend file/i.test(text))
    return "The server's disk (or this machine's) is full: free space and run it again.";
  if (/lock timeout|deadlock|could not obtain lock|Lock wait timeout/i.test(text))
    return 'Another session held a lock too long: run it again at a quieter time, or find the blocking session.';
  if (/out of memory|cannot allocate/i.test(text)) return 'The tool ran out of memory.';
  if (
    /could not connect|connection refused|can't connect|lost connection|server closed the connection|SSL SYSCALL error/i.test(
      text,
    )
  )
    return 'The connection to the server failed or dropped: check that it is running and reachable.';
  return "The first line is the tool's own error; fix its cause and run the command again.";
}

/**
 * Waits for all processes; on the first failure the others are stopped. The failure reported is the
 * one that explains the others: a process killed by SIGPIPE or stopped by us only lost its partner
 * (a decompressor whose restore tool lost its server), so the first other failure, in the order
 * given, wins over it.
 */
export async function waitAll(processes: ToolProcess[]): Promise<void> {
  try {
    await Promise.all(processes.map((p) => p.done));
  } catch (err) {
    // A broken pipe means its reader is going away: let the reader end, and say why, on its own.
    if (consequential(err))
      await Promise.race([
        Promise.allSettled(processes.map((p) => p.done)),
        sleep(2000, undefined, { ref: false }),
      ]);
    for (const p of processes) p.kill();
    const failures = (await Promise.allSettled(processes.map((p) => p.done))).flatMap((r) =>
      r.status === 'rejected' ? [r.reason as unknown] : [],
    );
    throw failures.find((f) => !consequential(f)) ?? err;
  }
}

/** A failure that only follows from another process's: its reader went away, or we stopped it. */
export function consequential(err: unknown): boolean {
  return (
    err instanceof ToolError &&
    /was killed by SIGPIPE$| was stopped$|Broken pipe|Write error|Connection reset by peer/i.test(err.message)
  );
}

/**
 * Waits for a feed into processes that have all exited. Nothing reads their pipes any more, so a
 * feed still running can only end in an error; but a feed paused on back-pressure may never learn
 * of the exit (Node then quits with "unsettled top-level await"). After a short grace it is cut.
 */
export async function settleFeed(
  feeding: Promise<void>,
  streams: readonly (Readable | Writable)[],
  graceMs = 2000,
): Promise<void> {
  const cut = setTimeout(() => {
    for (const s of streams) s.destroy(new Error('the reading process exited'));
  }, graceMs);
  try {
    await feeding;
  } finally {
    clearTimeout(cut);
  }
}

/**
 * Resolves once `stream` wants more data ('drain') or can never take any ('close'), e.g. the stdin
 * of a process that has exited: a writer waiting on 'drain' alone would wait forever then.
 */
export function drainOrClose(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
