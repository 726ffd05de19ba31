import { describe, expect, it } from 'vitest';
import {
  evaluateDbLatency,
  evaluateErrorRate,
  evaluateHealth,
  evaluateLatencyMax,
  evaluateLatencyRatio,
  evaluateResource,
  firstLaunchedFrom,
  insertionIndex,
  percentile,
  slowerThan,
} from './rules.js';
import type { RuleInput, RuleMemo } from './rules.js';
import type { LatencyBucket, Sample } from './types.js';

const sample = (startedAt: number, ok: boolean, values: Record<string, number> = {}, extra: Partial<Sample> = {}): Sample => ({
  probe: 'p',
  startedAt,
  at: startedAt + 10,
  ok,
  values,
  ...extra,
});

const inputOf = (samples: Sample[], over: Partial<RuleInput> = {}): RuleInput => ({
  samples: new Map([['p', samples]]),
  now: 100_000,
  since: null,
  releaseStartedAt: null,
  initialDelayMs: 30_000,
  baselineP95: new Map([['p', 20]]),
  probeTypes: new Map([['p', 'http']]),
  looks: 960,
  ...over,
});

const input = inputOf;

const errorRule = { enabled: true, probe: 'p', threshold: 0.05, window: 60_000, budget: 0.001, min_span: 1000 };
const checks = (from: number, count: number, failing: (i: number) => boolean) =>
  Array.from({ length: count }, (_, i) => ({ ...sample(from + i * 250, !failing(i)), at: from + i * 250 + 5 }));

describe('rules: percentile and health', () => {
  it('percentile uses nearest rank', () => {
    expect(percentile([], 95)).toBeNull();
    expect(percentile([5, 1, 3], 50)).toBe(3);
    expect(percentile(Array.from({ length: 100 }, (_, i) => i + 1), 95)).toBe(95);
  });

  it('health: no data is inconclusive, never a pass', () => {
    expect(evaluateHealth({ enabled: true, probe: 'p', consecutive: 3, min_span: 0 }, input([])).outcome).toBe('inconclusive');
  });

  it('health: counts the trailing run of failures in launch order, even if they completed out of order', () => {
    // Completion order 1, 4, 2, 3: kept in launch order by inserting each where it belongs.
    const samples: Sample[] = [];
    for (const s of [sample(1, true), sample(4, false), sample(2, false), sample(3, false)]) samples.splice(insertionIndex(samples, s.startedAt), 0, s);
    expect(samples.map((s) => s.startedAt)).toEqual([1, 2, 3, 4]);
    const v = evaluateHealth({ enabled: true, probe: 'p', consecutive: 3, min_span: 0 }, input(samples));
    expect(v).toMatchObject({ outcome: 'fail', observed: 3, threshold: 3, since: 2 });
  });

  it('ordered lists: the window start is found by launch time, ties keep their arrival order', () => {
    const list = [1, 2, 2, 5, 9].map((t) => sample(t, true));
    expect([0, 1, 2, 3, 5, 9, 10].map((t) => firstLaunchedFrom(list, t))).toEqual([0, 0, 1, 3, 3, 4, 5]);
    expect(firstLaunchedFrom([], 5)).toBe(0);
    expect(firstLaunchedFrom(list, Number.NEGATIVE_INFINITY)).toBe(0);
    expect([10, 9, 2, 0].map((t) => insertionIndex(list, t))).toEqual([5, 5, 3, 0]);
  });

  it('health and sustained rules skip unavailable samples but not the window bound', () => {
    const rule = { enabled: true, probe: 'p', consecutive: 2, min_span: 0 };
    const gap = (t: number) => sample(t, false, {}, { unavailable: true, error: 'no answer' });
    const samples = [sample(1, false), sample(2, false), sample(10, true, { latency_ms: 5 }), sample(11, false), gap(12), sample(13, false), gap(14)];
    expect(evaluateHealth(rule, input(samples))).toMatchObject({ outcome: 'fail', observed: 2, since: 11 });
    expect(evaluateHealth(rule, input(samples, { since: 12 }))).toMatchObject({ outcome: 'pass', observed: 1 });
    expect(evaluateHealth(rule, input(samples, { since: 14 }))).toMatchObject({ outcome: 'inconclusive' });
    const db = { enabled: true, probe: 'p', threshold: 100, for: 5 };
    const probeTypes = new Map([['p', 'mysql']]);
    // The latest sample unavailable: an error, whatever came before.
    expect(evaluateDbLatency(db, input(samples, { now: 20, probeTypes }))).toMatchObject({ outcome: 'error', message: expect.stringMatching(/no answer/) });
    expect(evaluateDbLatency(db, input(samples.slice(0, -1), { now: 20, probeTypes }))).toMatchObject({ outcome: 'fail', since: 11 });
    expect(evaluateDbLatency(db, input(samples.slice(0, -1), { now: 20, since: 12, probeTypes }))).toMatchObject({ outcome: 'fail', since: 13 });
  });

  it('health: only samples of the release are judged inside a window', () => {
    const samples = [sample(1, false), sample(2, false), sample(10, false)];
    const v = evaluateHealth({ enabled: true, probe: 'p', consecutive: 3, min_span: 0 }, input(samples, { since: 5, releaseStartedAt: 5 }));
    expect(v).toMatchObject({ outcome: 'pass', observed: 1 });
  });

  it('health: consecutive failures must also span min_span, from the first launch to the last answer', () => {
    const rule = { enabled: true, probe: 'p', consecutive: 3, min_span: 1000 };
    // A half-second blip: four failed checks 250 ms apart, answered at once.
    const blip = [0, 250, 500].map((t) => ({ ...sample(t, false), at: t + 5 }));
    expect(evaluateHealth(rule, input(blip))).toMatchObject({ outcome: 'pass', observed: 3, message: expect.stringMatching(/over 0.51s < min_span 1s/) });
    // A hang: each check gives up after 500 ms; the third, launched at 500, fails at 1000.
    const hang = [0, 250, 500].map((t) => ({ ...sample(t, false, {}, { error: 'timeout' }), at: t + 500 }));
    expect(evaluateHealth(rule, input(hang))).toMatchObject({ outcome: 'fail', observed: 3, since: 0 });
  });
});

