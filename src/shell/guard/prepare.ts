/**
 * The prepare effect and the readiness of the rollback: when a window opens every step snapshots
 * what it will need to undo the release, and the plan is checked at once, so a release that cannot
 * be rolled back is reported now rather than discovered during the outage.
 */
import type { PreflightView } from '../../api/types.js';
import { rollbackTarget } from '../../core/transition.js';
import type { Release } from '../../core/types.js';
import { rollbackWindowId } from '../../core/windows.js';
import { errorMessage } from '../../errors.js';
import type { PlanStep } from '../rollback-runner.js';
import { releaseBeganAt } from '../preparations.js';
import { stepDataDir } from '../rollback-runner.js';
import { standbyProblems } from '../shared-dir.js';
import { clockTimeout } from '../clock.js';
import { dirsWrittenBy, unwritableDirs } from '../writable-dirs.js';
import type { GuardContext } from './context.js';

/** Lets each rollback step snapshot what it will need to undo this release. */
export async function prepareRelease(ctx: GuardContext, release: Release): Promise<void> {
  await ctx.preparations.prepareAll(release, releaseBeganAt(release, ctx.samples.lists.get(ctx.deps.config.release.version_probe)));
  const readiness = await preflight(ctx);
  if (!readiness.ready && !ctx.stopping.aborted) {
    const problems = [...readiness.problems, ...readiness.steps.flatMap((s) => s.problems.map((p) => `step ${s.index + 1} (${s.type}): ${p}`))];
    ctx.announce('rollback_not_ready', 'critical', `release ${release.version} cannot be rolled back: ${problems.join('; ')}`);
  }
}

/** Whether a rollback of the running version could run now: the target, each step's own check, writable dirs. */
export async function preflight(ctx: GuardContext): Promise<PreflightView> {
  const { config, clock, plan } = ctx.deps;
  const state = ctx.machine.state;
  const from = state.running;
  const to = from ? rollbackTarget(state, from) : null;
  const problems: string[] = [];
  if (!from) problems.push('no running version is known yet');
  else if (!to) problems.push(`no version to roll back to from ${from} (no successful earlier version recorded)`);
  // A standby proves it could undo what the acting guard prepared (item 11).
  if (!ctx.ha.acts && ctx.dataRoot !== config.state_dir) {
    const release = state.release;
    const windowDirs = release ? plan.flatMap((s, i) => (s.strategy.prepare ? [{ step: i + 1, dir: stepDataDir(ctx.dataRoot, release.id, i, s.config.type) }] : [])) : [];
    problems.push(...(await standbyProblems(ctx.dataRoot, ctx.deps.leadership?.view.holder ?? null, windowDirs)));
  }
  const steps = await Promise.all(plan.map((step, index) => stepReadiness(ctx, step, index, from, to)));
  problems.push(...(await ctx.stepData.problems()));
  const ready = problems.length === 0 && steps.every((s) => s.problems.length === 0);
  ctx.deps.metrics.observePreflight(ready, steps);
  ctx.lastPreflight = { ready, from, to, problems, steps, checkedAt: new Date(clock.now()).toISOString() };
  return ctx.lastPreflight;
}

async function stepReadiness(ctx: GuardContext, step: PlanStep, index: number, from: string | null, to: string | null): Promise<PreflightView['steps'][number]> {
  const { config, clock } = ctx.deps;
  const state = ctx.machine.state;
  const description = step.strategy.describe({ from: from ?? '?', to: to ?? '?' });
  if (!from || !to) return { index, type: step.config.type, description, problems: [] as string[] };
  let stepProblems: string[];
  const deadline = clockTimeout(clock, Math.min(step.config.timeout, 30_000));
  try {
    // The backup this step's rollback would restore now (preparations.ts), and whether one predates the release.
    const resolved = state.release?.version === from && step.strategy.prepare
      ? await ctx.preparations.resolve(state.release, index, step.config.type, { waitMs: 0 })
      : { problems: [] };
    stepProblems = resolved.problems;
    stepProblems.push(...await step.strategy.checkReadiness({
      service: config.service,
      from,
      to,
      signal: deadline.signal,
      progress: () => undefined,
      dataDir: stepDataDir(ctx.dataRoot, rollbackWindowId(state, from, clock.now()), index, step.config.type),
      ...(resolved.prepared ? { prepared: resolved.prepared } : {}),
    }));
  } catch (error) {
    stepProblems = [`readiness check failed: ${errorMessage(error)}`];
  } finally {
    deadline.clear();
  }
  stepProblems.push(...(await unwritableDirs(dirsWrittenBy(step.config, config.state_dir))));
  return { index, type: step.config.type, description, problems: stepProblems };
}
