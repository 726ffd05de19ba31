/**
 * What the operator is told when a rollback plan stops between steps because the state store or
 * the lease is gone (a Redis blip): not a failed rollback (it resumes from the first step not
 * finished once the store and the lease are back), but a half-done one (the database may be
 * restored and the code not yet swapped), so it is a critical notification, never a log line only.
 */
import type { GuardState } from '../core/types.js';

export function planInterruptedMessage(state: GuardState, totalSteps: number, reason: string): string {
  const rb = state.rollback;
  if (!rb) return `a rollback plan stopped: ${reason}; it resumes when the state store and the lease are back`;
  const done = rb.steps.filter((s) => s.ok === true).map((s) => `${s.index + 1} (${s.type})`);
  const next = Math.max(0, ...rb.steps.filter((s) => s.ok === true).map((s) => s.index + 1));
  return (
    `rollback ${rb.from} -> ${rb.to} stopped half-done: ${done.length > 0 ? `step${done.length === 1 ? '' : 's'} ${done.join(', ')} done` : 'no step done'} of ${totalSteps}; ` +
    `${reason}. It resumes from step ${Math.min(next + 1, totalSteps)} when the state store and the lease are back`
  );
}
