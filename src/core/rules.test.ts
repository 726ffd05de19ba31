import { describe, expect, it } from 'vitest';
import { evaluateErrorRate, evaluateHealth, evaluateLatencyRatio, evaluateResource, percentile } from './rules.js';
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
    const samples = [sample(1, true), sample(4, false), sample(2, false), sample(3, false)];
    const v = evaluateHealth({ enabled: true, probe: 'p', consecutive: 3 }, input(samples));
    expect(v).toMatchObject({ outcome: 'fail', observed: 3, threshold: 3, since: 2 });
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
    const v = evaluateErrorRate({ enabled: true, probe: 'p', threshold: 0.05, window: 60_000, min_samples: 20 }, input(samples));
    expect(v).toMatchObject({ outcome, observed });
  });

  it('latency_ratio: missing baseline says so; floor suppresses tiny baselines', () => {
    const rule = { enabled: true, probe: 'p', ratio: 3, floor: 50, window: 30_000, min_samples: 3 };
    const slow = [1, 2, 3].map((i) => sample(90_000 + i, true, { latency_ms: 40 }));
    expect(evaluateLatencyRatio(rule, input(slow, { baselineP95: new Map() })).message).toMatch(/no baseline/);
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
});
