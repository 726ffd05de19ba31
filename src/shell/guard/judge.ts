/**
 * The guard's eyes: each sample is kept, routed to the machine (core/observe.ts) and followed by a
 * judgement of every rule; the tick loop asks for a judgement too.
 */
import { verdictsOf } from '../../core/observe.js';
import type { RuleMemo } from '../../core/rules.js';
import type { RuleVerdict, Sample } from '../../core/types.js';
import type { Probe } from '../../probes/types.js';
import type { GuardContext } from './context.js';

export class Judge {
  /** The latest verdict of every rule (for /status). */
  verdicts: RuleVerdict[] = [];
  /** Lets the sequential rules fold only the samples added since the last evaluation. */
  private readonly memo: RuleMemo = new Map();

  constructor(private readonly ctx: GuardContext) {}

  async onSample(probe: Probe, sample: Sample): Promise<void> {
    const { ctx } = this;
    if (ctx.stopping.aborted) return;
    const { metrics, log } = ctx.deps;
    metrics.probeDuration.observe({ probe: probe.name }, Math.max(0, sample.at - sample.startedAt) / 1000);
    if (!sample.ok) {
      metrics.probeFailures.inc({ probe: probe.name });
      log.debug('probe failed', { component: 'probe', probe: probe.name, error: sample.error });
    }
    const { opensFailureStreak } = ctx.samples.add(probe.name, sample);
    // A failure opens a streak inside a window: the loops, asleep on the slow interval, must
    // recompute now so the next check follows at the fast one.
    if (opensFailureStreak && ctx.machine.state.phase === 'guarding') ctx.scheduler.wake();
    await ctx.machine.observe({ type: 'sample', probe: probe.name, sample });
    await this.evaluate();
  }

  /** Judges every rule on the samples kept so far and feeds the verdicts to the machine. */
  async evaluate(): Promise<void> {
    const { machine, deps, samples, learning } = this.ctx;
    const now = deps.clock.now();
    const events = machine.observingEvents({ type: 'evaluate', at: now, samples: samples.lists, baselines: learning.baselines, runningSince: machine.runningSince, memo: this.memo });
    this.verdicts = verdictsOf(events);
    const state = machine.state;
    const crashRollback = state.rollback?.breach.trigger === 'crash' && (state.phase === 'rolling_back' || state.phase === 'verifying');
    deps.metrics.observeVerdicts(this.verdicts, crashRollback);
    for (const event of events) await machine.dispatch(event);
  }
}
