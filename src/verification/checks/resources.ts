/**
 * The resource check (seed §3.2: CPU < 70 %, memory < 80 %), judged on the latest readings the
 * guard passes in (`ctx.resources`, fractions 0..1). A missing reading fails the check with
 * "no data": no data is never a pass.
 */
import type { ResourcesCheckConfig } from '../schema.js';
import type { VerificationCheckResult, VerificationContext } from '../suite.js';

const percent = (fraction: number) => `${+(fraction * 100).toFixed(1)} %`;

export async function run(config: ResourcesCheckConfig, ctx: VerificationContext): Promise<VerificationCheckResult> {
  const started = ctx.now();
  const findings: string[] = [];
  let ok = true;
  for (const [resource, max] of [
    ['cpu', config.cpu_max],
    ['memory', config.memory_max],
  ] as const) {
    const value = ctx.resources?.[resource];
    if (value === undefined || !Number.isFinite(value)) {
      ok = false;
      findings.push(`${resource}: no data (no reading), expected < ${percent(max)}`);
    } else if (value >= max) {
      ok = false;
      findings.push(`${resource} ${percent(value)} >= max ${percent(max)}`);
    } else {
      findings.push(`${resource} ${percent(value)} < ${percent(max)}`);
    }
  }
  return { name: config.name, type: 'resources', ok, detail: findings.join('; '), durationMs: ctx.now() - started };
}
