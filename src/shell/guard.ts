/**
 * The imperative shell around the pure core, wired: probes run on the machine's schedule
 * (guard/probe-scheduler.ts), their samples are kept (guard/sample-buffer.ts) and turned into
 * events (core/observe.ts, guard/judge.ts); samples, verdicts, pm2 crashes (guard/crash-watch.ts)
 * and operator requests go through one serialized event queue that persists each new state before
 * its effects run (guard/interpreter.ts, guard/effects.ts). Around it: baseline learning, HA
 * standby and leadership, fleet sync, drills, and the API facade (GuardControl).
 */
import type { AlertmanagerPayload } from '../api/alertmanager-payload.js';
import type { ControlRequest, ControlResult, GuardControl, HistoryView, PreflightView, StatusView } from '../api/types.js';
import { initialState } from '../core/transition.js';
import type { Event, GuardState, Transition } from '../core/types.js';
import { DEFAULT_HISTORY_LIMIT, latestRecord, type HistoryPage } from '../records/history-page.js';
import { liveWindowTimeline } from '../records/window-series.js';
import { AlertIntake } from './alert-intake.js';
import type { DrillRecord } from './drill.js';
import type { GuardContext, GuardDeps } from './guard/context.js';
import { drill } from './guard/drill-run.js';
import { GuardParts } from './guard/parts.js';
import { preflight } from './guard/prepare.js';
import { controlEvent, historyView, statusView } from './views.js';

export type { GuardDeps } from './guard/context.js';

export class Guard implements GuardControl {
  private readonly stopping = new AbortController();
  private readonly ctx: GuardContext;
  private tickLoop: Promise<void> | null = null;
  /** Alertmanager as an input (triggers.alertmanager), when configured. */
  private readonly alerts: AlertIntake | null;
  /** When the tick loop last began an iteration: /healthz reports a loop that stopped (loop-liveness.ts). */
  lastTickAt: number | null = null;

  constructor(private readonly deps: GuardDeps) {
    this.ctx = new GuardParts(deps, this.stopping.signal);
    this.alerts = deps.config.triggers.alertmanager ? new AlertIntake(deps.config.triggers.alertmanager) : null;
  }

  get current(): GuardState {
    return this.ctx.machine.state;
  }

  /** The persisted baseline p95 (ms) of a version's probe, if one was learnt. */
  baseline(version: string, probe: string): number | undefined {
    return this.ctx.learning.p95(version, probe);
  }

  /** Loads state, resumes whatever a previous run left unfinished, and starts watching. */
  async start(): Promise<void> {
    const { store, clock, log, leadership, metrics } = this.deps;
    const { machine, ha } = this.ctx;
    await ha.begin();
    machine.state = (await store.loadState()) ?? initialState(clock.now());
    this.ctx.learning.baselines = await store.loadBaselines();
    this.ctx.records.last = await latestRecord(store);
    const state = machine.state;
    log.info('guard starting', { component: 'guard', phase: state.phase, stable: state.stable, running: state.running });
    await this.ctx.stepData.start(state.release);
    void this.ctx.stepData.measure().catch(() => undefined);
    metrics.observeState(state);
    ha.observe();
    if (ha.acts) {
      await this.dispatch({ type: 'daemonStarted', at: clock.now() });
      await this.ctx.records.writeOwed();
    } else log.info('standing by: another guard holds the lease; probing and evaluating, not acting', { component: 'lease', holder: leadership?.view.holder });
    await this.ctx.crashes.start();
    this.ctx.scheduler.start(this.deps.probes);
    this.tickLoop = this.runTicks();
    ha.run();
  }

  /**
   * Stops probing, lets a running rollback step finish (each step is bounded by its timeout),
   * drains the queue and leaves the last state persisted.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.ctx.crashes.stop();
    await this.ctx.scheduler.settled();
    await this.tickLoop;
    if (this.ctx.rollback.running) {
      this.deps.log.info('waiting for the running rollback to finish before exit', { component: 'guard' });
      await this.ctx.rollback.running;
    }
    await this.ctx.stableBackups.settled();
    await this.ctx.machine.drained();
    // Only now hand the lease over: a standby must not start while this guard's step runs.
    await this.deps.leadership?.stop({ release: true });
    await Promise.allSettled(this.deps.probes.map((p) => p.close?.()));
    // A guard whose start failed before its state was loaded never ran: the start-up error says why.
    const state = this.ctx.machine.state as GuardState | undefined;
    if (state !== undefined) this.deps.log.info('guard stopped', { component: 'guard', phase: state.phase });
  }

  /** Feeds one event through the machine. Events are applied one at a time, in arrival order. */
  dispatch(event: Event): Promise<Transition> {
    return this.ctx.machine.dispatch(event);
  }

