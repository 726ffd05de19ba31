/** Arithmetic on sample lists ordered by launch time, and the number formats of verdicts. */
import type { Sample } from './types.js';

/** The median of the latest `n` values: one noisy interval can neither raise nor hide a breach. Null for no values. */
export function medianOfLatest(values: readonly number[], n: number): number | null {
  return percentile(values.slice(-n), 50);
}

/** The p-th percentile (0..100) by nearest rank; null for no values. */
export function percentile(values: readonly number[], p: number): number | null {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? null;
}

/** Rounds to `digits` decimals; arithmetic rather than toFixed, which is slow and runs on every evaluation. */
export const round = (n: number, digits = 3) => {
  const scale = 10 ** digits;
  return Math.round(n * scale) / scale;
};
export const pct = (ratio: number) => `${round(ratio * 100, 1)}%`;

/** The index of the first sample launched at or after `since` in a list ordered by `startedAt`. */
export function firstLaunchedFrom(list: readonly Sample[], since: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const sample = list[mid];
    if (sample !== undefined && sample.startedAt < since) lo = mid + 1;
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
  while (i > 0 && (list[i - 1]?.startedAt ?? startedAt) > startedAt) i--;
  return i;
}

export const seconds = (ms: number) => (ms < 10_000 ? `${round(ms / 1000, 2)}s` : `${Math.round(ms / 1000)}s`);

/**
 * Latency of answered checks only: failed checks (timeouts, 5xx) are judged by health and
 * error_rate, and one timeout among a handful of samples would otherwise *be* the p95.
 */
export function latencies(samples: readonly Sample[]): number[] {
  return samples
    .filter((s) => s.ok)
    .map((s) => s.values.latency_ms)
    .filter((v): v is number => typeof v === 'number');
}
