/**
 * A rollback from its start to its end: the plan's steps, verification (health passes, then the
 * suite), and the record it leaves, rolled back or failed. A restart resumes the plan.
 */
import type { Breach, GuardState, Policy, Release, RollbackInProgress, RollbackRecord, StateIn, Transition } from '../types.js';
import { enter, fleetVerdict, HOUR_MS, unchanged, withHistory, type Handler } from './common.js';

type Rolling = StateIn<'rolling_back'> | StateIn<'verifying'>;

export function startRollback(state: GuardState, release: Release, breach: Breach, to: string, policy: Policy, automatic: boolean): Transition {
  const rollback: RollbackInProgress = { from: release.version, to, breach, startedAt: breach.decidedAt, attempt: 1, steps: [], verifyPasses: 0 };
  return {
    state: enter(state, breach.decidedAt, { phase: 'rolling_back', release, rollback, drill: null, failure: null }, {
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

/** Marks the automatic rollback now ending (verified or failed) as finished, for the cooldown. */
function autoRollbackFinished(state: Rolling, at: number): GuardState['autoRollbacks'] {
  const rb = state.rollback;
  return state.autoRollbacks.map((r) =>
    r.version === rb.from && r.at === rb.startedAt && r.finishedAt === undefined ? { ...r, finishedAt: at } : r,
  );
}

function recordOf(rb: RollbackInProgress, release: Release, outcome: RollbackRecord['outcome'], at: number, failure?: string): RollbackRecord {
  return {
    id: `${new Date(rb.startedAt).toISOString().replace(/[:.]/g, '-')}_${rb.from}_to_${rb.to}`,
    from: rb.from,
    to: rb.to,
    release,
    breach: rb.breach,
    outcome,
    startedAt: rb.startedAt,
    executedAt: rb.executedAt ?? null,
    finishedAt: at,
    attempts: rb.attempt,
    steps: rb.steps,
    verification: { healthPasses: rb.verifyPasses, checks: rb.suite?.results ?? [] },
    ...(failure ? { failure } : {}),
  };
}

/**
 * The record of the rollback that ended in `state` (rolled_back, or failed with a rollback), rebuilt
 * from the persisted state alone: the same id and content as the `writeRecord` effect that ended it.
 * The shell persists the state before carrying out that effect, so a crash in between would lose
 * the record; on start it writes this one when the store does not have it. Null in other phases.
 */
export function finishedRollbackRecord(state: GuardState): RollbackRecord | null {
  if (state.phase === 'rolled_back') return recordOf(state.rollback, state.release, 'rolled_back', state.since);
  if (state.phase === 'failed' && state.rollback) return recordOf(state.rollback, state.release, 'failed', state.since, state.failure);
  return null;
}

export function fail(state: Rolling, at: number, failure: string, policy: Policy): Transition {
  const rb = state.rollback;
  const next = enter(state, at, { phase: 'failed', release: state.release, rollback: rb, drill: null, failure }, {
    autoRollbacks: autoRollbackFinished(state, at),
    history: withHistory(state, { version: rb.from, at, status: 'failed', deployedBy: state.release.deployedBy, note: failure }, policy),
  });
  return {
    state: next,
    effects: [
      { type: 'notify', kind: 'rollback_failed', severity: 'critical', message: `rollback ${rb.from} -> ${rb.to} failed: ${failure}; automation frozen until resume` },
      { type: 'writeRecord', record: recordOf(rb, state.release, 'failed', at, failure) },
    ],
  };
}

function rolledBack(state: StateIn<'verifying'>, at: number, policy: Policy): Transition {
  const rb = state.rollback;
  const next = enter(state, at, { phase: 'rolled_back', release: state.release, rollback: rb, drill: null, failure: null }, {
    running: rb.to,
    stable: rb.to,
    breached: [],
    autoRollbacks: autoRollbackFinished(state, at),
    history: withHistory(state, { version: rb.from, at, status: 'rolled_back', deployedBy: state.release.deployedBy, note: rb.breach.reason }, policy),
  });
  const checks = rb.suite?.results ? `, ${rb.suite.results.length} checks passed` : '';
  return {
    state: next,
    effects: [
      { type: 'notify', kind: 'rollback_finished', severity: 'warning', message: `rolled back ${rb.from} -> ${rb.to}, verified ${rb.verifyPasses}/${policy.verifyPasses}${checks}` },
      { type: 'writeRecord', record: recordOf(rb, state.release, 'rolled_back', at) },
    ],
  };
}

export const onStepStarted: Handler<'stepStarted'> = (state, event) => {
  if (state.phase !== 'rolling_back') return unchanged(state);
  const rb = state.rollback;
  const step = { index: event.index, type: event.stepType, description: event.description, startedAt: event.at, output: [], attempt: rb.attempt };
  // A resumed plan re-runs the interrupted step: its new run replaces the unfinished one.
  const steps = [...rb.steps.filter((s) => s.index !== event.index), step].sort((a, b) => a.index - b.index);
  return { state: { ...state, rollback: { ...rb, steps } }, effects: [] };
};

export const onStepFinished: Handler<'stepFinished'> = (state, event) => {
  if (state.phase !== 'rolling_back') return unchanged(state);
  const rb = state.rollback;
  const steps = rb.steps.map((s) =>
    s.index === event.index ? { ...s, finishedAt: event.at, ok: event.ok, output: event.output, ...(event.error ? { error: event.error } : {}) } : s,
  );
  return { state: { ...state, rollback: { ...rb, steps } }, effects: [] };
};

const NO_EVIDENCE = (): NonNullable<RollbackInProgress['verifyEvidence']> => ({ passLaunches: [], failedLaunch: null });

export const onRollbackExecuted: Handler<'rollbackExecuted'> = (state, event, policy) => {
  if (state.phase !== 'rolling_back') return unchanged(state);
  if (!event.ok) return fail(state, event.at, event.error ?? 'rollback plan failed', policy);
  const rollback = { ...state.rollback, executedAt: event.at, verifyPasses: 0, verifyEvidence: NO_EVIDENCE() };
  return { state: enter(state, event.at, { phase: 'verifying', release: state.release, rollback, drill: null, failure: null }), effects: [] };
};

export const onVerificationFinished: Handler<'verificationFinished'> = (state, event, policy) => {
  if (state.phase !== 'verifying' || !state.rollback.suite || state.rollback.suite.results) return unchanged(state);
  const rb = { ...state.rollback, suite: { ...state.rollback.suite, results: event.results } };
  const withResults = { ...state, rollback: rb };
  if (!event.ok) {
    const failedChecks = event.results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.detail}`).join('; ');
    return fail(withResults, event.at, `verification failed: ${failedChecks || 'no check passed'}`, policy);
  }
  return rolledBack(withResults, event.at, policy);
};

export const onVerifySample: Handler<'verifySample'> = (state, event, policy) => {
  if (state.phase !== 'verifying' || state.rollback.suite) return unchanged(state);
  const rb = state.rollback;
  const good = event.ok && (event.version === undefined || event.version === rb.to);
  const launched = event.startedAt ?? event.at;
  const before = rb.verifyEvidence ?? NO_EVIDENCE();
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
    const next = { ...counted, suite: { startedAt: event.at } };
    return { state: { ...state, rollback: next }, effects: [{ type: 'verify', rollback: next }] };
  }
  return rolledBack({ ...state, rollback: counted }, event.at, policy);
};

/** A restart resumes an interrupted plan and restarts verification; other phases carry on. */
export const onDaemonStarted: Handler<'daemonStarted'> = (state, event, policy) => {
  if (state.phase === 'rolling_back') return resumePlan(state, event.at, policy);
  if (state.phase === 'verifying') {
    // Restart the verification clock: passes (and a suite) seen before the restart are not trusted.
    const { suite: _suite, ...rb } = state.rollback;
    void _suite;
    const rollback = { ...rb, verifyPasses: 0, verifyEvidence: NO_EVIDENCE() };
    return { state: enter(state, event.at, { phase: 'verifying', release: state.release, rollback, drill: null, failure: null }), effects: [] };
  }
  return unchanged(state);
};

function resumePlan(state: StateIn<'rolling_back'>, at: number, policy: Policy): Transition {
  const rb = state.rollback;
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
      { type: 'rollback', release: state.release, from: rb.from, to: rb.to, breach: rb.breach, attempt: rb.attempt + 1, fromStep },
    ],
  };
}

/** Verification not proven within its timeout: the rollback failed. */
export function verifyTimedOut(state: StateIn<'verifying'>, at: number, policy: Policy): Transition {
  const rb = state.rollback;
  return fail(state, at, `verification timed out: ${rb.verifyPasses}/${policy.verifyPasses} passes of ${rb.to} within ${policy.verifyTimeoutMs}ms`, policy);
}
