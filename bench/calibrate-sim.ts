/**
 * The simulation behind `npm run calibrate`: seeded release windows whose samples are shaped as the
 * scrape probe produces them (or as http health checks), pushed through the pure rules
 * (`evaluateRules` from src/core/rules.ts) after every sample, as the guard does. Nothing here
 * computes the statistic: it draws traffic, builds samples and records when a rule failed.
 *
 * Traffic model (per scrape interval, split at fault boundaries): requests ~ Poisson(rate × span);
 * errors ~ Binomial(requests, error rate); latencies log-normal (median 10 ms, p95 24 ms = the
 * baseline p95), times a fault's factor, counted into histogram buckets (multinomial). Every request
 * draws its latency from the same distribution, errors included.
 */
import { configSchema, type RulesConfig } from '../src/config/schema.js';
import { evaluateRules, insertionIndex, type RuleInput, type RuleMemo } from '../src/core/rules.js';
import { windowLooks } from '../src/core/sequential.js';
import type { LatencyBucket, Sample } from '../src/core/types.js';
import { histogramQuantile } from '../src/probes/histogram-quantile.js';

// ---------------------------------------------------------------------------------------------
// Random numbers: one mulberry32 stream per window, seeded from (seed, cell, window index).

export type Rng = () => number;

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of a string: the seed of one window's stream. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Poisson by inversion (exact up to floating point); normal approximation beyond λ = 700. */
export function poisson(rng: Rng, lambda: number): number {
  if (!(lambda > 0)) return 0;
  if (lambda > 700) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * normal(rng)));
  let p = Math.exp(-lambda);
  let cdf = p;
  let k = 0;
  const u = rng();
  while (u > cdf && k < lambda * 10 + 100) {
    k++;
    p *= lambda / k;
    cdf += p;
  }
  return k;
}

/** Binomial by inversion (exact up to floating point); small n by Bernoulli trials. */
export function binomial(rng: Rng, n: number, p: number): number {
  if (n <= 0 || !(p > 0)) return 0;
  if (p >= 1) return n;
  if (p > 0.5) return n - binomial(rng, n, 1 - p);
  if (n < 16) {
    let k = 0;
    for (let i = 0; i < n; i++) if (rng() < p) k++;
    return k;
  }
  const q = 1 - p;
  let r = Math.pow(q, n);
  if (r < 1e-290) return Math.min(n, Math.max(0, Math.round(n * p + Math.sqrt(n * p * q) * normal(rng))));
  const s = p / q;
  const a = (n + 1) * s;
  let u = rng();
  let k = 0;
  while (u > r && k < n) {
    u -= r;
    k++;
    r *= a / k - s;
  }
  return k;
}

