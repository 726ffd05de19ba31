/**
 * The sequential test behind the traffic rules (error_rate, latency_ratio): every request (or
 * health check) is a Bernoulli trial — an error or not, slower than the latency boundary or not —
 * and the question is whether, since the release window opened, there is enough evidence that the
 * release fails more often than the rule's threshold allows.
 *
 * The statistic is Wald's log-likelihood ratio of H1 (rate = p1) against H0 (rate = p0, the
 * tolerance), floored at 0 after every batch (Page's CUSUM): the floor keeps a long healthy stretch
 * from burying a fault that starts late. p1 is chosen so that the statistic drifts upwards exactly
 * when the true rate is above the rule's threshold, and downwards below it: "errors over 5 %" keeps
 * its meaning.
 *
 * Why the false-rollback budget holds however often it looks: a floored statistic at batch n equals
 * the largest log-likelihood ratio over all start points j ≤ n (the batch boundaries). For each
 * start point, the likelihood ratio is a non-negative martingale of mean 1 under H0, so by Ville's
 * inequality it ever reaches e^h with probability at most e^-h. With at most B batches (looks) in a
 * window, the union over start points bounds the chance of ever crossing h by B·e^-h. The crossing
 * level is therefore h = ln(B / budget): a release at the tolerance is rolled back with probability
 * at most `budget` per window, at every look. (Evidence towards a rollback is also rationed, see
 * below; rationing only lowers the statistic, so the bound still holds.)
 *
 * Persistence: 25 errors in a row are overwhelming evidence under an i.i.d. model, yet a half
 * second blip is not a bad release. Evidence is admitted through a token bucket: a reserve of h/2,
 * refilled at (h/2) / (min_span + 2d) per millisecond of traffic, d being the span a sample covers.
 * Whatever falls in less than min_span — a blip of length L touches samples covering at most
 * L + 2d — adds at most h/2 + (h/2)·(L + 2d)/(min_span + 2d) < h, so it can never breach, while an
 * outage crosses once it has lasted about min_span + 3d. The reserve lets a real but moderate fault
 * spend in a lucky sample what it saved in a quiet one, instead of losing it to a per-sample cap.
 *
 * Pure: no clock, no I/O. Times are epoch milliseconds carried by the batches.
 */

export interface SequentialParams {
  /** H0: the tolerance — a rate at or below it is rolled back with probability ≤ budget. */
  p0: number;
  /** H1: chosen so the statistic's drift changes sign at the threshold. */
  p1: number;
  /** The rule's threshold: above it the statistic drifts upwards. */
  threshold: number;
  /** The false-rollback budget per window. */
  budget: number;
  /** The most batches (looks) a window can have; the crossing level pays for each of them. */
  looks: number;
  /** The crossing level: ln(looks / budget). */
  h: number;
  /** Evidence must span this long (ms) before it can cross. */
  minSpanMs: number;
}

/** One batch of trials: `n` requests (or checks), `k` of them bad, covering `spanMs` of traffic. */
export interface Batch {
  n: number;
  k: number;
  /** When the batch's traffic was counted (its end). */
  at: number;
  /** How much time the batch covers (a scrape's interval, the gap between two checks). */
  spanMs: number;
}

export interface SequentialState {
  /** The floored log-likelihood ratio. */
  statistic: number;
  /** The current excursion (statistic above 0): when its first batch started, and its counts. */
  excursion: { from: number; n: number; k: number } | null;
  /** Every trial counted since the test started. */
  n: number;
  k: number;
  /** Batches seen (looks). */
  batches: number;
  /** Evidence the persistence bucket can still admit; null: full (the reserve, h/2). */
  tokens: number | null;
}

export const INITIAL_STATE: SequentialState = Object.freeze({ statistic: 0, excursion: null, n: 0, k: 0, batches: 0, tokens: null });

/** The log-likelihood ratio of one bad and one good trial. */
function increments(p: Pick<SequentialParams, 'p0' | 'p1'>): { bad: number; good: number } {
  return { bad: Math.log(p.p1 / p.p0), good: Math.log((1 - p.p1) / (1 - p.p0)) };
}

/** The rate at which a test of p0 against p1 has zero drift. */
export function indifferenceRate(p0: number, p1: number): number {
  const { bad, good } = increments({ p0, p1 });
  return -good / (bad - good);
}

/**
 * The parameters for a rule: p0 = tolerance, p1 so that the drift changes sign at `threshold`,
 * h = ln(looks / budget). Throws on a tolerance not below the threshold (the schema rejects it).
 */
export function sequentialParams(input: {
  threshold: number;
  tolerance: number;
  budget: number;
  looks: number;
  minSpanMs: number;
}): SequentialParams {
  // Rules ask for the same parameters at every evaluation: the bisection runs once per set.
  const key = `${input.threshold}:${input.tolerance}:${input.budget}:${input.looks}:${input.minSpanMs}`;
  const known = paramsCache.get(key);
  if (known) return known;
  const params = computeParams(input);
  if (paramsCache.size >= 64) paramsCache.clear();
  paramsCache.set(key, params);
  return params;
}

