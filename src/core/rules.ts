/**
 * Rules: pure functions of samples, time and the release window. Each verdict names the rule,
 * the observed value and the threshold. No data is inconclusive, never a pass.
 */
import { MIN_SAMPLES_BY_SOURCE, type RulesConfig } from '../config/schema.js';
import { advance, evidenceOf, INITIAL_STATE, sequentialParams, type SequentialEvidence, type SequentialParams, type SequentialState } from './sequential.js';
import type { LatencyBucket, Outcome, RuleName, RuleVerdict, Sample } from './types.js';

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
  /**
   * The most looks (probe samples) the release window can hold: the sequential rules' crossing
   * level pays for each, so the false-rollback budget holds over the whole window.
   */
  looks: number;
  /** The previous version's learnt error ratio per traffic probe: a tolerance below it is raised to it. */
  baselineErrorRatio?: ReadonlyMap<string, number>;
  /**
   * A cache the caller keeps between evaluations so the sequential rules fold only new samples.
   * Results are the same without it (everything is folded again).
   */
  memo?: RuleMemo;
}

/** Per rule and probe: how far the sequential test has folded the probe's sample list. */
export type RuleMemo = Map<
  string,
  {
    list: readonly Sample[];
    since: number | null;
    paramsKey: string;
    last: Sample;
    lastIndex: number;
    /** Samples from the window start up to and including `last`. */
    folded: number;
    state: SequentialState;
    samples: number;
  }
>;

