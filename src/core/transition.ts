/**
 * The guard's state machine: `transition(state, event, policy) -> { state, effects }`, pure.
 *
 *   stable → guarding(N, previous P) → rolling_back → verifying → rolled_back → stable
 *   guarding → promoted → stable                  (window ended clean; N becomes stable)
 *   rolling_back | verifying → failed             (frozen until resume)
 *   paused is a flag: the machine keeps observing and says "would roll back", and never acts.
 *
 * Unhandled (state, event) pairs return the same state object and no effects, so the shell can
 * persist only real changes (`next.state !== state`).
 */
import { formatDuration } from '../config/duration.js';
import { candidates, latestStatus } from './versions.js';
import { newRelease, releaseForRollback } from './windows.js';
import type {
  Breach,
  DeploymentEntry,
  Effect,
  Event,
  FleetVerdict,
  GuardState,
  Phase,
  Policy,
  Release,
  RollbackRecord,
  RuleName,
  RuleVerdict,
  Transition,
} from './types.js';

const HOUR_MS = 3_600_000;

export function initialState(at: number): GuardState {
  return {
    schemaVersion: 1,
    phase: 'stable',
    since: at,
    paused: false,
    stable: null,
    running: null,
    release: null,
    rollback: null,
    wouldRollBack: null,
    pending: null,
    vetoed: [],
    drill: null,
    failure: null,
    breached: [],
    blind: [],
    autoRollbacks: [],
    history: [],
  };
}

/** The legal phase edges; `transition` never produces any other (tested). */
export const ALLOWED_EDGES: Readonly<Record<Phase, readonly Phase[]>> = {
  stable: ['guarding', 'rolling_back'],
  guarding: ['guarding', 'rolling_back', 'promoted', 'stable', 'failed'],
  rolling_back: ['verifying', 'failed'],
  verifying: ['rolled_back', 'failed'],
  rolled_back: ['stable', 'guarding', 'rolling_back'],
  promoted: ['stable', 'guarding', 'rolling_back'],
  failed: ['stable'],
};

const unchanged = (state: GuardState): Transition => ({ state, effects: [] });
const reject = (state: GuardState, why: string): Transition => ({ state, effects: [], rejected: why });

function withHistory(state: GuardState, entry: DeploymentEntry, policy: Policy): DeploymentEntry[] {
  return [...state.history, entry].slice(-policy.historyLimit);
}

function enter(state: GuardState, phase: Phase, at: number, patch: Partial<GuardState> = {}): GuardState {
  // Waiting for the fleet belongs to one phase of one window: any phase change ends it.
  const { fleetWait: _fleetWait, ...rest } = state;
  void _fleetWait;
  return { ...rest, ...patch, phase, since: at };
}

/** Fleets: the effect that tells the other hosts what this host's window of `version` came to. */
function fleetVerdict(policy: Policy, version: string, verdict: FleetVerdict): Effect[] {
  return policy.fleetWaitMs === undefined ? [] : [{ type: 'fleetVerdict', version, verdict }];
}

/** Versions that failed or were rolled back: never a rollback target. */
export function failedVersions(state: GuardState): Set<string> {
  return new Set([...latestStatus(state.history)].filter(([, status]) => status !== 'success').map(([v]) => v));
}

function openWindow(state: GuardState, release: Release, policy: Policy): Transition {
  const previous = release.previous ?? 'none';
  return {
    state: enter(state, 'guarding', release.startedAt, {
      release,
      lastWindow: { id: release.id, version: release.version },
      running: release.version,
      rollback: null,
      wouldRollBack: null,
      pending: null,
      breached: [],
      blind: [],
    }),
    effects: [
      {
        type: 'notify',
        kind: 'release_detected',
        severity: 'info',
        message: `release ${release.version} (previous ${previous}) guarded by ${release.deployedBy}`,
      },
      { type: 'prepareRelease', release },
      ...fleetVerdict(policy, release.version, 'guarding'),
    ],
  };
}

