/**
 * The event queue: every event goes through the pure machine one at a time, in arrival order;
 * each new state is persisted before its effects run, so a crash resumes from the new state.
 */
import { observe, runningSinceAfter, type Observation, type ObserveContext } from '../../core/observe.js';
import { transition } from '../../core/transition.js';
import { closesWindow } from '../../core/windows.js';
import type { Event, GuardState, Transition } from '../../core/types.js';
import type { GuardContext } from './context.js';
import { runEffect } from './effects.js';

export class Interpreter {
  /** Set by the Guard's start (loaded or initial) before any event. */
  state!: GuardState;
  /** When the running version last changed: samples before it belong to another version. */
  runningSince = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: GuardContext,
    /** How samples and ticks become events (core/observe.ts). */
    readonly observing: ObserveContext,
  ) {}

  /** Feeds one event through the machine. Events are applied one at a time, in arrival order. */
  dispatch(event: Event): Promise<Transition> {
    return this.enqueue(() => this.apply(event));
  }

  /** The events an observation means in the state it meets in the queue, applied in order. */
  observe(observation: Observation): Promise<void> {
    return this.enqueue(async () => {
      for (const event of observe(this.state, observation, this.observing)) await this.apply(event);
    });
  }

  /** The events an observation means in the current state, without applying them. */
  observingEvents(observation: Observation): Event[] {
    return observe(this.state, observation, this.observing);
  }

  /** Runs `work` in the event queue, so nothing interleaves with it. */
  enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Resolves when every queued event has been applied. */
  drained(): Promise<void> {
    return this.queue.then(() => undefined, () => undefined);
  }

  /** Adopts a state decided elsewhere (the store's, read by a standby or on take-over). */
  adopt(state: GuardState): void {
    this.state = state;
    this.ctx.deps.metrics.observeState(state);
  }

  private async apply(event: Event): Promise<Transition> {
    const { ctx } = this;
    const before = this.state;
    // A standby follows the leader's persisted state (tick loop) and changes nothing itself.
    if (!ctx.ha.acts) return { state: before, effects: [], rejected: ctx.ha.standbyReason() };
    const result = transition(before, event, ctx.policy);
    if (result.state !== before) {
      // Persist before acting: a crash after this point resumes from the new state. A state that
      // cannot be kept is not acted on: the event is retried by the next sample or tick.
      try {
        await ctx.deps.store.saveState(result.state);
      } catch (error) {
        return ctx.ha.notKept(before, error);
      }
      ctx.ha.markStore(true);
      this.runningSince = runningSinceAfter(before, result.state, event.at, this.runningSince);
      this.state = result.state;
      ctx.deps.metrics.observeState(result.state);
      if (result.state.phase !== before.phase) this.phaseChanged(before, result.state, event);
      // A window closed or another replaced it: old windows' data goes (never the current or last one).
      if (closesWindow(before, result.state)) {
        void ctx.stepData.windowClosed([result.state.release?.id, result.state.lastWindow?.id]);
      }
    }
    for (const effect of result.effects) await runEffect(ctx, effect);
    return result;
  }

  private phaseChanged(before: GuardState, after: GuardState, event: Event): void {
    this.ctx.deps.log.info(`state ${before.phase} -> ${after.phase}`, { component: 'machine', event: event.type, release: after.release?.version });
    if (after.phase === 'guarding' || before.phase === 'guarding') this.ctx.crashes.reset();
    this.ctx.scheduler.wake();
  }
}
