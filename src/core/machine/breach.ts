/**
 * What decides a rollback: rules failing, a crash, an alert, another host of the fleet, or a
 * human. Inside a window a breach rolls back (after the veto window, when there is one), or says
 * why automation may not act; outside one it is reported.
 */
import { releaseForRollback } from '../windows.js';
import type { Breach, Effect, GuardState, Policy, Release, RuleName, RuleVerdict, StateIn, Transition } from '../types.js';
import { automationBlocked, enter, reject, rollbackTarget, unchanged, type Handler } from './common.js';
import { startRollback } from './rollback.js';

/** A breach inside a release window: roll back, or say why not. */
export function onBreach(state: StateIn<'guarding'>, breach: Breach, policy: Policy): Transition {
  const release = state.release;
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
      state: enter(state, breach.decidedAt, { phase: 'failed', release, rollback: null, drill: null, failure }, { wouldRollBack: breach }),
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
  return startRollback(state, release, breach, to, policy, true);
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
function trackBreaches<S extends GuardState>(state: S, verdicts: RuleVerdict[]): { state: S; effects: Effect[] } {
  const now: RuleName[] = verdicts.filter((v) => v.outcome === 'fail').map((v) => v.rule);
  const blind = verdicts.filter((v) => v.outcome === 'inconclusive' || v.outcome === 'error');
  const blindRules: RuleName[] = blind.map((v) => v.rule);
  const added = verdicts.filter((v) => v.outcome === 'fail' && !state.breached.includes(v.rule));
  const cleared = state.breached.filter((r) => !now.includes(r));
  const blindChanged = blindRules.length !== state.blind.length || blindRules.some((r) => !state.blind.includes(r));
  if (added.length === 0 && cleared.length === 0 && !blindChanged) return { state, effects: [] };
  const effects: Effect[] = [
    ...added.map((verdict): Effect => ({ type: 'notify', kind: 'rule_breached', severity: 'warning', message: verdict.message })),
    ...cleared.map((rule): Effect => ({ type: 'notify', kind: 'rule_recovered', severity: 'info', message: `${rule}: back within threshold` })),
    ...blind
      .filter((v) => !state.blind.includes(v.rule))
      .map((verdict): Effect => ({ type: 'notify', kind: 'rule_blind', severity: 'warning', message: `${verdict.message} (${verdict.outcome})` })),
  ];
  return { state: { ...state, breached: now, blind: blindRules }, effects };
}

export const onEvaluated: Handler<'evaluated'> = (state, event, policy) => {
  if (state.phase === 'guarding') {
    const breach = breachFromVerdicts(event.verdicts, event.at);
    const tracked = trackBreaches(state, event.verdicts);
    if (!breach) return tracked;
    const acted = onBreach(tracked.state, breach, policy);
    return { ...acted, effects: [...tracked.effects, ...acted.effects] };
  }
  if (state.phase === 'stable' || state.phase === 'rolled_back' || state.phase === 'promoted') {
    return trackBreaches(state, event.verdicts);
  }
  return unchanged(state);
};

export const onCrashed: Handler<'crashed'> = (state, event, policy) => {
  if (state.phase !== 'guarding') {
    return { state, effects: [{ type: 'notify', kind: 'crash', severity: 'warning', message: `crash outside a release window: ${event.detail}` }] };
  }
  const breach: Breach = { trigger: 'crash', rules: [], reason: `crash: ${event.detail}`, verdicts: [], decidedAt: event.at, faultAt: event.at };
  return onBreach(state, breach, policy);
};

export const onAlertFiring: Handler<'alertFiring'> = (state, event, policy) => {
  // Inside a window, an alert that began after the release did is the release's: a breach.
  // One that was firing before the release began, or any alert outside a window, is reported.
  if (state.phase !== 'guarding') {
    return { state, effects: [{ type: 'notify', kind: 'alert', severity: 'warning', message: `alert ${event.description} firing outside a release window (reported only)` }] };
  }
  if (event.startsAt < state.release.startedAt) {
    return { state, effects: [{ type: 'notify', kind: 'alert', severity: 'warning', message: `alert ${event.description} has been firing since before release ${state.release.version} began: not counted against it` }] };
  }
  const message = `alert: ${event.description} firing (Alertmanager)`;
  const verdict: RuleVerdict = { rule: 'alert', outcome: 'fail', observed: 1, threshold: 1, unit: 'failures', message, since: event.startsAt };
  const breach: Breach = { trigger: 'alert', rules: ['alert'], reason: message, verdicts: [verdict], decidedAt: event.at, faultAt: event.startsAt };
  return onBreach(state, breach, policy);
};

export const onAlertResolved: Handler<'alertResolved'> = (state, event) => {
  // A breach that only waited for automation to resume is dropped with its alert; a decided
  // rollback (veto window) stays: only a human stops that.
  const waiting = state.wouldRollBack;
  if (waiting?.trigger !== 'alert' || !waiting.reason.startsWith(`alert: ${event.description} `)) return unchanged(state);
  return { state: { ...state, wouldRollBack: null }, effects: [{ type: 'notify', kind: 'alert', severity: 'info', message: `alert ${event.description} resolved` }] };
};

export const onRollbackRequested: Handler<'rollbackRequested'> = (state, event, policy) => {
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
  const release: Release = state.phase === 'guarding' && state.release.version === from
    ? state.release
    : releaseForRollback(state, { version: from, previous: to, startedAt: event.at, deployedBy: event.by, source: 'manual' });
  const breach: Breach = { trigger: 'manual', rules: [], reason: `manual rollback by ${event.by}: ${event.reason}`, verdicts: [], decidedAt: event.at, faultAt: event.at };
  return startRollback(state, release, breach, to, policy, false);
};

export const onVetoRequested: Handler<'vetoRequested'> = (state, event) => {
  if (state.phase !== 'guarding' || !state.pending) return reject(state, 'no rollback is waiting for a veto');
  const version = state.release.version;
  return {
    state: { ...state, pending: null, wouldRollBack: state.pending.breach, vetoed: [...state.vetoed, version].slice(-50) },
    effects: [{ type: 'notify', kind: 'vetoed', severity: 'warning', message: `rollback of ${version} vetoed by ${event.by}: ${event.reason}` }],
  };
};

/**
 * Fleets: another host rolled `version` back, so this host rolls it back too — inside its window
 * like any breach (veto window, pause and limits apply; waiting for the fleet is still inside it),
 * and after it while `version` still runs here and is not the settled known-good version (the
 * window ended without promotion, or it was promoted just before the other host's breach).
 */
export const onFleetRolledBack: Handler<'fleetRolledBack'> = (state, event, policy) => {
  const { version, host, at } = event;
  const breach: Breach = { trigger: 'fleet', rules: [], reason: `release ${version} was rolled back on host ${host}`, verdicts: [], decidedAt: at, faultAt: at };
  if (state.phase === 'guarding' && state.release.version === version) return onBreach(state, breach, policy);
  // Outside its window only a release that is not (or only just) the known-good one: a long-stable
  // version is never rolled back automatically.
  const notPromoted = state.phase === 'stable' && state.stable !== version;
  const justPromoted = state.phase === 'promoted' && state.release.version === version;
  if (state.running !== version || !(notPromoted || justPromoted)) return unchanged(state);
  if (automationBlocked(state, version, at, policy)) return unchanged(state);
  const release: Release = state.release?.version === version
    ? state.release
    : releaseForRollback(state, { version, previous: state.stable === version ? null : state.stable, startedAt: at, deployedBy: `fleet (host ${host})`, source: 'detected' });
  const to = rollbackTarget({ ...state, release }, version);
  if (!to) return unchanged(state);
  return startRollback(state, release, breach, to, policy, true);
};
