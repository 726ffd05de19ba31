/**
 * The rules of errors and latency: error_rate, latency_ratio and latency_max. Checks and counted
 * traffic are judged by the sequential test; a Prometheus source, by the median of its readings.
 */
import type { RulesConfig } from '../config/schema.js';
import type { SampleValueKey, SourceReading } from './rule-catalog.js';
import { isReading, listOf, minSamples, readingFor, samplesOf, windowStart, type RuleInput } from './rule-input.js';
import { latencies, medianOfLatest, pct, percentile, round } from './samples.js';
import { sequentialParams } from './sequential.js';
import { foldSequential, sequentialVerdict, toleranceOf, type TrialCounter } from './sequential-verdict.js';
import type { LatencyBucket, RuleVerdict, Sample } from './types.js';

type ErrorRate = NonNullable<RulesConfig['error_rate']>;
type Base = Pick<RuleVerdict, 'rule' | 'threshold' | 'unit'>;

/**
 * Errors of real traffic (scrape, access_log) or failed health checks (http), judged by the
 * sequential test since the window opened. A Prometheus source reports ratios without counts: the
 * median of its latest readings is compared with the threshold instead.
 */
export function evaluateErrorRate(rule: ErrorRate, input: RuleInput): RuleVerdict {
  const base = { rule: 'error_rate' as const, threshold: rule.threshold, unit: 'ratio' as const };
  const reading = readingFor('error_rate', rule.probe, input, base);
  if (!isReading(reading)) return reading;
  const inconclusive = (why: string): RuleVerdict => ({ ...base, outcome: 'inconclusive', observed: null, message: `error_rate: ${why}` });
  if (reading.kind === 'aggregate') return aggregateErrorRate(rule, input, reading, base, inconclusive);

  const tolerance = toleranceOf(rule.tolerance ?? rule.threshold * DEFAULT_TOLERANCE_SHARE, rule.threshold, input.baselineErrorRatio?.get(rule.probe));
  const params = sequentialParams({ threshold: rule.threshold, tolerance, budget: rule.budget, looks: input.looks, minSpanMs: rule.min_span });
  const traffic = reading.kind === 'traffic';
  const count: TrialCounter = traffic
    ? (s) => (s.traffic && s.traffic.requests > 0 ? { n: s.traffic.requests, k: s.traffic.errors } : null)
    : (s) => ({ n: 1, k: s.ok ? 0 : 1 });
  const { state, samples } = foldSequential(input, `error_rate:${rule.probe}`, rule.probe, params, `${params.p0}:${params.h}`, count);
  const needed = minSamples(rule, reading);
  if (samples < needed) {
    return inconclusive(`${samples} ${traffic ? 'traffic samples with requests' : 'checks'} in window < min_samples ${needed}`);
  }
  return sequentialVerdict(base, params, state, () => ({ what: 'error_rate', trials: traffic ? 'requests' : 'checks', rate: (k, n) => pct(n > 0 ? k / n : 0) }));
}

/** Without a documented tolerance, 40 % of the threshold: errors at 2 % are never rolled back for a 5 % threshold. */
export const DEFAULT_TOLERANCE_SHARE = 0.4;


/** The samples of the window that carry the value the catalog says this source gives the rule. */
function readingsOf(input: RuleInput, probe: string, since: number, key: SampleValueKey | undefined): { sample: Sample; value: number }[] {
  const out: { sample: Sample; value: number }[] = [];
  if (key === undefined) return out;
  for (const sample of samplesOf(input, probe, since)) {
    const value = sample.values[key];
    if (typeof value === 'number') out.push({ sample, value });
  }
  return out;
}

function aggregateErrorRate(rule: ErrorRate, input: RuleInput, reading: SourceReading, base: Base, inconclusive: (why: string) => RuleVerdict): RuleVerdict {
  const since = Math.max(windowStart(input), input.now - rule.window);
  const needed = minSamples(rule, reading);
  const traffic = readingsOf(input, rule.probe, since, reading.values[0]);
  const latest = traffic.slice(-needed);
  // Prometheus already averages over the query's range: the median of the latest samples.
  const ratio = medianOfLatest(latest.map((r) => r.value), needed);
  const first = latest[0];
  if (traffic.length < needed || ratio === null || first === undefined) return inconclusive(`${traffic.length} traffic samples in window < min_samples ${needed}`);
  const breached = ratio > rule.threshold;
  return {
    ...base,
    outcome: breached ? 'fail' : 'pass',
    observed: round(ratio, 4),
    ...(breached ? { since: first.sample.startedAt } : {}),
    message: `error_rate: ${pct(ratio)} (${rule.probe}, median of last ${latest.length}) ${breached ? '>' : '<='} ${pct(rule.threshold)}`,
  };
}