/** Whether a rule's source counts checks (http) or reports real traffic (prometheus, scrape, access_log). */
function sourceOf(input: RuleInput, probe: string): keyof typeof MIN_SAMPLES_BY_SOURCE {
  const type = input.probeTypes.get(probe);
  return type !== undefined && type !== 'http' && Object.hasOwn(MIN_SAMPLES_BY_SOURCE, type) ? (type as keyof typeof MIN_SAMPLES_BY_SOURCE) : 'http';
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

/** Rounds to `digits` decimals; arithmetic rather than toFixed, which is slow and runs on every evaluation. */
const round = (n: number, digits = 3) => {
  const scale = 10 ** digits;
  return Math.round(n * scale) / scale;
};
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
  const spanMs = first ? last.at - first.startedAt : 0;
  const spanText = `over ${seconds(spanMs)}`;
  if (failures >= rule.consecutive && spanMs >= minSpan) {
    return {
      ...base,
      outcome: 'fail',
      observed: failures,
      since: first!.startedAt,
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

const seconds = (ms: number) => (ms < 10_000 ? `${round(ms / 1000, 2)}s` : `${Math.round(ms / 1000)}s`);

/** A source that counts real traffic (requests and errors per interval): scrape, access_log. */
export const isTrafficSource = (source: string) => source !== 'http' && source !== 'prometheus' && Object.hasOwn(MIN_SAMPLES_BY_SOURCE, source);

/**
 * What a sequential rule counts in one sample: `n` trials, `k` bad ones. Null when the sample
 * counted nothing (no data, never zero).
 */
type TrialCounter = (sample: Sample) => { n: number; k: number } | null;

/**
 * Folds the probe's samples of the window into the sequential test, in launch order. With a memo
 * (a cache the caller keeps between evaluations) only the samples added since the last call are
 * folded; any other change to the list (a sample inserted out of order, old ones dropped inside the
 * window) folds it again from the start, so the result is the same with or without the memo.
 */
function foldSequential(
  input: RuleInput,
  key: string,
  probe: string,
  params: SequentialParams,
  paramsKey: string,
  count: TrialCounter,
): { state: SequentialState; samples: number } {
  const list = listOf(input, probe);
  const from = firstLaunchedFrom(list, windowStart(input));
  const memo = input.memo;
  const cached = memo?.get(key);
  let state = INITIAL_STATE;
  let next = from;
  let samples = 0;
  if (cached && cached.list === list && cached.since === input.since && cached.paramsKey === paramsKey) {
    // Where the last folded sample is now: old samples may have been dropped before it.
    let i = Math.min(cached.lastIndex, list.length - 1);
    while (i >= from && list[i] !== cached.last) i--;
    if (i >= from && i - from + 1 === cached.folded) {
      state = cached.state;
      next = i + 1;
      samples = cached.samples;
    }
  }
  let folded = next - from;
  for (let i = next; i < list.length; i++, folded++) {
    const s = list[i]!;
    if (s.unavailable) continue;
    const trials = count(s);
    if (!trials) continue;
    samples++;
    // The batch covers the time since the probe's previous sample answered (a scrape's interval,
    // the gap between two checks); the first one, a nominal fast interval.
    const previous = i > 0 ? list[i - 1]! : undefined;
    const spanMs = previous ? Math.max(0, s.at - previous.at) : DEFAULT_BATCH_SPAN_MS;
    state = advance(state, params, { n: trials.n, k: trials.k, at: s.at, spanMs });
  }
  if (memo && list.length > from) {
    memo.set(key, { list, since: input.since, paramsKey, last: list.at(-1)!, lastIndex: list.length - 1, folded, state, samples });
  }
  return { state, samples };
}

const DEFAULT_BATCH_SPAN_MS = 250;

/** The words and numbers every sequential verdict carries. */
function sequentialVerdict(
  base: Pick<RuleVerdict, 'rule' | 'threshold' | 'unit'>,
  params: SequentialParams,
  state: SequentialState,
  describe: () => { what: string; trials: string; rate: (k: number, n: number) => string; detail?: string },
): RuleVerdict {
  const evidence = evidenceOf(state, params);
  const ex = state.excursion;
  // Observed: the bad share of the evidence under way (or of the whole window when there is none).
  const [k, n] = ex ? [ex.k, ex.n] : [state.k, state.n];
  return new SequentialVerdict(base, evidence, n > 0 ? round(k / n, 4) : 0, evidence.crossed && ex ? ex.from : undefined, () => {
    const text = describe();
    const counts = ex
      ? `${text.rate(ex.k, ex.n)} (${fmtCount(ex.k)}/${ex.n} ${text.trials} since the evidence began)`
      : `${text.rate(state.k, state.n)} (${fmtCount(state.k)}/${state.n} ${text.trials} in window)`;
    const stat = `evidence ${evidence.statistic} ${evidence.crossed ? '>=' : '<'} ${evidence.needed} (budget ${pct(params.budget)}, tolerance ${pct(params.p0)})`;
    const detail = text.detail ? `; ${text.detail}` : '';
    return `${text.what}: ${counts} ${evidence.crossed ? '>' : 'not proven >'} ${pct(params.threshold)}: ${stat}${detail}`;
  });
}

/**
 * A sequential rule's verdict. Rules are evaluated after every sample and the sentence is read far
 * less often, so it is written when first read; JSON (state, records, the API) carries it as a
 * plain field.
 */
class SequentialVerdict implements RuleVerdict {
  readonly rule: RuleName;
  readonly outcome: Outcome;
  readonly observed: number;
  readonly threshold: number;
  readonly unit: RuleVerdict['unit'];
  readonly since?: number;
  readonly evidence: SequentialEvidence;
  #message: string | undefined;
  readonly #describe: () => string;

  constructor(base: Pick<RuleVerdict, 'rule' | 'threshold' | 'unit'>, evidence: SequentialEvidence, observed: number, since: number | undefined, describe: () => string) {
    this.rule = base.rule;
    this.outcome = evidence.crossed ? 'fail' : 'pass';
    this.observed = observed;
    this.threshold = base.threshold;
    this.unit = base.unit;
    if (since !== undefined) this.since = since;
    this.evidence = evidence;
    this.#describe = describe;
  }

  get message(): string {
    this.#message ??= this.#describe();
    return this.#message;
  }

  toJSON(): RuleVerdict {
    return {
      rule: this.rule,
      outcome: this.outcome,
      observed: this.observed,
      threshold: this.threshold,
      unit: this.unit,
      message: this.message,
      ...(this.since !== undefined ? { since: this.since } : {}),
      evidence: this.evidence,
    };
  }
}

const fmtCount = (k: number) => (Number.isInteger(k) ? String(k) : k.toFixed(1));

/**
 * The tolerance of a rule, raised to what the previous version already did — but never by more
 * than to 80 % of the threshold: a release as bad as its predecessor is not rolled back, and a
 * predecessor near the threshold does not make the rule blind. A configured tolerance stands.
 */
function toleranceOf(configured: number, threshold: number, learnt: number | undefined): number {
  if (learnt === undefined || learnt <= configured) return configured;
  return Math.max(configured, Math.min(learnt, threshold * MAX_TOLERANCE_SHARE));
}

/** A tolerance this close to the threshold would need far too many requests to tell them apart. */
const MAX_TOLERANCE_SHARE = 0.8;

type ErrorRate = NonNullable<RulesConfig['error_rate']>;
/**
 * Errors of real traffic (scrape, access_log) or failed health checks (http), judged by the
 * sequential test since the window opened. A Prometheus source reports ratios without counts: the
 * median of its latest readings is compared with the threshold instead.
 */
export function evaluateErrorRate(rule: ErrorRate, input: RuleInput): RuleVerdict {
  const base = { rule: 'error_rate' as const, threshold: rule.threshold, unit: 'ratio' as const };
  const source = sourceOf(input, rule.probe);
  const inconclusive = (why: string): RuleVerdict => ({ ...base, outcome: 'inconclusive', observed: null, message: `error_rate: ${why}` });
  if (source === 'prometheus') return prometheusErrorRate(rule, input, base, inconclusive);

  const tolerance = toleranceOf(rule.tolerance ?? rule.threshold * DEFAULT_TOLERANCE_SHARE, rule.threshold, input.baselineErrorRatio?.get(rule.probe));
  const params = sequentialParams({ threshold: rule.threshold, tolerance, budget: rule.budget, looks: input.looks, minSpanMs: rule.min_span });
  const traffic = isTrafficSource(source);
  const count: TrialCounter = traffic
    ? (s) => (s.traffic && s.traffic.requests > 0 ? { n: s.traffic.requests, k: s.traffic.errors } : null)
    : (s) => ({ n: 1, k: s.ok ? 0 : 1 });
  const { state, samples } = foldSequential(input, `error_rate:${rule.probe}`, rule.probe, params, `${params.p0}:${params.h}`, count);
  const needed = minSamples(rule, source);
  if (samples < needed) {
    return inconclusive(`${samples} ${traffic ? 'traffic samples with requests' : 'checks'} in window < min_samples ${needed}`);
  }
  return sequentialVerdict(base, params, state, () => ({ what: 'error_rate', trials: traffic ? 'requests' : 'checks', rate: (k, n) => pct(n > 0 ? k / n : 0) }));
}

/** Without a documented tolerance, 40 % of the threshold: errors at 2 % are never rolled back for a 5 % threshold. */
export const DEFAULT_TOLERANCE_SHARE = 0.4;

function prometheusErrorRate(
  rule: ErrorRate,
  input: RuleInput,
  base: Pick<RuleVerdict, 'rule' | 'threshold' | 'unit'>,
  inconclusive: (why: string) => RuleVerdict,
): RuleVerdict {
  const since = Math.max(windowStart(input), input.now - rule.window);
  const needed = minSamples(rule, 'prometheus');
  const traffic = samplesOf(input, rule.probe, since).filter((s) => typeof s.values.error_ratio === 'number');
  if (traffic.length < needed) return inconclusive(`${traffic.length} traffic samples in window < min_samples ${needed}`);
  // Prometheus already averages over the query's range: the median of the latest samples.
  const ratio = medianOfLatest(traffic.map((s) => s.values.error_ratio!), needed);
  const breached = ratio > rule.threshold;
  return {
    ...base,
    outcome: breached ? 'fail' : 'pass',
    observed: round(ratio, 4),
    ...(breached ? { since: traffic.at(-Math.min(needed, traffic.length))!.startedAt } : {}),
    message: `error_rate: ${pct(ratio)} (${rule.probe}, median of last ${Math.min(needed, traffic.length)}) ${breached ? '>' : '<='} ${pct(rule.threshold)}`,
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
  const bound = buckets.find((b) => b.le >= boundaryMs)!;
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
  const source = sourceOf(input, rule.probe);
  if (source === 'prometheus') return prometheusLatencyRatio(rule, input, base, baseline);
  const boundaryMs = Math.max(rule.ratio * baseline, rule.floor);
  const params = sequentialParams({ threshold: P95_SLOW_SHARE, tolerance: rule.tolerance, budget: rule.budget, looks: input.looks, minSpanMs: rule.min_span });
  const traffic = isTrafficSource(source);
  const count: TrialCounter = traffic
    ? (s) => (s.traffic?.latency ? slowerThan(s.traffic.latency, boundaryMs) : null)
    : (s) => (s.ok && typeof s.values.latency_ms === 'number' ? { n: 1, k: s.values.latency_ms > boundaryMs ? 1 : 0 } : null);
  const { state, samples } = foldSequential(input, `latency_ratio:${rule.probe}`, rule.probe, params, `${params.p0}:${params.h}:${boundaryMs}`, count);
  const needed = minSamples(rule, source);
  if (samples < needed) {
    return { ...base, outcome: 'inconclusive', observed: null, message: `latency_ratio: ${samples} ${traffic ? 'traffic samples with latencies' : 'answered checks'} in window < min_samples ${needed}` };
  }
  // The verdict's threshold is the share of slow requests (5 %); the ratio is in the message.
  return sequentialVerdict({ ...base, threshold: P95_SLOW_SHARE, unit: 'ratio' }, params, state, () => {
    // The bound the latest counted interval's buckets gave (checks: the boundary itself).
    const list = listOf(input, rule.probe);
    let latest: ReturnType<typeof slowerThan> = null;
    for (let i = list.length - 1; traffic && i >= 0 && !latest; i--) latest = list[i]!.traffic?.latency ? slowerThan(list[i]!.traffic!.latency!, boundaryMs) : null;
    const usedMs = latest?.usedMs ?? boundaryMs;
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

function prometheusLatencyRatio(rule: LatencyRatio, input: RuleInput, base: Pick<RuleVerdict, 'rule' | 'threshold' | 'unit'>, baseline: number): RuleVerdict {
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
  if (source === 'http' || !Object.hasOwn(MIN_SAMPLES_BY_SOURCE, source)) {
    const values = latencies(samples);
    const needed = minSamples ?? MIN_SAMPLES_BY_SOURCE.http;
    return values.length >= needed ? { p95Ms: percentile(values, 95)!, samples: values.length } : null;
  }
  const p95s = samples.map((s) => s.values.p95_ms).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  // A baseline summarises minutes of traffic: ask for more readings than a rule needs to judge.
  const needed = Math.max(5, minSamples ?? MIN_SAMPLES_BY_SOURCE[source as keyof typeof MIN_SAMPLES_BY_SOURCE]);
  if (p95s.length < needed) return null;
  // Counted traffic gives the ratio of all its requests; a Prometheus source, the median reading.
  let requests = 0;
  let errors = 0;
  for (const s of samples) {
    if (!s.traffic) continue;
    requests += s.traffic.requests;
    errors += s.traffic.errors;
  }
  const ratios = samples.map((s) => s.values.error_ratio).filter((v): v is number => typeof v === 'number');
  const errorRatio = requests > 0 ? errors / requests : ratios.length > 0 ? percentile(ratios, 50)! : undefined;
  return {
    p95Ms: percentile(p95s, 50)!,
    ...(errorRatio !== undefined ? { errorRatio: round(errorRatio, 4) } : {}),
    samples: p95s.length,
  };
}

export const RULE_NAMES: readonly RuleName[] = ['health', 'error_rate', 'latency_ratio', 'latency_max', 'cpu', 'memory', 'db_latency', 'alert'];
