/**
 * One run of a step's `prepare` within the step's timeout, for both kinds of backup (a window's
 * pre-release one, preparations.ts, and a stable one, stable-backups.ts). The timeout runs on the
 * injected clock, so a test drives it with a fake clock like every other time budget.
 */
import { errorMessage } from '../errors.js';
import type { ReleaseContext } from '../strategies/types.js';
import { clockTimeout, type Clock } from './clock.js';
import type { PlanStep } from './rollback-runner.js';

/**
 * Runs `step`'s prepare with a signal that aborts when `stop` does (the guard stops) or when the
 * step's timeout has passed on `clock`. A prepare that ends with an error after its timeout fired
 * rejects saying so: the strategy only sees an aborted signal, and may word it as a cancel.
 */
export async function runPrepare(step: PlanStep, ctx: Omit<ReleaseContext, 'signal'>, options: { clock: Clock; stop: AbortSignal }): Promise<void> {
  const timeoutMs = step.config.timeout;
  const deadline = clockTimeout(options.clock, timeoutMs);
  try {
    await step.strategy.prepare!({ ...ctx, signal: AbortSignal.any([options.stop, deadline.signal]) });
  } catch (error) {
    if (deadline.signal.aborted && !options.stop.aborted) throw new Error(`timed out after ${timeoutMs}ms: ${errorMessage(error)}`, { cause: error });
    throw error;
  } finally {
    deadline.clear();
  }
}