/** Why automation may not act on this breach now, or null when it may. */
function automationBlocked(state: GuardState, version: string, at: number, policy: Policy): string | null {
  if (state.paused) return 'automation is paused';
  if (state.vetoed.includes(version)) return `the automatic rollback of ${version} was vetoed`;
  if (!policy.automatic) return 'automatic rollback is disabled (rollback.automatic: false)';
  if (state.autoRollbacks.some((r) => r.version === version)) {
    return `release ${version} was already rolled back automatically once`;
  }
  const lastHour = state.autoRollbacks.filter((r) => at - r.at < HOUR_MS).length;
  if (lastHour >= policy.maxRollbacksPerHour) {
    return `rate limit: ${lastHour} automatic rollbacks in the last hour (max_per_hour ${policy.maxRollbacksPerHour})`;
  }
  // Entries written before finishedAt existed count from their decision.
  const previous = state.autoRollbacks.reduce<{ version: string; end: number } | null>((latest, r) => {
    const end = r.finishedAt ?? r.at;
    return latest === null || end > latest.end ? { version: r.version, end } : latest;
  }, null);
  if (previous !== null && policy.cooldownMs > 0 && at - previous.end < policy.cooldownMs) {
    return `cooldown: the automatic rollback of ${previous.version} finished ${formatDuration(Math.max(0, at - previous.end))} ago (rollback.cooldown ${formatDuration(policy.cooldownMs)})`;
  }
  return null;
}

/** Marks the automatic rollback now ending (verified or failed) as finished, for the cooldown. */
function autoRollbackFinished(state: GuardState, at: number): GuardState['autoRollbacks'] {
  const rb = state.rollback;
  if (!rb) return state.autoRollbacks;
  return state.autoRollbacks.map((r) =>
    r.version === rb.from && r.at === rb.startedAt && r.finishedAt === undefined ? { ...r, finishedAt: at } : r,
  );
}

/** The version to roll back to: the release's previous version unless it failed, else the newest good one. */
export function rollbackTarget(state: GuardState, from: string, requested?: string): string | null {
  const failed = failedVersions(state);
  if (requested !== undefined) return requested === from || failed.has(requested) ? null : requested;
  const previous = state.release?.version === from ? state.release.previous : state.stable;
  if (previous && previous !== from && !failed.has(previous)) return previous;
  return candidates(state.history).find((v) => v !== from) ?? null;
}

function startRollback(state: GuardState, breach: Breach, to: string, policy: Policy, automatic: boolean): Transition {
  const release = state.release!;
  return {
    state: enter(state, 'rolling_back', breach.decidedAt, {
      rollback: { from: release.version, to, breach, startedAt: breach.decidedAt, attempt: 1, steps: [], verifyPasses: 0 },
      wouldRollBack: null,
      pending: null,
      autoRollbacks: automatic
        ? [...state.autoRollbacks.filter((r) => breach.decidedAt - r.at < 24 * HOUR_MS), { version: release.version, at: breach.decidedAt }]
        : state.autoRollbacks,
    }),
    effects: [
      {
        type: 'notify',
        kind: 'rollback_started',
        severity: 'critical',
        message: `rolling back ${release.version} -> ${to}: ${breach.reason}`,
      },
      { type: 'rollback', release, from: release.version, to, breach, attempt: 1, fromStep: 0 },
      ...fleetVerdict(policy, release.version, 'rolled_back'),
    ],
  };
}

/** A breach inside a release window: roll back, or say why not. */
function onBreach(state: GuardState, breach: Breach, policy: Policy): Transition {
  const release = state.release!;
  if (state.pending) return unchanged(state); // already decided, waiting out the veto window
  const blocked = automationBlocked(state, release.version, breach.decidedAt, policy);
  if (blocked) {
    if (state.wouldRollBack) return unchanged(state);
    return {
      state: { ...state, wouldRollBack: breach },
      effects: [
        {
          type: 'notify',
          kind: 'would_roll_back',
          severity: 'critical',
          message: `would roll back ${release.version}, but ${blocked}: ${breach.reason}`,
        },
      ],
    };
  }
  const to = rollbackTarget(state, release.version);
  if (!to) {
    const failure = `no version to roll back to: previous ${release.previous ?? 'unknown'} is missing or failed`;
    return {
      state: enter(state, 'failed', breach.decidedAt, { failure, wouldRollBack: breach }),
      effects: [{ type: 'notify', kind: 'rollback_failed', severity: 'critical', message: `${failure}; ${breach.reason}` }],
    };
  }
  if (policy.vetoMs > 0) {
    const until = breach.decidedAt + policy.vetoMs;
    return {
      state: { ...state, pending: { breach, to, until } },
      effects: [
        {
          type: 'notify',
          kind: 'rollback_pending',
          severity: 'critical',
          message: `rolling back ${release.version} -> ${to} in ${Math.round(policy.vetoMs / 1000)}s unless vetoed (release-guard veto): ${breach.reason}`,
        },
      ],
    };
  }
  return startRollback(state, breach, to, policy, true);
}

