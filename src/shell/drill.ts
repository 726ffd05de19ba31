/**
 * Rollback drills (seed: rehearse rollbacks regularly and record the time): run the configured
 * plan back to the previous version, prove it answers, then forward again to the current one
 * and prove that too. Both legs are timed and recorded.
 */
import { formatDuration } from '../config/duration.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Probe } from '../probes/types.js';
import { clockTimeout, type Clock } from './clock.js';
import { runPlan, type PlanStep } from './rollback-runner.js';
import { windowId } from '../core/windows.js';

export interface DrillLeg {
  from: string;
  to: string;
  ok: boolean;
  /** Plan start to plan end. */
  planMs: number;
  /** Plan end to the health probe proving `to` (N passes). */
  verifyMs: number;
  totalMs: number;
  error?: string;
  steps: { index: number; type: string; description: string; ok: boolean; durationMs: number; error?: string }[];
}

export interface DrillRecord {
  id: string;
  service: string;
  by: string;
  startedAt: number;
  finishedAt: number;
  ok: boolean;
  legs: DrillLeg[];
}

export interface DrillDeps {
  config: Config;
  clock: Clock;
  log: Logger;
  plan: readonly PlanStep[];
  /** The verification probe (health, reporting the version). */
  probe: Probe;
}

/** Samples `probe` until it passes `passes` times in a row reporting `version`, or `timeoutMs` passes. */
async function proveVersion(deps: DrillDeps, version: string): Promise<{ ok: boolean; error?: string }> {
  const { clock, config, probe } = deps;
  const deadline = clock.now() + config.verification.timeout;
  let passes = 0;
  let last = 'no sample';
  while (clock.now() < deadline) {
    const deadline = clockTimeout(clock, config.verification.timeout);
    const sample = await probe.sample(clock.now(), deadline.signal).finally(() => deadline.clear());
    const good = sample.ok && (sample.version === undefined || sample.version === version);
    passes = good ? passes + 1 : 0;
    last = sample.ok ? `version ${sample.version ?? 'unknown'}` : (sample.error ?? 'failed');
    if (passes >= config.verification.passes) return { ok: true };
    await clock.sleep(config.schedule.fast_interval);
  }
  return { ok: false, error: `${version} not proven within ${formatDuration(config.verification.timeout)} (${passes}/${config.verification.passes} passes; last: ${last})` };
}

async function leg(deps: DrillDeps, from: string, to: string): Promise<DrillLeg> {
  const { clock, log, config } = deps;
  const steps: DrillLeg['steps'] = [];
  const started: Record<number, number> = {};
  const begin = clock.now();
  log.info(`drill: ${from} -> ${to}`, { component: 'drill' });
  const result = await runPlan(deps.plan, { service: config.service, from, to }, {
    clock,
    log,
    signal: new AbortController().signal,
    stateDir: config.state_dir,
    // A window of its own: a drill must neither restore a release's pre-release backup nor leave
    // markers (a recorded undo, migrate_down done) that a real rollback of that release would obey.
    windowId: windowId(begin, `drill-${from}`),
    fromStep: 0,
    hooks: {
      stepStarted: async (index) => void (started[index] = clock.now()),
      stepFinished: async (index, ok, _output, error) => {
        const step = deps.plan[index]!;
        steps.push({ index, type: step.config.type, description: step.strategy.describe({ from, to }), ok, durationMs: clock.now() - started[index]!, ...(error ? { error } : {}) });
      },
    },
  });
  const planned = clock.now();
  const proof = result.ok ? await proveVersion(deps, to) : { ok: false, error: result.error };
  const end = clock.now();
  const out: DrillLeg = { from, to, ok: proof.ok, planMs: planned - begin, verifyMs: end - planned, totalMs: end - begin, steps };
  if (proof.error) out.error = proof.error;
  log.info(`drill: ${from} -> ${to} ${out.ok ? 'done' : 'FAILED'} in ${formatDuration(out.totalMs)}`, { component: 'drill', planMs: out.planMs, verifyMs: out.verifyMs });
  return out;
}

/** Back to `to`, then forward to `from` (only when the way back worked). */
export async function runDrill(deps: DrillDeps, run: { from: string; to: string; by: string }): Promise<DrillRecord> {
  const startedAt = deps.clock.now();
  const back = await leg(deps, run.from, run.to);
  const legs = [back];
  if (back.ok) legs.push(await leg(deps, run.to, run.from));
  const finishedAt = deps.clock.now();
  return {
    id: `${new Date(startedAt).toISOString().replace(/[:.]/g, '-')}_drill_${run.from}_${run.to}`,
    service: deps.config.service,
    by: run.by,
    startedAt,
    finishedAt,
    ok: legs.length === 2 && legs.every((l) => l.ok),
    legs,
  };
}

export function renderDrillMarkdown(record: DrillRecord): string {
  const lines = [
    `# Rollback drill: ${record.service} ${record.legs[0]!.from} → ${record.legs[0]!.to} → ${record.legs[0]!.from}`,
    '',
    `- **Date:** ${new Date(record.startedAt).toISOString()}`,
    `- **Result:** ${record.ok ? 'passed' : 'FAILED'}`,
    `- **Started by:** ${record.by}`,
    `- **Total:** ${formatDuration(record.finishedAt - record.startedAt)}`,
    '',
    '| leg | result | plan | until verified | total |',
    '| --- | --- | --- | --- | --- |',
    ...record.legs.map((l) => `| ${l.from} → ${l.to} | ${l.ok ? 'ok' : `failed: ${l.error ?? ''}`} | ${formatDuration(l.planMs)} | ${formatDuration(l.verifyMs)} | ${formatDuration(l.totalMs)} |`),
    '',
  ];
  for (const l of record.legs) {
    lines.push(`## ${l.from} → ${l.to}`, '', '| # | step | result | duration |', '| --- | --- | --- | --- |');
    for (const s of l.steps) lines.push(`| ${s.index + 1} | ${s.description} | ${s.ok ? 'ok' : `failed: ${s.error ?? ''}`} | ${formatDuration(s.durationMs)} |`);
    lines.push('');
  }
  return lines.join('\n');
}
