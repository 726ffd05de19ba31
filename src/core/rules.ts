/**
 * Rules: pure functions of samples, time and the release window. Each verdict names the rule,
 * the observed value and the threshold. No data is inconclusive, never a pass.
 */
import { MIN_SAMPLES_BY_SOURCE, type RulesConfig } from '../config/schema.js';
import type { RuleName, RuleVerdict, Sample } from './types.js';

export interface RuleInput {
  /**
   * Recent samples per probe name, each list ordered by launch time (`startedAt`, ties in arrival
   * order): the guard inserts each sample in place. Rules binary-search the window start and read
   * backwards from the newest, so an evaluation costs the same early and late in a window.
   */
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
  /** Probe name → probe type, so a rule knows whether it reads checks or real traffic. */
  probeTypes: ReadonlyMap<string, string>;
}

/** Whether a rule's source counts checks (http) or reports real traffic (prometheus, scrape). */
function sourceOf(input: RuleInput, probe: string): 'http' | 'scrape' | 'prometheus' {
  const type = input.probeTypes.get(probe);
  // An access-log read counts an interval of traffic exactly as a scrape does (same values, same
  // min_samples), so it is judged as one.
  if (type === 'access_log') return 'scrape';
  return type === 'scrape' || type === 'prometheus' ? type : 'http';
}

function minSamples(rule: { min_samples?: number | undefined }, source: keyof typeof MIN_SAMPLES_BY_SOURCE): number {
  return rule.min_samples ?? MIN_SAMPLES_BY_SOURCE[source];
}

