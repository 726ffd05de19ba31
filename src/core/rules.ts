/**
 * Rules: pure functions of samples, time and the release window. Each verdict names the rule,
 * the observed value and the threshold. No data is inconclusive, never a pass.
 */
import type { RulesConfig } from '../config/schema.js';
import type { RuleName, RuleVerdict, Sample } from './types.js';

export interface RuleInput {
  /** Recent samples per probe name, any order (sorted here by launch time). */
  samples: ReadonlyMap<string, readonly Sample[]>;
  now: number;
  /**
   * Only samples launched at or after this are judged (null: all retained samples). Inside a
   * release window it is the window's start, so the old version's samples never count against
   * the new one; after a rollback it is when the old version came back.
   */
  since: number | null;
  /** Start of the release window, or null outside one (for initial_delay). */
  releaseStartedAt: number | null;
  initialDelayMs: number;
  /** Baseline p95 latency (ms) of the last stable version, per probe; absent when unknown. */
  baselineP95: ReadonlyMap<string, number>;
}

/** The p-th percentile (0..100) by nearest rank; null for no values. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits));
const pct = (ratio: number) => `${round(ratio * 100, 1)}%`;

function samplesOf(input: RuleInput, probe: string, since: number): Sample[] {
  return (input.samples.get(probe) ?? [])
    .filter((s) => s.startedAt >= since && !s.unavailable)
    .sort((a, b) => a.startedAt - b.startedAt);
}

function unavailableOf(input: RuleInput, probe: string, since: number): Sample | undefined {
  const all = (input.samples.get(probe) ?? []).filter((s) => s.startedAt >= since);
  const last = all.sort((a, b) => a.startedAt - b.startedAt).at(-1);
  return last?.unavailable ? last : undefined;
}

const windowStart = (input: RuleInput) => input.since ?? Number.NEGATIVE_INFINITY;

type Health = NonNullable<RulesConfig['health']>;
export function evaluateHealth(rule: Health, input: RuleInput): RuleVerdict {
  const samples = samplesOf(input, rule.probe, windowStart(input));
  const base = { rule: 'health' as const, threshold: rule.consecutive, unit: 'failures' as const };
  if (samples.length === 0) {
    return { ...base, outcome: 'inconclusive', observed: null, message: `health: no samples from ${rule.probe} yet` };
  }
  let failures = 0;
  for (let i = samples.length - 1; i >= 0 && !samples[i]!.ok; i--) failures++;
  const last = samples.at(-1)!;
  if (failures >= rule.consecutive) {
    const first = samples[samples.length - failures]!;
    return {
      ...base,
      outcome: 'fail',
      observed: failures,
      since: first.startedAt,
      message: `health: ${failures} consecutive failures >= ${rule.consecutive} (last: ${last.error ?? 'failed'})`,
    };
  }
  return {
    ...base,
    outcome: 'pass',
    observed: failures,
    message: `health: ${failures} consecutive failures < ${rule.consecutive}`,
  };
}

type ErrorRate = NonNullable<RulesConfig['error_rate']>;
export function evaluateErrorRate(rule: ErrorRate, input: RuleInput): RuleVerdict {
  const since = Math.max(windowStart(input), input.now - rule.window);
  const samples = samplesOf(input, rule.probe, since);
  const base = { rule: 'error_rate' as const, threshold: rule.threshold, unit: 'ratio' as const };
  if (samples.length < rule.min_samples) {
    return {
      ...base,
      outcome: 'inconclusive',
      observed: null,
      message: `error_rate: ${samples.length} samples in window < min_samples ${rule.min_samples}`,
    };
  }
  const failed = samples.filter((s) => !s.ok);
  const ratio = failed.length / samples.length;
  const breached = ratio > rule.threshold;
  return {
    ...base,
    outcome: breached ? 'fail' : 'pass',
    observed: round(ratio, 4),
    ...(breached ? { since: failed[0]!.startedAt } : {}),
    message: `error_rate: ${pct(ratio)} (${failed.length}/${samples.length}) ${breached ? '>' : '<='} ${pct(rule.threshold)}`,
  };
}

/**
 * Latency of answered checks only: failed checks (timeouts, 5xx) are judged by health and
 * error_rate, and one timeout among a handful of samples would otherwise *be* the p95.
 */
function latencies(samples: readonly Sample[]): number[] {
  return samples
    .filter((s) => s.ok)
    .map((s) => s.values.latency_ms)
    .filter((v): v is number => typeof v === 'number');
}

type LatencyRatio = NonNullable<RulesConfig['latency_ratio']>;
export function evaluateLatencyRatio(rule: LatencyRatio, input: RuleInput): RuleVerdict {
  const since = Math.max(windowStart(input), input.now - rule.window);
  const values = latencies(samplesOf(input, rule.probe, since));
  const base = { rule: 'latency_ratio' as const, threshold: rule.ratio, unit: 'x' as const };
  const baseline = input.baselineP95.get(rule.probe);
  if (baseline === undefined) {
    return {
      ...base,
      outcome: 'inconclusive',
      observed: null,
      message: `latency_ratio: no baseline p95 for the previous version; only absolute SLOs apply`,
    };
  }
  if (values.length < rule.min_samples) {
    return {
      ...base,
      outcome: 'inconclusive',
      observed: null,
      message: `latency_ratio: ${values.length} samples in window < min_samples ${rule.min_samples}`,
    };
  }
  const p95 = percentile(values, 95)!;
  // A baseline of 0 ms (sub-millisecond app) would make any ratio infinite: the floor decides then.
  const ratio = baseline > 0 ? p95 / baseline : p95 > 0 ? Number.POSITIVE_INFINITY : 1;
  const breached = ratio > rule.ratio && p95 > rule.floor;
  const observed = Number.isFinite(ratio) ? round(ratio, 2) : null;
  const detail = `p95 ${round(p95, 1)}ms vs baseline ${round(baseline, 1)}ms`;
  return {
    ...base,
    outcome: breached ? 'fail' : 'pass',
    observed: observed ?? rule.ratio * 1000,
    ...(breached ? { since } : {}),
    message: breached
      ? `latency_ratio: ${observed ?? '∞'}× > ${rule.ratio}× (${detail})`
      : p95 <= rule.floor && ratio > rule.ratio
        ? `latency_ratio: ${observed ?? '∞'}× but p95 ${round(p95, 1)}ms <= floor ${rule.floor}ms (${detail})`
        : `latency_ratio: ${observed}× <= ${rule.ratio}× (${detail})`,
  };
}

