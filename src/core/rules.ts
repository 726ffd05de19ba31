/**
 * Rules: pure functions of samples, time and the release window. Each verdict names the rule,
 * the observed value and the threshold. No data is inconclusive, never a pass. Which probe types
 * each rule reads, and which of their values, is in the rule catalog (rule-catalog.ts).
 */
import type { RulesConfig } from '../config/schema.js';
import { readingOf, type SampleValueKey, type SourceReading } from './rule-catalog.js';
import { isReading, listOf, readingFor, unavailableOf, windowStart, type RuleInput } from './rule-input.js';
import { firstLaunchedFrom, latencies, pct, percentile, round, seconds } from './samples.js';
import { evaluateErrorRate, evaluateLatencyMax, evaluateLatencyRatio } from './traffic-rules.js';
import type { RuleVerdict, Sample } from './types.js';

export { isTrafficSource, RULE_NAMES } from './rule-catalog.js';
export type { RuleInput, RuleMemo } from './rule-input.js';
export { firstLaunchedFrom, insertionIndex, percentile } from './samples.js';
export { DEFAULT_TOLERANCE_SHARE, evaluateErrorRate, evaluateLatencyMax, evaluateLatencyRatio, slowerThan } from './traffic-rules.js';

type Health = NonNullable<RulesConfig['health']>;
/**
 * Breach on `consecutive` failed checks in a row that also span `min_span` (the first one's launch
 * to the last one's answer): a hang or an outage is caught about min_span after it begins, a blip
 * shorter than min_span never.
 */
export function evaluateHealth(rule: Health, input: RuleInput): RuleVerdict {
  const list = listOf(input, rule.probe);
  const from = firstLaunchedFrom(list, windowStart(input));
  const minSpan = rule.min_span;
  const base = { rule: 'health' as const, threshold: rule.consecutive, unit: 'failures' as const };
  const reading = readingFor('health', rule.probe, input, base);
  if (!isReading(reading)) return reading;
  // The trailing run of failures, read backwards from the newest sample: only the run is visited.
  let last: Sample | undefined;
  let first: Sample | undefined;
  let failures = 0;
  for (let i = list.length - 1; i >= from; i--) {
    const s = list[i];
    if (!s || s.unavailable) continue;
    last ??= s;
    if (s.ok) break;
    failures++;
    first = s;
  }
  if (!last) {
    return { ...base, outcome: 'inconclusive', observed: null, message: `health: no samples from ${rule.probe} yet` };
  }
  const spanMs = first ? last.at - first.startedAt : 0;
  const spanText = `over ${seconds(spanMs)}`;
  if (first && failures >= rule.consecutive && spanMs >= minSpan) {
    return {
      ...base,
      outcome: 'fail',
      observed: failures,
      since: first.startedAt,
      message: `health: ${failures} consecutive failures >= ${rule.consecutive} ${spanText} (last: ${last.error ?? 'failed'})`,
    };
  }
  return {
    ...base,
    outcome: 'pass',
    observed: failures,
    message:
      failures >= rule.consecutive
        ? `health: ${failures} consecutive failures ${spanText} < min_span ${seconds(minSpan)}`
        : `health: ${failures} consecutive failures < ${rule.consecutive}`,
  };
}

/** A "stays above a threshold for a while" rule: cpu, memory (ratios), db_latency (ms). */
interface Sustained {
  rule: 'cpu' | 'memory' | 'db_latency';
  probe: string;
  /** The value read from each sample (the rule catalog's, for the probe's type). */
  metric: SampleValueKey;
  threshold: number;
  for: number;
  unit: 'ratio' | 'ms';
  /** Initial delay applies: resource rules skip the new version's warm-up. */
  warmUp: boolean;
  /** A failed sample (query error, timeout) counts as above the threshold. */
  failedIsAbove: boolean;
}

/**
 * Breach when every sample of the trailing run has been above the threshold for at least `for`.
 * Inside a release window, samples of the initial delay are not judged at all (resource rules),
 * so a warm-up spike cannot start the clock.
 */
