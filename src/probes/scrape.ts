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
 * The same interval's counts go into `traffic` (requests, errors, latency buckets with `le` in
 * ms), which the sequential traffic rules judge. Neither is present when no interval was counted.
 *
 * Several processes behind one port (pm2 cluster mode): each worker keeps its own counters, and
 * pm2 hands each new connection to the next worker, so two scrapes over two connections may read
 * two processes; their difference is noise, or a fake counter reset. A delta is therefore never
 * taken across two processes:
 * - One kept-alive connection: every scrape goes over the same socket (one socket, requests
 *   queue for it), so it reaches the same worker. When idle for `keepalive_interval` (never
 *   longer than half the Keep-Alive timeout the server announces) an extra scrape, whose answer
 *   is discarded, keeps the server from closing the connection between scrapes. The values are then that one worker's share
 *   of the traffic: under round-robin it is an unbiased sample of all requests (the ratios and
 *   p95 stand for the whole app; `requests` and `rps` are one worker's).
 * - Series without identity labels are only differenced when both scrapes came over the same
 *   connection. When the connection changed (the server closed it, a failed or timed-out
 *   scrape destroyed it), the probe cannot tell whether the same process answered: the new
 *   scrape becomes the base, no interval values, `ok: true`, `error` says why.
 * - Series carrying one of `identity_labels` (e.g. `worker="1"`) are totalled per process and
 *   differenced per process, whatever the connection; the interval is the sum over processes
 *   present in both scrapes (a new process only gives its base; a vanished one is dropped).
 * - `identity_metric` (e.g. `process_start_time_seconds`): when its value changes between two
 *   scrapes (e.g. through a proxy that keeps its own connections to the workers), another process
 *   answered: that process is re-based. When it is missing, nothing tells: re-based too.
 * - Whenever no process could be differenced, the interval is skipped: inconclusive, never a
 *   breach and never zero traffic.
 *
 * Choices:
 * - First scrape: only takes the base; no interval values, `ok: true`, `error` says so.
 * - Counter reset (any total of a process lower than in the base, e.g. the app restarted): not a
 *   fault. That process is re-based (with one process: no interval values, `ok: true`, error
 *   `counter reset: app restarted; interval skipped`). Prometheus would count the new totals as
 *   the increase, but how many requests the old process served after the last scrape is
 *   unknown, so a skipped interval is the only answer that cannot be wrong.
 * - Refused, timed out, non-200 or unparseable scrape: `ok: false` (not unavailable): the app's
 *   own endpoint failing is itself a sign that the app is down. The base is kept (a non-200
 *   answer keeps the connection, so the next interval spans the gap); a refused or timed-out
 *   scrape loses the connection, so the next scrape re-bases.
 * - A body the guard cannot afford is a failed sample (`ok: false`, no interval values, so never a
 *   breach of the traffic rules by itself) whose error names the cap and the value seen: over
 *   `max_body_bytes` (stopped as soon as it is passed), or a metric the probe reads with more than
 *   `max_series` series (a release whose labels explode). The body is read as it streams and only
 *   the families the probe reads are parsed (prometheus-stream.ts): other metrics' series, however
 *   many, are counted and dropped, and the event loop gets a turn between two chunks.
 * - A 200 whose body lacks `requests_metric` altogether (neither a sample nor a `# TYPE`): the
 *   probe is pointed at the wrong thing, nothing can be judged: `ok: false, unavailable: true`,
 *   the error names the missing metric. A declared metric with no series yet counts as zero.
 * - A slow scrape delays the next one (they share the connection) rather than racing it; a
 *   scrape that still completes after a later-launched one is stale and skipped, so the base
 *   only moves forward.
 */
import type net from 'node:net';
import type { ScrapeProbeConfig } from '../config/schema.js';
import type { LatencyBucket, Sample, TrafficCounts } from '../core/types.js';
import { errorMessage, ProbeError } from '../errors.js';
import { fetchCapped, pinnedConnectionAgent, type Exchange } from './http-fetch.js';
import { FamilyReader } from './prometheus-stream.js';
import { parseValue, type MetricSample, type ParsedMetrics } from './prometheus-text.js';
import type { BuiltInSampleValues, ProbeFactory } from './types.js';

/** Cumulative totals read from one scrape (of one process). */
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

/** One scrape as the next one is compared with it. */
export interface Snapshot {
  /**
   * Totals per process. The key is the series' identity labels as written in the exposition
   * (`worker="1"`); '' for series that carry none, whose process only the connection tells.
   */
  byProcess: Map<string, Totals>;
  /** identity_metric's value(s) per process key, when the metric is configured and present. */
  identity: Map<string, string>;
  /** Which connection carried the scrape (0: unknown). */
  connection: number;
}

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

const FIRST_SCRAPE = 'first scrape: base taken; values from the next interval';
/**
 * The longest line the probe keeps while waiting for its end. A sample line of the metrics it
 * reads is a few hundred bytes at most; a longer one of those metrics fails the scrape, a longer
 * one of any other metric is skipped without being kept.
 */
const MAX_LINE_BYTES = 64 * 1024;
/** A server announcing `Keep-Alive: timeout=0` (under a second) still gets no more than 10 keep-alive requests a second. */
const MIN_HEARTBEAT_MS = 100;

export const scrapeProbe: ProbeFactory<ScrapeProbeConfig> = (config, deps) => {
  const target = new URL(config.url);
  const agent = pinnedConnectionAgent(target);
  const errorStatus = compileErrorStatus(config);
  const connections = new PinnedConnection(config.keepalive_interval);
  let launched = 0;
  let base: { snapshot: Snapshot; at: number; seq: number } | undefined;

  /**
   * One exchange over the pinned connection; tells which connection carried it. The body is
   * streamed into `onChunk`, never buffered whole.
   */
  const exchange = async (signal: AbortSignal, onChunk: (chunk: Buffer) => void): Promise<{ exchanged: Exchange; connection: number }> => {
    let connection = 0;
    connections.busy();
    try {
      const exchanged = await fetchCapped(target, {
        headers: { accept: 'text/plain;version=0.0.4' },
        timeoutMs: config.timeout,
        maxBodyBytes: config.max_body_bytes,
        agent,
        signal,
        onSocket: (socket) => (connection = connections.track(socket)),
        onChunk,
      });
      const announced = exchanged.headers?.['keep-alive'];
      connections.serverAnnounced(typeof announced === 'string' ? announced : undefined);
      return { exchanged, connection };
    } finally {
      // The keep-alive request only keeps the socket open; what it read is not a sample. A GET,
      // not a HEAD: Node reads a HEAD answer without content-length (a hand-written /metrics)
      // as ending with the connection, and would not keep it.
      connections.idle(() => void exchange(connections.closing.signal, discard));
    }
  };

  return {
    name: config.name,
    type: 'scrape',
    async sample(startedAt, signal) {
      const seq = ++launched;
      // Only the families the probe reads are parsed, as the body streams in; every other line is
      // counted and dropped (a release with exploding cardinality must not take the guard's memory).
      const builder = new SnapshotBuilder(config, errorStatus);
      const reader = new FamilyReader(
        {
          names: [config.requests_metric, `${config.duration_metric}_bucket`, ...(config.identity_metric === undefined ? [] : [config.identity_metric])],
          typed: [config.requests_metric],
          maxSeries: config.max_series,
          maxLineBytes: MAX_LINE_BYTES,
        },
        (s) => builder.add(s),
      );
      const { exchanged, connection } = await exchange(signal, (chunk) => reader.write(chunk));
      const at = deps.now();
      const values: BuiltInSampleValues = {};
      const sample: Sample = { probe: config.name, startedAt, at, ok: true, values };
      const fail = (error: string, unavailable = false): Sample => {
        sample.ok = false;
        sample.error = error;
        if (unavailable) sample.unavailable = true;
        return sample;
      };

      const { tooLarge } = exchanged;
      if (tooLarge !== undefined) {
        const seen = tooLarge.declared ? `content-length ${tooLarge.bytes}` : `${tooLarge.bytes} bytes read when it was stopped`;
        return fail(`scrape: body larger than max_body_bytes ${config.max_body_bytes} (${seen})`);
      }
      if (exchanged.failure !== undefined) return fail(`scrape failed: ${exchanged.failure}`);
      values.latency_ms = exchanged.latencyMs;
      if (exchanged.status !== 200) return fail(`scrape: status ${exchanged.status ?? 'missing'}, expected 200`);
      const read = reader.end();
      if (read.overCap !== undefined) return fail(`scrape: ${read.overCap}`);
      // More unreadable lines than lines that look like another metric's samples: not an exposition
      // at all (an HTML page, binary bytes), rather than one with an odd line.
      if (read.read === 0 && read.skipped > read.other) {
        return fail(
          `scrape: body is not in the Prometheus text format (${read.skipped} unreadable lines, e.g. ${JSON.stringify(read.skippedExamples[0])})`,
        );
      }
      const snapshot = builder.finish(Object.hasOwn(read.types, config.requests_metric), connection);
      if (snapshot === null) {
        return fail(
          `scrape: metric ${config.requests_metric} not found (${read.read + read.other} samples of other metrics); set requests_metric`,
          true,
        );
      }

      if (base !== undefined && seq < base.seq) {
        sample.error = 'stale scrape: a later scrape completed first; interval skipped';
        return sample;
      }
      const previous = base;
      base = { snapshot, at, seq };
      if (previous === undefined) {
        sample.error = FIRST_SCRAPE;
        return sample;
      }

      const comparison = compareSnapshots(previous.snapshot, snapshot, config.identity_metric);
      const notes: string[] = [];
      if (comparison.delta === undefined) {
        sample.error = `${comparison.skipped.join('; ')}; interval skipped`;
        return sample;
      }
      if (comparison.skipped.length > 0) {
        const processes = comparison.counted + comparison.skipped.length;
        notes.push(`interval counts ${comparison.counted} of ${processes} processes (${comparison.skipped.join('; ')})`);
      }
      const { delta } = comparison;
      const interval = intervalValuesOf(delta);
      values.requests = interval.requests;
      const seconds = (at - previous.at) / 1000;
      if (seconds > 0) values.rps = interval.requests / seconds;
      if (interval.errorRatio !== undefined) values.error_ratio = interval.errorRatio;
      if (interval.p95 !== undefined) values.p95_ms = interval.p95 * 1000;
      sample.traffic = trafficOf(delta);
      if (delta.buckets.length === 0) notes.push(`no histogram ${config.duration_metric}_bucket; p95_ms not computed`);
      if (notes.length > 0) sample.error = notes.join('; ');
      return sample;
    },
    async close() {
      connections.close();
      agent.destroy();
    },
  };
};

/** The keep-alive request's answer is not a sample: its body is read and dropped. */
const discard = (): void => undefined;

/**
 * Which socket carried each exchange, and the keep-alive requests that stop the server from
 * closing it while the probe is idle. Node servers close an idle connection after
 * keepAliveTimeout (5 s by default, often less; they announce it as `Keep-Alive: timeout=N`):
 * a connection re-opened between two scrapes may reach another worker and costs an interval.
 */
class PinnedConnection {
  readonly closing = new AbortController();
  private readonly ids = new WeakMap<net.Socket, number>();
  private lastId = 0;
  /** The socket of the latest exchange, while it is open. */
  private live: net.Socket | undefined;
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private announcedMs: number | undefined;

  constructor(private readonly keepaliveMs: number) {}

  track(socket: net.Socket): number {
    let id = this.ids.get(socket);
    if (id === undefined) {
      id = ++this.lastId;
      this.ids.set(socket, id);
      socket.once('close', () => {
        if (this.live === socket) this.live = undefined;
      });
    }
    if (!socket.destroyed) this.live = socket;
    return id;
  }

  busy(): void {
    this.inFlight += 1;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** `Keep-Alive: timeout=N` (seconds): the server closes idle connections after N s or a little more. */
  serverAnnounced(header: string | undefined): void {
    const seconds = header === undefined ? undefined : /(?:^|,)\s*timeout=(\d+)/i.exec(header)?.[1];
    if (seconds !== undefined) this.announcedMs = Number(seconds) * 1000;
  }

  /** After an exchange: once nothing is in flight, keeps the live connection busy every so often. */
  idle(keepAlive: () => void): void {
    this.inFlight -= 1;
    // A socket destroyed by a failed exchange is not kept alive: a keep-alive request would only
    // open a new connection, which the next scrape re-bases on anyway.
    if (this.inFlight > 0 || this.closing.signal.aborted || this.live === undefined || this.live.destroyed) return;
    const delay = this.announcedMs === undefined ? this.keepaliveMs : Math.min(this.keepaliveMs, Math.max(MIN_HEARTBEAT_MS, this.announcedMs / 2));
    this.timer = setTimeout(keepAlive, delay);
    // A probe waiting to keep a connection alive must not keep the daemon alive.
    this.timer.unref();
  }

  close(): void {
    this.closing.abort();
    clearTimeout(this.timer);
  }
}

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

/**
 * Pure: which process a series comes from, by the identity labels it carries, as written in the
 * exposition (`instance="a",worker="1"`); '' when it carries none of them.
 */
export function processKey(labels: Readonly<Record<string, string>>, identityLabels: readonly string[]): string {
  const parts: string[] = [];
  for (const label of identityLabels) {
    const value = labels[label];
    if (value !== undefined && value !== '') parts.push(`${label}=${JSON.stringify(value)}`);
  }
  return parts.join(',');
}

type SnapshotConfig = Pick<ScrapeProbeConfig, 'requests_metric' | 'status_label' | 'duration_metric' | 'identity_labels' | 'identity_metric'>;

/** Pure: one scrape per process; null when the requests metric is missing entirely. */
export function snapshotOf(parsed: ParsedMetrics, config: SnapshotConfig, errorStatus: RegExp, connection: number): Snapshot | null {
  const builder = new SnapshotBuilder(config, errorStatus);
  for (const s of parsed.samples) builder.add(s);
  return builder.finish(Object.hasOwn(parsed.types, config.requests_metric), connection);
}

/**
 * Pure: a snapshot totalled sample by sample as they are read, so no sample is kept. Its size
 * grows with the processes and statuses seen, which the series cap bounds.
 */
export class SnapshotBuilder {
  private readonly byProcess = new Map<string, Totals>();
  private readonly bucketsByProcess = new Map<string, Map<number, number>>();
  private readonly identityValues = new Map<string, number[]>();
  private readonly bucketName: string;
  private seen = false;

  constructor(
    private readonly config: SnapshotConfig,
    private readonly errorStatus: RegExp,
  ) {
    this.bucketName = `${config.duration_metric}_bucket`;
  }

  add(s: MetricSample): void {
    const { config } = this;
    if (s.name === config.requests_metric) {
      this.seen = true;
      if (!Number.isFinite(s.value)) return;
      const totals = this.totalsFor(processKey(s.labels, config.identity_labels));
      const status = s.labels[config.status_label] ?? '';
      totals.requests += s.value;
      totals.byStatus.set(status, (totals.byStatus.get(status) ?? 0) + s.value);
      if (status !== '' && this.errorStatus.test(status)) totals.errors += s.value;
    } else if (s.name === this.bucketName) {
      const le = parseValue(s.labels.le ?? '');
      if (le === null || Number.isNaN(le) || !Number.isFinite(s.value)) return;
      const key = processKey(s.labels, config.identity_labels);
      this.totalsFor(key);
      let byLe = this.bucketsByProcess.get(key);
      if (byLe === undefined) this.bucketsByProcess.set(key, (byLe = new Map()));
      byLe.set(le, (byLe.get(le) ?? 0) + s.value);
    } else if (s.name === config.identity_metric) {
      const key = processKey(s.labels, config.identity_labels);
      const values = this.identityValues.get(key);
      if (values === undefined) this.identityValues.set(key, [s.value]);
      else values.push(s.value);
    }
  }

  /** The snapshot; null when the requests metric was neither declared (`# TYPE`) nor sampled. */
  finish(declared: boolean, connection: number): Snapshot | null {
    if (!this.seen && !declared) return null;
    // A declared metric with no series yet (a fresh app): zero requests, from whichever process answered.
    if (this.byProcess.size === 0) this.totalsFor('');
    for (const [key, byLe] of this.bucketsByProcess) {
      this.totalsFor(key).buckets = [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
    }
    const identity = new Map([...this.identityValues].map(([key, values]) => [key, values.sort((a, b) => a - b).join(',')]));
    return { byProcess: this.byProcess, identity, connection };
  }

  private totalsFor(key: string): Totals {
    let totals = this.byProcess.get(key);
    if (totals === undefined) this.byProcess.set(key, (totals = { requests: 0, errors: 0, byStatus: new Map(), buckets: [] }));
    return totals;
  }
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
