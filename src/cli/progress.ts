import { createRequire } from 'node:module';
import type cliProgress from 'cli-progress';
import { log } from '../log/logger.js';
import type {
  ClusterMemberState,
  ClusterProgressSink,
  ProgressMode,
  ProgressSource,
  ProgressView,
} from '../pipeline/progress.js';
import { formatBytes, formatDuration } from '../units.js';
import { EtaEstimator } from '../pipeline/eta.js';
import type { StepReporter } from '../restore/single.js';

export { EtaEstimator };

/*
 * Progress on the terminal: a bar on a TTY, lines elsewhere. The domain reports what it measures
 * (src/pipeline/progress.ts); this draws it. main.ts registers TerminalProgress as the renderer.
 */

/** cli-progress (and string-width & co.) only when a bar is drawn: ~10-20 ms of start-up otherwise. */
const bars = (): typeof cliProgress => createRequire(import.meta.url)('cli-progress') as typeof cliProgress;

export function progressMode(
  requested: boolean | undefined,
  stream: NodeJS.WriteStream = process.stderr,
): ProgressMode {
  if (requested === false || (log.quiet && requested !== true)) return 'off';
  if (stream.isTTY) return 'bar';
  return requested ? 'lines' : 'off';
}

/** Shows bytes, rate, elapsed time, and percentage and ETA against an estimate of the dump size. */
export class TerminalProgress implements ProgressView {
  private bar: cliProgress.SingleBar | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly started = Date.now();
  private readonly eta = new EtaEstimator();

  constructor(
    private readonly mode: ProgressMode,
    private readonly label: string,
    private readonly source: ProgressSource,
    /** Expected dump size, when known (it may arrive after the dump started). */
    private readonly estimate: () => number | null,
  ) {}

  start(): void {
    if (this.mode === 'off') return;
    if (this.mode === 'bar') {
      this.bar = new (bars().SingleBar)(
        {
          format: `${this.label} {bar} {percentage}% | {produced} dumped, {stored} stored | {rate} | {elapsed} | ETA {left}`,
          hideCursor: true,
          // The last frame stays: 100 % when the backup completed, where it stopped otherwise.
          clearOnComplete: false,
          stream: process.stderr,
          barsize: 20,
        },
        bars().Presets.shades_classic,
      );
      this.bar.start(100, 0, this.payload());
    }
    this.timer = setInterval(() => this.tick(), this.mode === 'bar' ? 250 : 2000);
    this.timer.unref();
  }

  private payload(): {
    produced: string;
    stored: string;
    rate: string;
    elapsed: string;
    left: string;
    pct: number;
  } {
    const elapsed = (Date.now() - this.started) / 1000;
    const produced = this.source.produced();
    const done = produced ?? this.source.stored();
    const estimate = this.estimate();
    // The estimate (table sizes on disk) is not the dump's size: a dump past it stays at 99 % until it ends.
    const pct = estimate && produced !== null ? Math.min(99, (100 * produced) / estimate) : 0;
    if (produced !== null) this.eta.sample(elapsed, produced);
    // Past the estimate, how much is left is unknown: no ETA rather than a wrong one.
    const eta = produced !== null ? (this.eta.remaining(estimate) ?? Number.NaN) : Number.NaN;
    return {
      produced: produced === null ? '?' : formatBytes(produced),
      stored: formatBytes(this.source.stored()),
      rate: `${formatBytes(elapsed > 0 ? done / elapsed : 0)}/s`,
      elapsed: formatDuration(elapsed),
      left: formatDuration(eta),
      pct,
    };
  }

  private tick(): void {
    const p = this.payload();
    if (this.bar) this.bar.update(Math.floor(p.pct), p);
    else if (this.mode === 'lines') this.writeLine(p);
  }

