import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { probeSchema, type ScrapeProbeConfig } from '../config/schema.js';
import { ProbeError } from '../errors.js';
import { histogramQuantile } from './histogram-quantile.js';
import { compareSnapshots, trafficOf } from './scrape-interval.js';
import { snapshotOf, type Snapshot } from './scrape-snapshot.js';
import { scrapeProbe } from './scrape.js';
import { parsePrometheusText } from './prometheus-text.js';
import type { Probe } from './types.js';

/** What the fake app answers next; captured when a request arrives. */
let reply: { status: number; body: string; delayMs: number };

function metrics(byStatus: Record<string, number>, buckets: Record<string, number> = {}, label = 'status'): string {
  const lines = ['# HELP http_requests_total Requests served, by status.', '# TYPE http_requests_total counter'];
  for (const [status, n] of Object.entries(byStatus)) lines.push(`http_requests_total{method="GET",${label}="${status}"} ${n}`);
  lines.push('# TYPE http_request_duration_seconds histogram');
  for (const [le, n] of Object.entries(buckets)) lines.push(`http_request_duration_seconds_bucket{le="${le}"} ${n}`);
  return `${lines.join('\n')}\n`;
}

/** Cumulative buckets with `total` observations spread as given per bucket. */
const BUCKETS = (b01: number, b025: number, b05: number, inf: number) => ({ '0.1': b01, '0.25': b025, '0.5': b05, '+Inf': inf });

let server: http.Server;
let url: string;
/** Connections the fake app accepted, and the requests it answered. */
let connectionsOpened = 0;
let requestsAnswered = 0;
let clock: number;
let probe: Probe;

function makeProbe(extra: Record<string, unknown> = {}): Probe {
  const config = probeSchema.parse({ type: 'scrape', name: 'app', url, ...extra }) as ScrapeProbeConfig;
  return scrapeProbe(config, { now: () => clock });
}

