/**
 * Whether the guard is alive in the sense that matters: its tick loop (rules, timers of the state
 * machine, resuming a plan) keeps running and its event loop is not mostly blocked. `/healthz`
 * answers 503 with the reason when it is not, so a watchdog (systemd timer, pm2, a load balancer)
 * restarts it; a guard whose loop is blocked outright does not answer at all, which a watchdog
 * with a timeout counts as a failure too.
 *
 * Two signals, both over the last `windowMs` (server.liveness):
 * - the tick loop last completed an iteration more than `windowMs` ago (it runs every second): a
 *   promise it awaits never settles, or the loop is starved;
 * - the event loop was blocked more than half of the window: a timer due every SAMPLE_MS is
 *   measured against the clock, and each late firing adds its lateness. (perf_hooks'
 *   monitorEventLoopDelay was tried first: in Node 20 it did not record a 1.5 s block in its max.)
 */
import type { Clock } from './clock.js';

/** How often the sampler's timer is due. */
const SAMPLE_MS = 100;
/** Lateness below this is scheduling noise, not a block. */
const NOISE_MS = 20;

export interface Liveness {
  ok: boolean;
  /** Why not ok; null when ok. */
  reason: string | null;
  /** Milliseconds since the tick loop last completed an iteration. */
  tickAgeMs: number;
  /** Milliseconds the event loop was blocked in the last window, and the longest single block. */
  blockedMs: number;
  longestBlockMs: number;
  windowMs: number;
}

export class LoopLiveness {
  private readonly blocks: { at: number; ms: number }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAt: number;

  constructor(
    private readonly options: {
      clock: Clock;
      windowMs: number;
      /** When the tick loop last completed an iteration (null: not yet). */
      lastTickAt: () => number | null;
    },
  ) {
    this.startedAt = options.clock.now();
  }

  start(): this {
    const { clock } = this.options;
    let due = clock.now() + SAMPLE_MS;
    const sample = () => {
      const now = clock.now();
      const late = now - due;
      if (late > NOISE_MS) this.blocks.push({ at: now, ms: late });
      this.prune(now);
      due = now + SAMPLE_MS;
      // A real timer, not clock.sleep: how late the event loop fires it is what is measured.
      this.timer = setTimeout(sample, SAMPLE_MS);
      this.timer.unref();
    };
    this.timer = setTimeout(sample, SAMPLE_MS);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  check(): Liveness {
    const { clock, windowMs } = this.options;
    const now = clock.now();
    this.prune(now);
    const tickAgeMs = now - (this.options.lastTickAt() ?? this.startedAt);
    const blockedMs = this.blocks.reduce((sum, b) => sum + b.ms, 0);
    const longestBlockMs = this.blocks.reduce((max, b) => Math.max(max, b.ms), 0);
    let reason: string | null = null;
    if (tickAgeMs > windowMs) {
      reason = `the guard's tick loop has not run for ${seconds(tickAgeMs)} (it runs every second; limit server.liveness ${seconds(windowMs)})`;
    } else if (blockedMs > windowMs / 2) {
      reason = `the event loop was blocked ${seconds(blockedMs)} of the last ${seconds(windowMs)} (longest ${seconds(longestBlockMs)}); probes and rules run late`;
    }
    return { ok: reason === null, reason, tickAgeMs, blockedMs, longestBlockMs, windowMs };
  }

  private prune(now: number): void {
    while (this.blocks.length > 0 && this.blocks[0]!.at < now - this.options.windowMs) this.blocks.shift();
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
