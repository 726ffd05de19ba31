/**
 * How often probes run, as a pure function of the state and time: fast early in a release window,
 * while a failure streak is open inside a window, and while a rollback is being verified (when
 * seconds matter); slow otherwise.
 */
import type { Config } from '../config/schema.js';
import type { GuardState, Policy } from './types.js';

/** Probes that look at the service itself run fast when it matters; host, process, database and
 * Prometheus readings keep the normal interval (their rules judge minutes, not seconds). */
const FAST_PROBES = new Set(['http', 'scrape', 'access_log']);

/**
 * `lastFailed`: the probe's latest sample failed. Inside a window that opens a streak the health
 * rule is counting: the next checks come at the fast interval, so a hang later in the window is
 * judged in timeout + 2 × fast_interval rather than timeout + 2 × interval.
 */
export function probeIntervalMs(state: GuardState, now: number, schedule: Config['schedule'], probeType = 'http', lastFailed = false): number {
  return probesFast(state, now, schedule, probeType, lastFailed) ? schedule.fast_interval : schedule.interval;
}

/** Whether a probe of this type runs at fast_interval now (see probeIntervalMs). */
export function probesFast(state: GuardState, now: number, schedule: Pick<Config['schedule'], 'fast_for'>, probeType = 'http', lastFailed = false): boolean {
  if (!FAST_PROBES.has(probeType)) return false;
  if (state.phase === 'verifying' || state.phase === 'rolling_back') return true;
  return state.phase === 'guarding' && !!state.release && (lastFailed || now - state.release.startedAt < schedule.fast_for);
}

/** A check never gives up sooner than this, whatever the stable version's latency: a busy host
 * stalls a healthy answer for a few hundred milliseconds now and then. */
export const FAST_TIMEOUT_FLOOR_MS = 500;
/** auto: a check taking ten times the stable version's p99 is not coming back in time to matter. */
export const FAST_TIMEOUT_P99_FACTOR = 10;

/**
 * How long one http check may take. At the normal interval: the probe's own timeout. At the fast
 * interval (early in a window, an open failure streak, verifying) a hang must not cost a whole
 * timeout per check: the third failing check of a streak comes back after fast_timeout + 2 ×
 * fast_interval instead of timeout + 2 × fast_interval. `stableP99Ms` is the stable version's p99
 * check latency (null while unknown: then the probe's own timeout stands).
 */
export function probeTimeoutMs(
  probeTimeout: number,
  schedule: Pick<Config['schedule'], 'fast_timeout'>,
  fast: boolean,
  stableP99Ms: number | null,
): number {
  if (!fast) return probeTimeout;
  const setting = schedule.fast_timeout;
  if (setting !== 'auto') return Math.min(setting, probeTimeout);
  if (stableP99Ms === null || !Number.isFinite(stableP99Ms)) return probeTimeout;
  return Math.min(probeTimeout, Math.max(FAST_TIMEOUT_FLOOR_MS, Math.ceil(stableP99Ms * FAST_TIMEOUT_P99_FACTOR)));
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