function breachFromVerdicts(verdicts: RuleVerdict[], at: number): Breach | null {
  const failing = verdicts.filter((v) => v.outcome === 'fail');
  if (failing.length === 0) return null;
  return {
    trigger: 'rule',
    rules: failing.map((v) => v.rule),
    reason: failing.map((v) => v.message).join('; '),
    verdicts,
    decidedAt: at,
    faultAt: Math.min(...failing.map((v) => v.since ?? at)),
  };
}

/**
 * Alerts when the set of breached rules changes (outside windows this is all the guard does), and
 * remembers which rules are blind (no data, source failing) so a window cannot end "clean" on
 * rules that never saw anything.
 */
function trackBreaches(state: GuardState, verdicts: RuleVerdict[]): Transition {
  const now: RuleName[] = verdicts.filter((v) => v.outcome === 'fail').map((v) => v.rule);
  const blind: RuleName[] = verdicts.filter((v) => v.outcome === 'inconclusive' || v.outcome === 'error').map((v) => v.rule);
  const added = now.filter((r) => !state.breached.includes(r));
  const cleared = state.breached.filter((r) => !now.includes(r));
  const blindChanged = blind.length !== state.blind.length || blind.some((r) => !state.blind.includes(r));
  if (added.length === 0 && cleared.length === 0 && !blindChanged) return unchanged(state);
  const effects: Effect[] = [];
  for (const rule of added) {
    const verdict = verdicts.find((v) => v.rule === rule)!;
    effects.push({ type: 'notify', kind: 'rule_breached', severity: 'warning', message: verdict.message });
  }
  for (const rule of cleared) {
    effects.push({ type: 'notify', kind: 'rule_recovered', severity: 'info', message: `${rule}: back within threshold` });
  }
  for (const rule of blind.filter((r) => !state.blind.includes(r))) {
    const verdict = verdicts.find((v) => v.rule === rule)!;
    effects.push({ type: 'notify', kind: 'rule_blind', severity: 'warning', message: `${verdict.message} (${verdict.outcome})` });
  }
  return { state: { ...state, breached: now, blind }, effects };
}

function record(state: GuardState, outcome: RollbackRecord['outcome'], at: number, failure?: string): Effect {
  const rb = state.rollback!;
  return {
    type: 'writeRecord',
    record: {
      id: `${new Date(rb.startedAt).toISOString().replace(/[:.]/g, '-')}_${rb.from}_to_${rb.to}`,
      from: rb.from,
      to: rb.to,
      release: state.release!,
      breach: rb.breach,
      outcome,
      startedAt: rb.startedAt,
      executedAt: rb.executedAt ?? null,
      finishedAt: at,
      attempts: rb.attempt,
      steps: rb.steps,
      verification: { healthPasses: rb.verifyPasses, checks: rb.suite?.results ?? [] },
      ...(failure ? { failure } : {}),
    },
  };
}

/**
 * The record of the rollback that ended in `state` (rolled_back, or failed with a rollback), rebuilt
 * from the persisted state alone: the same id and content as the `writeRecord` effect that ended it.
 * The shell persists the state before carrying out that effect, so a crash in between would lose
 * the record; on start it writes this one when the store does not have it. Null in other phases.
 */
export function finishedRollbackRecord(state: GuardState): RollbackRecord | null {
  if (!state.rollback || !state.release) return null;
  if (state.phase !== 'rolled_back' && state.phase !== 'failed') return null;
  const effect = record(state, state.phase, state.since, state.phase === 'failed' ? (state.failure ?? undefined) : undefined);
  return effect.type === 'writeRecord' ? effect.record : null;
}

function fail(state: GuardState, at: number, failure: string, policy: Policy): Transition {
  const rb = state.rollback!;
  const next = enter(state, 'failed', at, {
    failure,
    autoRollbacks: autoRollbackFinished(state, at),
    history: withHistory(state, { version: rb.from, at, status: 'failed', deployedBy: state.release!.deployedBy, note: failure }, policy),
  });
  return {
    state: next,
    effects: [
      { type: 'notify', kind: 'rollback_failed', severity: 'critical', message: `rollback ${rb.from} -> ${rb.to} failed: ${failure}; automation frozen until resume` },
      record(next, 'failed', at, failure),
    ],
  };
}

