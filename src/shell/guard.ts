/**
 * The imperative shell around the pure core: runs probes on the machine's schedule, feeds
 * samples, verdicts, pm2 crashes and operator requests through one serialized event queue,
 * persists each new state before carrying out its effects, and executes the effects.
 */
import { setMaxListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ControlRequest, ControlResult, GuardControl, HistoryView, PreflightView, StatusView } from '../api/types.js';
import type { Config } from '../config/schema.js';
import { evaluateRules, insertionIndex, isTrafficSource, learnBaseline, percentile, type RuleMemo } from '../core/rules.js';
import { trafficImpact, type TrafficImpact } from '../records/impact.js';
import { windowLooks } from '../core/sequential.js';
import { policyFrom, probeIntervalMs, probesFast, probeTimeoutMs } from '../core/schedule.js';
import { finishedRollbackRecord, initialState, rollbackTarget, transition } from '../core/transition.js';
import { closesWindow, rollbackWindowId } from '../core/windows.js';
import type { Effect, Event, FleetVerdict, GuardState, NotifyKind, Policy, Release, RollbackInProgress, RollbackRecord, RuleVerdict, Sample, Transition } from '../core/types.js';
import type { NotificationEvent } from '../notify/types.js';
import { runVerificationSuite } from '../verification/suite.js';
import { errorMessage, StoreError } from '../errors.js';
import type { Logger } from '../log.js';
import { redact, redactText } from '../redact.js';
import type { GuardMetrics } from '../metrics.js';
import type { Pm2Client, Pm2ProcessEvent } from '../pm2/client.js';
import type { Probe, SampleOptions } from '../probes/types.js';
import { renderRecordMarkdown } from '../records/markdown.js';
import { RecordWriter } from '../records/record-writer.js';
import { DEFAULT_HISTORY_LIMIT, latestRecord, type HistoryPage } from '../records/history-page.js';
import { renderTimelineSvg } from '../records/timeline-svg.js';
import { liveWindowTimeline, windowTimeline } from '../records/window-series.js';
import type { Baselines, FleetBoard, StateStore } from '../store/state-store.js';
import type { Clock } from './clock.js';
import type { Leadership } from './leadership.js';
import type { AlertmanagerPayload } from '../api/alertmanager-payload.js';
import { AlertIntake } from './alert-intake.js';
import { renderDrillMarkdown, runDrill, type DrillRecord } from './drill.js';
import { Preparations, releaseBeganAt } from './preparations.js';
import { runPlan, stepDataDir, type PlanStep } from './rollback-runner.js';
import { StepDataKeeper } from './step-data.js';
import { preparedDataRoot, standbyProblems } from './shared-dir.js';
import { StableBackups } from './stable-backups.js';
import { planInterruptedMessage } from './plan-interruption.js';
import { controlEvent, historyView, statusView } from './views.js';
import { dirsWrittenBy, unwritableDirs } from './writable-dirs.js';

export interface GuardDeps {
  config: Config;
  store: StateStore;
  clock: Clock;
  log: Logger;
  metrics: GuardMetrics;
  probes: Probe[];
  plan: PlanStep[];
  pm2?: Pm2Client;
  /** Hands an announcement to the notifiers; must return at once (never blocks a rollback). */
  notify?: (event: NotificationEvent) => void;
  /**
   * With a store several guards share: the lease loop. Only the lease holder acts (persists
   * transitions, runs plans, writes records, notifies); the others stand by. Absent: always acts.
   */
  leadership?: Leadership;
  /** Fleets: the hosts' shared verdicts on each release. */
  fleet?: FleetBoard;
}

/** Samples older than this are dropped: longer than any rule window or sustain duration. */
const RETENTION_MS = 15 * 60_000;
const MAX_SAMPLES_PER_PROBE = 20_000;
/** How often the baseline of the stable version is refreshed and, when changed, persisted. */
const BASELINE_EVERY_MS = 15_000;
const BASELINE_LOOKBACK_MS = 5 * 60_000;
/** The stable version's check latency (for fast_timeout: auto) needs this many passing checks. */
const CHECK_LATENCY_MIN_SAMPLES = 20;

