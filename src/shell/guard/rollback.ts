/**
 * The rollback effect: runs the plan from the step the machine names, reporting each step's start
 * and end as events (persisted before the next step), under the lease's term when there is one.
 */
import type { Effect, Transition } from '../../core/types.js';
import { errorMessage } from '../../errors.js';
import { planInterruptedMessage } from '../plan-interruption.js';
import { runPlan, type PlanHooks, type PlanResult } from '../rollback-runner.js';
import type { GuardContext } from './context.js';

type RollbackEffect = Extract<Effect, { type: 'rollback' }>;

export class RollbackExecutor {
  /** The plan running now, if any: stop() and a take-over wait for it. */
  running: Promise<void> | null = null;

  constructor(private readonly ctx: GuardContext) {}

  start(effect: RollbackEffect): void {
    this.running = this.execute(effect).finally(() => {
      this.running = null;
    });
  }

  private async execute(effect: RollbackEffect): Promise<void> {
    const { deps, machine } = this.ctx;
    const { config, clock, log } = deps;
    log.warn(`rollback ${effect.from} -> ${effect.to} (attempt ${effect.attempt}, from step ${effect.fromStep + 1}): ${effect.breach.reason}`, { component: 'rollback' });
    // With leadership, this term's signal: losing the lease stops the running step at once.
    const term = deps.leadership?.signal;
    // Set when the plan stopped because a step could not be recorded or the lease not confirmed:
    // an interruption (resumed like a restart), not a failed rollback.
    const interruption: { why: string | null } = { why: null };
    let result: PlanResult;
    try {
      // Not tied to `stopping`: a SIGTERM lets the running step finish (bounded by its timeout).
      result = await runPlan(deps.plan, { service: config.service, from: effect.from, to: effect.to }, {
        clock,
        log,
        signal: term ?? new AbortController().signal,
        stateDir: this.ctx.dataRoot,
        windowId: effect.release.id,
        fromStep: effect.fromStep,
        hooks: this.stepHooks(interruption),
        prepared: async (index, type, options) => (await this.ctx.preparations.resolve(effect.release, index, type, options)).prepared,
      });
    } catch (error) {
      result = { ok: false, error: `rollback plan crashed: ${errorMessage(error)}` };
    }
    if (term?.aborted || !this.ctx.ha.acts || interruption.why !== null) {
      const why = interruption.why ?? 'the lease was lost';
      log.warn('rollback plan interrupted: whoever acts next resumes it from the first step not finished', { component: 'rollback', reason: why, error: result.error });
      this.ctx.announce('plan_interrupted', 'critical', planInterruptedMessage(machine.state, deps.plan.length, why));
      return;
    }
    await machine.dispatch({ type: 'rollbackExecuted', ok: result.ok, ...(result.error ? { error: result.error } : {}), at: clock.now() });
  }

  /** Every step starts only on a lease confirmed with the store, and only once its start is persisted. */
  private stepHooks(interruption: { why: string | null }): PlanHooks {
    const { deps, machine } = this.ctx;
    const { clock, metrics } = deps;
    const startedAt = new Map<number, number>();
    const kept = (t: Transition) => {
      if (t.rejected) throw new Error((interruption.why = `step not recorded, plan stopped: ${t.rejected}`));
    };
    return {
      stepStarted: async (index, stepType, description) => {
        await deps.leadership?.confirm().catch((error: unknown) => {
          throw new Error((interruption.why = `lease not confirmed, plan stopped: ${errorMessage(error)}`));
        });
        startedAt.set(index, clock.now());
        metrics.stepStarted(index, stepType);
        kept(await machine.dispatch({ type: 'stepStarted', index, stepType, description, at: clock.now() }));
      },
      stepFinished: async (index, ok, output, error) => {
        const stepType = deps.plan[index]!.config.type;
        metrics.stepFinished(index, stepType, ok, (clock.now() - (startedAt.get(index) ?? clock.now())) / 1000);
        kept(await machine.dispatch({ type: 'stepFinished', index, ok, output, ...(error ? { error } : {}), at: clock.now() }));
      },
    };
  }
}
