/**
 * Event-loop delay of the server process, as a Prometheus histogram: a 20 ms timer measures how
 * late it fires (generation steps run on the loop, so this is what a request waiting for its turn
 * feels). Cumulative buckets let a scraper take quantiles over any interval (bench/soak.ts).
 */

/** Bucket upper bounds in milliseconds. */
const BOUNDS_MS = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500];
const PERIOD_MS = 20;

export class EventLoopDelay {
  readonly bounds = BOUNDS_MS;
  /** counts[i]: samples <= bounds[i] (not cumulative); the last entry: above every bound. */
  readonly counts = new Array<number>(BOUNDS_MS.length + 1).fill(0);
  sumMs = 0;
  maxMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private expected = 0;

  start(): void {
    if (this.timer) return;
    this.expected = performance.now() + PERIOD_MS;
    this.timer = setInterval(() => {
      const now = performance.now();
      const late = Math.max(0, now - this.expected);
      this.expected = now + PERIOD_MS;
      this.record(late);
    }, PERIOD_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  record(ms: number): void {
    let i = 0;
    while (i < BOUNDS_MS.length && ms > BOUNDS_MS[i]!) i++;
    this.counts[i]!++;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  /** Prometheus text lines of the histogram `gemma_event_loop_delay_seconds`. */
  render(): string {
    const name = 'gemma_event_loop_delay_seconds';
    const lines = [`# HELP ${name} How late a 20 ms timer fires on the server's event loop.`, `# TYPE ${name} histogram`];
    let cum = 0;
    BOUNDS_MS.forEach((b, i) => {
      cum += this.counts[i]!;
      lines.push(`${name}_bucket{le="${b / 1000}"} ${cum}`);
    });
    cum += this.counts[BOUNDS_MS.length]!;
    lines.push(`${name}_bucket{le="+Inf"} ${cum}`, `${name}_sum ${this.sumMs / 1000}`, `${name}_count ${cum}`);
    lines.push('# HELP gemma_event_loop_delay_max_seconds Largest event-loop delay seen.', '# TYPE gemma_event_loop_delay_max_seconds gauge', `gemma_event_loop_delay_max_seconds ${this.maxMs / 1000}`);
    return lines.join('\n') + '\n';
  }
}
