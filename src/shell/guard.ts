/**
 * The imperative shell around the pure core: runs probes on the machine's schedule, feeds
 * samples, verdicts, pm2 crashes and operator requests through one serialized event queue,
 * persists each new state before carrying out its effects, and executes the effects.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ControlRequest, ControlResult, GuardControl, HistoryView, PreflightView, StatusView } from '../api/types.js';
import type { Config } from '../config/schema.js';
import { evaluateRules, learnBaseline } from '../core/rules.js';
import { policyFrom, probeIntervalMs } from '../core/schedule.js';
import { initialState, rollbackTarget, transition } from '../core/transition.js';
import type { Effect, Event, GuardState, NotifyKind, Policy, Release, RollbackInProgress, RollbackRecord, RuleVerdict, Sample, Transition } from '../core/types.js';
import type { NotificationEvent } from '../notify/types.js';
import { runVerificationSuite } from '../verification/suite.js';
import { candidates } from '../core/versions.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { GuardMetrics } from '../metrics.js';
import type { Pm2Client, Pm2ProcessEvent } from '../pm2/client.js';
import type { Probe } from '../probes/types.js';
import { renderRecordMarkdown } from '../records/markdown.js';
import { renderTimelineSvg } from '../records/timeline-svg.js';
import { windowTimeline } from '../records/window-series.js';
import type { Baselines, StateStore } from '../store/state-store.js';
import type { Clock } from './clock.js';
import { renderDrillMarkdown, runDrill, type DrillRecord } from './drill.js';
import { runPlan, stepDataDir, type PlanStep } from './rollback-runner.js';

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
}

/** Samples older than this are dropped: longer than any rule window or sustain duration. */
const RETENTION_MS = 15 * 60_000;
const MAX_SAMPLES_PER_PROBE = 20_000;
/** How often the baseline of the stable version is refreshed and, when changed, persisted. */
const BASELINE_EVERY_MS = 15_000;
const BASELINE_LOOKBACK_MS = 5 * 60_000;