export class Guard implements GuardControl {
  private state!: GuardState;
  private readonly policy: Policy;
  private readonly probeTypes: ReadonlyMap<string, string>;
  /** The most samples a release window holds: the sequential rules' crossing level pays for each. */
  private readonly windowLooks: number;
  /** Lets the sequential rules fold only the samples added since the last evaluation. */
  private readonly ruleMemo: RuleMemo = new Map();
  /** The configured timeout of each http probe: the only probes fast_timeout shortens. */
  private readonly httpTimeouts: ReadonlyMap<string, number>;
  private readonly samples = new Map<string, Sample[]>();
  private readonly inFlight = new Map<string, number>();
  private baselines: Baselines = {};
  private verdicts: RuleVerdict[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private readonly stopping = new AbortController();
  /** Wakes the probe loops when the schedule may have changed (a release window opened, …). */
  private wake = new AbortController();
  /**
   * What the probe loops sleep on: `stopping` or `wake`, composed once per wake rather than per
   * sleep (AbortSignal.any makes a signal tied to both sources, on every launch of every probe).
   */
  private loopSignal = this.loopSignalFor(this.wake);
  private loops: Promise<void>[] = [];
  private rollbackRun: Promise<void> | null = null;
  private crashExits: number[] = [];
  /** Probe samples launched and not yet handled: stop() waits for them. */
  private readonly launches = new Set<Promise<void>>();
  /** Alertmanager as an input (triggers.alertmanager), when configured. */
  private readonly alerts: AlertIntake | null;
  private lastRecord: RollbackRecord | null = null;
  private lastPreflightView: PreflightView | null = null;
  /** When the running version last changed: samples before it belong to another version. */
  private runningSince = 0;
  private lastBaselineAt = 0;
  private lastCheckLatencyAt = 0;
  /** Per http probe: the p99 latency of the stable version's passing checks (fast_timeout: auto). */
  private readonly checkP99 = new Map<string, { version: string; ms: number }>();
  private unsubscribePm2: (() => void) | null = null;
  /** Whether this guard has taken over (always, without leadership); see `acts`. */
  private acting = true;
  private storeUp = true;
  private storeError: string | null = null;
  /** Fleets: hosts whose clean window this host is still waiting for. */
  private fleetWaiting: string[] = [];
  /** When the tick loop last began an iteration: /healthz reports a loop that stopped (loop-liveness.ts). */
  lastTickAt: number | null = null;
  /** Prunes old release windows' data and measures state_dir. */
  private readonly stepData: StepDataKeeper;
  /** What each step prepared per window, and the stable version's backups (which one a rollback restores). */
  private readonly stableBackups: StableBackups;
  private readonly preparations: Preparations;
  /** Where step data lives: state_dir, or store.shared_dir under HA (shared-dir.ts). */
  private readonly dataRoot: string;

  private readonly records: RecordWriter;

  constructor(private readonly deps: GuardDeps) {
    const common = { plan: deps.plan, clock: deps.clock, log: deps.log, service: deps.config.service, signal: this.stopping.signal };
    this.dataRoot = preparedDataRoot(deps.config);
    this.stableBackups = new StableBackups({ ...common, stateDir: this.dataRoot });
    this.preparations = new Preparations({ ...common, stable: this.stableBackups, dataDir: (r, index, type) => stepDataDir(this.dataRoot, r.id, index, type) });
    this.policy = policyFrom(deps.config);
    this.alerts = deps.config.triggers.alertmanager ? new AlertIntake(deps.config.triggers.alertmanager) : null;
    this.records = new RecordWriter({ ...deps, attempts: deps.config.records.write_attempts, signal: this.stopping.signal, giveUp: (message) => this.announce('record_not_written', 'critical', message) });
    this.probeTypes = new Map(deps.config.probes.map((p) => [p.name, p.type]));
    const { schedule, release } = deps.config;
    this.windowLooks = windowLooks({ windowMs: release.window, fastForMs: schedule.fast_for, fastIntervalMs: schedule.fast_interval, intervalMs: schedule.interval });
    this.httpTimeouts = new Map(deps.config.probes.flatMap((p) => (p.type === 'http' ? [[p.name, p.timeout] as const] : [])));
    for (const probe of deps.probes) this.samples.set(probe.name, []);
    this.stepData = new StepDataKeeper({ stateDir: this.dataRoot, settings: deps.config.state, log: deps.log, metrics: deps.metrics });
  }

  get current(): GuardState {
    return this.state;
  }

  /** The persisted baseline p95 (ms) of a version's probe, if one was learnt. */
  baseline(version: string, probe: string): number | undefined {
    return this.baselines[version]?.[probe]?.p95Ms;
  }

  /** Loads state, resumes whatever a previous run left unfinished, and starts watching. */
  async start(): Promise<void> {
    const { store, clock, log, leadership } = this.deps;
    // Take the lease (if free) before reading, so a leader reads what no one else writes.
    this.acting = leadership ? await leadership.tryAcquire() : true;
    this.state = (await store.loadState()) ?? initialState(clock.now());
    this.baselines = await store.loadBaselines();
    this.lastRecord = await latestRecord(store);
    log.info('guard starting', { component: 'guard', phase: this.state.phase, stable: this.state.stable, running: this.state.running });
    await this.stepData.start(this.state.release);
    void this.stepData.measure().catch(() => undefined);
    this.deps.metrics.observeState(this.state);
    this.observeLeadership();
    if (this.acts) {
      await this.dispatch({ type: 'daemonStarted', at: clock.now() });
      await this.writeOwedRecord();
    }
    else log.info('standing by: another guard holds the lease; probing and evaluating, not acting', { component: 'lease', holder: leadership?.view.holder });
    if (this.deps.pm2 && this.deps.config.pm2) await this.watchPm2();
    for (const probe of this.deps.probes) this.loops.push(this.probeLoop(probe));
    this.loops.push(this.tickLoop());
    leadership?.run({
      gained: () => this.takeOver(),
      lost: () => this.stepDown(),
      storeAnswered: (up, error) => this.markStore(up, error),
    });
  }

  /**
   * Stops probing, lets a running rollback step finish (each step is bounded by its timeout),
   * drains the queue and leaves the last state persisted.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.wake.abort();
    this.unsubscribePm2?.();
    await Promise.allSettled(this.loops);
    // Launched samples end with the stopping signal; none may outlive the guard (or its log).
    await Promise.allSettled([...this.launches]);
    if (this.rollbackRun) {
      this.deps.log.info('waiting for the running rollback to finish before exit', { component: 'guard' });
      await this.rollbackRun;
    }
    await this.stableBackups.settled();
    await this.queue.catch(() => undefined);
    // Only now hand the lease over: a standby must not start while this guard's step runs.
    await this.deps.leadership?.stop({ release: true });
    await Promise.allSettled(this.deps.probes.map((p) => p.close?.()));
    // A guard whose start failed before its state was loaded never ran: the start-up error says why.
    if ((this.state as GuardState | undefined) !== undefined) this.deps.log.info('guard stopped', { component: 'guard', phase: this.state.phase });
  }

  /** Feeds one event through the machine. Events are applied one at a time, in arrival order. */
  dispatch(event: Event): Promise<Transition> {
    const run = this.queue.then(() => this.apply(event));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async apply(event: Event): Promise<Transition> {
    const before = this.state;
    // A standby follows the leader's persisted state (tickLoop) and changes nothing itself.
    if (!this.acts) return { state: before, effects: [], rejected: this.standbyReason() };
    const result = transition(before, event, this.policy);
    if (result.state !== before) {
      // Persist before acting: a crash after this point resumes from the new state. A state that
      // cannot be kept is not acted on: the event is retried by the next sample or tick.
      try {
        await this.deps.store.saveState(result.state);
      } catch (error) {
        return this.notKept(before, error);
      }
      this.markStore(true);
      if (result.state.running !== before.running || (result.state.phase === 'verifying' && before.phase !== 'verifying')) {
        this.runningSince = event.at;
      }
      this.state = result.state;
      this.deps.metrics.observeState(result.state);
      if (result.state.phase !== before.phase) {
        this.deps.log.info(`state ${before.phase} -> ${result.state.phase}`, {
          component: 'machine',
          event: event.type,
          release: result.state.release?.version,
        });
        if (result.state.phase === 'guarding' || before.phase === 'guarding') this.crashExits = [];
        this.wakeLoops();
      }
      // A window closed or another replaced it: old windows' data goes (never the current or last one).
      if (closesWindow(before, result.state)) {
        void this.stepData.windowClosed([result.state.release?.id, result.state.lastWindow?.id]);
      }
    }
    for (const effect of result.effects) await this.runEffect(effect);
    return result;
  }

  private async runEffect(effect: Effect): Promise<void> {
    if (!this.acts) return;
    switch (effect.type) {
      case 'notify':
        this.announce(effect.kind, effect.severity, effect.message);
        return;
      case 'verify':
        // Not awaited: the checks take seconds and the queue must keep flowing meanwhile.
        void this.runVerificationSuite(effect.rollback);
        return;
      case 'rollback': {
        if (effect.attempt === 1) this.deps.metrics.rollbackDecided(effect.breach.faultAt, effect.breach.decidedAt);
        // Not awaited: the queue keeps serving status, pause and samples while the plan runs.
        this.rollbackRun = this.executeRollback(effect).finally(() => {
          this.rollbackRun = null;
        });
        return;
      }
      case 'writeRecord':
        await this.writeRecord(effect.record);
        return;
      case 'prepareRelease':
        // Not awaited: snapshots and backups must never delay the guard's eyes.
        void this.prepareRelease(effect.release);
        return;
      case 'fleetVerdict':
        await this.reportToFleet(effect.version, effect.verdict);
        return;
    }
  }

  private async executeRollback(effect: Extract<Effect, { type: 'rollback' }>): Promise<void> {
    const { config, clock, log } = this.deps;
    log.warn(`rollback ${effect.from} -> ${effect.to} (attempt ${effect.attempt}, from step ${effect.fromStep + 1}): ${effect.breach.reason}`, { component: 'rollback' });
    const startedAt = new Map<number, number>();
    // With leadership, this term's signal: losing the lease stops the running step at once.
    const term = this.deps.leadership?.signal;
    // Set when the plan stopped because a step could not be recorded or the lease not confirmed:
    // an interruption (resumed like a restart), not a failed rollback.
    let interrupted: string | null = null;
    const kept = (t: Transition) => {
      if (t.rejected) throw new Error((interrupted = `step not recorded, plan stopped: ${t.rejected}`));
    };
    const hooks = {
      stepStarted: async (index: number, stepType: string, description: string) => {
        // Every step starts only on a lease confirmed with the store, and only once persisted.
        await this.deps.leadership?.confirm().catch((error: unknown) => {
          throw new Error((interrupted = `lease not confirmed, plan stopped: ${errorMessage(error)}`));
        });
        startedAt.set(index, clock.now());
        this.deps.metrics.stepStarted(index, stepType);
        kept(await this.dispatch({ type: 'stepStarted', index, stepType, description, at: clock.now() }));
      },
      stepFinished: async (index: number, ok: boolean, output: string[], error?: string) => {
        const stepType = this.deps.plan[index]!.config.type;
        this.deps.metrics.stepFinished(index, stepType, ok, (clock.now() - (startedAt.get(index) ?? clock.now())) / 1000);
        kept(await this.dispatch({ type: 'stepFinished', index, ok, output, ...(error ? { error } : {}), at: clock.now() }));
      },
    };
    let result;
    try {
      // Not tied to `stopping`: a SIGTERM lets the running step finish (bounded by its timeout).
      result = await runPlan(this.deps.plan, { service: config.service, from: effect.from, to: effect.to }, {
        clock,
        log,
        signal: term ?? new AbortController().signal,
        stateDir: this.dataRoot,
        windowId: effect.release.id,
        fromStep: effect.fromStep,
        hooks,
        prepared: async (index, type, options) => (await this.preparations.resolve(effect.release, index, type, options)).prepared,
      });
    } catch (error) {
      result = { ok: false, error: `rollback plan crashed: ${errorMessage(error)}` };
    }
    if (term?.aborted || !this.acts || interrupted !== null) {
      log.warn('rollback plan interrupted: whoever acts next resumes it from the first step not finished', { component: 'rollback', reason: interrupted ?? 'the lease was lost', error: result.error });
      this.announce('plan_interrupted', 'critical', planInterruptedMessage(this.state, this.deps.plan.length, interrupted ?? 'the lease was lost'));
      return;
    }
    await this.dispatch({ type: 'rollbackExecuted', ok: result.ok, ...(result.error ? { error: result.error } : {}), at: clock.now() });
  }

  /** Logs an announcement and hands it to the notifiers. */
  private announce(kind: NotifyKind, severity: 'info' | 'warning' | 'critical', message: string): void {
    const level = severity === 'critical' ? 'error' : severity === 'warning' ? 'warn' : 'info';
    this.deps.log.log(level, message, { component: 'notify', kind });
    const release = this.state.release ? { version: this.state.release.version, previous: this.state.release.previous } : undefined;
    this.deps.notify?.({ kind, severity, message, service: this.deps.config.service, at: this.deps.clock.now(), ...(release ? { release } : {}) });
  }

  /** Seed §3 after health is proven: functional, performance, data, security, resources. */
  private async runVerificationSuite(_rollback: RollbackInProgress): Promise<void> {
    const { config, clock, log } = this.deps;
    log.info('verification suite started', { component: 'verify', checks: config.verification.checks.length });
    let outcome;
    try {
      outcome = await runVerificationSuite(config.verification.checks, {
        signal: this.stopping.signal,
        now: () => clock.now(),
        rowSnapshot: await this.rowSnapshot(this.state.release?.id),
        resources: this.latestResources(),
      });
    } catch (error) {
      outcome = { ok: false, results: [{ name: 'suite', type: 'suite', ok: false, detail: `the suite could not run: ${errorMessage(error)}`, durationMs: 0 }] };
    }
    for (const r of outcome.results) log.log(r.ok ? 'info' : 'error', `check ${r.name}: ${r.ok ? 'pass' : 'FAIL'}: ${r.detail}`, { component: 'verify' });
    await this.dispatch({ type: 'verificationFinished', ok: outcome.ok, results: outcome.results, at: clock.now() });
  }

  /** Row counts the database steps recorded when the window being rolled back opened. */
  private async rowSnapshot(windowId: string | undefined): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const [index, step] of this.deps.plan.entries()) {
      if (step.config.type !== 'database' || windowId === undefined) continue;
      // The snapshot beside the backup the rollback restored (the stable one for a detected release).
      const release = this.state.release?.id === windowId ? this.state.release : null;
      const used = release ? (await this.preparations.resolve(release, index, step.config.type, { waitMs: 0 })).prepared?.dir : undefined;
      const file = join(used ?? stepDataDir(this.dataRoot, windowId, index, step.config.type), 'snapshot.json');
      try {
        const snapshot = JSON.parse(await readFile(file, 'utf8')) as { counts?: Record<string, unknown> };
        for (const [table, n] of Object.entries(snapshot.counts ?? {})) if (typeof n === 'number') counts[table] = n;
      } catch {
        // No snapshot: a `snapshot` row check then fails with "no data", which is the truth.
      }
    }
    return counts;
  }