export function evaluateSustained(r: Sustained, input: RuleInput): RuleVerdict {
  const base = { rule: r.rule, threshold: r.threshold, unit: r.unit };
  const show = (v: number) => (r.unit === 'ratio' ? pct(v) : `${round(v, 1)}ms`);
  let since = windowStart(input);
  if (r.warmUp && input.releaseStartedAt !== null) {
    since = Math.max(since, input.releaseStartedAt + input.initialDelayMs);
    if (input.now < since) {
      return {
        ...base,
        outcome: 'skipped',
        observed: null,
        message: `${r.rule}: skipped during initial_delay (${Math.ceil((since - input.now) / 1000)}s left)`,
      };
    }
  }
  const unavailable = unavailableOf(input, r.probe, since);
  const judged = (s: Sample) => !s.unavailable && (typeof s.values[r.metric] === 'number' || (r.failedIsAbove && !s.ok));
  const above = (s: Sample) => (r.failedIsAbove && !s.ok) || (s.values[r.metric] ?? Number.NEGATIVE_INFINITY) > r.threshold;
  // The latest judged sample and the trailing run above the threshold, read backwards from the
  // newest sample: only the run is visited, however long the window has been open.
  const list = listOf(input, r.probe);
  const from = firstLaunchedFrom(list, since);
  let last: Sample | undefined;
  let runStart: number | null = null;
  for (let i = list.length - 1; i >= from; i--) {
    const s = list[i];
    if (!s || !judged(s)) continue;
    last ??= s;
    if (!above(s)) break;
    runStart = s.startedAt;
  }
  if (unavailable || !last) {
    return unavailable
      ? { ...base, outcome: 'error', observed: null, message: `${r.rule}: probe ${r.probe} unavailable: ${unavailable.error ?? 'no data'}` }
      : { ...base, outcome: 'inconclusive', observed: null, message: `${r.rule}: no samples from ${r.probe} yet` };
  }
  const latest = last.values[r.metric] ?? Number.POSITIVE_INFINITY;
  const latestText = r.failedIsAbove && !last.ok ? `failing (${last.error ?? 'error'})` : show(latest);
  const sustainedMs = runStart === null ? 0 : input.now - runStart;
  const breached = runStart !== null && sustainedMs >= r.for;
  const secs = (ms: number) => `${Math.round(ms / 1000)}s`;
  return {
    ...base,
    outcome: breached ? 'fail' : 'pass',
    observed: Number.isFinite(latest) ? round(latest, 4) : null,
    ...(breached && runStart !== null ? { since: runStart } : {}),
    message:
      runStart === null
        ? `${r.rule}: ${latestText} <= ${show(r.threshold)}`
        : `${r.rule}: ${latestText} > ${show(r.threshold)} for ${secs(sustainedMs)} ${breached ? '>=' : '<'} ${secs(r.for)}`,
  };
}

type Resource = NonNullable<RulesConfig['cpu']>;
export function evaluateResource(name: 'cpu' | 'memory', rule: Resource, input: RuleInput): RuleVerdict {
  const base = { rule: name, threshold: rule.threshold, unit: 'ratio' as const };
  const metric = metricOf(readingFor(name, rule.probe, input, base), base);
  if (typeof metric !== 'string') return metric;
  // Written out, not spread from `base`: a spread-built object made every read of it in the
  // sample loop slow (2.5× the CPU per evaluation, measured), and this runs on every sample.
  return evaluateSustained({ rule: name, probe: rule.probe, metric, threshold: rule.threshold, for: rule.for, unit: 'ratio', warmUp: true, failedIsAbove: false }, input);
}

type DbLatency = NonNullable<RulesConfig['db_latency']>;
export function evaluateDbLatency(rule: DbLatency, input: RuleInput): RuleVerdict {
  const base = { rule: 'db_latency' as const, threshold: rule.threshold, unit: 'ms' as const };
  const metric = metricOf(readingFor('db_latency', rule.probe, input, base), base);
  if (typeof metric !== 'string') return metric;
  // Written out, not spread from `base`: see evaluateResource.
  return evaluateSustained({ rule: 'db_latency', probe: rule.probe, metric, threshold: rule.threshold, for: rule.for, unit: 'ms', warmUp: false, failedIsAbove: true }, input);
}

/** The value a sustained rule reads from its probe, as the rule catalog says; or the verdict why there is none. */
function metricOf(found: SourceReading | RuleVerdict, base: Pick<RuleVerdict, 'rule' | 'threshold' | 'unit'>): SampleValueKey | RuleVerdict {
  if (!isReading(found)) return found;
  return found.values[0] ?? { ...base, outcome: 'error', observed: null, message: `${base.rule}: the rule catalog names no value to read` };
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
  if (rules.db_latency?.enabled) verdicts.push(evaluateDbLatency(rules.db_latency, input));
  return verdicts;
}

/**
 * What a stable version looked like to users, learnt from its samples: p95 latency (of checks,
 * or the median of traffic p95 readings) and, from traffic sources, the error ratio. Null when
 * there is too little to trust.
 */
export function learnBaseline(
  samples: readonly Sample[],
  source: string,
  minSamples: number | undefined,
): { p95Ms: number; errorRatio?: number; samples: number } | null {
  // The baseline is latency_ratio's: learnt from what that rule reads of this source.
  const reading = readingOf('latency_ratio', source);
  if (!reading) return null;
  if (reading.kind === 'checks') {
    const values = latencies(samples);
    const p95Ms = percentile(values, 95);
    return values.length >= (minSamples ?? reading.minSamples ?? 1) && p95Ms !== null ? { p95Ms, samples: values.length } : null;
  }
  const p95s = samples.map((s) => s.values.p95_ms).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  // A baseline summarises minutes of traffic: ask for more readings than a rule needs to judge.
  const needed = Math.max(5, minSamples ?? reading.minSamples ?? 1);
  const p95Ms = percentile(p95s, 50);
  if (p95s.length < needed || p95Ms === null) return null;
  // Counted traffic gives the ratio of all its requests; a Prometheus source, the median reading.
  let requests = 0;
  let errors = 0;
  for (const s of samples) {
    if (!s.traffic) continue;
    requests += s.traffic.requests;
    errors += s.traffic.errors;
  }
  const ratios = samples.map((s) => s.values.error_ratio).filter((v): v is number => typeof v === 'number');
  const errorRatio = requests > 0 ? errors / requests : (percentile(ratios, 50) ?? undefined);
  return {
    p95Ms,
    ...(errorRatio !== undefined ? { errorRatio: round(errorRatio, 4) } : {}),
    samples: p95s.length,
  };
}
