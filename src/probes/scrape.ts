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
import type { ScrapeProbeConfig } from '../config/schema.js';
import type { Sample } from '../core/types.js';
import { errorMessage, ProbeError } from '../errors.js';
import { pinnedConnectionAgent } from './http-fetch.js';
import { FamilyReader } from './prometheus-stream.js';
import { PinnedConnection, pinnedExchange, type ScrapeExchange } from './scrape-connection.js';
import { compareSnapshots, intervalValuesOf, trafficOf } from './scrape-interval.js';
import { SnapshotBuilder, type Snapshot } from './scrape-snapshot.js';
import type { BuiltInSampleValues, ProbeFactory } from './types.js';

const FIRST_SCRAPE = 'first scrape: base taken; values from the next interval';
/**
 * The longest line the probe keeps while waiting for its end. A sample line of the metrics it
 * reads is a few hundred bytes at most; a longer one of those metrics fails the scrape, a longer
 * one of any other metric is skipped without being kept.
 */
const MAX_LINE_BYTES = 64 * 1024;

/** A scrape read to its end: the snapshot, or why there is none (`unavailable`: nothing to judge). */
type ScrapeRead = { snapshot: Snapshot; latencyMs: number } | { error: string; unavailable?: boolean; latencyMs?: number };

/** The previous successful scrape, which the next one is differenced against. */
interface Base {
  snapshot: Snapshot;
  at: number;
  seq: number;
}

export const scrapeProbe: ProbeFactory<ScrapeProbeConfig> = (config, deps) => {
  const target = new URL(config.url);
  const agent = pinnedConnectionAgent(target);
  const errorStatus = compileErrorStatus(config);
  const connections = new PinnedConnection(config.keepalive_interval);
  const exchange = pinnedExchange(target, agent, connections, { timeoutMs: config.timeout, maxBodyBytes: config.max_body_bytes });
  let launched = 0;
  let base: Base | undefined;

  return {
    name: config.name,
    type: 'scrape',
    async sample(startedAt, signal) {
      const seq = ++launched;
      const read = await readScrape(config, errorStatus, exchange, signal);
      const at = deps.now();
      const values: BuiltInSampleValues = {};
      const sample: Sample = { probe: config.name, startedAt, at, ok: true, values };
      if (read.latencyMs !== undefined) values.latency_ms = read.latencyMs;
      if ('error' in read) {
        sample.ok = false;
        sample.error = read.error;
        if (read.unavailable) sample.unavailable = true;
        return sample;
      }
      if (base !== undefined && seq < base.seq) {
        sample.error = 'stale scrape: a later scrape completed first; interval skipped';
        return sample;
      }
      const previous = base;
      base = { snapshot: read.snapshot, at, seq };
      if (previous === undefined) {
        sample.error = FIRST_SCRAPE;
        return sample;
      }
      addIntervalValues(sample, previous, base, config);
      return sample;
    },
    async close() {
      connections.close();
      agent.destroy();
    },
  };
};

/**
 * One scrape over the pinned connection, parsed as the body streams in: only the families the
 * probe reads are parsed; every other line is counted and dropped (a release with exploding
 * cardinality must not take the guard's memory).
 */
async function readScrape(config: ScrapeProbeConfig, errorStatus: RegExp, exchange: ScrapeExchange, signal: AbortSignal): Promise<ScrapeRead> {
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
  const { tooLarge } = exchanged;
  if (tooLarge !== undefined) {
    const seen = tooLarge.declared ? `content-length ${tooLarge.bytes}` : `${tooLarge.bytes} bytes read when it was stopped`;
    return { error: `scrape: body larger than max_body_bytes ${config.max_body_bytes} (${seen})` };
  }
  if (exchanged.failure !== undefined) return { error: `scrape failed: ${exchanged.failure}` };
  const latencyMs = exchanged.latencyMs;
  if (exchanged.status !== 200) return { error: `scrape: status ${exchanged.status ?? 'missing'}, expected 200`, latencyMs };
  const read = reader.end();
  if (read.overCap !== undefined) return { error: `scrape: ${read.overCap}`, latencyMs };
  // More unreadable lines than lines that look like another metric's samples: not an exposition
  // at all (an HTML page, binary bytes), rather than one with an odd line.
  if (read.read === 0 && read.skipped > read.other) {
    return {
      error: `scrape: body is not in the Prometheus text format (${read.skipped} unreadable lines, e.g. ${JSON.stringify(read.skippedExamples[0])})`,
      latencyMs,
    };
  }
  const snapshot = builder.finish(Object.hasOwn(read.types, config.requests_metric), connection);
  if (snapshot === null) {
    return {
      error: `scrape: metric ${config.requests_metric} not found (${read.read + read.other} samples of other metrics); set requests_metric`,
      unavailable: true,
      latencyMs,
    };
  }
  return { snapshot, latencyMs };
}

/** The interval between two scrapes into `sample`: its values, its traffic counts, and notes on what was not counted. */
function addIntervalValues(sample: Sample, previous: Base, current: Base, config: ScrapeProbeConfig): void {
  const comparison = compareSnapshots(previous.snapshot, current.snapshot, config.identity_metric);
  if (comparison.delta === undefined) {
    sample.error = `${comparison.skipped.join('; ')}; interval skipped`;
    return;
  }
  const notes: string[] = [];
  if (comparison.skipped.length > 0) {
    const processes = comparison.counted + comparison.skipped.length;
    notes.push(`interval counts ${comparison.counted} of ${processes} processes (${comparison.skipped.join('; ')})`);
  }
  const { delta } = comparison;
  const interval = intervalValuesOf(delta);
  const values = sample.values;
  values.requests = interval.requests;
  const seconds = (current.at - previous.at) / 1000;
  if (seconds > 0) values.rps = interval.requests / seconds;
  if (interval.errorRatio !== undefined) values.error_ratio = interval.errorRatio;
  if (interval.p95 !== undefined) values.p95_ms = interval.p95 * 1000;
  sample.traffic = trafficOf(delta);
  if (delta.buckets.length === 0) notes.push(`no histogram ${config.duration_metric}_bucket; p95_ms not computed`);
  if (notes.length > 0) sample.error = notes.join('; ');
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