describe('rules: error rate, latency ratio and cpu on checks', () => {
  it('error_rate on checks: too few is inconclusive; an outage is proven after min_span; scattered failures never', () => {
    expect(evaluateErrorRate({ ...errorRule, min_samples: 20 }, input(checks(0, 19, () => true))).outcome).toBe('inconclusive');
    // Every check failing: each adds ln(p1/p0) ≈ 1.6, within what the persistence bucket admits.
    const down = evaluateErrorRate(errorRule, input(checks(0, 40, () => true)));
    expect(down).toMatchObject({ outcome: 'fail', since: expect.any(Number) });
    expect(down.evidence).toMatchObject({ crossed: true, budget: 0.001, tolerance: 0.02, looks: 960 });
    expect(down.message).toMatch(/error_rate: 100% \(\d+\/\d+ checks since the evidence began\) > 5%: evidence [\d.]+ >= 13.77 \(budget 0.1%, tolerance 2%\)/);
    // 2 failures of 29 (6.9 %) rolled back with the old fixed window: now not proven.
    const two = evaluateErrorRate(errorRule, input(checks(0, 29, (i) => i === 10 || i === 20)));
    expect(two).toMatchObject({ outcome: 'pass' });
    expect(two.message).toMatch(/not proven > 5%/);
  });

  it('latency_ratio on checks: slow checks against max(ratio × baseline, floor)', () => {
    const rule = { enabled: true, probe: 'p', ratio: 3, floor: 50, window: 30_000, min_samples: 3, tolerance: 0.02, budget: 0.001, min_span: 1000 };
    const at = (latency: number, n = 40) => checks(0, n, () => false).map((s) => ({ ...s, values: { latency_ms: latency } }));
    expect(evaluateLatencyRatio(rule, input(at(40), { baselineP95: new Map() }))).toMatchObject({ outcome: 'skipped', message: expect.stringMatching(/no baseline.*absolute SLOs/) });
    // Baseline 5 ms: 3× is 15 ms, but the floor makes 50 ms the boundary, and 40 ms is below it.
    const tiny = evaluateLatencyRatio(rule, input(at(40), { baselineP95: new Map([['p', 5]]) }));
    expect(tiny).toMatchObject({ outcome: 'pass', observed: 0 });
    expect(tiny.message).toMatch(/slower than 50ms: max\(3× baseline p95 5ms, floor 50ms\)/);
    const slow = evaluateLatencyRatio(rule, input(at(80)));
    expect(slow).toMatchObject({ outcome: 'fail', observed: 1, threshold: 0.05, unit: 'ratio' });
    expect(evaluateLatencyRatio(rule, input(at(80, 2)))).toMatchObject({ outcome: 'inconclusive' });
  });

  it('cpu: must stay above the threshold for the whole duration', () => {
    const rule = { enabled: true, probe: 'p', threshold: 0.7, for: 60_000 };
    const probeTypes = new Map([['p', 'system']]);
    const run = (values: number[]) => values.map((cpu, i) => sample(100_000 - (values.length - 1 - i) * 10_000, true, { cpu }));
    expect(evaluateResource('cpu', rule, input(run([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]), { probeTypes }))).toMatchObject({ outcome: 'fail', since: 40_000 });
    expect(evaluateResource('cpu', rule, input(run([0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9]), { probeTypes }))).toMatchObject({ outcome: 'pass' });
    expect(evaluateResource('cpu', rule, input([], { since: 90_000, releaseStartedAt: 90_000, probeTypes })).outcome).toBe('skipped');
    const unavailable = [sample(99_000, false, {}, { unavailable: true, error: '/proc/stat unreadable' })];
    expect(evaluateResource('cpu', rule, input(unavailable, { probeTypes }))).toMatchObject({ outcome: 'error', message: expect.stringMatching(/unreadable/) });
    // A probe the rule does not read is an error naming the types it reads, never a guess.
    expect(evaluateResource('cpu', rule, input(run([0.9])))).toMatchObject({ outcome: 'error', message: 'cpu: probe p is of type http; cpu reads system, process probes' });
  });

});

