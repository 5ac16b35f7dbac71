import { EtaEstimator } from '../pipeline/eta.js';
import { formatBytes, formatDuration, type ProgressSource } from '../pipeline/progress.js';

/** One frame of a backup's progress, from the counters the CLI's progress bar reads. */
export interface ProgressFrame {
  produced: string;
  stored: string;
  rate: string;
  elapsed: string;
  /** Time left, or '?' while unknown. */
  left: string;
  /** 0-99 while running (the estimate is the tables' size on disk, not the dump's). */
  percent: number;
}

/**
 * Turns the byte counters of a running dump into what is shown: the same arithmetic as the CLI's
 * bar (src/pipeline/progress.ts), so both say the same thing about the same backup.
 */
export class BackupMeter {
  private readonly started = Date.now();
  private readonly eta = new EtaEstimator();

  constructor(
    private readonly source: ProgressSource,
    private readonly estimate: () => number | null,
    private readonly now: () => number = Date.now,
  ) {}

  frame(): ProgressFrame {
    const elapsed = (this.now() - this.started) / 1000;
    const produced = this.source.produced();
    const stored = this.source.stored();
    const estimate = this.estimate();
    const percent = estimate && produced !== null ? Math.min(99, (100 * produced) / estimate) : 0;
    if (produced !== null) this.eta.sample(elapsed, produced);
    const left = produced !== null ? (this.eta.remaining(estimate) ?? Number.NaN) : Number.NaN;
    const done = produced ?? stored;
    return {
      produced: produced === null ? '?' : formatBytes(produced),
      stored: formatBytes(stored),
      rate: `${formatBytes(elapsed > 0 ? done / elapsed : 0)}/s`,
      elapsed: formatDuration(elapsed),
      left: formatDuration(left),
      percent,
    };
  }
}

/** A text bar of `width` cells: no colour needed to read it. */
export function textBar(percent: number, width = 20): string {
  const filled = Math.max(0, Math.min(width, Math.round((percent / 100) * width)));
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}

/** One frame of a restore step's progress: bytes of `total` read, rate, time left. */
export interface StepFrame {
  done: string;
  total: string;
  rate: string;
  /** Time left, or '?' while unknown. */
  left: string;
  percent: number;
}

/**
 * A step that reads a known number of bytes (a base backup extracted, binlogs replayed): the same
 * arithmetic as the CLI's step bar (StepProgress in src/cli/progress.ts).
 */
export class StepMeter {
  private readonly started: number;
  private readonly eta = new EtaEstimator();

  constructor(
    private readonly bytes: () => number,
    private readonly total: number,
    private readonly now: () => number = Date.now,
  ) {
    this.started = now();
  }

  frame(): StepFrame {
    const elapsed = (this.now() - this.started) / 1000;
    const done = this.bytes();
    this.eta.sample(elapsed, done);
    return {
      done: formatBytes(done),
      total: formatBytes(this.total),
      rate: `${formatBytes(elapsed > 0 ? done / elapsed : 0)}/s`,
      left: formatDuration(this.eta.remaining(this.total) ?? Number.NaN),
      percent: this.total > 0 ? Math.min(100, (100 * done) / this.total) : 0,
    };
  }
}