  private writeLine(p: ReturnType<TerminalProgress['payload']>): void {
    const pct = p.pct ? `${p.pct.toFixed(0)}% ` : '';
    const eta = p.pct && p.left !== '?' ? `, ETA ${p.left}` : '';
    process.stderr.write(
      `${this.label}: ${pct}${p.produced} dumped, ${p.stored} stored, ${p.rate}, ${p.elapsed} elapsed${eta}\n`,
    );
  }

  /**
   * Ends the display; `completed`: the backup is stored, so the bar ends at 100 % whatever the size
   * estimate said (it is the tables' size on disk — page and row overhead, free space — which a dump
   * is rarely the size of: a bar once ended at 75 %). In line mode a last line gives the stored total,
   * so even a short run shows one (the dumped count may be a sample from before the dump tool exited,
   * so it is left out).
   */
  stop(completed = false): void {
    if (this.timer) clearInterval(this.timer);
    if (this.bar && completed) this.bar.update(100, { ...this.payload(), left: '0s' });
    this.bar?.stop();
    if (this.mode === 'lines' && this.timer) {
      const p = this.payload();
      process.stderr.write(
        completed
          ? `${this.label}: 100%, ${p.stored} stored in ${p.elapsed}\n`
          : `${this.label}: stopped after ${p.elapsed}, ${p.stored} stored (not kept)\n`,
      );
    }
    this.timer = undefined;
  }
}

interface MemberProgress {
  name: string;
  state: ClusterMemberState;
  /** Expected bytes (database size estimate, or stored size for a restore); null when unknown. */
  estimate: number | null;
  bytes: number;
  /** Bytes stored (backup) once done. */
  stored: number;
  /** `bytes` is an exact count (given at the end), not the last sample of a process that has exited. */
  exact: boolean;
  read: (() => number | null) | undefined;
  started: number;
  finished: number;
  bar: cliProgress.SingleBar | undefined;
}

/**
 * Progress of a cluster backup or restore: every database's state (waiting, dumping/restoring,
 * done, failed) and bytes, plus overall bytes, rate and ETA against the sum of the estimates.
 * `bar`: a multi-bar on a terminal (an overall bar and one bar per active database, finished
 * databases logged above them); `lines`: a line per state change and a summary every 2 seconds;
 * `off`: nothing.
 */
export class ClusterProgress implements ClusterProgressSink {
  private readonly members = new Map<string, MemberProgress>();
  private multibar: cliProgress.MultiBar | undefined;
  private overall: cliProgress.SingleBar | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private started = Date.now();
  private begun = false;
  private ended = false;
  private readonly eta = new EtaEstimator();