/** The median of the latest `n` values: one noisy interval can neither raise nor hide a breach. */
function medianOfLatest(values: readonly number[], n: number): number {
  return percentile(values.slice(-n), 50)!;
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

const NO_SAMPLES: readonly Sample[] = [];
const listOf = (input: RuleInput, probe: string): readonly Sample[] => input.samples.get(probe) ?? NO_SAMPLES;

/** The index of the first sample launched at or after `since` in a list ordered by `startedAt`. */
export function firstLaunchedFrom(list: readonly Sample[], since: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.startedAt < since) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Where a sample launched at `startedAt` goes in a list ordered by `startedAt`: after every sample
 * launched at or before it. Samples nearly always complete in launch order, so the search starts
 * at the end and usually stops there at once.
 */
export function insertionIndex(list: readonly Sample[], startedAt: number): number {
  let i = list.length;
  while (i > 0 && list[i - 1]!.startedAt > startedAt) i--;
  return i;
}

/** Samples launched at or after `since` that observed something, in launch order. */
function samplesOf(input: RuleInput, probe: string, since: number): Sample[] {
  const list = listOf(input, probe);
  const out: Sample[] = [];
  for (let i = firstLaunchedFrom(list, since); i < list.length; i++) if (!list[i]!.unavailable) out.push(list[i]!);
  return out;
}

/** The latest sample launched at or after `since`, when it could not observe. */
function unavailableOf(input: RuleInput, probe: string, since: number): Sample | undefined {
  const last = listOf(input, probe).at(-1);
  return last && last.startedAt >= since && last.unavailable ? last : undefined;
}

const windowStart = (input: RuleInput) => input.since ?? Number.NEGATIVE_INFINITY;

type Health = NonNullable<RulesConfig['health']>;
export function evaluateHealth(rule: Health, input: RuleInput): RuleVerdict {
  const list = listOf(input, rule.probe);
  const from = firstLaunchedFrom(list, windowStart(input));
  const base = { rule: 'health' as const, threshold: rule.consecutive, unit: 'failures' as const };
  // The trailing run of failures, read backwards from the newest sample: only the run is visited.
  let last: Sample | undefined;
  let first: Sample | undefined;
  let failures = 0;
  for (let i = list.length - 1; i >= from; i--) {
    const s = list[i]!;
    if (s.unavailable) continue;
    last ??= s;
    if (s.ok) break;
    failures++;
    first = s;
  }
  if (!last) {
    return { ...base, outcome: 'inconclusive', observed: null, message: `health: no samples from ${rule.probe} yet` };
  }
  if (failures >= rule.consecutive) {
    return {
      ...base,
      outcome: 'fail',
      observed: failures,
      since: first!.startedAt,
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
  const source = sourceOf(input, rule.probe);
  const needed = minSamples(rule, source);
  const verdict = (ratio: number, detail: string, faultAt: number): RuleVerdict => {
    const breached = ratio > rule.threshold;
    return {
      ...base,
      outcome: breached ? 'fail' : 'pass',
      observed: round(ratio, 4),
      ...(breached ? { since: faultAt } : {}),
      message: `error_rate: ${pct(ratio)} (${detail}) ${breached ? '>' : '<='} ${pct(rule.threshold)}`,
    };
  };
  const inconclusive = (why: string): RuleVerdict => ({ ...base, outcome: 'inconclusive', observed: null, message: `error_rate: ${why}` });

  if (source === 'http') {
    if (samples.length < needed) return inconclusive(`${samples.length} samples in window < min_samples ${needed}`);
    const failed = samples.filter((s) => !s.ok);
    return verdict(failed.length / samples.length, `${failed.length}/${samples.length} checks`, failed[0]?.startedAt ?? input.now);
  }
  const traffic = samples.filter((s) => typeof s.values.error_ratio === 'number');
  if (traffic.length < needed) return inconclusive(`${traffic.length} traffic samples in window < min_samples ${needed}`);
  if (traffic.every((s) => typeof s.values.requests === 'number')) {
    // The ratio of the last `min_requests` requests: recent enough to see a fault within
    // seconds, large enough that 2 % background errors do not read as 5 %.
    let requests = 0;
    let errors = 0;
    let from = traffic.length;
    while (from > 0 && requests < rule.min_requests) {
      from--;
      const s = traffic[from]!;
      requests += s.values.requests!;
      errors += s.values.requests! * s.values.error_ratio!;
    }
    if (requests < rule.min_requests) return inconclusive(`${requests} requests in window < min_requests ${rule.min_requests}`);
    return verdict(errors / requests, `${Math.round(errors)}/${requests} requests`, traffic[from]!.startedAt);
  }
  // Prometheus already averages over the query's range: the median of the latest samples.
  const values = traffic.map((s) => s.values.error_ratio!);
  return verdict(medianOfLatest(values, needed), `${rule.probe}, median of last ${Math.min(needed, values.length)}`, traffic.at(-Math.min(needed, traffic.length))!.startedAt);
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

/**
 * The p95 latency a latency rule judges: of http checks in the window, or the median of the
 * latest traffic p95 readings (prometheus, scrape). Null with a reason when there is too little.
 */
function observedP95(
  rule: { probe: string; window: number; min_samples?: number | undefined },
  input: RuleInput,
): { p95: number; detail: string } | { p95: null; why: string } {
  const since = Math.max(windowStart(input), input.now - rule.window);
  const samples = samplesOf(input, rule.probe, since);
  const source = sourceOf(input, rule.probe);
  const needed = minSamples(rule, source);
  if (source === 'http') {
    const values = latencies(samples);
    if (values.length < needed) return { p95: null, why: `${values.length} answered checks in window < min_samples ${needed}` };
    return { p95: percentile(values, 95)!, detail: `p95 of ${values.length} checks` };
  }
  const values = samples.map((s) => s.values.p95_ms).filter((v): v is number => typeof v === 'number');
  if (values.length < needed) return { p95: null, why: `${values.length} traffic samples in window < min_samples ${needed}` };
  return { p95: medianOfLatest(values, needed), detail: `traffic p95, median of last ${Math.min(needed, values.length)}` };
}

type LatencyRatio = NonNullable<RulesConfig['latency_ratio']>;
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
  const seen = observedP95(rule, input);
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
  const seen = observedP95(rule, input);
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

/** A "stays above a threshold for a while" rule: cpu, memory (ratios), db_latency (ms). */
interface Sustained {
  rule: 'cpu' | 'memory' | 'db_latency';
  probe: string;
  /** The value read from each sample. */
  metric: string;
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
  const above = (s: Sample) => (r.failedIsAbove && !s.ok) || s.values[r.metric]! > r.threshold;
  // The latest judged sample and the trailing run above the threshold, read backwards from the
  // newest sample: only the run is visited, however long the window has been open.
  const list = listOf(input, r.probe);
  const from = firstLaunchedFrom(list, since);
  let last: Sample | undefined;
  let runStart: number | null = null;
  for (let i = list.length - 1; i >= from; i--) {
    const s = list[i]!;
    if (!judged(s)) continue;
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
    ...(breached ? { since: runStart! } : {}),
    message:
      runStart === null
        ? `${r.rule}: ${latestText} <= ${show(r.threshold)}`
        : `${r.rule}: ${latestText} > ${show(r.threshold)} for ${secs(sustainedMs)} ${breached ? '>=' : '<'} ${secs(r.for)}`,
  };
}

type Resource = NonNullable<RulesConfig['cpu']>;
export function evaluateResource(name: 'cpu' | 'memory', rule: Resource, input: RuleInput): RuleVerdict {
  return evaluateSustained(
    { rule: name, probe: rule.probe, metric: name, threshold: rule.threshold, for: rule.for, unit: 'ratio', warmUp: true, failedIsAbove: false },
    input,
  );
}

type DbLatency = NonNullable<RulesConfig['db_latency']>;
export function evaluateDbLatency(rule: DbLatency, input: RuleInput): RuleVerdict {
  return evaluateSustained(
    { rule: 'db_latency', probe: rule.probe, metric: 'latency_ms', threshold: rule.threshold, for: rule.for, unit: 'ms', warmUp: false, failedIsAbove: true },
    input,
  );
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
  if (source !== 'scrape' && source !== 'prometheus') {
    const values = latencies(samples);
    const needed = minSamples ?? MIN_SAMPLES_BY_SOURCE.http;
    return values.length >= needed ? { p95Ms: percentile(values, 95)!, samples: values.length } : null;
  }
  const p95s = samples.map((s) => s.values.p95_ms).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  // A baseline summarises minutes of traffic: ask for more readings than a rule needs to judge.
  const needed = Math.max(5, minSamples ?? MIN_SAMPLES_BY_SOURCE[source]);
  if (p95s.length < needed) return null;
  const ratios = samples.map((s) => s.values.error_ratio).filter((v): v is number => typeof v === 'number');
  return {
    p95Ms: percentile(p95s, 50)!,
    ...(ratios.length > 0 ? { errorRatio: round(percentile(ratios, 50)!, 4) } : {}),
    samples: p95s.length,
  };
}

export const RULE_NAMES: readonly RuleName[] = ['health', 'error_rate', 'latency_ratio', 'latency_max', 'cpu', 'memory', 'db_latency'];