/**
 * The p95 latency a latency rule judges: of http checks in the window, or the median of the
 * latest traffic p95 readings (prometheus, scrape, access_log). Null with a reason when there is too little.
 */
function observedP95(
  rule: { probe: string; window: number; min_samples?: number | undefined },
  input: RuleInput,
  reading: SourceReading,
): { p95: number; detail: string } | { p95: null; why: string } {
  const since = Math.max(windowStart(input), input.now - rule.window);
  const needed = minSamples(rule, reading);
  if (reading.kind === 'checks') {
    const values = latencies(samplesOf(input, rule.probe, since));
    const p95 = percentile(values, 95);
    if (values.length < needed || p95 === null) return { p95: null, why: `${values.length} answered checks in window < min_samples ${needed}` };
    return { p95, detail: `p95 of ${values.length} checks` };
  }
  const values = readingsOf(input, rule.probe, since, reading.values[0]).map((r) => r.value);
  const p95 = medianOfLatest(values, needed);
  if (values.length < needed || p95 === null) return { p95: null, why: `${values.length} traffic samples in window < min_samples ${needed}` };
  return { p95, detail: `traffic p95, median of last ${Math.min(needed, values.length)}` };
}

/**
 * How many of an interval's requests were slower than a bucket bound at or above `boundaryMs`,
 * from its cumulative latency buckets: exact counts, at the first bound at or above the boundary
 * (the verdict names it). Interpolating inside a coarse bucket would guess, and a guess that
 * overstates the slow share rolls back healthy releases; a bound above the boundary only makes
 * the rule stricter about what counts as slow.
 */
export function slowerThan(buckets: readonly LatencyBucket[], boundaryMs: number): { n: number; k: number; usedMs: number } | null {
  const total = buckets.at(-1);
  if (!total || total.le !== Number.POSITIVE_INFINITY || total.count <= 0) return null;
  // The last bound is Infinity: some bound is at or above any boundary.
  const bound = buckets.find((b) => b.le >= boundaryMs) ?? total;
  return { n: total.count, k: Math.max(0, total.count - bound.count), usedMs: bound.le };
}

/** The share of slow requests the latency rule's threshold stands for: p95 above X ⟺ over 5 % slower than X. */
const P95_SLOW_SHARE = 0.05;

type LatencyRatio = NonNullable<RulesConfig['latency_ratio']>;
/**
 * "p95 over ratio × the previous version's p95" is the same statement as "over 5 % of requests
 * slower than that": each request (or answered check) slower than the boundary is a bad trial of
 * the sequential test. The boundary is never below `floor`, so tiny baselines do not flap.
 */
export function evaluateLatencyRatio(rule: LatencyRatio, input: RuleInput): RuleVerdict {
  const base = { rule: 'latency_ratio' as const, threshold: rule.ratio, unit: 'x' as const };
  const baseline = input.baselineP95.get(rule.probe);
  if (baseline === undefined) {
    // Not blind: the release is judged by the absolute SLOs (latency_max) instead, and says so.
    return {
      ...base,
      outcome: 'skipped',
      observed: null,
      message: `latency_ratio: no baseline p95 for the previous version; only absolute SLOs (latency_max) apply`,
    };
  }
  const reading = readingFor('latency_ratio', rule.probe, input, base);
  if (!isReading(reading)) return reading;
  if (reading.kind === 'aggregate') return aggregateLatencyRatio(rule, input, reading, base, baseline);
  const boundaryMs = Math.max(rule.ratio * baseline, rule.floor);
  const params = sequentialParams({ threshold: P95_SLOW_SHARE, tolerance: rule.tolerance, budget: rule.budget, looks: input.looks, minSpanMs: rule.min_span });
  const traffic = reading.kind === 'traffic';
  const count: TrialCounter = traffic
    ? (s) => (s.traffic?.latency ? slowerThan(s.traffic.latency, boundaryMs) : null)
    : (s) => (s.ok && typeof s.values.latency_ms === 'number' ? { n: 1, k: s.values.latency_ms > boundaryMs ? 1 : 0 } : null);
  const { state, samples } = foldSequential(input, `latency_ratio:${rule.probe}`, rule.probe, params, `${params.p0}:${params.h}:${boundaryMs}`, count);
  const needed = minSamples(rule, reading);
  if (samples < needed) {
    return { ...base, outcome: 'inconclusive', observed: null, message: `latency_ratio: ${samples} ${traffic ? 'traffic samples with latencies' : 'answered checks'} in window < min_samples ${needed}` };
  }
  // The verdict's threshold is the share of slow requests (5 %); the ratio is in the message.
  return sequentialVerdict({ ...base, threshold: P95_SLOW_SHARE, unit: 'ratio' }, params, state, () => {
    // The bound the latest counted interval's buckets gave (checks: the boundary itself).
    const usedMs = (traffic ? latestSlowerThan(listOf(input, rule.probe), boundaryMs)?.usedMs : undefined) ?? boundaryMs;
    const slowText = Number.isFinite(usedMs) ? `slower than ${round(usedMs, 1)}ms` : `slower than the largest bucket`;
    const boundaryText = `max(${rule.ratio}× baseline p95 ${round(baseline, 1)}ms, floor ${rule.floor}ms) = ${round(boundaryMs, 1)}ms`;
    const how = usedMs === boundaryMs ? boundaryText : `the first histogram bucket bound at or above ${boundaryText}`;
    return {
      what: 'latency_ratio',
      trials: traffic ? 'requests' : 'checks',
      rate: (k: number, n: number) => `${pct(n > 0 ? k / n : 0)} ${slowText}`,
      detail: `${slowText}: ${how}`,
    };
  });
}

