/**
 * High availability: whether this guard acts (it holds the lease, or needs none), what it does
 * while it stands by (follows the leader's persisted state), how it takes over and steps down,
 * and what it says while the store does not answer.
 */
import type { StatusView } from '../../api/types.js';
import type { GuardState, Transition } from '../../core/types.js';
import { errorMessage, StoreError } from '../../errors.js';
import { latestRecord } from '../../records/history-page.js';
import type { GuardContext } from './context.js';

export class Standby {
  /** Whether this guard has taken over (always, without leadership); see `acts`. */
  private acting = true;
  storeUp = true;
  storeError: string | null = null;

  constructor(private readonly ctx: GuardContext) {}

  /** Whether this guard acts: it has taken over and its lease is still valid (always, without leadership). */
  get acts(): boolean {
    return this.acting && (this.ctx.deps.leadership?.isLeader ?? true);
  }

  /** Before the state is read: take the lease (if free), so a leader reads what no one else writes. */
  async begin(): Promise<void> {
    const { leadership } = this.ctx.deps;
    this.acting = leadership ? await leadership.tryAcquire() : true;
  }

  /** Runs the lease loop (with leadership). */
  run(): void {
    this.ctx.deps.leadership?.run({
      gained: () => this.takeOver(),
      lost: () => this.stepDown(),
      storeAnswered: (up, error) => this.markStore(up, error),
    });
  }

  /** Why this guard changes nothing now. */
  standbyReason(): string {
    if (!this.storeUp) return `the state store is unreachable (${this.storeError ?? 'no answer'}): this guard observes but does not act until it is back`;
    const holder = this.ctx.deps.leadership?.view.holder;
    return `this guard stands by: the acting guard is ${holder ?? 'not known yet (the lease is free)'}`;
  }

  /** A new state that could not be saved: nothing is done. A write refused as stale ends the leadership. */
  notKept(state: GuardState, error: unknown): Transition {
    const code = error instanceof StoreError ? error.code : undefined;
    if (code === 'store_not_leader' || code === 'store_fenced' || code === 'store_conflict') {
      this.ctx.deps.leadership?.lose(`the store refused a write: ${errorMessage(error)}`);
    } else {
      this.markStore(false, error);
    }
    return { state, effects: [], rejected: `the new state could not be saved, so nothing was done: ${errorMessage(error)}` };
  }

  /** Logs when the store stops or starts answering; the gauge and /status say so all along. */
  markStore(up: boolean, error?: unknown): void {
    const { log, config } = this.ctx.deps;
    const message = up ? null : errorMessage(error);
    const type = config.store.type;
    if (up && !this.storeUp) log.info('state store reachable again', { component: 'store', type });
    if (!up && this.storeUp) {
      log.error('DEGRADED: state store unreachable; still probing and evaluating, acting on nothing it cannot persist', { component: 'store', type, error: message });
    }
    this.storeUp = up;
    this.storeError = message;
    this.observe();
  }

  observe(): void {
    this.ctx.deps.metrics.observeLeadership(this.acts, this.storeUp);
  }

  leaseView(): NonNullable<StatusView['lease']> {
    const view = this.ctx.deps.leadership?.view;
    return view ? { ...view, leader: this.acts } : { leader: this.acts, holder: null, token: null, hostId: null };
  }

  /** Standing by: the leader's persisted state is this guard's view, kept fresh for status and probes. */
  followLeader(): Promise<void> {
    const { machine, deps } = this.ctx;
    return machine.enqueue(async () => {
      if (this.acts) return;
      let stored: GuardState | null;
      try {
        stored = await deps.store.loadState();
      } catch (error) {
        this.markStore(false, error);
        return;
      }
      this.markStore(true);
      if (!stored) return;
      if (stored.running !== machine.state.running) machine.runningSince = deps.clock.now();
      const phaseChanged = stored.phase !== machine.state.phase;
      machine.adopt(stored);
      if (phaseChanged) this.ctx.scheduler.wake();
    });
  }

  /**
   * Just took the lease: adopt the persisted state — or, when the store lost it (Redis restarted
   * empty), write back the state this guard kept — then resume like a restarted daemon: an
   * interrupted plan goes on from the first step that did not finish ok.
   */
  async takeOver(): Promise<void> {
    const { machine, deps, learning, records } = this.ctx;
    const { store, clock, log } = deps;
    if (this.ctx.stopping.aborted) throw new Error('the guard is stopping');
    // A plan of an earlier term, stopped when that lease was lost, winds down first.
    if (this.ctx.rollback.running) await this.ctx.rollback.running;
    await machine.enqueue(async () => {
      const stored = await store.loadState();
      if (stored) machine.state = stored;
      else {
        log.warn('the store holds no state (did it lose its data?): writing back the state this guard kept', { component: 'store', phase: machine.state.phase });
        await store.saveState(machine.state);
      }
      const baselines = await store.loadBaselines();
      if (Object.keys(baselines).length > 0) learning.baselines = baselines;
      else if (Object.keys(learning.baselines).length > 0) await store.saveBaselines(learning.baselines);
      records.last = (await latestRecord(store)) ?? records.last;
      this.acting = true;
      this.markStore(true);
      machine.adopt(machine.state);
      log.warn('took over: this guard holds the lease and acts', { component: 'lease', phase: machine.state.phase, release: machine.state.release?.version });
    });
    await machine.dispatch({ type: 'daemonStarted', at: clock.now() });
    // The previous leader may have died between the end of a rollback and its record.
    if (this.acts) await records.writeOwed();
    this.ctx.scheduler.wake();
  }

  /**
   * A plan interrupted while this guard kept acting (a store blip: a step could not be recorded)
   * leaves rolling_back with no plan running: resume it as a restart would.
   */
  async resumeInterruptedPlan(): Promise<void> {
    const { machine, rollback, deps } = this.ctx;
    const stalled = await machine.enqueue(() => Promise.resolve(this.acts && machine.state.phase === 'rolling_back' && rollback.running === null));
    if (stalled) await machine.dispatch({ type: 'daemonStarted', at: deps.clock.now() });
  }

  /** The lease is gone: stop acting at once (the running step was aborted by the term's signal). */
  private stepDown(): void {
    this.acting = false;
    this.observe();
    this.ctx.scheduler.wake();
  }
}
