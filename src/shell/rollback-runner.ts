/**
 * Runs a rollback plan: the configured steps in order, each with its own timeout, progress logged.
 * A failed step stops the plan; the result says which step failed and why.
 */
import { mkdir } from 'node:fs/promises';
import type { StrategyConfig } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { redactText } from '../redact.js';
import type { PreparedData, RollbackStrategy } from '../strategies/types.js';
import { clockTimeout, type Clock } from './clock.js';
import { stepDataDir } from './step-data.js';

export interface PlanResult {
  ok: boolean;
  error?: string;
}

/** Called before and after each step; the guard persists both before the plan goes on. */
export interface PlanHooks {
  stepStarted(index: number, type: string, description: string): Promise<void>;
  stepFinished(index: number, ok: boolean, output: string[], error?: string): Promise<void>;
}

export interface PlanStep {
  config: StrategyConfig;
  strategy: RollbackStrategy;
}

export { stepDataDir };

export async function runPlan(
  steps: readonly PlanStep[],
  target: { service: string; from: string; to: string },
  deps: {
    clock: Clock;
    log: Logger;
    signal: AbortSignal;
    stateDir: string;
    /** The release window whose prepared data the steps use (see step-data.ts). */
    windowId: string;
    fromStep: number;
    hooks: PlanHooks;
    /** Which prepared data a step that has `prepare` restores from; may wait for it (preparations.ts). */
    prepared?: (index: number, type: string, options: { waitMs: number; signal: AbortSignal; progress(message: string): void }) => Promise<PreparedData | undefined>;
  },
): Promise<PlanResult> {
  for (const [index, { config, strategy }] of steps.entries()) {
    if (index < deps.fromStep) continue;
    const description = strategy.describe(target);
    const output: string[] = [];
    const startedAt = deps.clock.now();
    const log = deps.log.child({ component: 'rollback', step: index + 1, strategy: config.type });
    log.info(`step ${index + 1}/${steps.length} started: ${description}`);
    await deps.hooks.stepStarted(index, config.type, description);
    const deadline = clockTimeout(deps.clock, config.timeout);
    const timeout = deadline.signal;
    const signal = AbortSignal.any([deps.signal, timeout]);
    const dataDir = stepDataDir(deps.stateDir, deps.windowId, index, config.type);
    await mkdir(dataDir, { recursive: true });
    // Kept in the record whatever the step logs after it: which backup the step restored.
    const pinned: string[] = [];
    const kept = () => [...pinned, ...output.filter((line) => !pinned.includes(line)).slice(-(20 - pinned.length))];
    const ctx: Parameters<RollbackStrategy['execute']>[0] = {
      ...target,
      dataDir,
      signal,
      // Step output goes to the state, records, /status and notifications: redacted at the source.
      progress: (message: string) => {
        const line = redactText(message);
        output.push(line);
        log.info(line);
      },
    };
    try {
      if (strategy.prepare && deps.prepared) {
        // At most half the step's time waiting for its preparation: the rest is for the restore.
        const prepared = await raceAbort(deps.prepared(index, config.type, { waitMs: config.timeout / 2, signal, progress: ctx.progress }), signal, () =>
          timeout.aborted ? `timed out after ${config.timeout}ms` : 'the guard is stopping',
        );
        if (prepared) {
          ctx.prepared = prepared;
          pinned.push(prepared.note);
          ctx.progress(prepared.note);
        }
      }
      await raceAbort(strategy.execute(ctx), signal, () =>
        timeout.aborted ? `timed out after ${config.timeout}ms` : 'the guard is stopping',
      );
      log.info(`step ${index + 1}/${steps.length} done in ${deps.clock.now() - startedAt}ms`);
      await deps.hooks.stepFinished(index, true, kept());
    } catch (error) {
      const message = redactText(errorMessage(error));
      log.error(`step ${index + 1}/${steps.length} failed after ${deps.clock.now() - startedAt}ms: ${message}`);
      await deps.hooks.stepFinished(index, false, kept(), message);
      return { ok: false, error: `step ${index + 1} (${config.type}) failed: ${message}` };
    } finally {
      deadline.clear();
    }
  }
  return { ok: true };
}

/** Strategies honour the signal, but a stuck library call must not hold the plan past its timeout. */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal, why: () => string): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error(why()));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error(why()));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
