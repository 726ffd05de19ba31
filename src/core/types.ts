/**
 * Types of the pure core: samples, verdicts, the guard's state, the events that move it and the
 * effects it asks the shell to carry out. Nothing in src/core reads a clock, touches the disk or
 * the network: time arrives inside events (`at`, epoch milliseconds).
 */
import type { BuiltInSampleValues } from './rule-catalog.js';
import type { SequentialEvidence } from './sequential.js';

/** A sample's readings: the built-in names, typed, and a prometheus probe's query names. */
export type SampleValues = BuiltInSampleValues & Record<string, number>;

/** One observation of one probe. `startedAt` orders samples: a slow probe does not reorder them. */
export interface Sample {
  probe: string;
  /** When the probe was launched. */
  startedAt: number;
  /** When it completed (or timed out). */
  at: number;
  /** The probe's own check passed (HTTP status and body as expected, /proc readable, …). */
  ok: boolean;
  /** Why `ok` is false, in words. */
  error?: string;
  /**
   * The probe could not observe at all (e.g. /proc unreadable, pm2 unreachable). Such samples are
   * "no data" for the rules, never a failure of the release.
   */
  unavailable?: boolean;
  /**
   * Named readings: `latency_ms`, `status`, `cpu` (0..1), `memory` (0..1), `disk` (0..1), … — the
   * built-in names are SampleValueKey (rule-catalog.ts); a prometheus probe adds its query names.
   */
  values: SampleValues;
  /** The application version the probe saw, when it reports one. */
  version?: string;
  /**
   * Real traffic counted since this probe's previous sample (scrape, access_log): the counts the
   * sequential traffic rules judge. Absent when the probe could not count an interval (its first
   * scrape, a counter reset, a change of process): no data, never zero.
   */
  traffic?: TrafficCounts;
}

/** Requests of one interval, counted from one process at a time or from all of them. */
export interface TrafficCounts {
  requests: number;
  /** Requests that count as errors (e.g. status 5xx). */
  errors: number;
  /**
   * Cumulative request counts by latency upper bound `le` in milliseconds, ascending, the last
   * one `Infinity` (= requests with a known latency). Absent when the source has no latencies.
   * "Share slower than X ms" is exact at a bucket boundary.
   */
  latency?: LatencyBucket[];
}

export interface LatencyBucket {
  le: number;
  count: number;
}

/**
 * The outcome of one rule at one moment, argo-rollouts style: no data is never "pass".
 * `skipped` means the rule does not apply right now (e.g. resource rules inside initial_delay).
 */
export type Outcome = 'pass' | 'fail' | 'inconclusive' | 'error' | 'skipped';

/** `alert`: an Alertmanager alert matching triggers.alertmanager fired inside the window. */
export type RuleName = 'health' | 'error_rate' | 'latency_ratio' | 'latency_max' | 'cpu' | 'memory' | 'db_latency' | 'alert';

export interface RuleVerdict {
  rule: RuleName;
  outcome: Outcome;
  /** The observed value in `unit`, or null when there was nothing to observe. */
  observed: number | null;
  threshold: number;
  unit: 'failures' | 'ratio' | 'ms' | 'x';
  /** Human sentence with observed vs threshold, e.g. `health: 3 consecutive failures >= 3 (…)`. */
  message: string;
  /** When the bad condition began (first bad sample), so detection time can be measured. */
  since?: number;
  /** Sequential rules: the statistic, the level it needs, the counts and the budget it was judged with. */
  evidence?: SequentialEvidence;
}

export type Phase =
  | 'stable'
  | 'guarding'
  | 'rolling_back'
  | 'verifying'
  | 'rolled_back'
  | 'promoted'
  | 'failed';

export const PHASES: readonly Phase[] = [
  'stable',
  'guarding',
  'rolling_back',
  'verifying',
  'rolled_back',
  'promoted',
  'failed',
];

export interface Release {
  /**
   * The release window's id (see core/windows.ts): what the steps prepared for this window lives
   * under `<state_dir>/windows/<id>/`, so a version deployed twice never reuses the first window's data.
   */
  id: string;
  version: string;
  /** The last known-good version when the window opened; the rollback target. */
  previous: string | null;
  startedAt: number;
  deployedBy: string;
  source: 'detected' | 'manual';
}

/** `fleet`: another host of the fleet rolled the same release back. `alert`: Alertmanager said so. */
export const TRIGGERS = ['rule', 'crash', 'manual', 'fleet', 'alert'] as const;
export type Trigger = (typeof TRIGGERS)[number];

/** One host's verdict on a release, shared with the other hosts of a fleet. */
export type FleetVerdict = 'guarding' | 'clean' | 'rolled_back' | 'not_promoted';

/** Why a rollback was (or would have been) decided. */
export interface Breach {
  trigger: Trigger;
  /** The rules that failed (empty for crash/manual). */
  rules: RuleName[];
  reason: string;
  verdicts: RuleVerdict[];
  decidedAt: number;
  /** When the fault began, as far as the evidence shows. */
  faultAt: number;
}

export type DeploymentStatus = 'success' | 'failed' | 'rolled_back';

