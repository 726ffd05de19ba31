/**
 * The guard's own metrics (DESIGN.md §7), on an injected registry, never prom-client's global one.
 * Labels are bounded: phases, rule names, probe names from the config, triggers and outcomes.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PHASES, type GuardState, type RuleVerdict, type Trigger } from './core/types.js';
import { RULE_NAMES } from './core/rules.js';
import { packageVersion } from './package-root.js';

/** Resolution of the event-loop delay histogram behind nodejs_eventloop_lag_*_seconds. */
const EVENT_LOOP_MONITORING_MS = 100;

export class GuardMetrics {
  readonly registry = new Registry();
  private readonly state = new Gauge({ name: 'release_guard_state', help: 'Current state of the guard (1 for the current state)', labelNames: ['state'] as const, registers: [this.registry] });
  private readonly paused = new Gauge({ name: 'release_guard_paused', help: '1 while automation is paused', registers: [this.registry] });
  private readonly releaseInfo = new Gauge({ name: 'release_guard_release_info', help: 'Running version and the previous stable version', labelNames: ['version', 'previous'] as const, registers: [this.registry] });
  private readonly ruleBreached = new Gauge({ name: 'release_guard_rule_breached', help: '1 when the rule currently breaches, 0 otherwise', labelNames: ['rule'] as const, registers: [this.registry] });
  private readonly ruleEvidence = new Gauge({
    name: 'release_guard_rule_evidence_ratio',
    help: 'Sequential rules: the statistic over the level it must reach (1 breaches), so a dashboard shows how close a rule is',
    labelNames: ['rule'] as const,
    registers: [this.registry],
  });
  private readonly ruleInconclusive = new Gauge({ name: 'release_guard_rule_inconclusive', help: '1 when the rule has no data or its source failed', labelNames: ['rule'] as const, registers: [this.registry] });
  readonly probeDuration = new Histogram({ name: 'release_guard_probe_duration_seconds', help: 'Time taken by one probe sample', labelNames: ['probe'] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] });
  readonly probeFailures = new Counter({ name: 'release_guard_probe_failures_total', help: 'Probe samples that failed their check or could not observe', labelNames: ['probe'] as const, registers: [this.registry] });
  private readonly rollbacks = new Counter({ name: 'release_guard_rollbacks_total', help: 'Rollbacks by trigger and outcome', labelNames: ['trigger', 'outcome'] as const, registers: [this.registry] });
  private readonly rollbackDuration = new Histogram({ name: 'release_guard_rollback_duration_seconds', help: 'From rollback decision to verified (or failed)', buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600], registers: [this.registry] });
  private readonly detection = new Histogram({ name: 'release_guard_detection_seconds', help: 'From the first bad evidence of a fault to the rollback decision', buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300], registers: [this.registry] });
  private readonly stepSeconds = new Gauge({ name: 'release_guard_rollback_step_seconds', help: 'Duration of each step of the last rollback plan, by step and outcome', labelNames: ['step', 'outcome'] as const, registers: [this.registry] });
  private readonly stepRunning = new Gauge({ name: 'release_guard_rollback_step_running', help: '1 while a rollback step runs (label: the step)', labelNames: ['step'] as const, registers: [this.registry] });
  private readonly ready = new Gauge({ name: 'release_guard_rollback_ready', help: '1 when every rollback step passed its readiness check at the last preflight', registers: [this.registry] });
  private readonly readinessProblems = new Gauge({ name: 'release_guard_rollback_problems', help: 'Readiness problems found at the last preflight, per step', labelNames: ['step'] as const, registers: [this.registry] });
  private readonly drillDuration = new Gauge({ name: 'release_guard_drill_duration_seconds', help: 'Duration of each leg of the last rollback drill (rollback, roll forward), plan to verified', labelNames: ['leg'] as const, registers: [this.registry] });
  private readonly drillOk = new Gauge({ name: 'release_guard_drill_success', help: '1 when the last rollback drill passed', registers: [this.registry] });
  private readonly lastDrill = new Gauge({ name: 'release_guard_last_drill_timestamp_seconds', help: 'When the last rollback drill finished (unix seconds)', registers: [this.registry] });
  private readonly leader = new Gauge({ name: 'release_guard_leader', help: '1 while this guard holds the lease and acts; 0 while it stands by (or cannot reach its store)', registers: [this.registry] });
  private readonly storeUp = new Gauge({ name: 'release_guard_store_up', help: '1 while the state store answers; 0 while it cannot be read or written (the guard then observes but does not act)', registers: [this.registry] });
  private readonly stateDirBytes = new Gauge({ name: 'release_guard_state_dir_bytes', help: 'Bytes used by state_dir (state, records, the release windows\' backups and snapshots)', registers: [this.registry] });
  private readonly stateDirFree = new Gauge({ name: 'release_guard_state_dir_free_bytes', help: 'Free bytes on the filesystem holding state_dir', registers: [this.registry] });
  private readonly lastRollback = new Gauge({ name: 'release_guard_last_rollback_timestamp_seconds', help: 'When the last rollback finished (unix seconds)', registers: [this.registry] });

  private readonly buildInfo = new Gauge({ name: 'release_guard_build_info', help: 'Always 1; the labels say which release-guard and which Node.js run', labelNames: ['version', 'node_version'] as const, registers: [this.registry] });

  constructor() {
    this.buildInfo.set({ version: packageVersion(), node_version: process.version }, 1);
    // prom-client samples event-loop delay with a timer every `eventLoopMonitoringPrecision` ms
    // (default 10): 100 wake-ups a second, more than all the probes of a service at 250 ms cause.
    // 100 ms still catches any block longer than that; the nodejs_eventloop_lag_* series stay.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_MONITORING_MS });
    this.leader.set(1);
    this.storeUp.set(1);
    for (const phase of PHASES) this.state.set({ state: phase }, 0);
    for (const rule of RULE_NAMES) this.ruleBreached.set({ rule }, 0);
    this.ruleBreached.set({ rule: 'crash' }, 0);
    // Every series exists from the start, so increase() sees the first rollback of each kind.
    for (const trigger of ['rule', 'crash', 'manual', 'fleet'] as const) {
      for (const outcome of ['rolled_back', 'failed'] as const) this.rollbacks.inc({ trigger, outcome }, 0);
    }
  }

  observeState(state: GuardState): void {
    for (const phase of PHASES) this.state.set({ state: phase }, phase === state.phase ? 1 : 0);
    this.paused.set(state.paused ? 1 : 0);
    this.releaseInfo.reset();
    if (state.running) {
      const previous = state.release?.version === state.running ? (state.release.previous ?? '') : (state.stable === state.running ? '' : (state.stable ?? ''));
      this.releaseInfo.set({ version: state.running, previous }, 1);
    }
  }

  /** Whether this guard acts (holds the lease) and whether its store answers. */
  observeLeadership(leader: boolean, storeUp: boolean): void {
    this.leader.set(leader ? 1 : 0);
    this.storeUp.set(storeUp ? 1 : 0);
  }

  observeVerdicts(verdicts: readonly RuleVerdict[], crashing: boolean): void {
    for (const v of verdicts) {
      this.ruleBreached.set({ rule: v.rule }, v.outcome === 'fail' ? 1 : 0);
      this.ruleInconclusive.set({ rule: v.rule }, v.outcome === 'inconclusive' || v.outcome === 'error' ? 1 : 0);
      if (v.evidence) this.ruleEvidence.set({ rule: v.rule }, v.evidence.needed > 0 ? v.evidence.statistic / v.evidence.needed : 0);
    }
    this.ruleBreached.set({ rule: 'crash' }, crashing ? 1 : 0);
  }

  rollbackDecided(faultAt: number, decidedAt: number): void {
    this.detection.observe(Math.max(0, decidedAt - faultAt) / 1000);
  }

  rollbackFinished(trigger: Trigger, outcome: 'rolled_back' | 'failed', startedAt: number, finishedAt: number): void {
    this.rollbacks.inc({ trigger, outcome });
    this.rollbackDuration.observe(Math.max(0, finishedAt - startedAt) / 1000);
    this.lastRollback.set(finishedAt / 1000);
  }

  stepStarted(index: number, type: string): void {
    if (index === 0) this.stepSeconds.reset();
    this.stepRunning.reset();
    this.stepRunning.set({ step: `${index + 1}-${type}` }, 1);
  }

  stepFinished(index: number, type: string, ok: boolean, seconds: number): void {
    this.stepRunning.reset();
    this.stepSeconds.set({ step: `${index + 1}-${type}`, outcome: ok ? 'ok' : 'failed' }, seconds);
  }

  observeStateDir(usage: { bytes: number; freeBytes: number | null }): void {
    this.stateDirBytes.set(usage.bytes);
    if (usage.freeBytes !== null) this.stateDirFree.set(usage.freeBytes);
  }

  observePreflight(ready: boolean, problemsPerStep: readonly { index: number; type: string; problems: readonly string[] }[]): void {
    this.ready.set(ready ? 1 : 0);
    this.readinessProblems.reset();
    for (const step of problemsPerStep) this.readinessProblems.set({ step: `${step.index + 1}-${step.type}` }, step.problems.length);
  }

  drillFinished(record: { ok: boolean; finishedAt: number; legs: readonly { totalMs: number }[] }): void {
    record.legs.forEach((leg, i) => this.drillDuration.set({ leg: i === 0 ? 'rollback' : 'roll_forward' }, leg.totalMs / 1000));
    this.drillOk.set(record.ok ? 1 : 0);
    this.lastDrill.set(record.finishedAt / 1000);
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