  /** The latest host CPU and memory readings, for the resources check. */
  private latestResources(): { cpu?: number; memory?: number } {
    const out: { cpu?: number; memory?: number } = {};
    for (const probe of this.deps.probes.filter((p) => p.type === 'system')) {
      const samples = this.samples.get(probe.name) ?? [];
      for (let i = samples.length - 1; i >= 0 && (out.cpu === undefined || out.memory === undefined); i--) {
        out.cpu ??= samples[i]!.values.cpu;
        out.memory ??= samples[i]!.values.memory;
      }
    }
    return out;
  }

  /** Lets each rollback step snapshot what it will need to undo this release. */
  private async prepareRelease(release: Release): Promise<void> {
    await this.preparations.prepareAll(release, releaseBeganAt(release, this.samples.get(this.deps.config.release.version_probe)));
    // A release that cannot be rolled back is reported now, not discovered during the outage.
    const readiness = await this.preflight();
    if (!readiness.ready && !this.stopping.signal.aborted) {
      const problems = [...readiness.problems, ...readiness.steps.flatMap((s) => s.problems.map((p) => `step ${s.index + 1} (${s.type}): ${p}`))];
      this.announce('rollback_not_ready', 'critical', `release ${release.version} cannot be rolled back: ${problems.join('; ')}`);
    }
  }