export interface DeploymentEntry {
  version: string;
  at: number;
  status: DeploymentStatus;
  deployedBy: string;
  note?: string;
}

/** One step of a rollback plan as it ran; persisted before and after the step. */
export interface StepRecord {
  index: number;
  type: string;
  description: string;
  startedAt: number;
  finishedAt?: number;
  ok?: boolean;
  error?: string;
  /** The step's progress lines, last few. */
  output: string[];
  /** Which attempt of the plan ran it (a resumed plan re-runs the step that was interrupted). */
  attempt: number;
}

/** One check of the verification suite after a rollback. */
export interface VerificationCheckOutcome {
  name: string;
  type: string;
  ok: boolean;
  detail: string;
  durationMs: number;
}

export interface RollbackInProgress {
  from: string;
  to: string;
  breach: Breach;
  startedAt: number;
  /** 1 for the first run; incremented when a restarted daemon resumes the plan. */
  attempt: number;
  steps: StepRecord[];
  /** When the plan's last step finished. */
  executedAt?: number;
  /** Passing checks counted towards verification: those launched after the last failed one. */
  verifyPasses: number;
  /** Launch times of the counted passes, and of the latest failed check (by launch, not by
   * arrival: a check sent to the replaced process before it stopped serving fails late, and must
   * not cancel passes of checks launched after it). Absent in states persisted before. */
  verifyEvidence?: { passLaunches: number[]; failedLaunch: number | null };
  /** Health proven; the verification suite is running (or ran). */
  suite?: { startedAt: number; results?: VerificationCheckOutcome[] };
}

/** A rollback drill in progress: versions move on purpose, so no window opens and nothing acts. */
export interface DrillInProgress {
  from: string;
  to: string;
  startedAt: number;
  by: string;
}

/** What every phase of the persisted state holds. */
export interface GuardStateBase {
  schemaVersion: 1;
  /** When the current phase was entered. */
  since: number;
  paused: boolean;
  /** Last known-good version (the baseline owner and default rollback target). */
  stable: string | null;
  /** The version last reported by the application. */
  running: string | null;
  /** A breach seen while automation could not act (paused, limit reached); reported, not acted on. */
  wouldRollBack: Breach | null;
  /** A decided rollback waiting out the veto window (rollback.veto), so a human can stop it. */
  pending: { breach: Breach; to: string; until: number } | null;
  /** Releases whose automatic rollback a human vetoed: automation leaves them alone. */
  vetoed: string[];
  /** Rules currently breached, so alerts fire on change rather than on every evaluation. */
  breached: RuleName[];
  /** Rules currently without data or with a failing source (inconclusive / error). */
  blind: RuleName[];
  /**
   * Automatic rollbacks: which release, when it was decided (one-per-release and the hourly limit)
   * and when it finished, verified or failed (the cooldown). `finishedAt` is absent while it runs.
   */
  autoRollbacks: { version: string; at: number; finishedAt?: number }[];
  /** Deployment history, newest last, capped. */
  history: DeploymentEntry[];
  /**
   * Fleets only: this host's window of `version` ended clean at `since`; it keeps guarding and
   * promotes when every host's window ended clean (or gives up after the fleet wait).
   */
  fleetWait?: { version: string; since: number };
  /**
   * The window opened last (kept after it closed): a rollback by hand of that version acts on its
   * prepared data, and pruning never removes it. Absent in states saved before windows had ids.
   */
  lastWindow?: { id: string; version: string };
}

/**
 * What each phase holds besides the base: whether there is a release under guard (or being rolled
 * back), a rollback, a drill or a failure follows from the phase. A field a phase lacks is `null`
 * (not absent), so the stored JSON has one shape in every phase and `state.release?.version` reads
 * the same everywhere.
 */
export type PhaseState =
  /** No release under guard. A drill runs only here, in promoted or in rolled_back. */
  | { phase: 'stable'; release: null; rollback: null; drill: DrillInProgress | null; failure: null }
  /** `release` is under guard. */
  | { phase: 'guarding'; release: Release; rollback: null; drill: null; failure: null }
  | { phase: 'rolling_back'; release: Release; rollback: RollbackInProgress; drill: null; failure: null }
  | { phase: 'verifying'; release: Release; rollback: RollbackInProgress; drill: null; failure: null }
  /** Settling after a verified rollback: the record is rebuilt from `release` and `rollback`. */
  | { phase: 'rolled_back'; release: Release; rollback: RollbackInProgress; drill: DrillInProgress | null; failure: null }
  | { phase: 'promoted'; release: Release; rollback: null; drill: DrillInProgress | null; failure: null }
  /**
   * Frozen until resume. `rollback` is null when no rollback ran (a breach with no version to roll
   * back to); `failure` says why.
   */
  | { phase: 'failed'; release: Release; rollback: RollbackInProgress | null; drill: null; failure: string };

/** The whole persisted state. Everything the guard must remember across a restart is here. */
export type GuardState = GuardStateBase & PhaseState;

/** The state in one phase. */
export type StateIn<P extends Phase> = Extract<GuardState, { phase: P }>;

