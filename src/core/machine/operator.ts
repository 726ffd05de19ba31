/**
 * What an operator asks for besides releases and rollbacks: pause and resume automation, and
 * rollback drills. While a drill moves versions on purpose, the machine only follows the running
 * version and refuses other requests.
 */
import type { DrillInProgress, Event, GuardState, Transition } from '../types.js';
import { enter, reject, rollbackTarget, unchanged, type Handler } from './common.js';

export const onPauseRequested: Handler<'pauseRequested'> = (state, event) => {
  if (state.paused) return unchanged(state);
  return { state: { ...state, paused: true }, effects: [{ type: 'notify', kind: 'paused', severity: 'warning', message: `automation paused by ${event.by}` }] };
};

export const onResumeRequested: Handler<'resumeRequested'> = (state, event) => {
  if (!state.paused && state.phase !== 'failed') return unchanged(state);
  const next = state.phase === 'failed'
    ? enter(state, event.at, { phase: 'stable', release: null, rollback: null, drill: null, failure: null }, { paused: false, wouldRollBack: null })
    : { ...state, paused: false, wouldRollBack: null };
  return { state: next, effects: [{ type: 'notify', kind: 'resumed', severity: 'info', message: `automation resumed by ${event.by}` }] };
};

export const onDrillStarted: Handler<'drillStarted'> = (state, event) => {
  if (state.phase !== 'stable' && state.phase !== 'promoted' && state.phase !== 'rolled_back') {
    return reject(state, `a drill needs no release under guard and no rollback running (now ${state.phase})`);
  }
  if (state.paused) return reject(state, 'automation is paused; resume first');
  const from = state.running;
  if (!from || from !== state.stable) return reject(state, `the running version ${from ?? 'unknown'} is not the known-good one`);
  const to = rollbackTarget(state, from);
  if (!to) return reject(state, `no earlier successful version to drill a rollback to from ${from}`);
  return {
    state: { ...state, drill: { from, to, startedAt: event.at, by: event.by } },
    effects: [{ type: 'notify', kind: 'drill', severity: 'info', message: `rollback drill started by ${event.by}: ${from} -> ${to} -> ${from}` }],
  };
};

/** A drill ends only while one runs (see duringDrill). */
export const onDrillFinished: Handler<'drillFinished'> = (state) => unchanged(state);

/** While a drill moves versions on purpose, the machine only follows the running version. */
export function duringDrill(state: GuardState, drill: DrillInProgress, event: Event): Transition {
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
