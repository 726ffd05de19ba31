/**
 * Scrape probe: reads the app's own /metrics (Prometheus text format) without a Prometheus, and
 * turns the growth of its counters between two scrapes into what users saw in that interval.
 *
 * Values, from the deltas against the previous successful scrape:
 * - `requests`: requests served in the interval (all series of `requests_metric`, summed);
 * - `rps`: requests / interval seconds (interval from `deps.now()` at each completed scrape);
 * - `error_ratio`: requests whose `status_label` matches `error_status`, over all requests;
 *   absent when there were no requests (no data, never 0);
 * - `p95_ms`: the 95th percentile of the `duration_metric` histogram's bucket-count deltas,
 *   computed exactly as Prometheus' histogram_quantile does (linear interpolation inside the
 *   bucket; a rank in the +Inf bucket gives the highest finite bound), in ms; absent when
 *   nothing was observed;
 * - `latency_ms`: how long the scrape itself took (present whenever an answer arrived).
 *
 * Choices:
 * - First scrape: only takes the base; no interval values, `ok: true`, `error` says so.
 * - Counter reset (any total lower than in the base, e.g. the app restarted): not a fault. The
 *   interval is skipped (no interval values, `ok: true`, error `counter reset: app restarted;
 *   interval skipped`) and the new totals become the base. Prometheus would count the new totals
 *   as the increase, but how many requests the old process served after the last scrape is
 *   unknown, so a skipped interval is the only answer that cannot be wrong.
 * - Refused, timed out, non-200 or unparseable scrape: `ok: false` (not unavailable): the app's
 *   own endpoint failing is itself a sign that the app is down. The base is kept; if the app
 *   restarted meanwhile, the next scrape sees a counter reset.
 * - A 200 whose body lacks `requests_metric` altogether (neither a sample nor a `# TYPE`): the
 *   probe is pointed at the wrong thing, nothing can be judged: `ok: false, unavailable: true`,
 *   the error names the missing metric. A declared metric with no series yet counts as zero.
 * - Samples may overlap (a slow scrape still running when the next is launched): a scrape that
 *   completes after a later-launched one is stale and skipped, so the base only moves forward.
 */
import type { ScrapeProbeConfig } from '../config/schema.js';
import type { Sample } from '../core/types.js';
import { errorMessage, ProbeError } from '../errors.js';
import { fetchCapped, probeAgent } from './http-fetch.js';
import { parsePrometheusText, parseValue, type ParsedMetrics } from './prometheus-text.js';
import type { ProbeFactory } from './types.js';

/** Cumulative totals read from one scrape. */
export interface Totals {
  requests: number;
  errors: number;
  /** Requests by status label value ('' for series without the label). */
  byStatus: Map<string, number>;
  /** Cumulative histogram buckets sorted by upper bound, summed over other labels; empty when absent. */
  buckets: Bucket[];
}

export interface Bucket {
  /** Upper bound in the metric's unit (seconds); the last one is +Inf. */
  le: number;
  count: number;
}

/** What one interval showed; undefined fields are no data. */
export interface IntervalValues {
  requests: number;
  errorRatio?: number;
  /** In the histogram's unit (seconds). */
  p95?: number;
}