export class Guard implements GuardControl {
  private state!: GuardState;
  private readonly policy: Policy;
  private readonly probeTypes: ReadonlyMap<string, string>;
  private readonly samples = new Map<string, Sample[]>();
  private readonly inFlight = new Map<string, number>();
  private baselines: Baselines = {};
  private verdicts: RuleVerdict[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private readonly stopping = new AbortController();
  /** Wakes the probe loops when the schedule may have changed (a release window opened, …). */
  private wake = new AbortController();
  private loops: Promise<void>[] = [];
  private rollbackRun: Promise<void> | null = null;
  private crashExits: number[] = [];
  private lastRecord: RollbackRecord | null = null;
  /** When the running version last changed: samples before it belong to another version. */
  private runningSince = 0;
  private lastBaselineAt = 0;
  private unsubscribePm2: (() => void) | null = null;

  constructor(private readonly deps: GuardDeps) {
    this.policy = policyFrom(deps.config);
    this.probeTypes = new Map(deps.config.probes.map((p) => [p.name, p.type]));
    for (const probe of deps.probes) this.samples.set(probe.name, []);
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
    const { store, clock, log } = this.deps;
    this.state = (await store.loadState()) ?? initialState(clock.now());
    this.baselines = await store.loadBaselines();
    this.lastRecord = (await store.listRecords()).sort((a, b) => a.finishedAt - b.finishedAt).at(-1) ?? null;
    log.info('guard starting', { component: 'guard', phase: this.state.phase, stable: this.state.stable, running: this.state.running });
    this.deps.metrics.observeState(this.state);
    await this.dispatch({ type: 'daemonStarted', at: clock.now() });
    if (this.deps.pm2 && this.deps.config.pm2) await this.watchPm2();
    for (const probe of this.deps.probes) this.loops.push(this.probeLoop(probe));
    this.loops.push(this.tickLoop());
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
    if (this.rollbackRun) {
      this.deps.log.info('waiting for the running rollback to finish before exit', { component: 'guard' });
      await this.rollbackRun;
    }
    await this.queue.catch(() => undefined);
    await Promise.allSettled(this.deps.probes.map((p) => p.close?.()));
    this.deps.log.info('guard stopped', { component: 'guard', phase: this.state.phase });
  }

  /** Feeds one event through the machine. Events are applied one at a time, in arrival order. */
  dispatch(event: Event): Promise<Transition> {
    const run = this.queue.then(() => this.apply(event));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async apply(event: Event): Promise<Transition> {
    const before = this.state;
    const result = transition(before, event, this.policy);
    if (result.state !== before) {
      // Persist before acting: a crash after this point resumes from the new state.
      await this.deps.store.saveState(result.state);
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
    }
    for (const effect of result.effects) await this.runEffect(effect);
    return result;
  }

  private async runEffect(effect: Effect): Promise<void> {
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
    }
  }

  private async executeRollback(effect: Extract<Effect, { type: 'rollback' }>): Promise<void> {
    const { config, clock, log } = this.deps;
    log.warn(`rollback ${effect.from} -> ${effect.to} (attempt ${effect.attempt}, from step ${effect.fromStep + 1}): ${effect.breach.reason}`, { component: 'rollback' });
    const startedAt = new Map<number, number>();
    const hooks = {
      stepStarted: async (index: number, stepType: string, description: string) => {
        startedAt.set(index, clock.now());
        this.deps.metrics.stepStarted(index, stepType);
        await this.dispatch({ type: 'stepStarted', index, stepType, description, at: clock.now() });
      },
      stepFinished: async (index: number, ok: boolean, output: string[], error?: string) => {
        const stepType = this.deps.plan[index]!.config.type;
        this.deps.metrics.stepFinished(index, stepType, ok, (clock.now() - (startedAt.get(index) ?? clock.now())) / 1000);
        await this.dispatch({ type: 'stepFinished', index, ok, output, ...(error ? { error } : {}), at: clock.now() });
      },
    };
    let result;
    try {
      // Not tied to `stopping`: a SIGTERM lets the running step finish (bounded by its timeout).
      result = await runPlan(this.deps.plan, { service: config.service, from: effect.from, to: effect.to }, {
        clock,
        log,
        signal: new AbortController().signal,
        stateDir: config.state_dir,
        fromStep: effect.fromStep,
        hooks,
      });
    } catch (error) {
      result = { ok: false, error: `rollback plan crashed: ${errorMessage(error)}` };
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
  private async runVerificationSuite(rollback: RollbackInProgress): Promise<void> {
    const { config, clock, log } = this.deps;
    log.info('verification suite started', { component: 'verify', checks: config.verification.checks.length });
    let outcome;
    try {
      outcome = await runVerificationSuite(config.verification.checks, {
        signal: this.stopping.signal,
        now: () => clock.now(),
        rowSnapshot: await this.rowSnapshot(rollback.from),
        resources: this.latestResources(),
      });
    } catch (error) {
      outcome = { ok: false, results: [{ name: 'suite', type: 'suite', ok: false, detail: `the suite could not run: ${errorMessage(error)}`, durationMs: 0 }] };
    }
    for (const r of outcome.results) log.log(r.ok ? 'info' : 'error', `check ${r.name}: ${r.ok ? 'pass' : 'FAIL'}: ${r.detail}`, { component: 'verify' });
    await this.dispatch({ type: 'verificationFinished', ok: outcome.ok, results: outcome.results, at: clock.now() });
  }

  /** Row counts the database steps recorded when the window of `version` opened. */
  private async rowSnapshot(version: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const [index, step] of this.deps.plan.entries()) {
      if (step.config.type !== 'database') continue;
      const file = join(stepDataDir(this.deps.config.state_dir, version, index, step.config.type), 'snapshot.json');
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
    const { config, log } = this.deps;
    for (const [index, step] of this.deps.plan.entries()) {
      if (!step.strategy.prepare) continue;
      const stepLog = log.child({ component: 'prepare', step: index + 1, strategy: step.config.type });
      const dataDir = stepDataDir(config.state_dir, release.version, index, step.config.type);
      try {
        await mkdir(dataDir, { recursive: true });
        await step.strategy.prepare({
          service: config.service,
          version: release.version,
          previous: release.previous,
          signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(step.config.timeout)]),
          progress: (message) => stepLog.info(message),
          dataDir,
        });
      } catch (error) {
        stepLog.error('could not prepare the rollback of this release', { error: errorMessage(error), release: release.version });
      }
    }
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
    try {
      record = await runDrill({ config, clock, log, plan: this.deps.plan, probe }, { from, to, by });
    } finally {
      await this.dispatch({ type: 'drillFinished', ok: false, at: clock.now() }).catch(() => undefined);
    }
    this.deps.metrics.drillFinished(record);
    const path = await store.writeDrill(record.id, record, renderDrillMarkdown(record));
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
    const steps = await Promise.all(
      this.deps.plan.map(async (step, index) => {
        const description = step.strategy.describe({ from: from ?? '?', to: to ?? '?' });
        if (!from || !to) return { index, type: step.config.type, description, problems: [] as string[] };
        let stepProblems: string[];
        try {
          stepProblems = await step.strategy.check({
            service: config.service,
            from,
            to,
            signal: AbortSignal.timeout(Math.min(step.config.timeout, 30_000)),
            progress: () => undefined,
            dataDir: stepDataDir(config.state_dir, from, index, step.config.type),
          });
        } catch (error) {
          stepProblems = [`readiness check failed: ${errorMessage(error)}`];
        }
        return { index, type: step.config.type, description, problems: stepProblems };
      }),
    );
    const ready = problems.length === 0 && steps.every((s) => s.problems.length === 0);
    this.deps.metrics.observePreflight(ready, steps);
    return { ready, from, to, problems, steps, checkedAt: new Date(clock.now()).toISOString() };
  }

  private async writeRecord(record: RollbackRecord): Promise<void> {
    const { config, store, log, metrics, pm2 } = this.deps;
    metrics.rollbackFinished(record.breach.trigger, record.outcome, record.breach.decidedAt, record.finishedAt);
    this.lastRecord = record;
    let logs: string[] = [];
    if (pm2 && config.pm2) {
      logs = await pm2.logTail(config.pm2.app, 40).catch((error: unknown) => [`(pm2 logs unavailable: ${errorMessage(error)})`]);
    }
    const svg = renderTimelineSvg(windowTimeline(record, this.samples, this.probeTypes, config.service));
    const details = { service: config.service, verificationProbe: config.verification.probe, requiredPasses: config.verification.passes, logs, timeline: `${record.id}.svg` };
    try {
      const paths = await store.writeRecord(record, renderRecordMarkdown(record, details), { service: config.service, logs }, svg);
      log.info('rollback record written', { component: 'record', id: record.id, markdown: paths.markdown });
    } catch (error) {
      log.error('rollback record could not be written', { component: 'record', id: record.id, error: errorMessage(error) });
    }
  }

  private wakeLoops(): void {
    const old = this.wake;
    this.wake = new AbortController();
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
      const interval = probeIntervalMs(this.state, now, config.schedule, probe.type);
      const due = lastLaunch + interval;
      if (now >= due) {
        lastLaunch = now;
        this.launch(probe, now);
        continue;
      }
      await clock.sleep(due - now, AbortSignal.any([this.stopping.signal, this.wake.signal]));
    }
  }

