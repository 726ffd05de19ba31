/**
 * The probe loops: each probe is launched on the machine's schedule (fast inside a window or a
 * failure streak), whether or not its previous sample has come back, so a hang is seen within
 * timeout + N × interval rather than N × timeout. At most `max_in_flight` run per probe.
 */
import { setMaxListeners } from 'node:events';
import { probeIntervalMs, probesFast } from '../../core/schedule.js';
import { errorMessage } from '../../errors.js';
import type { Probe, SampleOptions } from '../../probes/types.js';
import type { GuardContext } from './context.js';

export class ProbeScheduler {
  private readonly inFlight = new Map<string, number>();
  /** Probe samples launched and not yet handled: stop() waits for them. */
  private readonly launches = new Set<Promise<void>>();
  private loops: Promise<void>[] = [];
  /** Wakes the probe loops when the schedule may have changed (a release window opened, …). */
  private wakeUp = new AbortController();
  /**
   * What the probe loops sleep on: `stopping` or `wakeUp`, composed once per wake rather than per
   * sleep (AbortSignal.any makes a signal tied to both sources, on every launch of every probe).
   */
  private loopSignal: AbortSignal;

  constructor(private readonly ctx: GuardContext) {
    this.loopSignal = this.loopSignalFor(this.wakeUp);
    ctx.stopping.addEventListener('abort', () => this.wakeUp.abort(), { once: true });
  }

  /** Starts one loop per probe. */
  start(probes: readonly Probe[]): void {
    for (const probe of probes) this.loops.push(this.probeLoop(probe));
  }

  /** Resolves when the loops have ended and every launched sample is handled (after `stopping`). */
  async settled(): Promise<void> {
    await Promise.allSettled(this.loops);
    // Launched samples end with the stopping signal; none may outlive the guard (or its log).
    await Promise.allSettled([...this.launches]);
  }

  /** The schedule may have changed: every loop recomputes its next launch now. */
  wake(): void {
    const old = this.wakeUp;
    this.wakeUp = new AbortController();
    this.loopSignal = this.loopSignalFor(this.wakeUp);
    old.abort();
  }

  private async probeLoop(probe: Probe): Promise<void> {
    const { clock, config } = this.ctx.deps;
    let lastLaunch = Number.NEGATIVE_INFINITY;
    while (!this.ctx.stopping.aborted) {
      const now = clock.now();
      const state = this.ctx.machine.state;
      const lastFailed = this.ctx.samples.lastFailed(probe.name);
      const due = lastLaunch + probeIntervalMs(state, now, config.schedule, probe.type, lastFailed);
      if (now >= due) {
        lastLaunch = now;
        this.launch(probe, now, this.ctx.learning.sampleOptions(probe, probesFast(state, now, config.schedule, probe.type, lastFailed)));
        continue;
      }
      await clock.sleep(due - now, this.loopSignal);
    }
  }

  private loopSignalFor(wake: AbortController): AbortSignal {
    const signal = AbortSignal.any([this.ctx.stopping, wake.signal]);
    // Every probe loop sleeps on it at once: one abort listener per probe is expected.
    setMaxListeners(0, signal);
    return signal;
  }

  private launch(probe: Probe, startedAt: number, options: SampleOptions): void {
    const { config, log } = this.ctx.deps;
    const running = this.inFlight.get(probe.name) ?? 0;
    if (running >= config.schedule.max_in_flight) {
      log.debug('probe launch skipped: too many in flight', { component: 'probe', probe: probe.name, running });
      return;
    }
    this.inFlight.set(probe.name, running + 1);
    const run: Promise<void> = probe
      .sample(startedAt, this.ctx.stopping, options)
      .then((sample) => this.ctx.judge.onSample(probe, sample))
      .catch((error: unknown) => {
        // A sample cut short by stop() is expected, not an error worth a line.
        if (!this.ctx.stopping.aborted) log.error('probe sample handling failed', { component: 'probe', probe: probe.name, error: errorMessage(error) });
      })
      .finally(() => {
        this.inFlight.set(probe.name, (this.inFlight.get(probe.name) ?? 1) - 1);
        this.launches.delete(run);
      });
    this.launches.add(run);
  }
}