export const scrapeProbe: ProbeFactory<ScrapeProbeConfig> = (config, deps) => {
  const target = new URL(config.url);
  const agent = probeAgent(target);
  const errorStatus = compileErrorStatus(config);
  let launched = 0;
  let base: { totals: Totals; at: number; seq: number } | undefined;

  return {
    name: config.name,
    type: 'scrape',
    async sample(startedAt, signal) {
      const seq = ++launched;
      const exchanged = await fetchCapped(target, {
        headers: { accept: 'text/plain;version=0.0.4' },
        timeoutMs: config.timeout,
        maxBodyBytes: config.max_body_bytes,
        agent,
        signal,
      });
      const at = deps.now();
      const values: Record<string, number> = {};
      const sample: Sample = { probe: config.name, startedAt, at, ok: true, values };
      const fail = (error: string, unavailable = false): Sample => {
        sample.ok = false;
        sample.error = error;
        if (unavailable) sample.unavailable = true;
        return sample;
      };

      if (exchanged.failure !== undefined) return fail(`scrape failed: ${exchanged.failure}`);
      values.latency_ms = exchanged.latencyMs;
      if (exchanged.status !== 200) return fail(`scrape: status ${exchanged.status ?? 'missing'}, expected 200`);
      const parsed = parsePrometheusText((exchanged.body ?? Buffer.alloc(0)).toString('utf8'));
      if (parsed.samples.length === 0 && parsed.skipped > 0) {
        return fail(
          `scrape: body is not in the Prometheus text format (${parsed.skipped} unreadable lines, e.g. ${JSON.stringify(parsed.skippedExamples[0])})`,
        );
      }
      const totals = totalsOf(parsed, config, errorStatus);
      if (totals === null) {
        return fail(
          `scrape: metric ${config.requests_metric} not found (${parsed.samples.length} samples of other metrics); set requests_metric`,
          true,
        );
      }

      if (base !== undefined && seq < base.seq) {
        sample.error = 'stale scrape: a later scrape completed first; interval skipped';
        return sample;
      }
      const previous = base;
      base = { totals, at, seq };
      if (previous === undefined) {
        sample.error = 'first scrape: base taken; values from the next interval';
        return sample;
      }
      if (isCounterReset(previous.totals, totals)) {
        sample.error = 'counter reset: app restarted; interval skipped';
        return sample;
      }

      const interval = intervalValues(previous.totals, totals);
      values.requests = interval.requests;
      const seconds = (at - previous.at) / 1000;
      if (seconds > 0) values.rps = interval.requests / seconds;
      if (interval.errorRatio !== undefined) values.error_ratio = interval.errorRatio;
      if (interval.p95 !== undefined) values.p95_ms = interval.p95 * 1000;
      if (totals.buckets.length === 0) sample.error = `no histogram ${config.duration_metric}_bucket; p95_ms not computed`;
      return sample;
    },
    async close() {
      agent.destroy();
    },
  };
};

function compileErrorStatus(config: ScrapeProbeConfig): RegExp {
  try {
    return new RegExp(config.error_status);
  } catch (error) {
    throw new ProbeError(
      `probe "${config.name}": error_status ${JSON.stringify(config.error_status)} is not a regular expression: ${errorMessage(error)}`,
      'probe_config',
      'use e.g. ^5..$',
      { cause: error },
    );
  }
}

/** Pure: the cumulative totals of one scrape; null when the requests metric is missing entirely. */
export function totalsOf(
  parsed: ParsedMetrics,
  config: Pick<ScrapeProbeConfig, 'requests_metric' | 'status_label' | 'duration_metric'>,
  errorStatus: RegExp,
): Totals | null {
  const declared = Object.hasOwn(parsed.types, config.requests_metric);
  const totals: Totals = { requests: 0, errors: 0, byStatus: new Map(), buckets: [] };
  let seen = false;
  const byLe = new Map<number, number>();
  const bucketName = `${config.duration_metric}_bucket`;
  for (const s of parsed.samples) {
    if (s.name === config.requests_metric) {
      seen = true;
      if (!Number.isFinite(s.value)) continue;
      const status = s.labels[config.status_label] ?? '';
      totals.requests += s.value;
      totals.byStatus.set(status, (totals.byStatus.get(status) ?? 0) + s.value);
      if (status !== '' && errorStatus.test(status)) totals.errors += s.value;
    } else if (s.name === bucketName) {
      const le = parseValue(s.labels.le ?? '');
      if (le === null || Number.isNaN(le) || !Number.isFinite(s.value)) continue;
      byLe.set(le, (byLe.get(le) ?? 0) + s.value);
    }
  }
  if (!seen && !declared) return null;
  totals.buckets = [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
  return totals;
}

/** Pure: any cumulative total lower than before (a missing series counts as 0) means a reset. */
export function isCounterReset(before: Totals, after: Totals): boolean {
  if (after.requests < before.requests) return true;
  for (const [status, count] of before.byStatus) if ((after.byStatus.get(status) ?? 0) < count) return true;
  const afterByLe = new Map(after.buckets.map((b) => [b.le, b.count]));
  return before.buckets.some((b) => (afterByLe.get(b.le) ?? 0) < b.count);
}

/** Pure: the interval's values from two totals without a reset between them. */
export function intervalValues(before: Totals, after: Totals): IntervalValues {
  const requests = after.requests - before.requests;
  const result: IntervalValues = { requests };
  if (requests > 0) result.errorRatio = (after.errors - before.errors) / requests;
  const beforeByLe = new Map(before.buckets.map((b) => [b.le, b.count]));
  const deltas = after.buckets.map((b) => ({ le: b.le, count: b.count - (beforeByLe.get(b.le) ?? 0) }));
  const p95 = histogramQuantile(0.95, deltas);
  if (p95 !== null) result.p95 = p95;
  return result;
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