  /** Every second: time passes for the machine, the rules are judged, and what learns or syncs does. */
  private async runTicks(): Promise<void> {
    const { clock } = this.deps;
    const { ha, machine } = this.ctx;
    while (!this.stopping.signal.aborted) {
      await clock.sleep(1000, this.stopping.signal);
      if (this.stopping.signal.aborted) break;
      this.lastTickAt = clock.now();
      if (!ha.acts) {
        // Standing by (or cut off from the store): stay warm, follow the leader, act never.
        await ha.followLeader();
        await this.ctx.judge.evaluate();
        continue;
      }
      await ha.resumeInterruptedPlan();
      await machine.observe({ type: 'tick', at: clock.now() });
      this.ctx.stableBackups.refresh(machine.state);
      await this.ctx.judge.evaluate();
      await this.ctx.learning.refresh();
      this.ctx.learning.refreshCheckLatency();
      await this.ctx.fleet.sync();
    }
  }

  // ---- GuardControl (the HTTP API) ----

  status(): StatusView {
    const { deps, ctx } = this;
    return {
      ...statusView({
        service: deps.config.service,
        state: ctx.machine.state,
        windowMs: ctx.policy.windowMs,
        verdicts: this.ctx.judge.verdicts,
        lastRecord: ctx.records.last,
        now: deps.clock.now(),
      }),
      lease: ctx.ha.leaseView(),
      store: { type: deps.config.store.type, up: ctx.ha.storeUp, error: ctx.ha.storeError },
      ...(deps.fleet ? { fleet: { hostId: deps.fleet.hostId, waitingFor: ctx.fleet.waiting } } : {}),
    };
  }

  async history(page: HistoryPage = { limit: DEFAULT_HISTORY_LIMIT }): Promise<HistoryView> {
    return historyView(this.deps.config.service, this.ctx.machine.state, await this.deps.store.recordPage(page));
  }

  metrics() {
    return this.deps.metrics.text();
  }

  /** The current window as the record's timeline draws it (the page's live chart). */
  liveTimeline() {
    const { deps, ctx } = this;
    return liveWindowTimeline(ctx.machine.state, ctx.samples.lists, ctx.machine.observing.probeTypes, deps.config.service, deps.clock.now());
  }

  lastPreflight(): PreflightView | null {
    return this.ctx.lastPreflight;
  }

  async lastDrill(): Promise<DrillRecord | null> {
    return (await this.deps.store.latestDrill()) as DrillRecord | null;
  }

  async recordDocument(id: string): Promise<{ markdown: string; svg: string | null } | null> {
    const read = await this.deps.store.readRecord(id);
    return read ? { markdown: read.markdown, svg: read.svg ?? null } : null;
  }

  async alertmanager(payload: AlertmanagerPayload): Promise<{ ok: true; alerts: number; matched: number } | { ok: false; error: string }> {
    if (!this.alerts) return { ok: false, error: 'triggers.alertmanager is not configured: this guard takes no alerts' };
    const { events, matched } = this.alerts.receive(payload.alerts, this.deps.clock.now());
    for (const event of events) await this.dispatch(event);
    return { ok: true, alerts: payload.alerts.length, matched };
  }

  async control(request: ControlRequest): Promise<ControlResult> {
    const event = controlEvent(request, this.deps.clock.now());
    this.deps.log.info(`control request: ${request.action}`, { component: 'api', ...request });
    const result = await this.dispatch(event);
    return result.rejected ? { ok: false, error: result.rejected } : { ok: true, state: result.state };
  }

  drill(by: string): Promise<{ ok: true; record: DrillRecord } | { ok: false; error: string }> {
    return drill(this.ctx, by);
  }

  preflight(): Promise<PreflightView> {
    return preflight(this.ctx);
  }
}
