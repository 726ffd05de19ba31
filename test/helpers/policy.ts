import type { Policy } from '../../src/core/types.js';

/** The policy the pure core's tests run the state machine with (10 min window, automatic). */
export const testPolicy: Policy = {
  windowMs: 600_000,
  automatic: true,
  maxRollbacksPerHour: 3,
  cooldownMs: 0,
  verifyPasses: 3,
  verifyTimeoutMs: 60_000,
  settleMs: 30_000,
  rolloutGraceMs: 0,
  maxAttempts: 3,
  verificationSuite: false,
  vetoMs: 0,
  historyLimit: 500,
};