  async drill(by: string): Promise<{ ok: true; record: DrillRecord } | { ok: false; error: string }> {
    const { config, clock, log, store } = this.deps;
    if (config.environment === 'production' && !config.drill.allow_production) {
      return { ok: false, error: 'drills refuse a target marked environment: production; use a staging target or set drill.allow_production: true' };
    }
    const started = await this.dispatch({ type: 'drillStarted', by, at: clock.now() });
    if (started.rejected) return { ok: false, error: started.rejected };
    const { from, to } = this.state.drill!;
    const probe = this.deps.probes.find((p) => p.name === config.verification.probe)!;
    let record: DrillRecord;
    // A drill that threw did not pass; one that returned says itself whether it passed.
    let passed = false;
    try {
      record = await runDrill({ config, clock, log, plan: this.deps.plan, probe }, { from, to, by });
      passed = record.ok;
    } finally {
      await this.dispatch({ type: 'drillFinished', ok: passed, at: clock.now() }).catch(() => undefined);
    }
    this.deps.metrics.drillFinished(record);
    const path = await store.writeDrill(record.id, redact(record), redactText(renderDrillMarkdown(record)));
    log.info(`drill ${record.ok ? 'passed' : 'FAILED'}; record ${path}`, { component: 'drill' });
    return { ok: true, record };
  }

  async preflight(): Promise<PreflightView> {
    const { config, clock } = this.deps;
    const from = this.state.running;
    const to = from ? rollbackTarget(this.state, from) : null;
    const problems: string[] = [];
    if (!from) problems.push('no running version is known yet');
    else if (!to) problems.push(`no version to roll back to from ${from} (no successful earlier version recorded)`);
    // A standby proves it could undo what the acting guard prepared (item 11).
    if (!this.acts && this.dataRoot !== config.state_dir) {
      const release = this.state.release;
      const windowDirs = release ? this.deps.plan.flatMap((s, i) => (s.strategy.prepare ? [{ step: i + 1, dir: stepDataDir(this.dataRoot, release.id, i, s.config.type) }] : [])) : [];
      problems.push(...(await standbyProblems(this.dataRoot, this.deps.leadership?.view.holder ?? null, windowDirs)));
    }
    const steps = await Promise.all(
      this.deps.plan.map(async (step, index) => {
        const description = step.strategy.describe({ from: from ?? '?', to: to ?? '?' });
        if (!from || !to) return { index, type: step.config.type, description, problems: [] as string[] };
        let stepProblems: string[];
        try {
          // The backup this step's rollback would restore now (preparations.ts), and whether one predates the release.
          const resolved = this.state.release?.version === from && step.strategy.prepare
            ? await this.preparations.resolve(this.state.release, index, step.config.type, { waitMs: 0 })
            : { problems: [] };
          stepProblems = resolved.problems;
          stepProblems.push(...await step.strategy.check({
            service: config.service,
            from,
            to,
            signal: AbortSignal.timeout(Math.min(step.config.timeout, 30_000)),
            progress: () => undefined,
            dataDir: stepDataDir(this.dataRoot, rollbackWindowId(this.state, from, clock.now()), index, step.config.type),
            ...(resolved.prepared ? { prepared: resolved.prepared } : {}),
          }));
        } catch (error) {
          stepProblems = [`readiness check failed: ${errorMessage(error)}`];
        }
        stepProblems.push(...(await unwritableDirs(dirsWrittenBy(step.config, config.state_dir))));
        return { index, type: step.config.type, description, problems: stepProblems };
      }),
    );
    problems.push(...(await this.stepData.problems()));
    const ready = problems.length === 0 && steps.every((s) => s.problems.length === 0);
    this.deps.metrics.observePreflight(ready, steps);
    this.lastPreflightView = { ready, from, to, problems, steps, checkedAt: new Date(clock.now()).toISOString() };
    return this.lastPreflightView;
  }

