/**
 * Time left from how fast the work went lately. Nothing is said until the rate has settled: in the
 * first seconds a few bytes against gigabytes made ETAs of 86,586 hours. Settled means: at least
 * `settleSeconds` in, at least 1 % done, and the rate over the last `windowSeconds` within a factor of
 * two of the average since the start (not a burst, not a stall). Pure: times are passed in.
 */
export class EtaEstimator {
  private readonly samples: Array<{ t: number; done: number }> = [];

  constructor(
    private readonly windowSeconds = 10,
    private readonly settleSeconds = 3,
  ) {}

  /** How far the work got `t` seconds after it started. */
  sample(t: number, done: number): void {
    const last = this.samples.at(-1);
    if (last && t <= last.t) {
      last.done = Math.max(last.done, done);
      return;
    }
    this.samples.push({ t, done });
    // Keep one sample at or before the window's start, so the window is always full.
    while (this.samples.length > 2 && (this.samples[1]?.t ?? t) <= t - this.windowSeconds)
      this.samples.shift();
  }

  /** Seconds left to reach `total`, or null while unknown (no total, too early, unsettled, or all done). */
  remaining(total: number | null): number | null {
    const last = this.samples.at(-1);
    const first = this.samples[0];
    if (!last || !first || !total || total <= 0) return null;
    if (last.t < this.settleSeconds || last.done <= 0 || last.done >= total) return null;
    if (last.done / total < 0.01) return null;
    const span = last.t - first.t;
    if (span <= 0) return null;
    const recent = (last.done - first.done) / span;
    const average = last.done / last.t;
    if (recent <= 0 || recent > 2 * average || recent < average / 2) return null;
    return (total - last.done) / recent;
  }
}