  constructor(
    private readonly mode: ProgressMode,
    /** Prefix of every line, e.g. `cluster backup`. */
    private readonly label: string,
    /** What an active database is doing: `dumping` or `restoring`. */
    private readonly verb: string,
    /** What its bytes are: `dumped` or `read`. */
    private readonly counted: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  begin(databases: ReadonlyArray<{ name: string; estimate: number | null }>): void {
    this.started = Date.now();
    this.begun = true;
    for (const d of databases) {
      this.members.set(d.name, {
        name: d.name,
        state: 'waiting',
        estimate: d.estimate,
        bytes: 0,
        stored: 0,
        exact: false,
        read: undefined,
        started: 0,
        finished: 0,
        bar: undefined,
      });
    }
    if (this.mode === 'off') return;
    const total = this.totals();
    if (this.mode === 'bar') {
      this.multibar = new (bars().MultiBar)(
        {
          hideCursor: true,
          clearOnComplete: true,
          stream: this.stream,
          barsize: 20,
          format: `${this.label} {bar} {percentage}% | ETA {left} | {summary}`,
          autopadding: true,
        },
        bars().Presets.shades_classic,
      );
      this.overall = this.multibar.create(100, 0, { summary: this.summary(), left: '?' });
    } else {
      this.line(
        `${databases.length} databases${total.estimate ? ` (~${formatBytes(total.estimate)})` : ''}: ${databases.map((d) => d.name).join(', ')}`,
      );
    }
    this.timer = setInterval(() => this.tick(), this.mode === 'bar' ? 250 : 2000);
    this.timer.unref();
    // Bytes are sampled more often than shown, so a database that finishes between two lines still has a recent count.
    this.sampler = setInterval(() => {
      for (const m of this.members.values()) this.sample(m);
    }, 100);
    this.sampler.unref();
  }

  estimate(name: string, bytes: number | null): void {
    const m = this.members.get(name);
    if (m && bytes !== null && m.state !== 'done') m.estimate = bytes;
  }

  start(name: string, read: () => number | null): void {
    const m = this.member(name);
    m.state = 'active';
    m.read = read;
    m.started = Date.now();
    if (this.multibar) {
      m.bar = this.multibar.create(
        100,
        0,
        { name, bytes: formatBytes(0), estimate: this.estimateText(m) },
        { format: `  {name} {bar} {percentage}% | {bytes}{estimate}` },
      );
    } else if (this.mode === 'lines') {
      this.line(`${name}: ${this.verb}${m.estimate ? ` (~${formatBytes(m.estimate)})` : ''}`);
    }
  }

  done(name: string, result: { bytes?: number; stored?: number } = {}): void {
    const m = this.member(name);
    this.sample(m);
    if (result.bytes !== undefined) {
      m.bytes = result.bytes;
      m.exact = true;
    }
    m.state = 'done';
    m.finished = Date.now();
    // Done: its real size replaces the estimate, so the overall figures converge.
    m.estimate = m.bytes;
    const parts = [`in ${formatDuration((m.finished - (m.started || m.finished)) / 1000)}`];
    if (m.exact) parts.push(`${formatBytes(m.bytes)} ${this.counted}`);
    if (result.stored !== undefined) {
      m.stored = result.stored;
      parts.push(`${formatBytes(result.stored)} stored`);
    }
    this.finishMember(m, `${name}: done ${parts.join(', ')}`);
  }

  failed(name: string, reason: string): void {
    this.stopped(name, 'failed', reason);
  }

  skipped(name: string, reason: string): void {
    this.stopped(name, 'skipped', reason);
  }

  /** Ended without being done: what it got to stands as its size. */
  private stopped(name: string, state: 'failed' | 'skipped', reason: string): void {
    const m = this.member(name);
    this.sample(m);
    m.state = state;
    m.finished = Date.now();
    m.estimate = m.bytes;
    this.finishMember(m, `${name}: ${state}: ${reason.split('\n')[0] ?? ''}`);
  }

  note(text: string): void {
    if (this.multibar) this.multibar.log(`${this.label}: ${text}\n`);
    else if (this.mode !== 'off') this.line(text);
  }

  end(): void {
    if (this.ended || !this.begun) return;
    this.ended = true;
    if (this.timer) clearInterval(this.timer);
    if (this.sampler) clearInterval(this.sampler);
    if (this.mode === 'off') return;
    const counts = this.counts();
    const total = this.totals();
    let stored = 0;
    let exact = true;
    for (const m of this.members.values()) {
      stored += m.stored;
      if (m.state === 'done' && !m.exact) exact = false;
    }
    const amounts = [
      ...(total.bytes > 0 ? [`${exact ? '' : '~'}${formatBytes(total.bytes)} ${this.counted}`] : []),
      ...(stored > 0 ? [`${formatBytes(stored)} stored`] : []),
    ];
    const text = `finished: ${counts.done} done, ${counts.failed} failed${counts.skipped ? `, ${counts.skipped} skipped` : ''}${counts.waiting + counts.active ? `, ${counts.waiting + counts.active} not done` : ''}; ${amounts.length ? `${amounts.join(', ')} ` : ''}in ${formatDuration((Date.now() - this.started) / 1000)}`;
    if (this.multibar) {
      this.multibar.log(`${this.label}: ${text}\n`);
      this.multibar.update(); // writes the logged lines; stop() alone would drop them
      this.multibar.stop();
    } else this.line(text);
  }

  private member(name: string): MemberProgress {
    let m = this.members.get(name);
    if (!m) {
      m = {
        name,
        state: 'waiting',
        estimate: null,
        bytes: 0,
        stored: 0,
        exact: false,
        read: undefined,
        started: 0,
        finished: 0,
        bar: undefined,
      };
      this.members.set(name, m);
    }
    return m;
  }

  private finishMember(m: MemberProgress, text: string): void {
    if (this.multibar) {
      if (m.bar) this.multibar.remove(m.bar);
      m.bar = undefined;
      this.multibar.log(`${this.label}: ${text}\n`);
      this.updateOverall();
    } else if (this.mode === 'lines') this.line(text);
  }

  private sample(m: MemberProgress): void {
    if (m.state !== 'active' || !m.read) return;
    const n = m.read();
    if (n !== null && n > m.bytes) m.bytes = n;
  }

  private estimateText(m: MemberProgress): string {
    return m.estimate ? ` of ~${formatBytes(m.estimate)}` : '';
  }

  private counts(): Record<ClusterMemberState, number> {
    const c: Record<ClusterMemberState, number> = { waiting: 0, active: 0, done: 0, failed: 0, skipped: 0 };
    for (const m of this.members.values()) c[m.state]++;
    return c;
  }

  /** Bytes so far, and the expected total: finished databases count with their real size. */
  private totals(): { bytes: number; estimate: number } {
    let bytes = 0;
    let estimate = 0;
    for (const m of this.members.values()) {
      bytes += m.bytes;
      estimate += Math.max(m.bytes, m.estimate ?? 0);
    }
    return { bytes, estimate };
  }

  private figures(): { pct: number; eta: string; rate: string; elapsed: string } {
    const elapsed = (Date.now() - this.started) / 1000;
    const { bytes, estimate } = this.totals();
    const pct = estimate > 0 ? Math.min(99, (100 * bytes) / estimate) : 0;
    this.eta.sample(elapsed, bytes);
    const eta = this.eta.remaining(estimate) ?? Number.NaN;
    return {
      pct,
      eta: formatDuration(eta),
      rate: `${formatBytes(elapsed > 0 ? bytes / elapsed : 0)}/s`,
      elapsed: formatDuration(elapsed),
    };
  }

  private summary(): string {
    const c = this.counts();
    const { bytes, estimate } = this.totals();
    return `${c.done}/${this.members.size} done${c.failed ? `, ${c.failed} failed` : ''}, ${c.active} ${this.verb}, ${c.waiting} waiting | ${formatBytes(bytes)}${estimate ? ` of ~${formatBytes(estimate)}` : ''}`;
  }

  private updateOverall(): void {
    if (!this.overall) return;
    const f = this.figures();
    this.overall.update(Math.floor(f.pct), { summary: `${this.summary()} | ${f.rate}`, left: f.eta });
  }

  private tick(): void {
    for (const m of this.members.values()) this.sample(m);
    if (this.multibar) {
      for (const m of this.members.values()) {
        if (!m.bar) continue;
        const pct = m.estimate ? Math.min(99, (100 * m.bytes) / m.estimate) : 0;
        m.bar.update(Math.floor(pct), {
          name: m.name,
          bytes: formatBytes(m.bytes),
          estimate: this.estimateText(m),
        });
      }
      this.updateOverall();
      return;
    }
    const f = this.figures();
    const active = [...this.members.values()]
      .filter((m) => m.state === 'active')
      .map((m) => `${m.name} ${formatBytes(m.bytes)}${this.estimateText(m)}`);
    this.line(
      `${this.summary()} (${f.pct.toFixed(0)}%), ${f.rate}, ${f.elapsed} elapsed, ETA ${f.eta}${active.length ? `; ${this.verb}: ${active.join(', ')}` : ''}`,
    );
  }

  private line(text: string): void {
    this.stream.write(`${this.label}: ${text}\n`);
  }
}

/** One step measured in bytes against a known total, e.g. reading a whole archive before a restore. */
export class StepProgress {
  private bar: cliProgress.SingleBar | undefined;
  private timer: NodeJS.Timeout | undefined;
  private started = Date.now();
  private readonly eta = new EtaEstimator();