/** Traffic sources: one sample per scrape interval, with counts of requests, errors and latency buckets. */
const scrape = new Map([['p', 'scrape']]);
const prom = new Map([['p', 'prometheus']]);
const interval = (i: number, requests: number, errors: number, latency?: LatencyBucket[]): Sample => ({
  ...sample(90_000 + i * 500, true, { requests, error_ratio: requests > 0 ? errors / requests : 0, p95_ms: 20 }),
  at: 90_000 + i * 500 + 5,
  traffic: { requests, errors, ...(latency ? { latency } : {}) },
});

describe('rules: traffic sources (scrape error rate)', () => {
  const rule = errorRule;

  it('scrape: 10 % errors after a long healthy stretch are proven within a few hundred requests', () => {
    // 200 healthy intervals (5,000 requests), then 10 % errors at 25 requests per 500 ms.
    const healthy = Array.from({ length: 200 }, (_, i) => interval(i - 200, 25, 0));
    let samples = healthy;
    let i = 0;
    while (evaluateErrorRate(rule, input(samples, { probeTypes: scrape })).outcome !== 'fail') {
      samples = [...samples, interval(i, 25, i % 2 === 0 ? 2 : 3)];
      i++;
      expect(i).toBeLessThan(40);
    }
    const v = evaluateErrorRate(rule, input(samples, { probeTypes: scrape }));
    expect(v.since).toBeGreaterThanOrEqual(90_000 - 500);
    expect(v.evidence?.excursion?.n).toBeLessThanOrEqual(300);
  });

  it('scrape: a 0.5 s blip of 100 % errors, then health, is never proven; 2 % errors never', () => {
    const blip = [...Array.from({ length: 10 }, (_, i) => interval(i, 25, 0)), interval(10, 25, 25), ...Array.from({ length: 200 }, (_, i) => interval(11 + i, 25, 0))];
    for (let n = 10; n <= blip.length; n++) expect(evaluateErrorRate(rule, input(blip.slice(0, n), { probeTypes: scrape })).outcome).toBe('pass');
    const steady = Array.from({ length: 400 }, (_, i) => interval(i, 50, 1));
    expect(evaluateErrorRate(rule, input(steady, { probeTypes: scrape }))).toMatchObject({ outcome: 'pass' });
  });

  it('the tolerance rises to the previous version\'s learnt error ratio, at most to 80 % of the threshold', () => {
    const steady = Array.from({ length: 40 }, (_, i) => interval(i, 50, 1));
    const tolerance = (learnt?: number, configured?: number) =>
      evaluateErrorRate({ ...rule, ...(configured ? { tolerance: configured } : {}) }, input(steady, { probeTypes: scrape, ...(learnt !== undefined ? { baselineErrorRatio: new Map([['p', learnt]]) } : {}) })).evidence?.tolerance;
    expect(tolerance()).toBe(0.02);
    expect(tolerance(0.01)).toBe(0.02);
    expect(tolerance(0.03)).toBe(0.03);
    expect(tolerance(0.06)).toBe(0.04);
    expect(tolerance(0.06, 0.045)).toBe(0.045);
  });

  it('scrape: intervals without counts are no data', () => {
    const none = [0, 1, 2].map((i) => ({ ...interval(i, 0, 0), traffic: undefined }));
    expect(evaluateErrorRate(rule, input(none, { probeTypes: scrape })).message).toMatch(/0 traffic samples with requests in window < min_samples 3/);
  });
});

