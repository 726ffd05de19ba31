/**
 * A rollback drill requested through the API: the machine admits it (no window, no rollback
 * running), the plan runs back and forward (../drill.ts), and the machine hears whether it passed.
 */
import { redact, redactText } from '../../redact.js';
import { renderDrillMarkdown, runDrill, type DrillRecord } from '../drill.js';
import type { GuardContext } from './context.js';

export async function drill(ctx: GuardContext, by: string): Promise<{ ok: true; record: DrillRecord } | { ok: false; error: string }> {
  const { config, clock, log, store, plan, probes, metrics } = ctx.deps;
  if (config.environment === 'production' && !config.drill.allow_production) {
    return { ok: false, error: 'drills refuse a target marked environment: production; use a staging target or set drill.allow_production: true' };
  }
  const started = await ctx.machine.dispatch({ type: 'drillStarted', by, at: clock.now() });
  if (started.rejected) return { ok: false, error: started.rejected };
  const { from, to } = ctx.machine.state.drill!;
  const probe = probes.find((p) => p.name === config.verification.probe)!;
  let record: DrillRecord;
  // A drill that threw did not pass; one that returned says itself whether it passed.
  let passed = false;
  try {
    record = await runDrill({ config, clock, log, plan, probe }, { from, to, by });
    passed = record.ok;
  } finally {
    await ctx.machine.dispatch({ type: 'drillFinished', ok: passed, at: clock.now() }).catch(() => undefined);
  }
  metrics.drillFinished(record);
  const path = await store.writeDrill(record.id, redact(record), redactText(renderDrillMarkdown(record)));
  log.info(`drill ${record.ok ? 'passed' : 'FAILED'}; record ${path}`, { component: 'drill' });
  return { ok: true, record };
}