async function scrape(body: string, advanceMs = 5000, status = 200) {
  reply = { status, body, delayMs: 0 };
  clock += advanceMs;
  return probe.sample(clock, new AbortController().signal);
}

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    requestsAnswered += 1;
    res.on('error', () => undefined);
    const { status, body, delayMs } = reply;
    setTimeout(() => {
      res.writeHead(status, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(body);
    }, delayMs);
  });
  server.on('connection', () => (connectionsOpened += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(async () => {
  await probe?.close?.();
  server.closeAllConnections();
  connectionsOpened = 0;
  requestsAnswered = 0;
  clock = 1_000_000;
  probe = makeProbe();
});

describe('scrape probe: interval values and counter resets', () => {
  it('first scrape: takes the base only, no interval values', async () => {
    const s = await scrape(metrics({ 200: 90, 500: 10 }, BUCKETS(50, 90, 100, 100)));
    expect(s).toMatchObject({ probe: 'app', ok: true, error: 'first scrape: base taken; values from the next interval' });
    expect(Object.keys(s.values)).toEqual(['latency_ms']);
  });

  it('computes requests, rps, error_ratio and p95 from the deltas', async () => {
    await scrape(metrics({ 200: 90, 500: 10 }, BUCKETS(50, 90, 100, 100)));
    // +100 requests (10 errors); bucket deltas 50 / 40 / 10 / 0: rank 95 is halfway into (0.25, 0.5].
    const s = await scrape(metrics({ 200: 180, 500: 20 }, BUCKETS(100, 180, 200, 200)), 4000);
    expect(s.ok).toBe(true);
    expect(s.error).toBeUndefined();
    expect(s.values).toMatchObject({ requests: 100, rps: 25, error_ratio: 0.1, p95_ms: 375 });
  });

  it('counts a status that first appears in this interval, and only statuses matching error_status', async () => {
    await scrape(metrics({ 200: 100, 404: 5 }, BUCKETS(100, 100, 100, 100)));
    const s = await scrape(metrics({ 200: 140, 404: 15, 503: 25, 500: 20 }, BUCKETS(140, 190, 200, 200)));
    expect(s.values.requests).toBe(95);
    expect(s.values.error_ratio).toBeCloseTo(45 / 95, 12);
  });

  it('no requests in the interval: error_ratio and p95 absent (no data), requests 0', async () => {
    await scrape(metrics({ 200: 10 }, BUCKETS(10, 10, 10, 10)));
    const s = await scrape(metrics({ 200: 10 }, BUCKETS(10, 10, 10, 10)));
    expect(s.ok).toBe(true);
    expect(s.values).toMatchObject({ requests: 0, rps: 0 });
    expect(s.values).not.toHaveProperty('error_ratio');
    expect(s.values).not.toHaveProperty('p95_ms');
  });

  it('a rank in the +Inf bucket gives the highest finite bound (Prometheus semantics)', async () => {
    await scrape(metrics({ 200: 0 }, BUCKETS(0, 0, 0, 0)));
    const s = await scrape(metrics({ 200: 20 }, BUCKETS(1, 1, 1, 20)));
    expect(s.values.p95_ms).toBe(500);
  });

  it('counter reset: no fault, the interval is skipped, the new totals become the base', async () => {
    await scrape(metrics({ 200: 900, 500: 100 }, BUCKETS(1000, 1000, 1000, 1000)));
    const reset = await scrape(metrics({ 200: 30 }, BUCKETS(30, 30, 30, 30)));
    expect(reset).toMatchObject({ ok: true, error: 'counter reset: app restarted; interval skipped' });
    expect(Object.keys(reset.values)).toEqual(['latency_ms']);
    const after = await scrape(metrics({ 200: 80 }, BUCKETS(80, 80, 80, 80)));
    expect(after.values).toMatchObject({ requests: 50, error_ratio: 0 });
  });

  it('a reset is seen even when the total grew back, if one status went down', async () => {
    await scrape(metrics({ 200: 10, 500: 10 }));
    const s = await scrape(metrics({ 200: 50 }));
    expect(s.error).toBe('counter reset: app restarted; interval skipped');
  });

  it('a declared metric with no series yet (a fresh app) counts as zero', async () => {
    await scrape(metrics({}, BUCKETS(0, 0, 0, 0)));
    const s = await scrape(metrics({ 200: 5 }, BUCKETS(5, 5, 5, 5)));
    expect(s.values).toMatchObject({ requests: 5, error_ratio: 0 });
    expect(s.values.p95_ms).toBeCloseTo(95, 9);
  });
});

describe('scrape probe: missing metrics and failed scrapes', () => {
  it('the requests metric missing altogether: unavailable, naming the metric', async () => {
    const s = await scrape('# TYPE other counter\nother_total 5\nprocess_start_time_seconds 1\n');
    expect(s).toMatchObject({ ok: false, unavailable: true });
    expect(s.error).toBe('scrape: metric http_requests_total not found (2 samples of other metrics); set requests_metric');
  });

  it('a missing histogram: interval values without p95, with a note', async () => {
    await scrape('http_requests_total{status="200"} 1\n');
    const s = await scrape('http_requests_total{status="200"} 3\n');
    expect(s).toMatchObject({ ok: true, values: { requests: 2, error_ratio: 0 } });
    expect(s.error).toBe('no histogram http_request_duration_seconds_bucket; p95_ms not computed');
  });

  it('a non-200 answer fails the sample (the app is sick), without unavailable', async () => {
    const s = await scrape('oops', 5000, 503);
    expect(s).toMatchObject({ ok: false, error: 'scrape: status 503, expected 200' });
    expect(s.unavailable).toBeUndefined();
  });

  it('a body that is not the text format fails the sample', async () => {
    const s = await scrape('<html><body>Welcome</body></html>');
    expect(s.ok).toBe(false);
    expect(s.unavailable).toBeUndefined();
    expect(s.error).toBe('scrape: body is not in the Prometheus text format (1 unreadable lines, e.g. "<html><body>Welcome</body></html>")');
  });

  it('a failed scrape keeps the base: the next interval spans the gap', async () => {
    await scrape(metrics({ 200: 10 }));
    await scrape('', 5000, 500);
    const s = await scrape(metrics({ 200: 30, 500: 10 }));
    expect(s.values).toMatchObject({ requests: 30, rps: 3, error_ratio: 1 / 3 });
  });

  it('connection refused and timeout fail the sample, without unavailable', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const refused = scrapeProbe(probeSchema.parse({ type: 'scrape', name: 'x', url: `http://127.0.0.1:${port}/metrics` }) as ScrapeProbeConfig, {
      now: () => 0,
    });
    const r = await refused.sample(0, new AbortController().signal);
    await refused.close?.();
    expect(r).toMatchObject({ ok: false, error: 'scrape failed: connection refused (ECONNREFUSED)' });
    expect(r.unavailable).toBeUndefined();

    const slow = makeProbe({ timeout: '100ms' });
    reply = { status: 200, body: metrics({ 200: 1 }), delayMs: 1000 };
    const t = await slow.sample(0, new AbortController().signal);
    await slow.close?.();
    expect(t).toMatchObject({ ok: false, error: 'scrape failed: timeout after 100ms' });
  });

  it('a body over max_body_bytes fails the sample', async () => {
    probe = makeProbe({ max_body_bytes: 1000 });
    const s = await scrape(metrics({ 200: 1 }) + `# ${'x'.repeat(2000)}\n`);
    expect(s).toMatchObject({ ok: false, error: expect.stringMatching(/^scrape: body larger than max_body_bytes 1000 \(\d+ bytes read when it was stopped\)$/) });
  });
});

describe('scrape probe: configuration and overlapping scrapes', () => {
  it('honours requests_metric, status_label and error_status', async () => {
    probe = makeProbe({ requests_metric: 'http_requests_total', status_label: 'code', error_status: '^(5..|429)$' });
    await scrape(metrics({ 200: 0 }, {}, 'code'));
    const s = await scrape(metrics({ 200: 6, 429: 2, 500: 2 }, {}, 'code'));
    expect(s.values.error_ratio).toBe(0.4);
  });

  it('overlapping scrapes queue for the one connection and complete in launch order: none is stale', async () => {
    await scrape(metrics({ 200: 10 }));
    reply = { status: 200, body: metrics({ 200: 20 }), delayMs: 300 };
    const older = probe.sample(clock, new AbortController().signal);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const newer = scrape(metrics({ 200: 30 }));
    expect((await older).values.requests).toBe(10);
    expect((await newer).values.requests).toBe(10);
  });

  it('an invalid error_status stops the probe from being created', () => {
    const config = probeSchema.parse({ type: 'scrape', name: 'x', url, error_status: '(' }) as ScrapeProbeConfig;
    expect(() => scrapeProbe(config, { now: () => 0 })).toThrow(ProbeError);
  });
});

/** An exposition where each series carries the given identity label (pm2 workers exporting their own). */
function perWorker(workers: Record<string, Record<string, number>>, label = 'worker', extra = ''): string {
  const lines = ['# TYPE http_requests_total counter'];
  for (const [worker, byStatus] of Object.entries(workers)) {
    for (const [status, n] of Object.entries(byStatus)) lines.push(`http_requests_total{${label}="${worker}",status="${status}"} ${n}`);
  }
  return `${lines.join('\n')}\n${extra}`;
}

describe('scrape probe: one process at a time, over one connection', () => {
  it('every scrape goes over one kept-alive connection', async () => {
    for (let n = 1; n <= 5; n += 1) await scrape(metrics({ 200: n * 10 }));
    expect(connectionsOpened).toBe(1);
  });

  it('fills traffic with the interval counts, latency buckets in ms; none without an interval', async () => {
    const first = await scrape(metrics({ 200: 90, 500: 10 }, BUCKETS(50, 90, 100, 100)));
    expect(first.traffic).toBeUndefined();
    const s = await scrape(metrics({ 200: 180, 500: 20 }, BUCKETS(100, 180, 200, 200)));
    expect(s.traffic).toEqual({
      requests: 100,
      errors: 10,
      latency: [
        { le: 100, count: 50 },
        { le: 250, count: 90 },
        { le: 500, count: 100 },
        { le: Number.POSITIVE_INFINITY, count: 100 },
      ],
    });
  });

  it('a connection the server closed between two scrapes: base taken again, no interval values', async () => {
    await scrape(metrics({ 200: 100 }, BUCKETS(100, 100, 100, 100)));
    // A keep-alive timeout, or pm2 cluster: the next connection may reach another worker.
    server.closeIdleConnections();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const rebased = await scrape(metrics({ 200: 40 }, BUCKETS(40, 40, 40, 40)));
    expect(rebased).toMatchObject({ ok: true, error: 'new connection (it may reach another worker): base taken again; interval skipped' });
    expect(Object.keys(rebased.values)).toEqual(['latency_ms']);
    expect(rebased.traffic).toBeUndefined();
    const next = await scrape(metrics({ 200: 50 }, BUCKETS(50, 50, 50, 50)));
    expect(next.values).toMatchObject({ requests: 10, error_ratio: 0 });
    expect(next.traffic).toMatchObject({ requests: 10, errors: 0 });
    expect(connectionsOpened).toBe(2);
  });

  it('a timed-out scrape loses its connection: the next scrape re-bases instead of differencing', async () => {
    probe = makeProbe({ timeout: '100ms' });
    await scrape(metrics({ 200: 10 }));
    reply = { status: 200, body: metrics({ 200: 20 }), delayMs: 300 };
    const timedOut = await probe.sample(clock, new AbortController().signal);
    expect(timedOut).toMatchObject({ ok: false, error: 'scrape failed: timeout after 100ms' });
    const s = await scrape(metrics({ 200: 30 }));
    expect(s.error).toBe('new connection (it may reach another worker): base taken again; interval skipped');
    expect(s.values).not.toHaveProperty('requests');
  });

  it('keeps the connection open across idle gaps longer than the server keep-alive timeout', async () => {
    const keepAliveTimeout = server.keepAliveTimeout;
    // Announced as "Keep-Alive: timeout=1": the probe keeps the connection busy every 500 ms.
    server.keepAliveTimeout = 1000;
    try {
      probe = makeProbe({ keepalive_interval: '10s' });
      await scrape(metrics({ 200: 10 }));
      await new Promise((resolve) => setTimeout(resolve, 1600));
      const s = await scrape(metrics({ 200: 25 }));
      expect(s.values.requests).toBe(15);
      expect(connectionsOpened).toBe(1);
      expect(requestsAnswered).toBeGreaterThan(2); // the keep-alive scrapes
    } finally {
      server.keepAliveTimeout = keepAliveTimeout;
    }
  });
});

describe('scrape probe: one process at a time, told by identity labels', () => {
  it('series with an identity label: per-process deltas, summed; a new process only gives its base, a vanished one is dropped', async () => {
    await scrape(perWorker({ 0: { 200: 100, 500: 0 }, 1: { 200: 50 } }));
    const s = await scrape(perWorker({ 0: { 200: 110, 500: 2 }, 2: { 200: 7 } }));
    expect(s.values).toMatchObject({ requests: 12 });
    expect(s.values.error_ratio).toBeCloseTo(2 / 12, 12);
    expect(s.traffic).toEqual({ requests: 12, errors: 2 });
    expect(s.error).toMatch(/^interval counts 1 of 2 processes \(process \{worker="2"\}: new, base taken\)/);
    const next = await scrape(perWorker({ 0: { 200: 120, 500: 2 }, 2: { 200: 10 } }));
    expect(next.values.requests).toBe(13);
  });

  it('series with an identity label are differenced across a connection change (the label tells the process)', async () => {
    await scrape(perWorker({ 0: { 200: 100 } }, 'pid'));
    server.closeIdleConnections();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const s = await scrape(perWorker({ 0: { 200: 130 } }, 'pid'));
    expect(s.values.requests).toBe(30);
  });

  it('a counter reset of one process re-bases that process only', async () => {
    await scrape(perWorker({ a: { 200: 100 }, b: { 200: 100 } }, 'instance'));
    const s = await scrape(perWorker({ a: { 200: 5 }, b: { 200: 120 } }, 'instance'));
    expect(s.values.requests).toBe(20);
    expect(s.error).toContain('process {instance="a"}: counter reset: app restarted');
  });

  it('another worker behind the same connection (identity_metric changed): no interval values', async () => {
    probe = makeProbe({ identity_metric: 'process_start_time_seconds' });
    await scrape(metrics({ 200: 100 }) + 'process_start_time_seconds 1700000000\n');
    const other = await scrape(metrics({ 200: 40 }) + 'process_start_time_seconds 1700000005\n');
    expect(other).toMatchObject({
      ok: true,
      error: 'process_start_time_seconds changed (1700000000 -> 1700000005): another process answered; interval skipped',
    });
    expect(other.values).not.toHaveProperty('requests');
    const same = await scrape(metrics({ 200: 45 }) + 'process_start_time_seconds 1700000005\n');
    expect(same.values.requests).toBe(5);
  });

  it('identity_metric configured but missing: cannot tell, so no interval values', async () => {
    probe = makeProbe({ identity_metric: 'process_start_time_seconds' });
    await scrape(metrics({ 200: 100 }));
    const s = await scrape(metrics({ 200: 140 }));
    expect(s.error).toBe('process_start_time_seconds missing: cannot tell whether the same process answered; interval skipped');
    expect(s.traffic).toBeUndefined();
  });
});

describe('compareSnapshots (pure)', () => {
  const config = {
    requests_metric: 'http_requests_total',
    status_label: 'status',
    duration_metric: 'http_request_duration_seconds',
    identity_labels: ['instance', 'pid', 'worker'],
  };
  const snap = (text: string, connection: number, identityMetric?: string): Snapshot => {
    const parsed = parsePrometheusText(text);
    const snapshot = snapshotOf(parsed, { ...config, identity_metric: identityMetric }, /^5..$/, connection);
    if (snapshot === null) throw new Error('no requests metric');
    return snapshot;
  };

  it('never differences unlabelled series across connections, whatever the counters say', () => {
    // Worker B's totals are higher than worker A's: a naive delta would be 400 requests.
    const comparison = compareSnapshots(snap(metrics({ 200: 100 }), 1), snap(metrics({ 200: 500 }), 2));
    expect(comparison).toEqual({ counted: 0, skipped: ['new connection (it may reach another worker): base taken again'] });
  });

  it('connection 0 (unknown) is never the same connection', () => {
    expect(compareSnapshots(snap(metrics({ 200: 1 }), 0), snap(metrics({ 200: 2 }), 0)).delta).toBeUndefined();
  });

  it('takes the identity from the first identity labels present, in order', () => {
    const before = snap('http_requests_total{instance="h1",pid="7",status="200"} 5\n', 1);
    expect([...before.byProcess.keys()]).toEqual(['instance="h1",pid="7"']);
  });

  it('sums bucket deltas of several processes by upper bound', () => {
    const text = (a: number, b: number) =>
      [
        `http_requests_total{worker="0",status="200"} ${a}`,
        `http_requests_total{worker="1",status="200"} ${b}`,
        `http_request_duration_seconds_bucket{worker="0",le="0.1"} ${a}`,
        `http_request_duration_seconds_bucket{worker="0",le="+Inf"} ${a}`,
        `http_request_duration_seconds_bucket{worker="1",le="0.1"} 0`,
        `http_request_duration_seconds_bucket{worker="1",le="+Inf"} ${b}`,
      ].join('\n');
    const { delta } = compareSnapshots(snap(text(10, 10), 1), snap(text(15, 13), 2));
    expect(delta).toEqual({
      requests: 8,
      errors: 0,
      buckets: [
        { le: 0.1, count: 5 },
        { le: Number.POSITIVE_INFINITY, count: 8 },
      ],
    });
    expect(trafficOf(delta!).latency).toEqual([
      { le: 100, count: 5 },
      { le: Number.POSITIVE_INFINITY, count: 8 },
    ]);
  });

  it('trafficOf: no latency without a +Inf bucket; non-monotonic counts made cumulative', () => {
    expect(trafficOf({ requests: 3, errors: 1, buckets: [{ le: 0.1, count: 3 }] })).toEqual({ requests: 3, errors: 1 });
    const latency = trafficOf({
      requests: 3,
      errors: 0,
      buckets: [
        { le: 0.1, count: 2 },
        { le: 0.2, count: 1 },
        { le: Number.POSITIVE_INFINITY, count: 3 },
      ],
    }).latency;
    expect(latency?.map((b) => b.count)).toEqual([2, 2, 3]);
  });
});

describe('histogramQuantile (Prometheus bucketQuantile)', () => {
  const inf = Number.POSITIVE_INFINITY;
  it.each([
    ['interpolates inside the bucket', 0.5, [[1, 0], [2, 10], [inf, 10]], 1.5],
    ['first bucket starts at 0', 0.5, [[0.1, 10], [inf, 10]], 0.05],
    ['+Inf bucket: highest finite bound', 0.95, [[0.1, 1], [0.5, 2], [inf, 10]], 0.5],
    ['exact bucket edge', 0.5, [[1, 5], [2, 10], [inf, 10]], 1],
    // Fixed up to 2 / 2 / 10: rank 5 is 3 of 8 into (2, 3]; unfixed it would be 4 of 9.
    ['non-monotonic counts are fixed up', 0.5, [[1, 2], [2, 1], [3, 10], [inf, 10]], 2.375],
    ['q > 1', 1.5, [[1, 1], [inf, 1]], inf],
    ['non-positive lowest bound', 0.1, [[-1, 5], [0, 6], [inf, 10]], -1],
  ] as const)('%s', (_what, q, buckets, expected) => {
    expect(histogramQuantile(q, buckets.map(([le, count]) => ({ le, count })))).toBeCloseTo(expected, 12);
  });

  it.each([
    ['no observations', [[1, 0], [Number.POSITIVE_INFINITY, 0]]],
    ['no +Inf bucket', [[1, 5], [2, 10]]],
    ['one bucket', [[Number.POSITIVE_INFINITY, 5]]],
    ['no buckets', []],
  ] as const)('null (NaN in Prometheus) with %s', (_what, buckets) => {
    expect(histogramQuantile(0.95, buckets.map(([le, count]) => ({ le, count })))).toBeNull();
  });
});