function normal(rng: Rng): number {
  const u = Math.max(rng(), 1e-300);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** Standard normal CDF (erfc by Numerical Recipes' Chebyshev fit, relative error < 1.2e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * x);
  const erfc =
    t *
    Math.exp(
      -x * x -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return z >= 0 ? 1 - erfc / 2 : erfc / 2;
}

// ---------------------------------------------------------------------------------------------
// Latency model and histogram buckets.

export const LATENCY_MEDIAN_MS = 10;
/** σ of ln(latency): p95 = median × e^(1.645 σ) = 24 ms. */
export const LATENCY_SIGMA = Math.log(2.4) / 1.6448536;
/** The stable version's p95 the latency rule compares with (the true p95 of the model). */
export const BASELINE_P95_MS = LATENCY_MEDIAN_MS * Math.exp(1.6448536 * LATENCY_SIGMA);

/** Finite bucket bounds in ms (+Inf is added). prom: prom-client's default seconds buckets. */
export const BUCKET_SETS = {
  prom: [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
  fine: [1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000],
} as const;
export type BucketSet = keyof typeof BUCKET_SETS;

/** Probability of each bucket (non-cumulative; the last entry is above the largest bound). */
function bucketProbabilities(bounds: readonly number[], factor: number): number[] {
  const mu = Math.log(LATENCY_MEDIAN_MS * factor);
  const out: number[] = [];
  let below = 0;
  for (const le of bounds) {
    const cdf = normalCdf((Math.log(le) - mu) / LATENCY_SIGMA);
    out.push(Math.max(0, cdf - below));
    below = cdf;
  }
  out.push(Math.max(0, 1 - below));
  return out;
}

/** The true share of requests slower than `ms` under a latency factor (for the report). */
export function trueSlowShare(ms: number, factor: number): number {
  return 1 - normalCdf((Math.log(ms) - Math.log(LATENCY_MEDIAN_MS * factor)) / LATENCY_SIGMA);
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

export const WINDOW_MS = 600_000;
/** The guard's default schedule: 250 ms for the first 2 minutes of a window, then 1 s. */
export const SCHEDULE = { windowMs: WINDOW_MS, fastForMs: 120_000, fastIntervalMs: 250, intervalMs: 1000 } as const;
export const LOOKS = windowLooks(SCHEDULE);
/** How long one scrape takes (launch to answer). */
const SCRAPE_MS = 3;
/** Fast timeout of an http check (auto: 10 × a p99 of ~20 ms, floored at 500 ms) and the probe's own timeout. */
const CHECK_FAST_TIMEOUT_MS = 500;
const CHECK_TIMEOUT_MS = 2000;

export type Expect = 'healthy' | 'benign' | 'detect' | 'informative';

export interface Fault {
  /** ms after the window opened. */
  startMs: number;
  /** Infinity: until the window ends. */
  durationMs: number;
  /** Error rate while the fault lasts (traffic), or checks failing (health). */
  errorRate?: number;
  /** Latencies multiplied by this while the fault lasts. */
  latencyFactor?: number;
  /** Health checks: refused at once, or hanging until the check's timeout. */
  checkFailure?: 'refused' | 'hang';
}

export interface Cell {
  id: string;
  family: 'traffic' | 'health';
  /** Scenario name without rate / start / buckets, e.g. "errors 10%". */
  scenario: string;
  expect: Expect;
  /** Requests per second (traffic) or 0 (health: the http probe's schedule). */
  rate: number;
  buckets: BucketSet;
  /** Error rate of the healthy traffic (or the share of failed health checks). */
  baselineErrors: number;
  fault: Fault | null;
  windows: number;
}

export const RATES = [5, 50, 500] as const;
export const HEALTHY_ERROR_RATES = [0, 0.005, 0.01, 0.02] as const;
/** Baseline error rate of the traffic around a fault. */
export const FAULT_BASELINE_ERRORS = 0.01;
export const FAULT_STARTS_MS = [0, 60_000, 300_000, 540_000] as const;

const pctText = (r: number) => `${Number((r * 100).toFixed(2))}%`;

/**
 * Every cell of the simulation for `n` (the scale: about n healthy and n faulty traffic windows).
 * Healthy windows: the 2 % baseline (the default tolerance, the worst case) gets 3 shares, the others 1.
 * Faults (including the informative 5.5 %, 7 % and 2 s blips): about n in all; benign faults, half a
 * fault cell each; health-rule cells, n / 50 each.
 */
export function cells(n: number): Cell[] {
  const out: Cell[] = [];
  const healthyUnit = Math.max(1, Math.ceil(n / (6 * RATES.length * 2)));
  const faultCell = Math.max(1, Math.ceil(n / 120));
  // Benign faults run whole windows like healthy ones; half as many as a fault cell.
  const benignCell = Math.max(1, Math.ceil(n / 240));
  const healthCell = Math.max(1, Math.ceil(n / 50));
  const add = (c: Omit<Cell, 'id'>) => {
    const start = c.fault ? `@${c.fault.startMs / 1000}s` : '';
    out.push({ ...c, id: `${c.family}|${c.scenario}|${c.rate}|${c.buckets}|${start}` });
  };
  for (const buckets of ['prom', 'fine'] as const) {
    for (const e of HEALTHY_ERROR_RATES) {
      for (const rate of RATES) {
        add({ family: 'traffic', scenario: `healthy ${pctText(e)} errors`, expect: 'healthy', rate, buckets, baselineErrors: e, fault: null, windows: healthyUnit * (e === 0.02 ? 3 : 1) });
      }
    }
  }
  const errorFaults: [number, Expect][] = [
    [0.055, 'informative'],
    [0.07, 'informative'],
    [0.1, 'detect'],
    [0.5, 'detect'],
    [1, 'detect'],
  ];
  for (const startMs of FAULT_STARTS_MS) {
    for (const rate of RATES) {
      for (const [errorRate, expect] of errorFaults) {
        add({ family: 'traffic', scenario: `errors ${pctText(errorRate)}`, expect, rate, buckets: 'prom', baselineErrors: FAULT_BASELINE_ERRORS, fault: { startMs, durationMs: Infinity, errorRate }, windows: faultCell });
      }
      add({ family: 'traffic', scenario: 'blip 0.5s 100% errors', expect: 'benign', rate, buckets: 'prom', baselineErrors: FAULT_BASELINE_ERRORS, fault: { startMs, durationMs: 500, errorRate: 1 }, windows: benignCell });
      add({ family: 'traffic', scenario: 'blip 2s 100% errors', expect: 'informative', rate, buckets: 'prom', baselineErrors: FAULT_BASELINE_ERRORS, fault: { startMs, durationMs: 2000, errorRate: 1 }, windows: faultCell });
      for (const buckets of ['prom', 'fine'] as const) {
        for (const [factor, expect] of [
          [1.5, 'benign'],
          [2, 'benign'],
          [3.5, 'detect'],
          [10, 'detect'],
        ] as [number, Expect][]) {
          add({ family: 'traffic', scenario: `latency x${factor}`, expect, rate, buckets, baselineErrors: FAULT_BASELINE_ERRORS, fault: { startMs, durationMs: Infinity, latencyFactor: factor }, windows: expect === 'benign' ? benignCell : faultCell });
        }
      }
    }
  }
  add({ family: 'health', scenario: 'health: 0.5% failed checks', expect: 'healthy', rate: 0, buckets: 'prom', baselineErrors: 0.005, fault: null, windows: healthCell });
  for (const startMs of FAULT_STARTS_MS) {
    add({ family: 'health', scenario: 'health: blip 0.5s', expect: 'benign', rate: 0, buckets: 'prom', baselineErrors: 0, fault: { startMs, durationMs: 500, errorRate: 1, checkFailure: 'refused' }, windows: healthCell });
    add({ family: 'health', scenario: 'health: outage (refused)', expect: 'detect', rate: 0, buckets: 'prom', baselineErrors: 0, fault: { startMs, durationMs: Infinity, errorRate: 1, checkFailure: 'refused' }, windows: healthCell });
    add({ family: 'health', scenario: 'health: hang (timeouts)', expect: 'detect', rate: 0, buckets: 'prom', baselineErrors: 0, fault: { startMs, durationMs: Infinity, errorRate: 1, checkFailure: 'hang' }, windows: healthCell });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// One window.

/** What happened in one window. */
export interface WindowResult {
  /** A rule failed (the guard would roll back). */
  rolledBack: boolean;
  /** ms after the window opened when the first rule failed; null if none did. */
  atMs: number | null;
  /** The rules that failed at that evaluation. */
  rules: string[];
  /** The rollback came before the fault started (a false rollback in a faulty window). */
  early: boolean;
  /** ms from the fault's start to the rollback; null without a fault or a rollback after it. */
  delayMs: number | null;
  /** Requests (or checks) launched from the fault's start up to the rollback. */
  delayRequests: number | null;
}

const rulesCache = new Map<string, RulesConfig>();
/** The rules with the schema's defaults, as the guard would load them. */
export function defaultRules(family: 'traffic' | 'health'): RulesConfig {
  let rules = rulesCache.get(family);
  if (!rules) {
    rules = configSchema.shape.rules.parse(
      family === 'traffic' ? { error_rate: { probe: 'traffic' }, latency_ratio: { probe: 'traffic' } } : { health: { probe: 'health' } },
    );
    rulesCache.set(family, rules);
  }
  return rules;
}

/** Epoch ms of the window's opening (any fixed instant). */
const T0 = 1_800_000_000_000;

export function scrapeLaunches(): number[] {
  const out: number[] = [];
  for (let t = SCHEDULE.fastIntervalMs; t <= SCHEDULE.fastForMs; t += SCHEDULE.fastIntervalMs) out.push(t);
  for (let t = SCHEDULE.fastForMs + SCHEDULE.intervalMs; t <= WINDOW_MS; t += SCHEDULE.intervalMs) out.push(t);
  return out;
}
const LAUNCHES = scrapeLaunches();

const probCache = new Map<string, number[]>();
function probs(buckets: BucketSet, factor: number): number[] {
  const key = `${buckets}:${factor}`;
  let p = probCache.get(key);
  if (!p) probCache.set(key, (p = bucketProbabilities(BUCKET_SETS[buckets], factor)));
  return p;
}

export function windowSeed(seed: number, cellId: string, index: number): number {
  return hash32(`${seed}|${cellId}|${index}`);
}

export function runWindow(cell: Cell, index: number, seed: number): WindowResult {
  return cell.family === 'traffic' ? trafficWindow(cell, index, seed) : healthWindow(cell, index, seed);
}

function trafficWindow(cell: Cell, index: number, seed: number): WindowResult {
  const rng = mulberry32(windowSeed(seed, cell.id, index));
  const rules = defaultRules('traffic');
  const bounds = BUCKET_SETS[cell.buckets];
  const fault = cell.fault;
  const faultEnd = fault ? fault.startMs + fault.durationMs : 0;
  const list: Sample[] = [];
  const memo: RuleMemo = new Map();
  const input: RuleInput = {
    samples: new Map([['traffic', list]]),
    now: T0,
    since: T0,
    releaseStartedAt: T0,
    initialDelayMs: 30_000,
    baselineP95: new Map([['traffic', BASELINE_P95_MS]]),
    probeTypes: new Map([['traffic', 'scrape']]),
    looks: LOOKS,
    memo,
  };
  const counts = new Array<number>(bounds.length + 1).fill(0);
  let prevAt = 0;
  let faultRequests = 0;
  for (const launch of LAUNCHES) {
    const at = launch + SCRAPE_MS;
    counts.fill(0);
    let requests = 0;
    let errors = 0;
    // The interval (prevAt, at], split where the fault starts and ends.
    const cuts = [prevAt];
    if (fault) {
      if (fault.startMs > prevAt && fault.startMs < at) cuts.push(fault.startMs);
      if (faultEnd > prevAt && faultEnd < at) cuts.push(faultEnd);
    }
    cuts.push(at);
    for (let c = 0; c + 1 < cuts.length; c++) {
      const from = cuts[c]!;
      const to = cuts[c + 1]!;
      const inFault = fault !== null && from >= fault.startMs && from < faultEnd;
      const n = poisson(rng, (cell.rate * (to - from)) / 1000);
      if (n === 0) continue;
      requests += n;
      if (inFault) faultRequests += n;
      errors += binomial(rng, n, inFault && fault.errorRate !== undefined ? fault.errorRate : cell.baselineErrors);
      // Multinomial over the buckets by conditional binomials.
      const p = probs(cell.buckets, inFault && fault.latencyFactor !== undefined ? fault.latencyFactor : 1);
      let left = n;
      let mass = 1;
      for (let b = 0; b < p.length && left > 0; b++) {
        const x = b === p.length - 1 ? left : binomial(rng, left, Math.min(1, p[b]! / mass));
        counts[b]! += x;
        left -= x;
        mass -= p[b]!;
      }
    }
    const latency: LatencyBucket[] = [];
    let cumulative = 0;
    for (let b = 0; b < bounds.length; b++) {
      cumulative += counts[b]!;
      latency.push({ le: bounds[b]!, count: cumulative });
    }
    latency.push({ le: Number.POSITIVE_INFINITY, count: requests });
    const values: Record<string, number> = { requests, rps: (requests * 1000) / (at - prevAt), latency_ms: SCRAPE_MS };
    if (requests > 0) {
      values.error_ratio = errors / requests;
      const p95 = histogramQuantile(0.95, latency);
      if (p95 !== null) values.p95_ms = p95;
    }
    list.push({ probe: 'traffic', startedAt: T0 + launch, at: T0 + at, ok: true, values, traffic: { requests, errors, latency } });
    prevAt = at;
    input.now = T0 + at;
    const failed = evaluateRules(rules, input).filter((v) => v.outcome === 'fail');
    if (failed.length > 0) return decided(fault, at, failed.map((v) => v.rule), faultRequests);
  }
  return { rolledBack: false, atMs: null, rules: [], early: false, delayMs: null, delayRequests: null };
}

function decided(fault: Fault | null, atMs: number, rules: string[], faultTrials: number): WindowResult {
  const early = fault !== null && atMs < fault.startMs;
  const after = fault !== null && !early;
  return { rolledBack: true, atMs, rules, early, delayMs: after ? atMs - fault.startMs : null, delayRequests: after ? faultTrials : null };
}

/**
 * An http health probe: checks launched every 250 ms for the first 2 minutes and while the latest
 * answered check failed (as the guard's schedule does), else every second. A failing check is
 * refused at once (1 ms) or hangs until the timeout (500 ms at the fast interval, 2 s otherwise).
 */
function healthWindow(cell: Cell, index: number, seed: number): WindowResult {
  const rng = mulberry32(windowSeed(seed, cell.id, index));
  const rules = defaultRules('health');
  const fault = cell.fault;
  const faultEnd = fault ? fault.startMs + fault.durationMs : 0;
  const list: Sample[] = [];
  const input: RuleInput = {
    samples: new Map([['health', list]]),
    now: T0,
    since: T0,
    releaseStartedAt: T0,
    initialDelayMs: 30_000,
    baselineP95: new Map(),
    probeTypes: new Map([['health', 'http']]),
    looks: LOOKS,
    memo: new Map(),
  };
  // Checks in flight, by completion time.
  const pending: { startedAt: number; at: number; ok: boolean; latency: number }[] = [];
  let lastCompletedFailed = false;
  let faultChecks = 0;
  let launch = 0;
  const complete = (upTo: number): WindowResult | null => {
    pending.sort((a, b) => a.at - b.at || a.startedAt - b.startedAt);
    while (pending.length > 0 && pending[0]!.at <= upTo) {
      const c = pending.shift()!;
      lastCompletedFailed = !c.ok;
      const sample: Sample = {
        probe: 'health',
        startedAt: T0 + c.startedAt,
        at: T0 + c.at,
        ok: c.ok,
        values: c.ok ? { latency_ms: c.latency, status: 200 } : { latency_ms: c.latency },
        ...(c.ok ? {} : { error: 'failed' }),
      };
      list.splice(insertionIndex(list, sample.startedAt), 0, sample);
      input.now = sample.at;
      const failed = evaluateRules(rules, input).filter((v) => v.outcome === 'fail');
      if (failed.length > 0) return decided(fault, c.at, failed.map((v) => v.rule), faultChecks);
    }
    return null;
  };
  while (launch <= WINDOW_MS) {
    const done = complete(launch);
    if (done) return done;
    const fast = launch < SCHEDULE.fastForMs || lastCompletedFailed;
    const inFault = fault !== null && launch >= fault.startMs && launch < faultEnd;
    if (inFault) faultChecks++;
    const latency = LATENCY_MEDIAN_MS * Math.exp(LATENCY_SIGMA * normal(rng));
    if (inFault) {
      const took = fault.checkFailure === 'hang' ? (fast ? CHECK_FAST_TIMEOUT_MS : CHECK_TIMEOUT_MS) : 1;
      pending.push({ startedAt: launch, at: launch + took, ok: false, latency: took });
    } else {
      const ok = rng() >= cell.baselineErrors;
      pending.push({ startedAt: launch, at: launch + Math.max(1, Math.round(latency)), ok, latency });
    }
    launch += fast ? SCHEDULE.fastIntervalMs : SCHEDULE.intervalMs;
  }
  return complete(WINDOW_MS + CHECK_TIMEOUT_MS) ?? { rolledBack: false, atMs: null, rules: [], early: false, delayMs: null, delayRequests: null };
}