  /**
   * A rollback's record is written just after its end (rolled_back / failed) is persisted; a crash
   * in between would lose it. On start, write it if the store does not have it yet.
   */
  private async writeOwedRecord(): Promise<void> {
    const owed = finishedRollbackRecord(this.state);
    if (!owed) return;
    try {
      if (await this.deps.store.readRecord(owed.id)) return;
    } catch (error) {
      this.deps.log.warn('could not check for the record of the last rollback', { component: 'record', id: owed.id, error: errorMessage(error) });
      return;
    }
    this.deps.log.warn('the last rollback ended without its record (the guard stopped in between); writing it now', { component: 'record', id: owed.id });
    await this.writeRecord(owed);
  }

  private async writeRecord(record: RollbackRecord): Promise<void> {
    const { config, metrics, pm2 } = this.deps;
    metrics.rollbackFinished(record.breach.trigger, record.outcome, record.breach.decidedAt, record.finishedAt);
    this.lastRecord = record;
    let logs: string[] = [];
    if (pm2 && config.pm2) {
      logs = await pm2.logTail(config.pm2.app, config.records.log_lines, config.records.log_bytes).catch((error: unknown) => [`(pm2 logs unavailable: ${errorMessage(error)})`]);
    }
    const svg = renderTimelineSvg(windowTimeline(record, this.samples, this.probeTypes, config.service));
    const impact = this.impactOf(record);
    const details = {
      service: config.service,
      verificationProbe: config.verification.probe,
      requiredPasses: config.verification.passes,
      logs,
      timeline: `${record.id}.svg`,
      ...(impact ? { impact } : {}),
    };
    // Retried in the background when it fails (records/record-writer.ts).
    await this.records.write({ record: redact(record), markdown: redactText(renderRecordMarkdown(record, details)), extra: redact({ service: config.service, logs, ...(impact ? { impact } : {}) }), svg });
  }

  /** Requests and errors the release served until it was rolled back, when a rule reads counted traffic. */
  private impactOf(record: RollbackRecord): TrafficImpact | undefined {
    const { rules } = this.deps.config;
    const probe = [rules.error_rate?.probe, rules.latency_ratio?.probe].find((name) => name !== undefined && isTrafficSource(this.probeTypes.get(name) ?? 'http'));
    if (probe === undefined) return undefined;
    return trafficImpact(this.samples.get(probe) ?? [], probe, record.release.startedAt, record.finishedAt);
  }

  private wakeLoops(): void {
    const old = this.wake;
    this.wake = new AbortController();
    this.loopSignal = this.loopSignalFor(this.wake);
    old.abort();
  }

  /**
   * Launches a probe every interval whether or not the previous sample has come back, so a hang
   * is seen within timeout + N × interval rather than N × timeout. At most `max_in_flight` run.
   */
  private async probeLoop(probe: Probe): Promise<void> {
    const { clock, config } = this.deps;
    let lastLaunch = Number.NEGATIVE_INFINITY;
    while (!this.stopping.signal.aborted) {
      const now = clock.now();
      const lastFailed = this.samples.get(probe.name)?.at(-1)?.ok === false;
      const interval = probeIntervalMs(this.state, now, config.schedule, probe.type, lastFailed);
      const due = lastLaunch + interval;
      if (now >= due) {
        lastLaunch = now;
        this.launch(probe, now, this.sampleOptions(probe, probesFast(this.state, now, config.schedule, probe.type, lastFailed)));
        continue;
      }
      await clock.sleep(due - now, this.loopSignal);
    }
  }

  private loopSignalFor(wake: AbortController): AbortSignal {
    const signal = AbortSignal.any([this.stopping.signal, wake.signal]);
    // Every probe loop sleeps on it at once: one abort listener per probe is expected.
    setMaxListeners(0, signal);
    return signal;
  }

  /** An http check at the fast interval gives up sooner (schedule.fast_timeout). */
  private sampleOptions(probe: Probe, fast: boolean): SampleOptions {
    const timeout = this.httpTimeouts.get(probe.name);
    if (timeout === undefined) return {};
    const learnt = this.checkP99.get(probe.name);
    const stableP99 = learnt && learnt.version === this.state.stable ? learnt.ms : null;
    return { timeoutMs: probeTimeoutMs(timeout, this.deps.config.schedule, fast, stableP99) };
  }

  private launch(probe: Probe, startedAt: number, options: SampleOptions = {}): void {
    const running = this.inFlight.get(probe.name) ?? 0;
    if (running >= this.deps.config.schedule.max_in_flight) {
      this.deps.log.debug('probe launch skipped: too many in flight', { component: 'probe', probe: probe.name, running });
      return;
    }
    this.inFlight.set(probe.name, running + 1);
    const run: Promise<void> = probe
      .sample(startedAt, this.stopping.signal, options)
      .then((sample) => this.onSample(probe, sample))
      .catch((error: unknown) => {
        // A sample cut short by stop() is expected, not an error worth a line.
        if (!this.stopping.signal.aborted) this.deps.log.error('probe sample handling failed', { component: 'probe', probe: probe.name, error: errorMessage(error) });
      })
      .finally(() => {
        this.inFlight.set(probe.name, (this.inFlight.get(probe.name) ?? 1) - 1);
        this.launches.delete(run);
      });
    this.launches.add(run);
  }

