import { describe, expect, it } from 'vitest';
import { measureCoreCost } from './core-cost.js';

// The figures are CPU time and are read, not asserted (BENCHMARKS.md); this only proves the bench
// measures what it says: every documented rule really judged the healthy window.
describe('bench:core', () => {
  it('judges every rule on a healthy window and reports a cost for each', () => {
    const result = measureCoreCost({ rounds: 1, iterations: 20 });
    expect(result.outcomes).toEqual({ health: 'pass', error_rate: 'pass', latency_ratio: 'pass', latency_max: 'pass', cpu: 'pass', memory: 'pass' });
    expect(Object.keys(result.perRule).sort()).toEqual(['cpu', 'error_rate', 'health', 'latency_max', 'latency_ratio', 'memory']);
    for (const micros of [...Object.values(result.perRule), result.perSample]) expect(micros).toBeGreaterThan(0);
  });
});
