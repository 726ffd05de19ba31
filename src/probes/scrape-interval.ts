/**
 * Counting side of the scrape probe: two snapshots compared into the counts of the interval
 * between them (only across scrapes certainly answered by the same process), and the values and
 * traffic counts the rules read from those counts.
 */
import type { LatencyBucket, TrafficCounts } from '../core/types.js';
import { histogramQuantile, type Bucket } from './histogram-quantile.js';
import type { Snapshot, Totals } from './scrape-snapshot.js';

/** Counts of one interval, summed over the processes that could be differenced. */
export interface Delta {
  requests: number;
  errors: number;
  /** Cumulative bucket-count deltas sorted by upper bound (seconds); empty without a histogram. */
  buckets: Bucket[];
}

/** Two scrapes compared: the interval's counts, if any process could be differenced, and why others could not. */
export interface Comparison {
  /** Absent when no process was in both scrapes with comparable counters: no data. */
  delta?: Delta;
  /** How many processes were differenced. */
  counted: number;
  /** Why each other process was not, in words. */
  skipped: string[];
}

/** What one interval showed; undefined fields are no data. */
export interface IntervalValues {
  requests: number;
  errorRatio?: number;
  /** In the histogram's unit (seconds). */
  p95?: number;
}

/**
 * Pure: the interval between two scrapes, summed over the processes that are certainly the same
 * in both. A process is skipped (re-based) when it is new, when its identity metric is missing or
 * changed, when any of its counters went down (a restart), and — for series without identity
 * labels — when the scrapes came over different connections (another worker may have answered).
 */
export function compareSnapshots(before: Snapshot, after: Snapshot, identityMetric?: string): Comparison {
  const skipped: string[] = [];
  const sum: Delta = { requests: 0, errors: 0, buckets: [] };
  const bucketSums = new Map<number, number>();
  let counted = 0;
  for (const [key, now] of after.byProcess) {
    const who = key === '' ? '' : `process {${key}}: `;
    const then = before.byProcess.get(key);
    if (then === undefined) {
      skipped.push(key === '' ? 'series without identity labels appeared: base taken' : `${who}new, base taken`);
      continue;
    }
    if (key === '' && (after.connection === 0 || after.connection !== before.connection)) {
      skipped.push('new connection (it may reach another worker): base taken again');
      continue;
    }
    if (identityMetric !== undefined) {
      const was = before.identity.get(key);
      const is = after.identity.get(key);
      if (was === undefined || is === undefined) {
        skipped.push(`${who}${identityMetric} missing: cannot tell whether the same process answered`);
        continue;
      }
      if (was !== is) {
        skipped.push(`${who}${identityMetric} changed (${was} -> ${is}): another process answered`);
        continue;
      }
    }
    if (isCounterReset(then, now)) {
      skipped.push(`${who}counter reset: app restarted`);
      continue;
    }
    const delta = deltaOf(then, now);
    counted += 1;
    sum.requests += delta.requests;
    sum.errors += delta.errors;
    for (const b of delta.buckets) bucketSums.set(b.le, (bucketSums.get(b.le) ?? 0) + b.count);
  }
  if (counted === 0) return { counted, skipped };
  sum.buckets = [...bucketSums].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
  return { delta: sum, counted, skipped };
}

/** Pure: any cumulative total lower than before (a missing series counts as 0) means a reset. */
export function isCounterReset(before: Totals, after: Totals): boolean {
  if (after.requests < before.requests) return true;
  for (const [status, count] of before.byStatus) if ((after.byStatus.get(status) ?? 0) < count) return true;
  const afterByLe = new Map(after.buckets.map((b) => [b.le, b.count]));
  return before.buckets.some((b) => (afterByLe.get(b.le) ?? 0) < b.count);
}

/** Pure: the counts of one process's interval, from two totals without a reset between them. */
export function deltaOf(before: Totals, after: Totals): Delta {
  const beforeByLe = new Map(before.buckets.map((b) => [b.le, b.count]));
  return {
    requests: after.requests - before.requests,
    errors: after.errors - before.errors,
    buckets: after.buckets.map((b) => ({ le: b.le, count: b.count - (beforeByLe.get(b.le) ?? 0) })),
  };
}

/** Pure: the interval's values from its counts. */
export function intervalValuesOf(delta: Delta): IntervalValues {
  const result: IntervalValues = { requests: delta.requests };
  if (delta.requests > 0) result.errorRatio = delta.errors / delta.requests;
  const p95 = histogramQuantile(0.95, delta.buckets);
  if (p95 !== null) result.p95 = p95;
  return result;
}

/**
 * Pure: the interval's counts as the traffic rules take them. Latency buckets in ms, cumulative
 * (made non-decreasing, as histogramQuantile does: scrapes are not atomic); absent without a
 * histogram ending in +Inf, since "share slower than X" needs the total it is a share of.
 */
export function trafficOf(delta: Delta): TrafficCounts {
  const traffic: TrafficCounts = { requests: delta.requests, errors: delta.errors };
  const last = delta.buckets[delta.buckets.length - 1];
  if (last !== undefined && last.le === Number.POSITIVE_INFINITY) {
    let max = 0;
    traffic.latency = delta.buckets.map((b): LatencyBucket => {
      max = Math.max(max, b.count);
      return { le: b.le * 1000, count: max };
    });
  }
  return traffic;
}
