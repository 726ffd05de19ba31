/** Prometheus' histogram_quantile over cumulative buckets, shared by the scrape and access-log probes. */

export interface Bucket {
  /** Upper bound in the metric's unit (seconds); the last one is +Inf. */
  le: number;
  count: number;
}

/**
 * Pure: Prometheus' histogram_quantile (bucketQuantile) over cumulative buckets sorted by `le`.
 * Null where Prometheus returns NaN: no +Inf bucket, fewer than two buckets, or no observations.
 * A rank that falls in the +Inf bucket gives the highest finite upper bound.
 */
export function histogramQuantile(q: number, sorted: readonly Bucket[]): number | null {
  if (Number.isNaN(q)) return null;
  if (q < 0) return Number.NEGATIVE_INFINITY;
  if (q > 1) return Number.POSITIVE_INFINITY;
  const last = sorted[sorted.length - 1];
  if (sorted.length < 2 || last === undefined || last.le !== Number.POSITIVE_INFINITY) return null;
  // Counts must not decrease with le; scrapes are not atomic, so fix them up as Prometheus does.
  const buckets: Bucket[] = [];
  let max = 0;
  for (const b of sorted) {
    max = Math.max(max, b.count);
    buckets.push({ le: b.le, count: max });
  }
  const observations = max;
  if (observations <= 0) return null;
  let rank = q * observations;
  let b = buckets.findIndex((bucket, i) => i < buckets.length - 1 && bucket.count >= rank);
  if (b === -1) b = buckets.length - 1;
  if (b === buckets.length - 1) return (buckets[buckets.length - 2] as Bucket).le;
  const bucket = buckets[b] as Bucket;
  if (b === 0 && bucket.le <= 0) return bucket.le;
  let start = 0;
  let count = bucket.count;
  if (b > 0) {
    const below = buckets[b - 1] as Bucket;
    start = below.le;
    count -= below.count;
    rank -= below.count;
  }
  return start + (bucket.le - start) * (rank / count);
}
