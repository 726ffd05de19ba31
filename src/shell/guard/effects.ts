/**
 * Carries out the machine's effects (effects as data, redux-loop style): each family has its own
 * module; this switch only says which effects the queue waits for and which run beside it.
 */
import type { Effect } from '../../core/types.js';
import type { GuardContext } from './context.js';
import { prepareRelease } from './prepare.js';
import { runVerificationSuite } from './verification.js';

export async function runEffect(ctx: GuardContext, effect: Effect): Promise<void> {
  if (!ctx.ha.acts) return;
  switch (effect.type) {
    case 'notify':
      ctx.announce(effect.kind, effect.severity, effect.message);
      return;
    case 'verify':
      // Not awaited: the checks take seconds and the queue must keep flowing meanwhile.
      void runVerificationSuite(ctx);
      return;
    case 'rollback':
      if (effect.attempt === 1) ctx.deps.metrics.rollbackDecided(effect.breach.faultAt, effect.breach.decidedAt);
      // Not awaited: the queue keeps serving status, pause and samples while the plan runs.
      ctx.rollback.start(effect);
      return;
    case 'writeRecord':
      await ctx.records.write(effect.record);
      return;
    case 'prepareRelease':
      // Not awaited: snapshots and backups must never delay the guard's eyes.
      void prepareRelease(ctx, effect.release);
      return;
    case 'fleetVerdict':
      await ctx.fleet.report(effect.version, effect.verdict);
      return;
  }
}

/** Logs an announcement and hands it to the notifiers. */
export function announcer(ctx: Pick<GuardContext, 'deps' | 'machine'>): GuardContext['announce'] {
  return (kind, severity, message) => {
    const { deps } = ctx;
    const level = severity === 'critical' ? 'error' : severity === 'warning' ? 'warn' : 'info';
    deps.log.log(level, message, { component: 'notify', kind });
    const release = ctx.machine.state.release;
    const about = release ? { release: { version: release.version, previous: release.previous } } : {};
    deps.notify?.({ kind, severity, message, service: deps.config.service, at: deps.clock.now(), ...about });
  };
}