  private launch(probe: Probe, startedAt: number): void {
    const running = this.inFlight.get(probe.name) ?? 0;
    if (running >= this.deps.config.schedule.max_in_flight) {
      this.deps.log.debug('probe launch skipped: too many in flight', { component: 'probe', probe: probe.name, running });
      return;
    }
    this.inFlight.set(probe.name, running + 1);
    probe
      .sample(startedAt, this.stopping.signal)
      .then((sample) => this.onSample(probe, sample))
      .catch((error: unknown) => this.deps.log.error('probe sample handling failed', { component: 'probe', probe: probe.name, error: errorMessage(error) }))
      .finally(() => this.inFlight.set(probe.name, (this.inFlight.get(probe.name) ?? 1) - 1));
  }

  private async onSample(probe: Probe, sample: Sample): Promise<void> {
    if (this.stopping.signal.aborted) return;
    const { config, metrics, log } = this.deps;
    metrics.probeDuration.observe({ probe: probe.name }, Math.max(0, sample.at - sample.startedAt) / 1000);
    if (!sample.ok) {
      metrics.probeFailures.inc({ probe: probe.name });
      log.debug('probe failed', { component: 'probe', probe: probe.name, error: sample.error });
    }
    const list = this.samples.get(probe.name)!;
    list.push(sample);
    const horizon = sample.at - RETENTION_MS;
    while (list.length > MAX_SAMPLES_PER_PROBE || (list.length > 0 && list[0]!.at < horizon)) list.shift();

    if (probe.name === config.release.version_probe && sample.version) {
      await this.dispatch({ type: 'versionObserved', version: sample.version, at: sample.startedAt });
    }
    // Only samples launched after the plan ran can prove the rollback.
    if (probe.name === config.verification.probe && this.state.phase === 'verifying' && sample.startedAt >= this.state.since) {
      await this.dispatch({ type: 'verifySample', ok: sample.ok, ...(sample.version ? { version: sample.version } : {}), at: sample.at });
    }
    await this.evaluate();
  }