describe('rules: traffic sources (memo, latency, prometheus)', () => {
  const rule = errorRule;

  it('the memo gives the same verdicts as folding everything again, through out-of-order inserts and dropped samples', () => {
    const memo: RuleMemo = new Map();
    const list: Sample[] = [];
    const rate = (i: number) => (i > 60 ? 5 : i % 7 === 0 ? 1 : 0);
    for (let i = 0; i < 120; i++) {
      const s = interval(i, 25, rate(i));
      // Every tenth sample arrives late, after the next one.
      if (i % 10 === 5) list.splice(insertionIndex(list, s.startedAt - 600), 0, { ...s, startedAt: s.startedAt - 600 });
      else list.push(s);
      if (i === 80) list.splice(0, 5);
      const withMemo = evaluateErrorRate(rule, input(list, { probeTypes: scrape, memo, samples: new Map([['p', list]]) }));
      const without = evaluateErrorRate(rule, input([...list], { probeTypes: scrape }));
      expect(withMemo).toEqual(without);
    }
  });

  it('latency_ratio on traffic: the share slower than the first bucket bound at or above the boundary', () => {
    const ratio = { enabled: true, probe: 'p', ratio: 3, floor: 50, window: 30_000, tolerance: 0.02, budget: 0.001, min_span: 1000 };
    const buckets = (fast: number, mid: number, slow: number): LatencyBucket[] => [
      { le: 25, count: fast },
      { le: 50, count: fast + mid },
      { le: 100, count: fast + mid + slow },
      { le: Number.POSITIVE_INFINITY, count: fast + mid + slow },
    ];
    // Baseline 20 ms → boundary 60 ms, counted at the bound 100 ms: requests of 50–100 ms are
    // not counted as slow (a guess inside the bucket could roll back a healthy release).
    const healthy = Array.from({ length: 40 }, (_, i) => interval(i, 25, 0, buckets(20, 3, 2)));
    const ok = evaluateLatencyRatio(ratio, input(healthy, { probeTypes: scrape }));
    expect(ok).toMatchObject({ outcome: 'pass', observed: 0 });
    expect(ok.message).toMatch(/slower than 100ms: the first histogram bucket bound at or above max\(3× baseline p95 20ms, floor 50ms\) = 60ms/);
    const slow = [...healthy, ...Array.from({ length: 12 }, (_, i) => ({ ...interval(40 + i, 25, 0), traffic: { requests: 25, errors: 0, latency: [...buckets(0, 0, 0).slice(0, 3), { le: Number.POSITIVE_INFINITY, count: 25 }] } }))];
    expect(evaluateLatencyRatio(ratio, input(slow, { probeTypes: scrape }))).toMatchObject({ outcome: 'fail', observed: 1 });
    expect(slowerThan(buckets(10, 5, 5), 60)).toEqual({ n: 20, k: 0, usedMs: 100 });
    expect(slowerThan(buckets(10, 5, 5), 40)).toEqual({ n: 20, k: 5, usedMs: 50 });
    expect(slowerThan([{ le: 10, count: 3 }], 5)).toBeNull();
  });

  it('prometheus: one query is enough, and no data is inconclusive', () => {
    const one = [sample(99_000, true, { error_ratio: 0.1 })];
    expect(evaluateErrorRate(rule, input(one, { probeTypes: prom }))).toMatchObject({ outcome: 'fail', observed: 0.1 });
    const empty = [sample(99_000, true, {})];
    expect(evaluateErrorRate(rule, input(empty, { probeTypes: prom })).outcome).toBe('inconclusive');
  });

  it('latency from traffic p95: median of the latest readings', () => {
    const lat = { enabled: true, probe: 'p', threshold: 500, window: 30_000 };
    const p95s = [20, 25, 900, 22].map((p95_ms, i) => sample(95_000 + i * 500, true, { p95_ms }));
    expect(evaluateLatencyMax(lat, input(p95s, { probeTypes: scrape }))).toMatchObject({ outcome: 'pass', observed: 25 });
    const slow = [...p95s, ...[800, 850].map((p95_ms, i) => sample(97_500 + i * 500, true, { p95_ms }))];
    expect(evaluateLatencyMax(lat, input(slow, { probeTypes: scrape }))).toMatchObject({ outcome: 'fail', observed: 800 });
    const ratio = { enabled: true, probe: 'p', ratio: 3, floor: 50, window: 30_000, tolerance: 0.02, budget: 0.001, min_span: 1000 };
    expect(evaluateLatencyRatio(ratio, input(slow, { probeTypes: prom }))).toMatchObject({ outcome: 'fail', observed: 42.5 });
  });
});

describe('rules: db_latency', () => {
  it('db_latency: a slow or failing query sustained breaches; an unreachable server is an error, not a breach', () => {
    const rule = { enabled: true, probe: 'p', threshold: 100, for: 10_000 };
    const mysql = new Map([['p', 'redis']]);
    const input = (samples: Sample[]) => inputOf(samples, { probeTypes: mysql });
    const slow = Array.from({ length: 12 }, (_, i) => sample(88_000 + i * 1000, true, { latency_ms: 300 }));
    expect(evaluateDbLatency(rule, input(slow))).toMatchObject({ outcome: 'fail', observed: 300, since: 88_000 });
    const failing = slow.map((s) => ({ ...s, ok: false, values: {}, error: 'query timed out after 2000ms' }));
    expect(evaluateDbLatency(rule, input(failing))).toMatchObject({ outcome: 'fail' });
    const down = [...slow, sample(99_500, false, {}, { unavailable: true, error: 'connect ECONNREFUSED 127.0.0.1:3306' })];
    expect(evaluateDbLatency(rule, input(down))).toMatchObject({ outcome: 'error', message: expect.stringMatching(/unavailable: connect ECONNREFUSED/) });
  });
});