export type Event =
  | { type: 'versionObserved'; version: string; at: number }
  | { type: 'releaseRequested'; version: string; deployedBy: string; at: number }
  | { type: 'evaluated'; verdicts: RuleVerdict[]; at: number }
  | { type: 'crashed'; detail: string; at: number }
  /**
   * An Alertmanager alert matching triggers.alertmanager is firing (sent once per firing alert):
   * `startsAt` is when Alertmanager says it began, `description` its name and labels.
   */
  | { type: 'alertFiring'; name: string; description: string; startsAt: number; at: number }
  /** That alert is resolved. */
  | { type: 'alertResolved'; name: string; description: string; at: number }
  | { type: 'rollbackRequested'; to?: string; reason: string; by: string; at: number }
  | { type: 'stepStarted'; index: number; stepType: string; description: string; at: number }
  | { type: 'stepFinished'; index: number; ok: boolean; error?: string; output: string[]; at: number }
  | { type: 'rollbackExecuted'; ok: boolean; error?: string; at: number }
  | { type: 'verificationFinished'; ok: boolean; results: VerificationCheckOutcome[]; at: number }
  /** `startedAt`: when the check was launched (default `at`); passes are counted in launch order. */
  | { type: 'verifySample'; ok: boolean; version?: string; at: number; startedAt?: number }
  | { type: 'promoteRequested'; by: string; at: number }
  | { type: 'pauseRequested'; by: string; at: number }
  | { type: 'vetoRequested'; by: string; reason: string; at: number }
  | { type: 'drillStarted'; by: string; at: number }
  | { type: 'drillFinished'; ok: boolean; at: number }
  | { type: 'resumeRequested'; by: string; at: number }
  | { type: 'daemonStarted'; at: number }
  /** Another host of the fleet rolled `version` back. */
  | { type: 'fleetRolledBack'; version: string; host: string; at: number }
  /** Every host of the fleet reported its window of `version` ended clean. */
  | { type: 'fleetCleared'; version: string; at: number }
  | { type: 'tick'; at: number };

export type NotifyKind =
  | 'release_detected'
  | 'rule_breached'
  | 'rule_recovered'
  | 'rule_blind'
  | 'would_roll_back'
  | 'rollback_started'
  | 'rollback_finished'
  | 'rollback_failed'
  | 'promoted'
  | 'crash'
  | 'paused'
  | 'resumed'
  | 'rollback_pending'
  | 'vetoed'
  | 'rollback_not_ready'
  | 'drill'
  | 'fleet'
  | 'alert'
  | 'record_not_written'
  | 'plan_interrupted';

export type Effect =
  | {
      type: 'rollback';
      release: Release;
      from: string;
      to: string;
      breach: Breach;
      attempt: number;
      /** First step to run: steps before it finished ok in an earlier attempt. */
      fromStep: number;
    }
  /** Health passed N times after a rollback: run the rest of the verification suite. */
  | { type: 'verify'; rollback: RollbackInProgress }
  | { type: 'notify'; kind: NotifyKind; severity: 'info' | 'warning' | 'critical'; message: string }
  | { type: 'writeRecord'; record: RollbackRecord }
  /** A window opened: let each rollback step snapshot what it will need (config, backups). */
  | { type: 'prepareRelease'; release: Release }
  /** Fleets: tell the other hosts what this host's window of `version` came to. */
  | { type: 'fleetVerdict'; version: string; verdict: FleetVerdict };

/** What a finished (or failed) rollback leaves behind; rendered as JSON and Markdown. */
export interface RollbackRecord {
  id: string;
  from: string;
  to: string;
  release: Release;
  breach: Breach;
  outcome: 'rolled_back' | 'failed';
  startedAt: number;
  executedAt: number | null;
  finishedAt: number;
  failure?: string;
  attempts: number;
  steps: StepRecord[];
  verification: { healthPasses: number; checks: VerificationCheckOutcome[] };
}

/** Knobs of the pure machine, taken from the config by the shell. All durations in ms. */
export interface Policy {
  windowMs: number;
  automatic: boolean;
  maxRollbacksPerHour: number;
  /** No automatic rollback within this long after the previous automatic one finished (0: none). */
  cooldownMs: number;
  verifyPasses: number;
  verifyTimeoutMs: number;
  /** How long rolled_back / promoted stay visible before the machine returns to stable. */
  settleMs: number;
  /** How long after a release starts the previous version may still answer (a rolling deploy). */
  rolloutGraceMs: number;
  /** At most this many resumed attempts of one interrupted rollback. */
  maxAttempts: number;
  /** Whether checks beyond health follow the health passes (verification.checks configured). */
  verificationSuite: boolean;
  /** How long a decided automatic rollback waits for a veto (0: act at once). */
  vetoMs: number;
  historyLimit: number;
  /**
   * Set for a fleet of hosts sharing verdicts: a host whose window ended clean waits at most this
   * long for every other host's window to end clean before promoting. Undefined: no fleet.
   */
  fleetWaitMs?: number;
}

/** The result of one transition. `rejected` explains why a requested action was refused. */
export interface Transition {
  state: GuardState;
  effects: Effect[];
  rejected?: string;
}
