/**
 * Learning from the stable version while it runs: the latency baseline the next release is judged
 * by (persisted per version), and how fast its checks pass (fast_timeout: auto, in memory only).
 */
import { learnBaseline, percentile } from '../../core/rules.js';
import { probeTimeoutMs } from '../../core/schedule.js';
import type { GuardState } from '../../core/types.js';
import { errorMessage } from '../../errors.js';
import type { Probe, SampleOptions } from '../../probes/types.js';
import type { Baselines } from '../../store/state-store.js';
import type { GuardContext } from './context.js';

/** How often the baseline of the stable version is refreshed and, when changed, persisted. */
const BASELINE_EVERY_MS = 15_000;
const BASELINE_LOOKBACK_MS = 5 * 60_000;
/** The stable version's check latency (for fast_timeout: auto) needs this many passing checks. */
const CHECK_LATENCY_MIN_SAMPLES = 20;

/** The version whose samples teach: the running one, when it is the settled stable version. */
function learningFrom(state: GuardState): string | null {
  const { phase, running, stable } = state;
  return running && running === stable && (phase === 'stable' || phase === 'promoted') ? running : null;
}

export class BaselineLearning {
  baselines: Baselines = {};
  private lastBaselineAt = 0;
  private lastCheckLatencyAt = 0;
  /** Per http probe: the p99 latency of the stable version's passing checks (fast_timeout: auto). */
  private readonly checkP99 = new Map<string, { version: string; ms: number }>();
  /** The configured timeout of each http probe: the only probes fast_timeout shortens. */
  private readonly httpTimeouts: ReadonlyMap<string, number>;

  constructor(private readonly ctx: GuardContext) {
    this.httpTimeouts = new Map(ctx.deps.config.probes.flatMap((p) => (p.type === 'http' ? [[p.name, p.timeout] as const] : [])));
  }

  /** The persisted baseline p95 (ms) of a version's probe, if one was learnt. */
  p95(version: string, probe: string): number | undefined {
    return this.baselines[version]?.[probe]?.p95Ms;
  }

  /**
   * While the running version is the stable one, what users saw of it is the baseline the next
   * release is judged by. Persisted per version, so it survives a restart of the guard.
   */
  async refresh(): Promise<void> {
    const { config, clock, store, log } = this.ctx.deps;
    const rule = config.rules.latency_ratio;
    const now = clock.now();
    if (!rule || now - this.lastBaselineAt < BASELINE_EVERY_MS) return;
    const running = learningFrom(this.ctx.machine.state);
    if (!running) return;
    const since = Math.max(now - BASELINE_LOOKBACK_MS, this.ctx.machine.runningSince);
    const source = this.ctx.machine.observing.probeTypes.get(rule.probe) ?? 'http';
    // Checks carry the version they saw; traffic readings are taken as the running version's.
    const recent = this.ctx.samples.of(rule.probe).filter((s) => s.startedAt >= since && (s.version === undefined || s.version === running));
    const learnt = learnBaseline(recent, source, rule.min_samples);
    if (!learnt) return;
    this.lastBaselineAt = now;
    this.baselines = { ...this.baselines, [running]: { ...this.baselines[running], [rule.probe]: { ...learnt, at: now } } };
    try {
      await store.saveBaselines(this.baselines);
    } catch (error) {
      log.warn('baseline not saved', { component: 'baseline', error: errorMessage(error) });
    }
  }

  /**
   * While the stable version runs, how fast its checks pass: fast_timeout: auto gives a check of
   * the next release (or of the rollback) ten times that before it counts as failed. In memory
   * only: after a restart of the guard the probe's own timeout stands until it is learnt again.
   */
  refreshCheckLatency(): void {
    const { config, clock, log } = this.ctx.deps;
    if (config.schedule.fast_timeout !== 'auto') return;
    const running = learningFrom(this.ctx.machine.state);
    if (!running) return;
    // Every tick until this version's p99 is known, then at the baseline's pace: a p99 over 5 min
    // does not move by the second, and the tick loop has other work.
    const now = clock.now();
    const known = [...this.httpTimeouts.keys()].every((name) => this.checkP99.get(name)?.version === running);
    if (known && now - this.lastCheckLatencyAt < BASELINE_EVERY_MS) return;
    this.lastCheckLatencyAt = now;
    const since = Math.max(now - BASELINE_LOOKBACK_MS, this.ctx.machine.runningSince);
    for (const [name, timeout] of this.httpTimeouts) {
      const latencies: number[] = [];
      for (const s of this.ctx.samples.newestSince(name, since)) {
        const ms = s.values.latency_ms;
        if (s.ok && (s.version === undefined || s.version === running) && ms !== undefined) latencies.push(ms);
      }
      if (latencies.length < CHECK_LATENCY_MIN_SAMPLES) continue;
      const p99 = percentile(latencies, 99);
      if (p99 === null) continue;
      if (this.checkP99.get(name)?.version !== running) {
        const fastTimeoutMs = probeTimeoutMs(timeout, config.schedule, true, p99);
        log.info('stable check latency learnt', { component: 'probe', probe: name, version: running, p99Ms: Math.round(p99 * 10) / 10, fastTimeoutMs });
      }
      this.checkP99.set(name, { version: running, ms: p99 });
    }
  }

  /** An http check at the fast interval gives up sooner (schedule.fast_timeout). */
  sampleOptions(probe: Probe, fast: boolean): SampleOptions {
    const timeout = this.httpTimeouts.get(probe.name);
    if (timeout === undefined) return {};
    const learnt = this.checkP99.get(probe.name);
    const stableP99 = learnt && learnt.version === this.ctx.machine.state.stable ? learnt.ms : null;
    return { timeoutMs: probeTimeoutMs(timeout, this.ctx.deps.config.schedule, fast, stableP99) };
  }
}
