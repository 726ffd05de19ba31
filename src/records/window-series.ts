/**
 * What the release window looked like, for the picture in a rollback record: error ratio,
 * p95 latency, CPU and memory over time, taken from the samples the guard already holds.
 * Pure: samples in, series and events out.
 */
import type { GuardState, RollbackRecord, Sample } from '../core/types.js';
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

/**
 * The four series of a window (error ratio, p95 or check latency, CPU, memory) from `from` to
 * `to`: traffic counts when a traffic probe reports them, else the http checks.
 */
function windowSeries(samples: ReadonlyMap<string, readonly Sample[]>, probeTypes: ReadonlyMap<string, string>, from: number, to: number): TimelineSeries[] {
  const inRange = (list: readonly Sample[]) => list.filter((s) => s.startedAt >= from && s.startedAt <= to && !s.unavailable);
  const byType = (...types: string[]) => [...probeTypes].filter(([, type]) => types.includes(type)).map(([name]) => inRange(samples.get(name) ?? []));
  const traffic = byType('scrape', 'access_log', 'prometheus').find((list) => list.some((s) => typeof s.values.error_ratio === 'number'));
  const checks = byType('http')[0] ?? [];
  const host = byType('system')[0] ?? [];
  return [
    { name: traffic ? 'error ratio (traffic)' : 'error ratio (checks)', unit: 'ratio', points: traffic ? points(traffic, 'error_ratio') : errorRatioFromChecks(checks) },
    {
      name: traffic?.some((s) => typeof s.values.p95_ms === 'number') ? 'p95 latency (traffic)' : 'latency (checks)',
      unit: 'ms',
      points: traffic?.some((s) => typeof s.values.p95_ms === 'number') ? points(traffic, 'p95_ms') : points(checks.filter((s) => s.ok), 'latency_ms'),
    },
    { name: 'cpu', unit: 'ratio', points: points(host, 'cpu') },
    { name: 'memory', unit: 'ratio', points: points(host, 'memory') },
  ];
}

export function windowTimeline(
  record: RollbackRecord,
  samples: ReadonlyMap<string, readonly Sample[]>,
  probeTypes: ReadonlyMap<string, string>,
  service: string,
): TimelineInput {
  const from = Math.min(record.release.startedAt, record.breach.faultAt) - 10_000;
  const to = record.finishedAt + 5_000;
  const series = windowSeries(samples, probeTypes, from, to);
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

/** How far back the live chart reaches when no release is under guard. */
export const LIVE_LOOKBACK_MS = 5 * 60_000;
/** The samples the guard keeps (its RETENTION_MS): older parts of a window have none. */
const LIVE_RETENTION_MS = 15 * 60_000;

/**
 * The current window as it stands at `now`, drawn like the record's timeline: from just before the
 * release (or the last five minutes without one) to now, with the release, the breach, the end of
 * the rollback plan (verification begins there) and the verified or failed end marked as they
 * happen. At most `maxPoints` points per series (see `thin`), so the page stays small.
 */
export function liveWindowTimeline(
  state: GuardState,
  samples: ReadonlyMap<string, readonly Sample[]>,
  probeTypes: ReadonlyMap<string, string>,
  service: string,
  now: number,
  maxPoints = 300,
): TimelineInput {
  const release = state.release;
  // The guard keeps 15 minutes of samples: an older window start is drawn from what is left.
  const from = release ? Math.max(Math.min(release.startedAt, now) - 10_000, now - LIVE_RETENTION_MS) : now - LIVE_LOOKBACK_MS;
  const to = Math.max(now, from + 1000);
  const series = windowSeries(samples, probeTypes, from, to).map((s) => ({ ...s, points: thin(s.points, from, to, maxPoints) }));
  const events: TimelineEvent[] = [];
  if (release) events.push({ at: release.startedAt, label: `release ${release.version}`, kind: 'release' });
  const breach = state.rollback?.breach ?? state.pending?.breach ?? null;
  if (breach) events.push({ at: breach.decidedAt, label: `breach: ${breach.rules.join(', ') || breach.trigger}`, kind: 'breach' });
  if (state.rollback?.executedAt) events.push({ at: state.rollback.executedAt, label: `rolled back to ${state.rollback.to}, verifying`, kind: 'rollback' });
  if (state.rollback && state.phase === 'rolled_back') events.push({ at: state.since, label: 'verified', kind: 'verified' });
  if (state.rollback && state.phase === 'failed') events.push({ at: state.since, label: 'failed', kind: 'failed' });
  const title = release ? `${service}: window of ${release.version} (${state.phase})` : `${service}: last ${LIVE_LOOKBACK_MS / 60_000} minutes (${state.phase})`;
  return { series, events, from, to, title };
}

/**
 * At most `maxPoints` points, one per equal slice of [from, to]: the largest value of each slice,
 * so an error spike or a latency peak never disappears from the picture when it is thinned.
 */
export function thin(list: readonly [number, number][], from: number, to: number, maxPoints: number): [number, number][] {
  if (list.length <= maxPoints) return [...list];
  const width = (to - from) / maxPoints;
  const slices = new Map<number, [number, number]>();
  for (const point of list) {
    const slice = Math.floor((point[0] - from) / width);
    const kept = slices.get(slice);
    if (!kept || point[1] > kept[1]) slices.set(slice, point);
  }
  return [...slices.values()].sort((a, b) => a[0] - b[0]);
}