  constructor(
    private readonly mode: ProgressMode,
    /** e.g. `cluster restore: checking cluster_20251126_120000.tar.gz`. */
    private readonly label: string,
    private readonly bytes: () => number,
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    /**
     * What the step is doing beyond reading bytes, e.g. "building indexes and constraints
     * (post-data)": the reason a bar stays at 100 % while the tool still works.
     */
    private readonly phase: () => string | undefined = () => undefined,
  ) {}

  start(): void {
    this.started = Date.now();
    if (this.mode === 'off') return;
    if (this.mode === 'bar') {
      this.bar = new (bars().SingleBar)(
        {
          format: `${this.label} {bar} {percentage}% | {done} of {size} | {rate} | ETA {left}{phase}`,
          hideCursor: true,
          clearOnComplete: false,
          stream: this.stream,
          barsize: 20,
        },
        bars().Presets.shades_classic,
      );
      this.bar.start(100, 0, this.payload());
    } else this.stream.write(`${this.label}: ${formatBytes(this.total)}\n`);
    this.timer = setInterval(() => this.tick(), this.mode === 'bar' ? 250 : 2000);
    this.timer.unref();
  }

  private payload(): { done: string; size: string; rate: string; left: string; pct: number; phase: string } {
    const elapsed = (Date.now() - this.started) / 1000;
    const done = this.bytes();
    const pct = this.total > 0 ? Math.min(100, (100 * done) / this.total) : 0;
    this.eta.sample(elapsed, done);
    const phase = this.phase();
    return {
      done: formatBytes(done),
      size: formatBytes(this.total),
      rate: `${formatBytes(elapsed > 0 ? done / elapsed : 0)}/s`,
      left: formatDuration(this.eta.remaining(this.total) ?? Number.NaN),
      pct,
      phase: phase ? ` | ${phase}` : '',
    };
  }

