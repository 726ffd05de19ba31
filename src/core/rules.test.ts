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
} from './rules.js';
import type { RuleInput } from './rules.js';
import type { Sample } from './types.js';

const sample = (startedAt: number, ok: boolean, values: Record<string, number> = {}, extra: Partial<Sample> = {}): Sample => ({
  probe: 'p',
  startedAt,
  at: startedAt + 10,
  ok,
  values,
  ...extra,
});

const input = (samples: Sample[], over: Partial<RuleInput> = {}): RuleInput => ({
  samples: new Map([['p', samples]]),
  now: 100_000,
  since: null,
  releaseStartedAt: null,
  initialDelayMs: 30_000,
  baselineP95: new Map([['p', 20]]),
  probeTypes: new Map(),
  ...over,
});

describe('rules', () => {
  it('percentile uses nearest rank', () => {
    expect(percentile([], 95)).toBeNull();
    expect(percentile([5, 1, 3], 50)).toBe(3);
    expect(percentile(Array.from({ length: 100 }, (_, i) => i + 1), 95)).toBe(95);
  });

  it('health: no data is inconclusive, never a pass', () => {
    expect(evaluateHealth({ enabled: true, probe: 'p', consecutive: 3 }, input([])).outcome).toBe('inconclusive');
  });

  it('health: counts the trailing run of failures in launch order, even if they completed out of order', () => {
    // Completion order 1, 4, 2, 3: kept in launch order by inserting each where it belongs.
    const samples: Sample[] = [];
    for (const s of [sample(1, true), sample(4, false), sample(2, false), sample(3, false)]) samples.splice(insertionIndex(samples, s.startedAt), 0, s);
    expect(samples.map((s) => s.startedAt)).toEqual([1, 2, 3, 4]);
    const v = evaluateHealth({ enabled: true, probe: 'p', consecutive: 3 }, input(samples));
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
    const rule = { enabled: true, probe: 'p', consecutive: 2 };
    const gap = (t: number) => sample(t, false, {}, { unavailable: true, error: 'no answer' });
    const samples = [sample(1, false), sample(2, false), sample(10, true, { latency_ms: 5 }), sample(11, false), gap(12), sample(13, false), gap(14)];
    expect(evaluateHealth(rule, input(samples))).toMatchObject({ outcome: 'fail', observed: 2, since: 11 });
    expect(evaluateHealth(rule, input(samples, { since: 12 }))).toMatchObject({ outcome: 'pass', observed: 1 });
    expect(evaluateHealth(rule, input(samples, { since: 14 }))).toMatchObject({ outcome: 'inconclusive' });
    const db = { enabled: true, probe: 'p', threshold: 100, for: 5 };
    // The latest sample unavailable: an error, whatever came before.
    expect(evaluateDbLatency(db, input(samples, { now: 20 }))).toMatchObject({ outcome: 'error', message: expect.stringMatching(/no answer/) });
    expect(evaluateDbLatency(db, input(samples.slice(0, -1), { now: 20 }))).toMatchObject({ outcome: 'fail', since: 11 });
    expect(evaluateDbLatency(db, input(samples.slice(0, -1), { now: 20, since: 12 }))).toMatchObject({ outcome: 'fail', since: 13 });
  });

  it('health: only samples of the release are judged inside a window', () => {
    const samples = [sample(1, false), sample(2, false), sample(10, false)];
    const v = evaluateHealth({ enabled: true, probe: 'p', consecutive: 3 }, input(samples, { since: 5, releaseStartedAt: 5 }));
    expect(v).toMatchObject({ outcome: 'pass', observed: 1 });
  });

  it.each([
    [19, 2, 'inconclusive', null],
    [20, 1, 'pass', 0.05],
    [20, 2, 'fail', 0.1],
  ])('error_rate with %i samples and %i failures is %s', (n, failures, outcome, observed) => {
    const samples = Array.from({ length: n }, (_, i) => sample(90_000 + i, i >= failures));
    const v = evaluateErrorRate({ enabled: true, probe: 'p', threshold: 0.05, window: 60_000, min_samples: 20, min_requests: 200 }, input(samples));
    expect(v).toMatchObject({ outcome, observed });
  });

  it('latency_ratio: missing baseline says so; floor suppresses tiny baselines', () => {
    const rule = { enabled: true, probe: 'p', ratio: 3, floor: 50, window: 30_000, min_samples: 3 };
    const slow = [1, 2, 3].map((i) => sample(90_000 + i, true, { latency_ms: 40 }));
    expect(evaluateLatencyRatio(rule, input(slow, { baselineP95: new Map() }))).toMatchObject({ outcome: 'skipped', message: expect.stringMatching(/no baseline.*absolute SLOs/) });
    const tiny = evaluateLatencyRatio(rule, input(slow, { baselineP95: new Map([['p', 5]]) }));
    expect(tiny).toMatchObject({ outcome: 'pass', observed: 8 });
    expect(tiny.message).toMatch(/floor/);
    const real = evaluateLatencyRatio(rule, input(slow.map((s) => ({ ...s, values: { latency_ms: 80 } }))));
    expect(real).toMatchObject({ outcome: 'fail', observed: 4, threshold: 3 });
  });

  it('cpu: must stay above the threshold for the whole duration', () => {
    const rule = { enabled: true, probe: 'p', threshold: 0.7, for: 60_000 };
    const run = (values: number[]) => values.map((cpu, i) => sample(100_000 - (values.length - 1 - i) * 10_000, true, { cpu }));
    expect(evaluateResource('cpu', rule, input(run([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])))).toMatchObject({ outcome: 'fail', since: 40_000 });
    expect(evaluateResource('cpu', rule, input(run([0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9])))).toMatchObject({ outcome: 'pass' });
    expect(evaluateResource('cpu', rule, input([], { since: 90_000, releaseStartedAt: 90_000 })).outcome).toBe('skipped');
    const unavailable = [sample(99_000, false, {}, { unavailable: true, error: '/proc/stat unreadable' })];
    expect(evaluateResource('cpu', rule, input(unavailable))).toMatchObject({ outcome: 'error' });
  });

  describe('traffic sources', () => {
    const scrape = new Map([['p', 'scrape']]);
    const prom = new Map([['p', 'prometheus']]);
    const rule = { enabled: true, probe: 'p', threshold: 0.05, window: 60_000, min_requests: 200 };
    const interval = (i: number, requests: number, errorRatio: number) =>
      sample(90_000 + i * 500, true, { requests, error_ratio: errorRatio, p95_ms: 20 });

    it('scrape: judges the last min_requests requests, not the whole window', () => {
      // 40 healthy intervals, then 4 intervals of 10 % errors at 25 requests each.
      const samples = [...Array.from({ length: 40 }, (_, i) => interval(i - 40, 25, 0)), ...[0, 1, 2, 3].map((i) => interval(i, 25, 0.1))];
      const v = evaluateErrorRate(rule, input(samples, { probeTypes: scrape }));
      // last 200 requests = 8 intervals: 4 × 2.5 errors = 10 / 200 = 5 % → not above 5 % yet.
      expect(v).toMatchObject({ outcome: 'pass', observed: 0.05 });
      const more = [...samples, interval(4, 25, 0.1)];
      expect(evaluateErrorRate(rule, input(more, { probeTypes: scrape }))).toMatchObject({ outcome: 'fail', observed: 0.0625 });
    });

    it('scrape: too little traffic is inconclusive, 2 % errors pass', () => {
      const thin = [0, 1, 2].map((i) => interval(i, 10, 0.5));
      expect(evaluateErrorRate(rule, input(thin, { probeTypes: scrape })).message).toMatch(/30 requests in window < min_requests 200/);
      const steady = Array.from({ length: 10 }, (_, i) => interval(i, 50, 0.02));
      expect(evaluateErrorRate(rule, input(steady, { probeTypes: scrape }))).toMatchObject({ outcome: 'pass', observed: 0.02 });
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
      const ratio = { enabled: true, probe: 'p', ratio: 3, floor: 50, window: 30_000 };
      expect(evaluateLatencyRatio(ratio, input(slow, { probeTypes: scrape }))).toMatchObject({ outcome: 'fail', observed: 40 });
    });
  });

  it('db_latency: a slow or failing query sustained breaches; an unreachable server is an error, not a breach', () => {
    const rule = { enabled: true, probe: 'p', threshold: 100, for: 10_000 };
    const slow = Array.from({ length: 12 }, (_, i) => sample(88_000 + i * 1000, true, { latency_ms: 300 }));
    expect(evaluateDbLatency(rule, input(slow))).toMatchObject({ outcome: 'fail', observed: 300, since: 88_000 });
    const failing = slow.map((s) => ({ ...s, ok: false, values: {}, error: 'query timed out after 2000ms' }));
    expect(evaluateDbLatency(rule, input(failing))).toMatchObject({ outcome: 'fail' });
    const down = [...slow, sample(99_500, false, {}, { unavailable: true, error: 'connect ECONNREFUSED 127.0.0.1:3306' })];
    expect(evaluateDbLatency(rule, input(down))).toMatchObject({ outcome: 'error', message: expect.stringMatching(/unavailable: connect ECONNREFUSED/) });
  });
});
