/**
 * What every handler of the state machine shares: the handler's type, entering a phase, the
 * history, the fleet verdict effect, and the limits on automation.
 */
import { formatDuration } from '../duration.js';
import { candidates, latestStatus } from '../versions.js';
import type { DeploymentEntry, Effect, Event, FleetVerdict, GuardState, GuardStateBase, PhaseState, Policy, Release, Transition } from '../types.js';

export const HOUR_MS = 3_600_000;

/** The event of one type. */
export type EventOf<K extends Event['type']> = Extract<Event, { type: K }>;

/** Handles one type of event in any phase (outside a drill); pure like `transition`. */
export type Handler<K extends Event['type']> = (state: GuardState, event: EventOf<K>, policy: Policy) => Transition;

export const unchanged = (state: GuardState): Transition => ({ state, effects: [] });
export const reject = (state: GuardState, why: string): Transition => ({ state, effects: [], rejected: why });

export function withHistory(state: GuardState, entry: DeploymentEntry, policy: Policy): DeploymentEntry[] {
  return [...state.history, entry].slice(-policy.historyLimit);
}

/**
 * Enters a phase at `at` with what that phase holds (`next`: release, rollback, drill, failure)
 * and changes to the rest (`patch`).
 */
export function enter(state: GuardState, at: number, next: PhaseState, patch: Partial<GuardStateBase> = {}): GuardState {
  // Waiting for the fleet belongs to one phase of one window: any phase change ends it.
  const { fleetWait: _fleetWait, phase: _phase, release: _release, rollback: _rollback, drill: _drill, failure: _failure, ...base } = state;
  void [_fleetWait, _phase, _release, _rollback, _drill, _failure];
  return { ...base, ...patch, ...next, since: at };
}

/** Fleets: the effect that tells the other hosts what this host's window of `version` came to. */
export function fleetVerdict(policy: Policy, version: string, verdict: FleetVerdict): Effect[] {
  return policy.fleetWaitMs === undefined ? [] : [{ type: 'fleetVerdict', version, verdict }];
}

/** Versions that failed or were rolled back: never a rollback target. */
export function failedVersions(state: Pick<GuardStateBase, 'history'>): Set<string> {
  return new Set([...latestStatus(state.history)].filter(([, status]) => status !== 'success').map(([v]) => v));
}

/** What choosing a rollback target reads: the history, the stable version and the release, if any. */
type TargetBasis = Pick<GuardStateBase, 'history' | 'stable'> & { release: Release | null };

/** The version to roll back to: the release's previous version unless it failed, else the newest good one. */
export function rollbackTarget(state: TargetBasis, from: string, requested?: string): string | null {
  const failed = failedVersions(state);
  if (requested !== undefined) return requested === from || failed.has(requested) ? null : requested;
  const previous = state.release?.version === from ? state.release.previous : state.stable;
  if (previous && previous !== from && !failed.has(previous)) return previous;
  return candidates(state.history).find((v) => v !== from) ?? null;
}

/** Why automation may not act on this breach now, or null when it may. */
export function automationBlocked(state: GuardState, version: string, at: number, policy: Policy): string | null {
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
