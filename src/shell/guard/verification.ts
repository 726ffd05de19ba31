/**
 * The verify effect (seed §3, after health is proven): functional, performance, data, security and
 * resource checks, whose outcome comes back to the machine as `verificationFinished`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../errors.js';
import { runVerificationSuite as runSuite } from '../../verification/suite.js';
import { stepDataDir } from '../rollback-runner.js';
import type { GuardContext } from './context.js';

export async function runVerificationSuite(ctx: GuardContext): Promise<void> {
  const { config, clock, log } = ctx.deps;
  log.info('verification suite started', { component: 'verify', checks: config.verification.checks.length });
  let outcome;
  try {
    outcome = await runSuite(config.verification.checks, {
      signal: ctx.stopping,
      now: () => clock.now(),
      rowSnapshot: await rowSnapshot(ctx, ctx.machine.state.release?.id),
      resources: ctx.samples.latestResources(ctx.deps.probes.filter((p) => p.type === 'system').map((p) => p.name)),
    });
  } catch (error) {
    outcome = { ok: false, results: [{ name: 'suite', type: 'suite', ok: false, detail: `the suite could not run: ${errorMessage(error)}`, durationMs: 0 }] };
  }
  for (const r of outcome.results) log.log(r.ok ? 'info' : 'error', `check ${r.name}: ${r.ok ? 'pass' : 'FAIL'}: ${r.detail}`, { component: 'verify' });
  await ctx.machine.dispatch({ type: 'verificationFinished', ok: outcome.ok, results: outcome.results, at: clock.now() });
}

/** Row counts the database steps recorded when the window being rolled back opened. */
async function rowSnapshot(ctx: GuardContext, windowId: string | undefined): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const [index, step] of ctx.deps.plan.entries()) {
    if (step.config.type !== 'database' || windowId === undefined) continue;
    // The snapshot beside the backup the rollback restored (the stable one for a detected release).
    const current = ctx.machine.state.release;
    const release = current?.id === windowId ? current : null;
    const used = release ? (await ctx.preparations.resolve(release, index, step.config.type, { waitMs: 0 })).prepared?.dir : undefined;
    const file = join(used ?? stepDataDir(ctx.dataRoot, windowId, index, step.config.type), 'snapshot.json');
    try {
      const snapshot = JSON.parse(await readFile(file, 'utf8')) as { counts?: Record<string, unknown> };
      for (const [table, n] of Object.entries(snapshot.counts ?? {})) if (typeof n === 'number') counts[table] = n;
    } catch {
      // No snapshot: a `snapshot` row check then fails with "no data", which is the truth.
    }
  }
  return counts;
}