  private tick(): void {
    const p = this.payload();
    if (this.bar) this.bar.update(Math.floor(p.pct), p);
    else if (this.mode === 'lines')
      this.stream.write(
        `${this.label}: ${p.pct.toFixed(0)}% (${p.done} of ${p.size}), ${p.rate}${p.left === '?' ? '' : `, ETA ${p.left}`}${p.phase.replace(' | ', '; ')}\n`,
      );
  }

  /** Stop; `outcome` (e.g. `done` or `failed: …`) ends the lines output; `done` completes the bar. */
  stop(outcome: string): void {
    if (this.timer) clearInterval(this.timer);
    if (this.bar && outcome === 'done') this.bar.update(100, { ...this.payload(), left: '0s', phase: '' });
    this.bar?.stop();
    if (this.mode === 'lines')
      this.stream.write(
        `${this.label}: ${outcome} in ${formatDuration((Date.now() - this.started) / 1000)}\n`,
      );
  }
}

/**
 * The steps of a restore (checksum, restore tool; a point-in-time restore's extraction and binlogs)
 * as a bar on a terminal, or lines with --progress; `command` leads each label (`restore: …`).
 */
export function stepReporter(mode: ProgressMode, command: string): StepReporter | undefined {
  if (mode === 'off') return undefined;
  let current: StepProgress | undefined;
  return {
    begin(step, meter, total) {
      // Every byte read while the tool still works: it is building indexes, or running its last statements.
      const restoring = step.startsWith('restoring');
      const phase = (): string | undefined =>
        meter.phase ??
        (restoring && total > 0 && meter.bytes >= total
          ? 'all of the backup read; waiting for the restore tool to finish (indexes, constraints)'
          : undefined);
      current = new StepProgress(
        mode,
        `${command}: ${step}`,
        () => meter.bytes,
        total,
        process.stderr,
        phase,
      );
      current.start();
    },
    end(outcome) {
      current?.stop(outcome);
      current = undefined;
    },
  };
}
