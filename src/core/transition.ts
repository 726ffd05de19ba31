/**
 * The guard's state machine: `transition(state, event, policy) -> { state, effects }`, pure.
 *
 *   stable → guarding(N, previous P) → rolling_back → verifying → rolled_back → stable
 *   guarding → promoted → stable                  (window ended clean; N becomes stable)
 *   rolling_back | verifying → failed             (frozen until resume)
 *   paused is a flag: the machine keeps observing and says "would roll back", and never acts.
 *
 * Each event type has one handler (src/core/machine/*), in a map the compiler checks for every
 * event type; a drill in progress takes every event first (operator.ts).
 *
 * Unhandled (state, event) pairs return the same state object and no effects, so the shell can
 * persist only real changes (`next.state !== state`).
 */
import { onAlertFiring, onAlertResolved, onCrashed, onEvaluated, onFleetRolledBack, onRollbackRequested, onVetoRequested } from './machine/breach.js';
import type { EventOf, Handler } from './machine/common.js';
import { duringDrill, onDrillFinished, onDrillStarted, onPauseRequested, onResumeRequested } from './machine/operator.js';
import { onDaemonStarted, onRollbackExecuted, onStepFinished, onStepStarted, onVerificationFinished, onVerifySample } from './machine/rollback.js';
import { onFleetCleared, onPromoteRequested, onReleaseRequested, onTick, onVersionObserved } from './machine/window.js';
import type { Event, GuardState, Phase, Policy, StateIn, Transition } from './types.js';

export { failedVersions, rollbackTarget } from './machine/common.js';
export { finishedRollbackRecord } from './machine/rollback.js';

/** A fresh state: stable, nothing known yet. Typed as the stable phase with no drill, so a test can spread it into another phase. */
export function initialState(at: number): StateIn<'stable'> & { drill: null } {
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

/** One handler per event type: a new event type does not compile until it has one. */
const handlers: { [K in Event['type']]: Handler<K> } = {
  versionObserved: onVersionObserved,
  releaseRequested: onReleaseRequested,
  evaluated: onEvaluated,
  crashed: onCrashed,
  alertFiring: onAlertFiring,
  alertResolved: onAlertResolved,
  rollbackRequested: onRollbackRequested,
  stepStarted: onStepStarted,
  stepFinished: onStepFinished,
  rollbackExecuted: onRollbackExecuted,
  verificationFinished: onVerificationFinished,
  verifySample: onVerifySample,
  promoteRequested: onPromoteRequested,
  pauseRequested: onPauseRequested,
  vetoRequested: onVetoRequested,
  drillStarted: onDrillStarted,
  drillFinished: onDrillFinished,
  resumeRequested: onResumeRequested,
  daemonStarted: onDaemonStarted,
  fleetRolledBack: onFleetRolledBack,
  fleetCleared: onFleetCleared,
  tick: onTick,
};

function handle<K extends Event['type']>(state: GuardState, event: EventOf<K> & { type: K }, policy: Policy): Transition {
  const handler: Handler<K> = handlers[event.type];
  return handler(state, event, policy);
}

export function transition(state: GuardState, event: Event, policy: Policy): Transition {
  if (state.drill) return duringDrill(state, state.drill, event);
  return handle(state, event, policy);
}