  private async onSample(probe: Probe, sample: Sample): Promise<void> {
    if (this.stopping.signal.aborted) return;
    const { config, metrics, log } = this.deps;
    metrics.probeDuration.observe({ probe: probe.name }, Math.max(0, sample.at - sample.startedAt) / 1000);
    if (!sample.ok) {
      metrics.probeFailures.inc({ probe: probe.name });
      log.debug('probe failed', { component: 'probe', probe: probe.name, error: sample.error });
    }
    // Kept in launch order (the rules binary-search the window start): a sample that completed
    // after a later-launched one goes in its place, nearly always at the end.
    const list = this.samples.get(probe.name)!;
    const index = insertionIndex(list, sample.startedAt);
    // A failure opens a streak inside a window: the loops, asleep on the slow interval, must
    // recompute now so the next check follows at the fast one.
    if (!sample.ok && index === list.length && list.at(-1)?.ok !== false && this.state.phase === 'guarding') this.wakeLoops();
    list.splice(index, 0, sample);
    // Retention: drop the oldest in one splice (shift() per sample moves the whole list each time).
    const horizon = sample.at - RETENTION_MS;
    let expired = Math.max(0, list.length - MAX_SAMPLES_PER_PROBE);
    while (expired < list.length && list[expired]!.at < horizon) expired++;
    if (expired > 0) list.splice(0, expired);

    if (probe.name === config.release.version_probe && sample.version) {
      await this.dispatch({ type: 'versionObserved', version: sample.version, at: sample.startedAt });
    }
    // Only samples launched after the plan ran can prove the rollback.
    if (probe.name === config.verification.probe && this.state.phase === 'verifying' && sample.startedAt >= this.state.since) {
      await this.dispatch({ type: 'verifySample', ok: sample.ok, ...(sample.version ? { version: sample.version } : {}), at: sample.at, startedAt: sample.startedAt });
    }
    await this.evaluate();
  }

  private async evaluate(): Promise<void> {
    const { config, clock } = this.deps;
    const now = clock.now();
    const guarding = this.state.phase === 'guarding' ? this.state.release : null;
    const baselineVersion = guarding ? guarding.previous : this.state.stable;
    const baseline = new Map<string, number>();
    const baselineErrorRatio = new Map<string, number>();
    for (const [probe, entry] of Object.entries((baselineVersion && this.baselines[baselineVersion]) || {})) {
      baseline.set(probe, entry.p95Ms);
      if (entry.errorRatio !== undefined) baselineErrorRatio.set(probe, entry.errorRatio);
    }
    this.verdicts = evaluateRules(config.rules, {
      samples: this.samples,
      now,
      since: guarding ? guarding.startedAt : this.runningSince,
      releaseStartedAt: guarding ? guarding.startedAt : null,
      initialDelayMs: config.release.initial_delay,
      baselineP95: baseline,
      baselineErrorRatio,
      probeTypes: this.probeTypes,
      looks: this.windowLooks,
      memo: this.ruleMemo,
    });
    const rb = this.state.rollback;
    const crashRollback = rb?.breach.trigger === 'crash' && (this.state.phase === 'rolling_back' || this.state.phase === 'verifying');
    this.deps.metrics.observeVerdicts(this.verdicts, crashRollback);
    await this.dispatch({ type: 'evaluated', verdicts: this.verdicts, at: now });
  }

  private async tickLoop(): Promise<void> {
    const { clock } = this.deps;
    while (!this.stopping.signal.aborted) {
      await clock.sleep(1000, this.stopping.signal);
      if (this.stopping.signal.aborted) break;
      this.lastTickAt = clock.now();
      if (!this.acts) {
        // Standing by (or cut off from the store): stay warm, follow the leader, act never.
        await this.followLeader();
        await this.evaluate();
        continue;
      }
      await this.resumeInterruptedPlan();
      await this.dispatch({ type: 'tick', at: clock.now() });
      this.stableBackups.refresh(this.state);
      await this.evaluate();
      await this.refreshBaseline();
      this.refreshCheckLatency();
      await this.syncFleet();
    }
  }

