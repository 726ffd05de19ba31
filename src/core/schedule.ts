/**
 * How often probes run, as a pure function of the state and time: fast early in a release window,
 * while a failure streak is open inside a window, and while a rollback is being verified (when
 * seconds matter); slow otherwise.
 */
import type { Config } from '../config/schema.js';
import type { GuardState, Policy } from './types.js';

/** Probes that look at the service itself run fast when it matters; host, process, database and
 * Prometheus readings keep the normal interval (their rules judge minutes, not seconds). */
const FAST_PROBES = new Set(['http', 'scrape']);

/**
 * `lastFailed`: the probe's latest sample failed. Inside a window that opens a streak the health
 * rule is counting: the next checks come at the fast interval, so a hang later in the window is
 * judged in timeout + 2 × fast_interval rather than timeout + 2 × interval.
 */
export function probeIntervalMs(state: GuardState, now: number, schedule: Config['schedule'], probeType = 'http', lastFailed = false): number {
  if (!FAST_PROBES.has(probeType)) return schedule.interval;
  if (state.phase === 'verifying' || state.phase === 'rolling_back') return schedule.fast_interval;
  if (state.phase === 'guarding' && state.release && (lastFailed || now - state.release.startedAt < schedule.fast_for)) {
    return schedule.fast_interval;
  }
  return schedule.interval;
}

/** The machine's knobs, read from a validated config. */
export function policyFrom(config: Config): Policy {
  return {
    windowMs: config.release.window,
    automatic: config.rollback.automatic,
    maxRollbacksPerHour: config.rollback.max_per_hour,
    cooldownMs: config.rollback.cooldown,
    verifyPasses: config.verification.passes,
    verifyTimeoutMs: config.verification.timeout,
    settleMs: config.release.settle,
    rolloutGraceMs: config.release.rollout_grace,
    maxAttempts: 3,
    verificationSuite: config.verification.checks.length > 0,
    vetoMs: config.rollback.veto,
    historyLimit: 500,
    // Hosts sharing a redis store form a fleet unless told otherwise (store.fleet: false).
    ...(config.store.type === 'redis' && config.store.fleet ? { fleetWaitMs: config.store.fleet_wait } : {}),
  };
}