export function transition(state: GuardState, event: Event, policy: Policy): Transition {
  const at = event.at;
  if (state.drill) return duringDrill(state, event);
  switch (event.type) {
    case 'versionObserved': {
      if (state.running === null && state.stable === null && state.phase === 'stable') {
        // First sight of the application: it is what users run, so it is the known-good version.
        return {
          state: {
            ...state,
            running: event.version,
            stable: event.version,
            history: withHistory(state, { version: event.version, at, status: 'success', deployedBy: 'observed at start' }, policy),
          },
          effects: [],
        };
      }
      if (event.version === state.running) return unchanged(state);
      // Probes launched before the rollback finished may still report the bad version: not a release.
      if (state.phase === 'rolled_back' && event.version === state.rollback?.from) return unchanged(state);
      if (state.phase === 'stable' || state.phase === 'rolled_back' || state.phase === 'promoted') {
        return openWindow(state, newRelease({ version: event.version, previous: state.stable, startedAt: at, deployedBy: 'unknown (detected)', source: 'detected' }), policy);
      }
      if (state.phase === 'guarding') {
        const current = state.release!;
        // During a rolling deploy (pm2 cluster reload, Kubernetes rollout) old and new instances
        // answer side by side for a while: the previous version seen then is not a rollback.
        if (event.version === current.previous && at - current.startedAt < policy.rolloutGraceMs) return unchanged(state);
        if (event.version === current.previous) {
          // Someone put the previous version back by hand: the release is over, rolled back.
          return {
            state: enter(state, 'stable', at, {
              running: event.version,
              release: null,
              wouldRollBack: null,
              // A rollback waiting out its veto window is moot: the release is gone.
              pending: null,
              history: withHistory(state, { version: current.version, at, status: 'rolled_back', deployedBy: current.deployedBy, note: 'rolled back outside release-guard' }, policy),
            }),
            effects: [
              { type: 'notify', kind: 'rollback_finished', severity: 'warning', message: `${current.version} replaced by ${event.version} outside release-guard` },
              ...fleetVerdict(policy, current.version, 'rolled_back'),
            ],
          };
        }
        // A newer release replaced the one under guard: guard the newest against the same good version.
        return openWindow(state, newRelease({ version: event.version, previous: current.previous, startedAt: at, deployedBy: 'unknown (detected)', source: 'detected' }), policy);
      }
      // rolling_back / verifying: versions are in flux and judged by verification; failed: frozen.
      return state.phase === 'failed' ? { state: { ...state, running: event.version }, effects: [] } : unchanged(state);
    }

    case 'releaseRequested': {
      if (state.phase === 'rolling_back' || state.phase === 'verifying') return reject(state, `a rollback is in progress (${state.phase})`);
      if (state.phase === 'failed') return reject(state, 'automation is frozen after a failed rollback; run resume first');
      if (state.phase === 'guarding' && state.release!.version === event.version) {
        return reject(state, `release ${event.version} is already under guard`);
      }
      const previous = state.phase === 'guarding' ? state.release!.previous : state.stable;
      if (previous === event.version) return reject(state, `${event.version} is the current stable version`);
      return openWindow(state, newRelease({ version: event.version, previous, startedAt: at, deployedBy: event.deployedBy, source: 'manual' }), policy);
    }

    case 'evaluated': {
      if (state.phase === 'guarding') {
        const breach = breachFromVerdicts(event.verdicts, at);
        const tracked = trackBreaches(state, event.verdicts);
        if (!breach) return tracked;
        const acted = onBreach(tracked.state, breach, policy);
        return { ...acted, effects: [...tracked.effects, ...acted.effects] };
      }
      if (state.phase === 'stable' || state.phase === 'rolled_back' || state.phase === 'promoted') {
        return trackBreaches(state, event.verdicts);
      }
      return unchanged(state);
    }

    case 'crashed': {
      if (state.phase !== 'guarding') {
        return { state, effects: [{ type: 'notify', kind: 'crash', severity: 'warning', message: `crash outside a release window: ${event.detail}` }] };
      }
      const breach: Breach = { trigger: 'crash', rules: [], reason: `crash: ${event.detail}`, verdicts: [], decidedAt: at, faultAt: at };
      return onBreach(state, breach, policy);
    }

    case 'alertFiring': {
      // Inside a window, an alert that began after the release did is the release's: a breach.
      // One that was firing before the release began, or any alert outside a window, is reported.
      if (state.phase !== 'guarding') {
        return { state, effects: [{ type: 'notify', kind: 'alert', severity: 'warning', message: `alert ${event.description} firing outside a release window (reported only)` }] };
      }
      if (event.startsAt < state.release!.startedAt) {
        return { state, effects: [{ type: 'notify', kind: 'alert', severity: 'warning', message: `alert ${event.description} has been firing since before release ${state.release!.version} began: not counted against it` }] };
      }
      const message = `alert: ${event.description} firing (Alertmanager)`;
      const verdict: RuleVerdict = { rule: 'alert', outcome: 'fail', observed: 1, threshold: 1, unit: 'failures', message, since: event.startsAt };
      const breach: Breach = { trigger: 'alert', rules: ['alert'], reason: message, verdicts: [verdict], decidedAt: at, faultAt: event.startsAt };
      return onBreach(state, breach, policy);
    }

    case 'alertResolved': {
      // A breach that only waited for automation to resume is dropped with its alert; a decided
      // rollback (veto window) stays: only a human stops that.
      const waiting = state.wouldRollBack;
      if (waiting?.trigger !== 'alert' || !waiting.reason.startsWith(`alert: ${event.description} `)) return unchanged(state);
      return { state: { ...state, wouldRollBack: null }, effects: [{ type: 'notify', kind: 'alert', severity: 'info', message: `alert ${event.description} resolved` }] };
    }

    case 'rollbackRequested': {
      if (state.phase === 'rolling_back' || state.phase === 'verifying') return reject(state, `a rollback is already in progress (${state.phase})`);
      if (state.phase === 'failed') return reject(state, 'automation is frozen after a failed rollback; run resume first');
      const from = state.running;
      if (!from) return reject(state, 'no running version is known yet');
      const to = rollbackTarget(state, from, event.to);
      if (!to) {
        return reject(state, event.to !== undefined
          ? `cannot roll back to ${event.to}: it is the running version or was recorded as failed`
          : `no version to roll back to from ${from}`);
      }
      const release: Release = state.phase === 'guarding' && state.release!.version === from
        ? state.release!
        : releaseForRollback(state, { version: from, previous: to, startedAt: at, deployedBy: event.by, source: 'manual' });
      const breach: Breach = { trigger: 'manual', rules: [], reason: `manual rollback by ${event.by}: ${event.reason}`, verdicts: [], decidedAt: at, faultAt: at };
      return startRollback({ ...state, release }, breach, to, policy, false);
    }

    case 'stepStarted': {
      if (state.phase !== 'rolling_back') return unchanged(state);
      const rb = state.rollback!;
      const step = { index: event.index, type: event.stepType, description: event.description, startedAt: at, output: [], attempt: rb.attempt };
      // A resumed plan re-runs the interrupted step: its new run replaces the unfinished one.
      const steps = [...rb.steps.filter((s) => s.index !== event.index), step].sort((a, b) => a.index - b.index);
      return { state: { ...state, rollback: { ...rb, steps } }, effects: [] };
    }

    case 'stepFinished': {
      if (state.phase !== 'rolling_back') return unchanged(state);
      const rb = state.rollback!;
      const steps = rb.steps.map((s) =>
        s.index === event.index ? { ...s, finishedAt: at, ok: event.ok, output: event.output, ...(event.error ? { error: event.error } : {}) } : s,
      );
      return { state: { ...state, rollback: { ...rb, steps } }, effects: [] };
    }

    case 'rollbackExecuted': {
      if (state.phase !== 'rolling_back') return unchanged(state);
      if (!event.ok) return fail(state, at, event.error ?? 'rollback plan failed', policy);
      return {
        state: enter(state, 'verifying', at, { rollback: { ...state.rollback!, executedAt: at, verifyPasses: 0, verifyEvidence: { passLaunches: [], failedLaunch: null } } }),
        effects: [],
      };
    }

    case 'verificationFinished': {
      if (state.phase !== 'verifying' || !state.rollback?.suite || state.rollback.suite.results) return unchanged(state);
      const rb = { ...state.rollback, suite: { ...state.rollback.suite, results: event.results } };
      const withResults = { ...state, rollback: rb };
      if (!event.ok) {
        const failedChecks = event.results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.detail}`).join('; ');
        return fail(withResults, at, `verification failed: ${failedChecks || 'no check passed'}`, policy);
      }
      return rolledBack(withResults, at, policy);
    }

    case 'verifySample': {
      if (state.phase !== 'verifying' || state.rollback!.suite) return unchanged(state);
      const rb = state.rollback!;
      const good = event.ok && (event.version === undefined || event.version === rb.to);
      const launched = event.startedAt ?? at;
      const before = rb.verifyEvidence ?? { passLaunches: [], failedLaunch: null };
      // The newest evidence by launch wins: a pass launched before the latest failure is stale,
      // and a failure cancels only the passes launched before it.
      if (before.failedLaunch !== null && launched <= before.failedLaunch) return unchanged(state);
      const evidence = good
        ? { passLaunches: [...before.passLaunches, launched].slice(-policy.verifyPasses), failedLaunch: before.failedLaunch }
        : { passLaunches: before.passLaunches.filter((p) => p > launched), failedLaunch: launched };
      const passes = evidence.passLaunches.length;
      const counted = { ...rb, verifyPasses: passes, verifyEvidence: evidence };
      if (passes < policy.verifyPasses) return { state: { ...state, rollback: counted }, effects: [] };
      if (policy.verificationSuite) {
        // Health is proven; the functional, performance, data and security checks come next.
        const next = { ...counted, suite: { startedAt: at } };
        return { state: { ...state, rollback: next }, effects: [{ type: 'verify', rollback: next }] };
      }
      return rolledBack({ ...state, rollback: counted }, at, policy);
    }

    case 'promoteRequested': {
      if (state.phase !== 'guarding') return reject(state, `no release under guard (state ${state.phase})`);
      return promote(state, at, `promoted by ${event.by}`, policy);
    }

    case 'vetoRequested': {
      if (!state.pending || state.phase !== 'guarding') return reject(state, 'no rollback is waiting for a veto');
      const version = state.release!.version;
      return {
        state: { ...state, pending: null, wouldRollBack: state.pending.breach, vetoed: [...state.vetoed, version].slice(-50) },
        effects: [{ type: 'notify', kind: 'vetoed', severity: 'warning', message: `rollback of ${version} vetoed by ${event.by}: ${event.reason}` }],
      };
    }

    case 'drillStarted': {
      if (state.phase !== 'stable' && state.phase !== 'promoted' && state.phase !== 'rolled_back') {
        return reject(state, `a drill needs no release under guard and no rollback running (now ${state.phase})`);
      }
      if (state.paused) return reject(state, 'automation is paused; resume first');
      const from = state.running;
      if (!from || from !== state.stable) return reject(state, `the running version ${from ?? 'unknown'} is not the known-good one`);
      const to = rollbackTarget(state, from);
      if (!to) return reject(state, `no earlier successful version to drill a rollback to from ${from}`);
      return {
        state: { ...state, drill: { from, to, startedAt: at, by: event.by } },
        effects: [{ type: 'notify', kind: 'drill', severity: 'info', message: `rollback drill started by ${event.by}: ${from} -> ${to} -> ${from}` }],
      };
    }

    case 'drillFinished':
      return unchanged(state);

    case 'pauseRequested':
      if (state.paused) return unchanged(state);
      return { state: { ...state, paused: true }, effects: [{ type: 'notify', kind: 'paused', severity: 'warning', message: `automation paused by ${event.by}` }] };

    case 'resumeRequested': {
      if (!state.paused && state.phase !== 'failed') return unchanged(state);
      const next = state.phase === 'failed'
        ? enter(state, 'stable', at, { paused: false, failure: null, release: null, rollback: null, wouldRollBack: null })
        : { ...state, paused: false, wouldRollBack: null };
      return { state: next, effects: [{ type: 'notify', kind: 'resumed', severity: 'info', message: `automation resumed by ${event.by}` }] };
    }

    case 'daemonStarted': {
      if (state.phase === 'rolling_back') {
        const rb = state.rollback!;
        if (rb.attempt >= policy.maxAttempts) {
          return fail(state, at, `rollback interrupted ${rb.attempt} times; giving up`, policy);
        }
        // Steps that finished ok are kept; the interrupted one runs again (steps are idempotent).
        // Resuming is finishing the same rollback, not a second one.
        let fromStep = 0;
        while (rb.steps.some((s) => s.index === fromStep && s.ok === true)) fromStep++;
        const next = { ...state, rollback: { ...rb, attempt: rb.attempt + 1 } };
        return {
          state: next,
          effects: [
            { type: 'notify', kind: 'rollback_started', severity: 'critical', message: `resuming interrupted rollback ${rb.from} -> ${rb.to} at step ${fromStep + 1} (attempt ${rb.attempt + 1})` },
            { type: 'rollback', release: state.release!, from: rb.from, to: rb.to, breach: rb.breach, attempt: rb.attempt + 1, fromStep },
          ],
        };
      }
      if (state.phase === 'verifying') {
        // Restart the verification clock: passes (and a suite) seen before the restart are not trusted.
        const { suite: _suite, ...rb } = state.rollback!;
        void _suite;
        return { state: enter(state, 'verifying', at, { rollback: { ...rb, verifyPasses: 0, verifyEvidence: { passLaunches: [], failedLaunch: null } } }), effects: [] };
      }
      return unchanged(state);
    }

    case 'fleetRolledBack':
      return onFleetRollback(state, event.version, event.host, at, policy);

    case 'fleetCleared': {
      if (state.phase !== 'guarding' || state.fleetWait?.version !== event.version) return unchanged(state);
      return promote(state, at, 'every host of the fleet ended its window clean', policy);
    }

    case 'tick': {
      if (state.phase === 'guarding' && state.pending) {
        if (at < state.pending.until) return unchanged(state);
        if (state.paused) return { state: { ...state, pending: null, wouldRollBack: state.pending.breach }, effects: [] };
        return startRollback(state, state.pending.breach, state.pending.to, policy, true);
      }
      if (state.phase === 'guarding' && at >= state.release!.startedAt + policy.windowMs) {
        if (state.wouldRollBack) {
          // Breached while automation could not act: the release is not good, but it stays running.
          const release = state.release!;
          return {
            state: enter(state, 'stable', at, {
              release: null,
              history: withHistory(state, { version: release.version, at, status: 'failed', deployedBy: release.deployedBy, note: `window ended with a breach: ${state.wouldRollBack.reason}` }, policy),
            }),
            effects: [
              { type: 'notify', kind: 'rule_breached', severity: 'critical', message: `release ${release.version} not promoted: it breached while automation could not act` },
              ...fleetVerdict(policy, release.version, 'not_promoted'),
            ],
          };
        }
        if (state.blind.length > 0) {
          // No data is never healthy: a release judged blind is not promoted, nor rolled back.
          const release = state.release!;
          return {
            state: enter(state, 'stable', at, { release: null }),
            effects: [{
              type: 'notify',
              kind: 'rule_blind',
              severity: 'critical',
              message: `release ${release.version} not promoted: window ended with no data for ${state.blind.join(', ')}; ${release.previous ?? 'the previous version'} stays the known-good version`,
            }, ...fleetVerdict(policy, release.version, 'not_promoted')],
          };
        }
        if (policy.fleetWaitMs !== undefined) return awaitFleet(state, at, policy.fleetWaitMs, policy);
        return promote(state, at, 'window ended clean', policy);
      }
      if (state.phase === 'verifying' && at >= state.since + policy.verifyTimeoutMs) {
        const rb = state.rollback!;
        return fail(state, at, `verification timed out: ${rb.verifyPasses}/${policy.verifyPasses} passes of ${rb.to} within ${policy.verifyTimeoutMs}ms`, policy);
      }
      if ((state.phase === 'rolled_back' || state.phase === 'promoted') && at >= state.since + policy.settleMs) {
        return { state: enter(state, 'stable', at, { release: null, rollback: null }), effects: [] };
      }
      return unchanged(state);
    }
  }
}

/**
 * Fleets: this host's window ended clean. It tells the others, keeps guarding (a breach still rolls
 * back) and promotes on `fleetCleared`; when not every host ended clean within the fleet wait, the
 * window ends without promotion: the release keeps running, the previous version stays the
 * known-good one, and the other hosts (told `not_promoted`) cannot promote it either.
 */
function awaitFleet(state: GuardState, at: number, waitMs: number, policy: Policy): Transition {
  const release = state.release!;
  if (state.fleetWait?.version !== release.version) {
    return {
      state: { ...state, fleetWait: { version: release.version, since: at } },
      effects: [
        { type: 'notify', kind: 'fleet', severity: 'info', message: `release ${release.version}: window ended clean here; waiting up to ${formatDuration(waitMs)} for every host of the fleet` },
        ...fleetVerdict(policy, release.version, 'clean'),
      ],
    };
  }
  if (at < state.fleetWait.since + waitMs) return unchanged(state);
  return {
    state: enter(state, 'stable', at, { release: null }),
    effects: [
      {
        type: 'notify',
        kind: 'fleet',
        severity: 'critical',
        message: `release ${release.version} not promoted: not every host of the fleet ended its window clean within ${formatDuration(waitMs)}; ${release.previous ?? 'the previous version'} stays the known-good version`,
      },
      ...fleetVerdict(policy, release.version, 'not_promoted'),
    ],
  };
}

/**
 * Fleets: another host rolled `version` back, so this host rolls it back too — inside its window
 * like any breach (veto window, pause and limits apply; waiting for the fleet is still inside it),
 * and after it while `version` still runs here and is not the settled known-good version (the
 * window ended without promotion, or it was promoted just before the other host's breach).
 */
function onFleetRollback(state: GuardState, version: string, host: string, at: number, policy: Policy): Transition {
  const breach: Breach = { trigger: 'fleet', rules: [], reason: `release ${version} was rolled back on host ${host}`, verdicts: [], decidedAt: at, faultAt: at };
  if (state.phase === 'guarding' && state.release?.version === version) return onBreach(state, breach, policy);
  // Outside its window only a release that is not (or only just) the known-good one: a long-stable
  // version is never rolled back automatically.
  const notPromoted = state.phase === 'stable' && state.stable !== version;
  const justPromoted = state.phase === 'promoted' && state.release?.version === version;
  if (state.running !== version || !(notPromoted || justPromoted)) return unchanged(state);
  if (automationBlocked(state, version, at, policy)) return unchanged(state);
  const release: Release = state.release?.version === version
    ? state.release
    : releaseForRollback(state, { version, previous: state.stable === version ? null : state.stable, startedAt: at, deployedBy: `fleet (host ${host})`, source: 'detected' });
  const to = rollbackTarget({ ...state, release }, version);
  if (!to) return unchanged(state);
  return startRollback({ ...state, release }, breach, to, policy, true);
}

/** While a drill moves versions on purpose, the machine only follows the running version. */
function duringDrill(state: GuardState, event: Event): Transition {
  const drill = state.drill!;
  switch (event.type) {
    case 'versionObserved':
      return event.version === state.running ? unchanged(state) : { state: { ...state, running: event.version }, effects: [] };
    case 'drillFinished':
      return {
        state: { ...state, drill: null },
        effects: [{ type: 'notify', kind: 'drill', severity: event.ok ? 'info' : 'critical', message: `rollback drill ${drill.from} -> ${drill.to} -> ${drill.from} ${event.ok ? 'passed' : 'FAILED'}` }],
      };
    case 'daemonStarted':
      return {
        state: { ...state, drill: null },
        effects: [{ type: 'notify', kind: 'drill', severity: 'critical', message: `the rollback drill ${drill.from} -> ${drill.to} was interrupted by a restart; check which version runs (last seen ${state.running ?? 'unknown'})` }],
      };
    case 'releaseRequested':
    case 'rollbackRequested':
    case 'promoteRequested':
    case 'drillStarted':
    case 'pauseRequested':
    case 'resumeRequested':
    case 'vetoRequested':
      return reject(state, `a rollback drill (${drill.from} -> ${drill.to}) is running`);
    default:
      return unchanged(state);
  }
}

function rolledBack(state: GuardState, at: number, policy: Policy): Transition {
  const rb = state.rollback!;
  const next = enter(state, 'rolled_back', at, {
    running: rb.to,
    stable: rb.to,
    breached: [],
    autoRollbacks: autoRollbackFinished(state, at),
    history: withHistory(state, { version: rb.from, at, status: 'rolled_back', deployedBy: state.release!.deployedBy, note: rb.breach.reason }, policy),
  });
  const checks = rb.suite?.results ? `, ${rb.suite.results.length} checks passed` : '';
  return {
    state: next,
    effects: [
      { type: 'notify', kind: 'rollback_finished', severity: 'warning', message: `rolled back ${rb.from} -> ${rb.to}, verified ${rb.verifyPasses}/${policy.verifyPasses}${checks}` },
      record(next, 'rolled_back', at),
    ],
  };
}

function promote(state: GuardState, at: number, why: string, policy: Policy): Transition {
  const release = state.release!;
  return {
    state: enter(state, 'promoted', at, {
      stable: release.version,
      wouldRollBack: null,
      // Promoting by hand during a veto window cancels the pending rollback.
      pending: null,
      history: withHistory(state, { version: release.version, at, status: 'success', deployedBy: release.deployedBy }, policy),
    }),
    effects: [{ type: 'notify', kind: 'promoted', severity: 'info', message: `release ${release.version} promoted (${why})` }],
  };
}