  /**
   * While the running version is the stable one, what users saw of it is the baseline the next
   * release is judged by. Persisted per version, so it survives a restart of the guard.
   */
  private async refreshBaseline(): Promise<void> {
    const { config, clock, store, log } = this.deps;
    const rule = config.rules.latency_ratio;
    const now = clock.now();
    if (!rule || now - this.lastBaselineAt < BASELINE_EVERY_MS) return;
    const { phase, running, stable } = this.state;
    if (!running || running !== stable || !(phase === 'stable' || phase === 'promoted')) return;
    const since = Math.max(now - BASELINE_LOOKBACK_MS, this.runningSince);
    const source = this.probeTypes.get(rule.probe) ?? 'http';
    // Checks carry the version they saw; traffic readings are taken as the running version's.
    const recent = (this.samples.get(rule.probe) ?? []).filter((s) => s.startedAt >= since && (s.version === undefined || s.version === running));
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
  private refreshCheckLatency(): void {
    if (this.deps.config.schedule.fast_timeout !== 'auto') return;
    const { phase, running, stable } = this.state;
    if (!running || running !== stable || !(phase === 'stable' || phase === 'promoted')) return;
    // Every tick until this version's p99 is known, then at the baseline's pace: a p99 over 5 min
    // does not move by the second, and the tick loop has other work.
    const now = this.deps.clock.now();
    const known = [...this.httpTimeouts.keys()].every((name) => this.checkP99.get(name)?.version === running);
    if (known && now - this.lastCheckLatencyAt < BASELINE_EVERY_MS) return;
    this.lastCheckLatencyAt = now;
    const since = Math.max(now - BASELINE_LOOKBACK_MS, this.runningSince);
    for (const [name, timeout] of this.httpTimeouts) {
      const latencies: number[] = [];
      // Newest first, stopping at the lookback: samples are kept in launch order.
      const list = this.samples.get(name) ?? [];
      for (let i = list.length - 1; i >= 0 && list[i]!.startedAt >= since; i--) {
        const s = list[i]!;
        const ms = s.values.latency_ms;
        if (s.ok && (s.version === undefined || s.version === running) && ms !== undefined) latencies.push(ms);
      }
      if (latencies.length < CHECK_LATENCY_MIN_SAMPLES) continue;
      const p99 = percentile(latencies, 99);
      if (p99 === null) continue;
      if (this.checkP99.get(name)?.version !== running) {
        const fastTimeoutMs = probeTimeoutMs(timeout, this.deps.config.schedule, true, p99);
        this.deps.log.info('stable check latency learnt', { component: 'probe', probe: name, version: running, p99Ms: Math.round(p99 * 10) / 10, fastTimeoutMs });
      }
      this.checkP99.set(name, { version: running, ms: p99 });
    }
  }

  private async watchPm2(): Promise<void> {
    const { pm2, config, log } = this.deps;
    try {
      await pm2!.connect();
      this.unsubscribePm2 = await pm2!.onProcessEvent((event) => void this.onPm2Event(event));
      log.info('watching pm2 events', { component: 'pm2', app: config.pm2!.app });
    } catch (error) {
      // Probes still see a crash, three samples later; say so rather than refuse to guard.
      log.error('pm2 event bus unavailable: crashes are seen by probes only', { component: 'pm2', error: errorMessage(error) });
    }
  }

  /** An unplanned exit of the guarded app inside a window is a crash breach at once. */
  private async onPm2Event(event: Pm2ProcessEvent): Promise<void> {
    const { config, clock, log } = this.deps;
    const crash = config.pm2!;
    if (event.app !== crash.app || event.manually) return;
    if (event.event !== 'exit' && event.event !== 'restart overlimit' && event.event !== 'errored') return;
    const now = clock.now();
    this.crashExits = [...this.crashExits.filter((t) => now - t < crash.crash_window), now];
    log.warn('app exited unexpectedly', { component: 'pm2', app: event.app, event: event.event, exits: this.crashExits.length });
    if (this.crashExits.length < crash.crash_exits && event.event === 'exit') return;
    await this.dispatch({ type: 'crashed', detail: `${event.app} ${event.event} (${this.crashExits.length} unplanned exits within ${crash.crash_window}ms)`, at: now });
  }

  // ---- GuardControl (the HTTP API) ----

  status(): StatusView {
    return {
      ...statusView({
        service: this.deps.config.service,
        state: this.state,
        windowMs: this.policy.windowMs,
        verdicts: this.verdicts,
        lastRecord: this.lastRecord,
        now: this.deps.clock.now(),
      }),
      lease: this.leaseView(),
      store: { type: this.deps.config.store.type, up: this.storeUp, error: this.storeError },
      ...(this.deps.fleet ? { fleet: { hostId: this.deps.fleet.hostId, waitingFor: this.fleetWaiting } } : {}),
    };
  }

  async history(page: HistoryPage = { limit: DEFAULT_HISTORY_LIMIT }): Promise<HistoryView> {
    return historyView(this.deps.config.service, this.state, await this.deps.store.recordPage(page));
  }

  metrics() {
    return this.deps.metrics.text();
  }

  liveTimeline() {
    return liveWindowTimeline(this.state, this.samples, this.probeTypes, this.deps.config.service, this.deps.clock.now());
  }

  /** The last preflight, whoever asked (the API, or the guard itself as a window opens). */
  lastPreflight(): PreflightView | null {
    return this.lastPreflightView;
  }

  async lastDrill() {
    return (await this.deps.store.latestDrill()) as DrillRecord | null;
  }

  async recordDocument(id: string) {
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

  // ---- High availability: the lease, the store's health, fleets ----

  /** Whether this guard acts: it has taken over and its lease is still valid (always, without leadership). */
  private get acts(): boolean {
    return this.acting && (this.deps.leadership?.isLeader ?? true);
  }

  /** Runs `work` in the event queue, so nothing interleaves with it. */
  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Why this guard changes nothing now. */
  private standbyReason(): string {
    if (!this.storeUp) return `the state store is unreachable (${this.storeError ?? 'no answer'}): this guard observes but does not act until it is back`;
    const holder = this.deps.leadership?.view.holder;
    return `this guard stands by: the acting guard is ${holder ?? 'not known yet (the lease is free)'}`;
  }

  /** A new state that could not be saved: nothing is done. A write refused as stale ends the leadership. */
  private notKept(state: GuardState, error: unknown): Transition {
    const code = error instanceof StoreError ? error.code : undefined;
    if (code === 'store_not_leader' || code === 'store_fenced' || code === 'store_conflict') {
      this.deps.leadership?.lose(`the store refused a write: ${errorMessage(error)}`);
    } else {
      this.markStore(false, error);
    }
    return { state, effects: [], rejected: `the new state could not be saved, so nothing was done: ${errorMessage(error)}` };
  }

  /** Logs when the store stops or starts answering; the gauge and /status say so all along. */
  private markStore(up: boolean, error?: unknown): void {
    const message = up ? null : errorMessage(error);
    const type = this.deps.config.store.type;
    if (up && !this.storeUp) this.deps.log.info('state store reachable again', { component: 'store', type });
    if (!up && this.storeUp) {
      this.deps.log.error('DEGRADED: state store unreachable; still probing and evaluating, acting on nothing it cannot persist', { component: 'store', type, error: message });
    }
    this.storeUp = up;
    this.storeError = message;
    this.observeLeadership();
  }

  private observeLeadership(): void {
    this.deps.metrics.observeLeadership(this.acts, this.storeUp);
  }

  private leaseView(): NonNullable<StatusView['lease']> {
    const view = this.deps.leadership?.view;
    return view ? { ...view, leader: this.acts } : { leader: this.acts, holder: null, token: null, hostId: null };
  }

  /** Standing by: the leader's persisted state is this guard's view, kept fresh for status and probes. */
  private followLeader(): Promise<void> {
    return this.enqueue(async () => {
      if (this.acts) return;
      let stored: GuardState | null;
      try {
        stored = await this.deps.store.loadState();
      } catch (error) {
        this.markStore(false, error);
        return;
      }
      this.markStore(true);
      if (!stored) return;
      if (stored.running !== this.state.running) this.runningSince = this.deps.clock.now();
      const phaseChanged = stored.phase !== this.state.phase;
      this.state = stored;
      this.deps.metrics.observeState(stored);
      if (phaseChanged) this.wakeLoops();
    });
  }

  /**
   * Just took the lease: adopt the persisted state — or, when the store lost it (Redis restarted
   * empty), write back the state this guard kept — then resume like a restarted daemon: an
   * interrupted plan goes on from the first step that did not finish ok.
   */
  private async takeOver(): Promise<void> {
    const { store, clock, log } = this.deps;
    if (this.stopping.signal.aborted) throw new Error('the guard is stopping');
    // A plan of an earlier term, stopped when that lease was lost, winds down first.
    if (this.rollbackRun) await this.rollbackRun;
    await this.enqueue(async () => {
      const stored = await store.loadState();
      if (stored) this.state = stored;
      else {
        log.warn('the store holds no state (did it lose its data?): writing back the state this guard kept', { component: 'store', phase: this.state.phase });
        await store.saveState(this.state);
      }
      const baselines = await store.loadBaselines();
      if (Object.keys(baselines).length > 0) this.baselines = baselines;
      else if (Object.keys(this.baselines).length > 0) await store.saveBaselines(this.baselines);
      this.lastRecord = (await latestRecord(store)) ?? this.lastRecord;
      this.acting = true;
      this.markStore(true);
      this.deps.metrics.observeState(this.state);
      log.warn('took over: this guard holds the lease and acts', { component: 'lease', phase: this.state.phase, release: this.state.release?.version });
    });
    await this.dispatch({ type: 'daemonStarted', at: clock.now() });
    // The previous leader may have died between the end of a rollback and its record.
    if (this.acts) await this.writeOwedRecord();
    this.wakeLoops();
  }

  /**
   * A plan interrupted while this guard kept acting (a store blip: a step could not be recorded)
   * leaves rolling_back with no plan running: resume it as a restart would.
   */
  private async resumeInterruptedPlan(): Promise<void> {
    const stalled = await this.enqueue(() => Promise.resolve(this.acts && this.state.phase === 'rolling_back' && this.rollbackRun === null));
    if (stalled) await this.dispatch({ type: 'daemonStarted', at: this.deps.clock.now() });
  }

  /** The lease is gone: stop acting at once (the running step was aborted by the term's signal). */
  private stepDown(): void {
    this.acting = false;
    this.observeLeadership();
    this.wakeLoops();
  }

  private async reportToFleet(version: string, verdict: FleetVerdict): Promise<void> {
    const { fleet, clock, log } = this.deps;
    if (!fleet) return;
    try {
      await fleet.report(version, verdict, clock.now());
      log.info(`fleet: reported ${verdict} for ${version}`, { component: 'fleet', host: fleet.hostId, version, verdict });
    } catch (error) {
      log.error('fleet: verdict not reported', { component: 'fleet', version, verdict, error: errorMessage(error) });
    }
  }

  /**
   * Fleets, every tick (1 s) while acting. The protocol, deliberately small (no cluster protocol,
   * just a shared table in Redis, polled):
   *
   * - Each host (`host_id`; its own state key and lease) writes its verdict on release N into the
   *   hash `fleet:release:N` (host -> guarding | clean | rolled_back | not_promoted), as a fenced
   *   write of the acting guard: `guarding` when its window opens, `rolled_back` when it decides a
   *   rollback (any trigger), `clean` when its window ended clean, `not_promoted` when the window
   *   ended without promotion (breach while paused, blind, or the fleet wait ran out).
   * - Any other host's `rolled_back` on the release running here -> `fleetRolledBack` (trigger
   *   `fleet`, the reason names the host): rolled back here too, subject to pause, veto and limits.
   * - A host whose window ended clean keeps guarding and promotes (`fleetCleared`) only when every
   *   member says `clean`. Members: the hosts alive now (a guard holds their lease) plus every host
   *   that reported on N. A host that is down and never reported on N is not waited for; one that
   *   reported `guarding` and then went silent is waited for.
   * - A host that never reports `clean` (still deploying, dead, blind) makes the others wait at
   *   most `fleet_wait`; then each ends its window without promoting (N keeps running, the previous
   *   version stays known-good, a critical notification) and says `not_promoted`, so no host
   *   promotes N afterwards. A `rolled_back` arriving later still rolls N back on every host
   *   where it runs and is not the settled known-good version.
   * - Redis unreachable: nobody acts (no lease). A `rolled_back` report lost to a failure right
   *   after the decision was saved is made again here, while the rollback is still in view.
   */
  private async syncFleet(): Promise<void> {
    const { fleet, clock } = this.deps;
    if (!fleet || this.state.drill) return;
    const state = this.state;
    const rb = state.rollback;
    if (rb && ['rolling_back', 'verifying', 'rolled_back', 'failed'].includes(state.phase)) {
      const mine = await fleet.read(rb.from).then((b) => b.verdicts[fleet.hostId]?.verdict ?? 'none', () => 'unknown');
      if (mine !== 'unknown' && mine !== 'rolled_back') await this.reportToFleet(rb.from, 'rolled_back');
    }
    const version = state.phase === 'guarding' ? state.release!.version : state.running;
    if (!version) return;
    let board;
    try {
      board = await fleet.read(version);
    } catch (error) {
      this.markStore(false, error);
      return;
    }
    const rolledBack = Object.entries(board.verdicts).find(([host, v]) => host !== fleet.hostId && v.verdict === 'rolled_back');
    if (rolledBack) {
      await this.dispatch({ type: 'fleetRolledBack', version, host: rolledBack[0], at: clock.now() });
      return;
    }
    if (state.fleetWait?.version !== version) {
      this.fleetWaiting = [];
      return;
    }
    const members = new Set([fleet.hostId, ...board.live, ...Object.keys(board.verdicts)]);
    this.fleetWaiting = [...members].filter((host) => board.verdicts[host]?.verdict !== 'clean').sort();
    if (this.fleetWaiting.length === 0) await this.dispatch({ type: 'fleetCleared', version, at: clock.now() });
  }
}
