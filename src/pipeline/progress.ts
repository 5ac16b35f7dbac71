import { readFileSync } from 'node:fs';
import cliProgress from 'cli-progress';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/**
 * Bytes a process has written so far (Linux /proc/<pid>/io `wchar`): how far the dump tool got,
 * without its output passing through JavaScript. Null where /proc is not available.
 */
export function processBytesWritten(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const m = /^wchar:\s*(\d+)/m.exec(io);
    return m?.[1] ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export interface ProgressSource {
  /** Bytes stored so far (compressed). */
  stored(): number;
  /** Bytes the dump tool produced so far, when known. */
  produced(): number | null;
}

export type ProgressMode = 'bar' | 'lines' | 'off';

export function progressMode(
  requested: boolean | undefined,
  stream: NodeJS.WriteStream = process.stderr,
): ProgressMode {
  if (requested === false) return 'off';
  if (stream.isTTY) return 'bar';
  return requested ? 'lines' : 'off';
}

/** Shows bytes, rate, elapsed time, and percentage and ETA against an estimate of the dump size. */
export class Progress {
  private bar: cliProgress.SingleBar | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly started = Date.now();

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
      this.bar = new cliProgress.SingleBar(
        {
          format: `${this.label} {bar} {percentage}% | {produced} dumped, {stored} stored | {rate} | {elapsed} | ETA {eta}`,
          hideCursor: true,
          clearOnComplete: true,
          stream: process.stderr,
          barsize: 20,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(100, 0, this.payload());
    }
    this.timer = setInterval(() => this.tick(), this.mode === 'bar' ? 500 : 2000);
    this.timer.unref();
  }

  private payload(): {
    produced: string;
    stored: string;
    rate: string;
    elapsed: string;
    eta: string;
    pct: number;
  } {
    const elapsed = (Date.now() - this.started) / 1000;
    const produced = this.source.produced();
    const done = produced ?? this.source.stored();
    const estimate = this.estimate();
    const pct = estimate && produced !== null ? Math.min(99, (100 * produced) / estimate) : 0;
    const eta = pct > 0 ? (elapsed * (100 - pct)) / pct : Number.NaN;
    return {
      produced: produced === null ? '?' : formatBytes(produced),
      stored: formatBytes(this.source.stored()),
      rate: `${formatBytes(elapsed > 0 ? done / elapsed : 0)}/s`,
      elapsed: formatDuration(elapsed),
      eta: formatDuration(eta),
      pct,
    };
  }

  private tick(): void {
    const p = this.payload();
    if (this.bar) this.bar.update(Math.floor(p.pct), p);
    else if (this.mode === 'lines') {
      process.stderr.write(
        `${this.label}: ${p.pct ? `${p.pct.toFixed(0)}% ` : ''}${p.produced} dumped, ${p.stored} stored, ${p.rate}, ${p.elapsed} elapsed\n`,
      );
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.bar?.stop();
  }
}
