/**
 * What the release window looked like, for the picture in a rollback record: error ratio,
 * p95 latency, CPU and memory over time, taken from the samples the guard already holds.
 * Pure: samples in, series and events out.
 */
import type { RollbackRecord, Sample } from '../core/types.js';
import type { TimelineEvent, TimelineInput, TimelineSeries } from './timeline-svg.js';

/** Bucket width for check-based error ratios: wide enough to hold several fast checks. */
const BUCKET_MS = 1000;

function errorRatioFromChecks(samples: readonly Sample[]): [number, number][] {
  const buckets = new Map<number, { n: number; failed: number }>();
  for (const s of samples) {
    const key = Math.floor(s.startedAt / BUCKET_MS) * BUCKET_MS;
    const b = buckets.get(key) ?? { n: 0, failed: 0 };
    b.n += 1;
    if (!s.ok) b.failed += 1;
    buckets.set(key, b);
  }
  return [...buckets].sort(([a], [b]) => a - b).map(([t, b]) => [t, b.failed / b.n]);
}

const points = (samples: readonly Sample[], value: string): [number, number][] =>
  samples.filter((s) => typeof s.values[value] === 'number').map((s) => [s.startedAt, s.values[value]!]);

export function windowTimeline(
  record: RollbackRecord,
  samples: ReadonlyMap<string, readonly Sample[]>,
  probeTypes: ReadonlyMap<string, string>,
  service: string,
): TimelineInput {
  const from = Math.min(record.release.startedAt, record.breach.faultAt) - 10_000;
  const to = record.finishedAt + 5_000;
  const inRange = (list: readonly Sample[]) => list.filter((s) => s.startedAt >= from && s.startedAt <= to && !s.unavailable);
  const byType = (...types: string[]) => [...probeTypes].filter(([, type]) => types.includes(type)).map(([name]) => inRange(samples.get(name) ?? []));
  const traffic = byType('scrape', 'access_log', 'prometheus').find((list) => list.some((s) => typeof s.values.error_ratio === 'number'));
  const checks = byType('http')[0] ?? [];
  const host = byType('system')[0] ?? [];
  const series: TimelineSeries[] = [
    { name: traffic ? 'error ratio (traffic)' : 'error ratio (checks)', unit: 'ratio', points: traffic ? points(traffic, 'error_ratio') : errorRatioFromChecks(checks) },
    {
      name: traffic?.some((s) => typeof s.values.p95_ms === 'number') ? 'p95 latency (traffic)' : 'latency (checks)',
      unit: 'ms',
      points: traffic?.some((s) => typeof s.values.p95_ms === 'number') ? points(traffic, 'p95_ms') : points(checks.filter((s) => s.ok), 'latency_ms'),
    },
    { name: 'cpu', unit: 'ratio', points: points(host, 'cpu') },
    { name: 'memory', unit: 'ratio', points: points(host, 'memory') },
  ];
  const events: TimelineEvent[] = [
    { at: record.release.startedAt, label: `release ${record.release.version}`, kind: 'release' },
    { at: record.breach.decidedAt, label: `breach: ${record.breach.rules.join(', ') || record.breach.trigger}`, kind: 'breach' },
  ];
  if (record.executedAt) events.push({ at: record.executedAt, label: `rolled back to ${record.to}`, kind: 'rollback' });
  events.push(
    record.outcome === 'rolled_back'
      ? { at: record.finishedAt, label: 'verified', kind: 'verified' }
      : { at: record.finishedAt, label: 'failed', kind: 'failed' },
  );
  return { series, events, from, to, title: `${service}: ${record.from} → ${record.to}` };
}