  private async evaluate(): Promise<void> {
    const { config, clock } = this.deps;
    const now = clock.now();
    const guarding = this.state.phase === 'guarding' ? this.state.release : null;
    const baselineVersion = guarding ? guarding.previous : this.state.stable;
    const baseline = new Map<string, number>();
    for (const [probe, entry] of Object.entries((baselineVersion && this.baselines[baselineVersion]) || {})) baseline.set(probe, entry.p95Ms);
    this.verdicts = evaluateRules(config.rules, {
      samples: this.samples,
      now,
      since: guarding ? guarding.startedAt : this.runningSince,
      releaseStartedAt: guarding ? guarding.startedAt : null,
      initialDelayMs: config.release.initial_delay,
      baselineP95: baseline,
      probeTypes: this.probeTypes,
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
      await this.dispatch({ type: 'tick', at: clock.now() });
      await this.evaluate();
      await this.refreshBaseline();
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
    const s = this.state;
    const iso = (ms: number) => new Date(ms).toISOString();
    return {
      service: this.deps.config.service,
      phase: s.phase,
      paused: s.paused,
      since: iso(s.since),
      stable: s.stable,
      running: s.running,
      release: s.release
        ? {
            version: s.release.version,
            previous: s.release.previous,
            startedAt: iso(s.release.startedAt),
            deployedBy: s.release.deployedBy,
            source: s.release.source,
            windowEndsAt: s.phase === 'guarding' ? iso(s.release.startedAt + this.policy.windowMs) : null,
          }
        : null,
      rollback: s.rollback
        ? { from: s.rollback.from, to: s.rollback.to, reason: s.rollback.breach.reason, trigger: s.rollback.breach.trigger, startedAt: iso(s.rollback.startedAt), attempt: s.rollback.attempt }
        : null,
      wouldRollBack: s.wouldRollBack?.reason ?? null,
      pendingRollback: s.pending ? { to: s.pending.to, reason: s.pending.breach.reason, at: iso(s.pending.until) } : null,
      failure: s.failure,
      rules: this.verdicts,
      lastRollback: this.lastRecord
        ? { id: this.lastRecord.id, from: this.lastRecord.from, to: this.lastRecord.to, outcome: this.lastRecord.outcome, finishedAt: iso(this.lastRecord.finishedAt) }
        : null,
      now: iso(this.deps.clock.now()),
    };
  }

  async history(): Promise<HistoryView> {
    const records = await this.deps.store.listRecords();
    return {
      service: this.deps.config.service,
      deployments: this.state.history.map((h) => ({ ...h, at: new Date(h.at).toISOString() })),
      candidates: candidates(this.state.history),
      previousStable: this.state.stable,
      rollbacks: records.map((r) => ({ id: r.id, from: r.from, to: r.to, outcome: r.outcome, finishedAt: new Date(r.finishedAt).toISOString(), reason: r.breach.reason })),
    };
  }

  metrics() {
    return this.deps.metrics.text();
  }

  async control(request: ControlRequest): Promise<ControlResult> {
    const at = this.deps.clock.now();
    const event: Event =
      request.action === 'release'
        ? { type: 'releaseRequested', version: request.version, deployedBy: request.deployedBy, at }
        : request.action === 'rollback'
          ? { type: 'rollbackRequested', ...(request.to ? { to: request.to } : {}), reason: request.reason, by: request.by, at }
          : request.action === 'promote'
            ? { type: 'promoteRequested', by: request.by, at }
            : request.action === 'veto'
              ? { type: 'vetoRequested', by: request.by, reason: request.reason, at }
            : request.action === 'pause'
              ? { type: 'pauseRequested', by: request.by, at }
              : { type: 'resumeRequested', by: request.by, at };
    this.deps.log.info(`control request: ${request.action}`, { component: 'api', ...request });
    const result = await this.dispatch(event);
    return result.rejected ? { ok: false, error: result.rejected } : { ok: true, state: result.state };
  }
}