type LatencyMax = NonNullable<RulesConfig['latency_max']>;
export function evaluateLatencyMax(rule: LatencyMax, input: RuleInput): RuleVerdict {
  const since = Math.max(windowStart(input), input.now - rule.window);
  const values = latencies(samplesOf(input, rule.probe, since));
  const base = { rule: 'latency_max' as const, threshold: rule.threshold, unit: 'ms' as const };
  if (values.length < rule.min_samples) {
    return {
      ...base,
      outcome: 'inconclusive',
      observed: null,
      message: `latency_max: ${values.length} samples in window < min_samples ${rule.min_samples}`,
    };
  }
  const p95 = percentile(values, 95)!;
  const breached = p95 > rule.threshold;
  return {
    ...base,
    outcome: breached ? 'fail' : 'pass',
    observed: round(p95, 1),
    ...(breached ? { since } : {}),
    message: `latency_max: p95 ${round(p95, 1)}ms ${breached ? '>' : '<='} ${rule.threshold}ms`,
  };
}

type Resource = NonNullable<RulesConfig['cpu']>;
/**
 * cpu / memory: breach when every sample of the trailing run has been above the threshold for at
 * least `for`. Inside a release window, samples of the initial delay are not judged at all, so a
 * warm-up spike cannot start the clock.
 */
export function evaluateResource(name: 'cpu' | 'memory', rule: Resource, input: RuleInput): RuleVerdict {
  const base = { rule: name, threshold: rule.threshold, unit: 'ratio' as const };
  let since = windowStart(input);
  if (input.releaseStartedAt !== null) {
    since = Math.max(since, input.releaseStartedAt + input.initialDelayMs);
    if (input.now < since) {
      return {
        ...base,
        outcome: 'skipped',
        observed: null,
        message: `${name}: skipped during initial_delay (${Math.ceil((since - input.now) / 1000)}s left)`,
      };
    }
  }
  const unavailable = unavailableOf(input, rule.probe, since);
  const samples = samplesOf(input, rule.probe, since).filter((s) => typeof s.values[name] === 'number');
  if (samples.length === 0) {
    return unavailable
      ? { ...base, outcome: 'error', observed: null, message: `${name}: probe ${rule.probe} unavailable: ${unavailable.error ?? 'no data'}` }
      : { ...base, outcome: 'inconclusive', observed: null, message: `${name}: no samples from ${rule.probe} yet` };
  }
  const latest = samples.at(-1)!.values[name]!;
  let runStart: number | null = null;
  for (let i = samples.length - 1; i >= 0 && samples[i]!.values[name]! > rule.threshold; i--) {
    runStart = samples[i]!.startedAt;
  }
  const sustainedMs = runStart === null ? 0 : input.now - runStart;
  const breached = runStart !== null && sustainedMs >= rule.for;
  const above = runStart !== null;
  return {
    ...base,
    outcome: breached ? 'fail' : 'pass',
    observed: round(latest, 4),
    ...(breached ? { since: runStart! } : {}),
    message: breached
      ? `${name}: ${pct(latest)} > ${pct(rule.threshold)} for ${Math.round(sustainedMs / 1000)}s >= ${Math.round(rule.for / 1000)}s`
      : above
        ? `${name}: ${pct(latest)} > ${pct(rule.threshold)} for ${Math.round(sustainedMs / 1000)}s < ${Math.round(rule.for / 1000)}s`
        : `${name}: ${pct(latest)} <= ${pct(rule.threshold)}`,
  };
}

/** Every enabled rule, in a fixed order. */
export function evaluateRules(rules: RulesConfig, input: RuleInput): RuleVerdict[] {
  const verdicts: RuleVerdict[] = [];
  if (rules.health?.enabled) verdicts.push(evaluateHealth(rules.health, input));
  if (rules.error_rate?.enabled) verdicts.push(evaluateErrorRate(rules.error_rate, input));
  if (rules.latency_ratio?.enabled) verdicts.push(evaluateLatencyRatio(rules.latency_ratio, input));
  if (rules.latency_max?.enabled) verdicts.push(evaluateLatencyMax(rules.latency_max, input));
  if (rules.cpu?.enabled) verdicts.push(evaluateResource('cpu', rules.cpu, input));
  if (rules.memory?.enabled) verdicts.push(evaluateResource('memory', rules.memory, input));
  return verdicts;
}

/** Baseline p95 of a probe's latency over the given samples; null when too few to trust. */
export function baselineP95(samples: readonly Sample[], minSamples: number): number | null {
  const values = latencies(samples);
  return values.length >= minSamples ? percentile(values, 95) : null;
}

export const RULE_NAMES: readonly RuleName[] = ['health', 'error_rate', 'latency_ratio', 'latency_max', 'cpu', 'memory'];