/** The slow share of the newest sample that has latency buckets. */
function latestSlowerThan(list: readonly Sample[], boundaryMs: number): ReturnType<typeof slowerThan> {
  for (let i = list.length - 1; i >= 0; i--) {
    const latency = list[i]?.traffic?.latency;
    const slow = latency ? slowerThan(latency, boundaryMs) : null;
    if (slow) return slow;
  }
  return null;
}

function aggregateLatencyRatio(rule: LatencyRatio, input: RuleInput, reading: SourceReading, base: Base, baseline: number): RuleVerdict {
  const seen = observedP95(rule, input, reading);
  if (seen.p95 === null) return { ...base, outcome: 'inconclusive', observed: null, message: `latency_ratio: ${seen.why}` };
  const { p95 } = seen;
  // A baseline of 0 ms (sub-millisecond app) would make any ratio infinite: the floor decides then.
  const ratio = baseline > 0 ? p95 / baseline : p95 > 0 ? Number.POSITIVE_INFINITY : 1;
  const breached = ratio > rule.ratio && p95 > rule.floor;
  const observed = Number.isFinite(ratio) ? round(ratio, 2) : null;
  const detail = `p95 ${round(p95, 1)}ms vs baseline ${round(baseline, 1)}ms, ${seen.detail}`;
  return {
    ...base,
    outcome: breached ? 'fail' : 'pass',
    observed: observed ?? rule.ratio * 1000,
    ...(breached ? { since: Math.max(windowStart(input), input.now - rule.window) } : {}),
    message: breached
      ? `latency_ratio: ${observed ?? '∞'}× > ${rule.ratio}× (${detail})`
      : p95 <= rule.floor && ratio > rule.ratio
        ? `latency_ratio: ${observed ?? '∞'}× but p95 ${round(p95, 1)}ms <= floor ${rule.floor}ms (${detail})`
        : `latency_ratio: ${observed}× <= ${rule.ratio}× (${detail})`,
  };
}

type LatencyMax = NonNullable<RulesConfig['latency_max']>;
export function evaluateLatencyMax(rule: LatencyMax, input: RuleInput): RuleVerdict {
  const base = { rule: 'latency_max' as const, threshold: rule.threshold, unit: 'ms' as const };
  const reading = readingFor('latency_max', rule.probe, input, base);
  if (!isReading(reading)) return reading;
  const seen = observedP95(rule, input, reading);
  if (seen.p95 === null) return { ...base, outcome: 'inconclusive', observed: null, message: `latency_max: ${seen.why}` };
  const breached = seen.p95 > rule.threshold;
  return {
    ...base,
    outcome: breached ? 'fail' : 'pass',
    observed: round(seen.p95, 1),
    ...(breached ? { since: Math.max(windowStart(input), input.now - rule.window) } : {}),
    message: `latency_max: p95 ${round(seen.p95, 1)}ms ${breached ? '>' : '<='} ${rule.threshold}ms (${seen.detail})`,
  };
}
