/**
 * The release window: a new version opens it, and it ends promoted (clean), not promoted (a
 * breach automation could not act on, blind rules, the fleet not clean), or replaced (a newer
 * release, the previous version put back by hand). Time moves it on ticks.
 */
import { formatDuration } from '../duration.js';
import { newRelease } from '../windows.js';
import type { GuardState, Policy, Release, StateIn, Transition } from '../types.js';
import { enter, fleetVerdict, reject, unchanged, withHistory, type EventOf, type Handler } from './common.js';
import { startRollback, verifyTimedOut } from './rollback.js';

type Guarding = StateIn<'guarding'>;

function openWindow(state: GuardState, release: Release, policy: Policy): Transition {
  const previous = release.previous ?? 'none';
  return {
    state: enter(state, release.startedAt, { phase: 'guarding', release, rollback: null, drill: null, failure: null }, {
      lastWindow: { id: release.id, version: release.version },
      running: release.version,
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

const detected = (version: string, previous: string | null, at: number): Release =>
  newRelease({ version, previous, startedAt: at, deployedBy: 'unknown (detected)', source: 'detected' });

export const onVersionObserved: Handler<'versionObserved'> = (state, event, policy) => {
  const at = event.at;
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
  if (state.phase === 'rolled_back' && event.version === state.rollback.from) return unchanged(state);
  if (state.phase === 'stable' || state.phase === 'rolled_back' || state.phase === 'promoted') {
    return openWindow(state, detected(event.version, state.stable, at), policy);
  }
  if (state.phase === 'guarding') return versionInWindow(state, event, policy);
  // rolling_back / verifying: versions are in flux and judged by verification; failed: frozen.
  return state.phase === 'failed' ? { state: { ...state, running: event.version }, effects: [] } : unchanged(state);
};

function versionInWindow(state: Guarding, event: EventOf<'versionObserved'>, policy: Policy): Transition {
  const { at } = event;
  const current = state.release;
  // During a rolling deploy (pm2 cluster reload, Kubernetes rollout) old and new instances
  // answer side by side for a while: the previous version seen then is not a rollback.
  if (event.version === current.previous && at - current.startedAt < policy.rolloutGraceMs) return unchanged(state);
  if (event.version !== current.previous) {
    // A newer release replaced the one under guard: guard the newest against the same good version.
    return openWindow(state, detected(event.version, current.previous, at), policy);
  }
  // Someone put the previous version back by hand: the release is over, rolled back.
  return {
    state: enter(state, at, { phase: 'stable', release: null, rollback: null, drill: null, failure: null }, {
      running: event.version,
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

export const onReleaseRequested: Handler<'releaseRequested'> = (state, event, policy) => {
  if (state.phase === 'rolling_back' || state.phase === 'verifying') return reject(state, `a rollback is in progress (${state.phase})`);
  if (state.phase === 'failed') return reject(state, 'automation is frozen after a failed rollback; run resume first');
  if (state.phase === 'guarding' && state.release.version === event.version) {
    return reject(state, `release ${event.version} is already under guard`);
  }
  const previous = state.phase === 'guarding' ? state.release.previous : state.stable;
  if (previous === event.version) return reject(state, `${event.version} is the current stable version`);
  return openWindow(state, newRelease({ version: event.version, previous, startedAt: event.at, deployedBy: event.deployedBy, source: 'manual' }), policy);
};

function promote(state: Guarding, at: number, why: string, policy: Policy): Transition {
  const release = state.release;
  return {
    state: enter(state, at, { phase: 'promoted', release, rollback: null, drill: null, failure: null }, {
      stable: release.version,
      wouldRollBack: null,
      // Promoting by hand during a veto window cancels the pending rollback.
      pending: null,
      history: withHistory(state, { version: release.version, at, status: 'success', deployedBy: release.deployedBy }, policy),
    }),
    effects: [{ type: 'notify', kind: 'promoted', severity: 'info', message: `release ${release.version} promoted (${why})` }],
  };
}

export const onPromoteRequested: Handler<'promoteRequested'> = (state, event, policy) => {
  if (state.phase !== 'guarding') return reject(state, `no release under guard (state ${state.phase})`);
  return promote(state, event.at, `promoted by ${event.by}`, policy);
};

export const onFleetCleared: Handler<'fleetCleared'> = (state, event, policy) => {
  if (state.phase !== 'guarding' || state.fleetWait?.version !== event.version) return unchanged(state);
  return promote(state, event.at, 'every host of the fleet ended its window clean', policy);
};

/**
 * Fleets: this host's window ended clean. It tells the others, keeps guarding (a breach still rolls
 * back) and promotes on `fleetCleared`; when not every host ended clean within the fleet wait, the
 * window ends without promotion: the release keeps running, the previous version stays the
 * known-good one, and the other hosts (told `not_promoted`) cannot promote it either.
 */
function awaitFleet(state: Guarding, at: number, waitMs: number, policy: Policy): Transition {
  const release = state.release;
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
  return endedWithout(state, at, policy, 'fleet',
    `release ${release.version} not promoted: not every host of the fleet ended its window clean within ${formatDuration(waitMs)}; ${release.previous ?? 'the previous version'} stays the known-good version`);
}

/** The window ends without promotion: the release keeps running and is not the known-good version. */
function endedWithout(state: Guarding, at: number, policy: Policy, kind: 'fleet' | 'rule_blind' | 'rule_breached', message: string, history = state.history): Transition {
  return {
    state: enter(state, at, { phase: 'stable', release: null, rollback: null, drill: null, failure: null }, { history }),
    effects: [{ type: 'notify', kind, severity: 'critical', message }, ...fleetVerdict(policy, state.release.version, 'not_promoted')],
  };
}

/** The window's time is up: promote, or end it without promotion, or wait for the fleet. */
function windowEnded(state: Guarding, at: number, policy: Policy): Transition {
  const release = state.release;
  if (state.wouldRollBack) {
    // Breached while automation could not act: the release is not good, but it stays running.
    const note = `window ended with a breach: ${state.wouldRollBack.reason}`;
    const history = withHistory(state, { version: release.version, at, status: 'failed', deployedBy: release.deployedBy, note }, policy);
    return endedWithout(state, at, policy, 'rule_breached', `release ${release.version} not promoted: it breached while automation could not act`, history);
  }
  if (state.blind.length > 0) {
    // No data is never healthy: a release judged blind is not promoted, nor rolled back.
    return endedWithout(state, at, policy, 'rule_blind',
      `release ${release.version} not promoted: window ended with no data for ${state.blind.join(', ')}; ${release.previous ?? 'the previous version'} stays the known-good version`);
  }
  if (policy.fleetWaitMs !== undefined) return awaitFleet(state, at, policy.fleetWaitMs, policy);
  return promote(state, at, 'window ended clean', policy);
}

function tickInWindow(state: Guarding, at: number, policy: Policy): Transition {
  if (state.pending) {
    if (at < state.pending.until) return unchanged(state);
    if (state.paused) return { state: { ...state, pending: null, wouldRollBack: state.pending.breach }, effects: [] };
    return startRollback(state, state.release, state.pending.breach, state.pending.to, policy, true);
  }
  if (at >= state.release.startedAt + policy.windowMs) return windowEnded(state, at, policy);
  return unchanged(state);
}

export const onTick: Handler<'tick'> = (state, event, policy) => {
  const { at } = event;
  if (state.phase === 'guarding') return tickInWindow(state, at, policy);
  if (state.phase === 'verifying' && at >= state.since + policy.verifyTimeoutMs) return verifyTimedOut(state, at, policy);
  if ((state.phase === 'rolled_back' || state.phase === 'promoted') && at >= state.since + policy.settleMs) {
    return { state: enter(state, at, { phase: 'stable', release: null, rollback: null, drill: null, failure: null }), effects: [] };
  }
  return unchanged(state);
};