const paramsCache = new Map<string, SequentialParams>();

function computeParams(input: { threshold: number; tolerance: number; budget: number; looks: number; minSpanMs: number }): SequentialParams {
  const { threshold, tolerance, budget, minSpanMs } = input;
  if (!(tolerance > 0 && tolerance < threshold && threshold < 1)) {
    throw new RangeError(`tolerance ${tolerance} must be above 0 and below the threshold ${threshold} (< 1)`);
  }
  // The indifference rate grows with p1 (from p0 towards 1): bisect for the threshold.
  let lo = threshold;
  let hi = 1 - 1e-9;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (indifferenceRate(tolerance, mid) < threshold) lo = mid;
    else hi = mid;
  }
  const looks = Math.max(1, Math.ceil(input.looks));
  return Object.freeze({ p0: tolerance, p1: (lo + hi) / 2, threshold, budget, looks, h: Math.log(looks / budget), minSpanMs });
}

/** The persistence bucket's reserve: evidence admitted at once before the refill rate limits it. */
export function reserve(params: SequentialParams): number {
  return params.h / 2;
}

/** Evidence the bucket admits per millisecond of traffic, for samples covering `spanMs` each. */
export function refillPerMs(params: SequentialParams, spanMs: number): number {
  return (params.h - reserve(params)) / (params.minSpanMs + 2 * Math.max(0, spanMs));
}

/** Adds one batch. Returns a new state; the old one is left as it was. */
export function advance(state: SequentialState, params: SequentialParams, batch: Batch): SequentialState {
  if (batch.n <= 0) return state;
  const { bad, good } = increments(params);
  const raw = batch.k * bad + (batch.n - batch.k) * good;
  const full = reserve(params);
  let tokens = Math.min(full, (state.tokens ?? full) + refillPerMs(params, batch.spanMs) * Math.max(0, batch.spanMs));
  // Only evidence towards a rollback is rationed; evidence for the release always counts in full.
  const added = raw > 0 ? Math.min(raw, tokens) : raw;
  if (added > 0) tokens -= added;
  const statistic = Math.max(0, state.statistic + added);
  let excursion = state.excursion;
  if (statistic <= 0) excursion = null;
  else if (excursion === null) excursion = { from: batch.at - batch.spanMs, n: batch.n, k: batch.k };
  else excursion = { from: excursion.from, n: excursion.n + batch.n, k: excursion.k + batch.k };
  return { statistic, excursion, n: state.n + batch.n, k: state.k + batch.k, batches: state.batches + 1, tokens: tokens >= full ? null : tokens };
}

/** What a verdict reports of the test: the statistic against its level, the counts, the budget. */
export interface SequentialEvidence {
  statistic: number;
  /** The level the statistic must reach: ln(looks / budget). */
  needed: number;
  budget: number;
  tolerance: number;
  threshold: number;
  p1: number;
  looks: number;
  minSpanMs: number;
  /** Trials and bad trials since the test started (the release window opened). */
  n: number;
  k: number;
  /** The evidence under way: since when, its trials and bad trials. Null when the statistic is 0. */
  excursion: { from: number; n: number; k: number } | null;
  crossed: boolean;
}

export function evidenceOf(state: SequentialState, params: SequentialParams): SequentialEvidence {
  return {
    statistic: round(state.statistic, 2),
    needed: round(params.h, 2),
    budget: params.budget,
    tolerance: round(params.p0, 6),
    threshold: params.threshold,
    p1: round(params.p1, 4),
    looks: params.looks,
    minSpanMs: params.minSpanMs,
    n: state.n,
    k: round(state.k, 2),
    excursion: state.excursion && { ...state.excursion, k: round(state.excursion.k, 2) },
    crossed: state.statistic >= params.h,
  };
}

/** Rounds to `digits` decimals; arithmetic rather than toFixed, which is slow and runs on every evaluation. */
const round = (n: number, digits = 3) => {
  const scale = 10 ** digits;
  return Math.round(n * scale) / scale;
};

/**
 * The most batches a release window can hold: probes run every `fastIntervalMs` for the first
 * `fastForMs`, every `intervalMs` afterwards. Each batch is one look of the test.
 */
export function windowLooks(schedule: { windowMs: number; fastForMs: number; fastIntervalMs: number; intervalMs: number }): number {
  const fast = Math.min(schedule.fastForMs, schedule.windowMs);
  const slow = Math.max(0, schedule.windowMs - fast);
  return Math.ceil(fast / Math.max(1, schedule.fastIntervalMs)) + Math.ceil(slow / Math.max(1, schedule.intervalMs));
}
