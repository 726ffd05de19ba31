import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { probeSchema, type ScrapeProbeConfig } from '../config/schema.js';
import { ProbeError } from '../errors.js';
import { histogramQuantile, scrapeProbe } from './scrape.js';
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
    res.on('error', () => undefined);
    const { status, body, delayMs } = reply;
    setTimeout(() => {
      res.writeHead(status, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(body);
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(async () => {
  await probe?.close?.();
  clock = 1_000_000;
  probe = makeProbe();
});

describe('scrape probe', () => {
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
    expect(s).toMatchObject({ ok: false, error: 'scrape failed: body larger than 1000 bytes' });
  });

  it('honours requests_metric, status_label and error_status', async () => {
    probe = makeProbe({ requests_metric: 'http_requests_total', status_label: 'code', error_status: '^(5..|429)$' });
    await scrape(metrics({ 200: 0 }, {}, 'code'));
    const s = await scrape(metrics({ 200: 6, 429: 2, 500: 2 }, {}, 'code'));
    expect(s.values.error_ratio).toBe(0.4);
  });

  it('an overlapping scrape that completes after a later one is stale and skipped', async () => {
    await scrape(metrics({ 200: 10 }));
    reply = { status: 200, body: metrics({ 200: 20 }), delayMs: 300 };
    const older = probe.sample(clock, new AbortController().signal);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const newer = await scrape(metrics({ 200: 30 }));
    expect(newer.values.requests).toBe(20);
    const stale = await older;
    expect(stale).toMatchObject({ ok: true, error: 'stale scrape: a later scrape completed first; interval skipped' });
    const next = await scrape(metrics({ 200: 40 }));
    expect(next.values.requests).toBe(10);
  });

  it('an invalid error_status stops the probe from being created', () => {
    const config = probeSchema.parse({ type: 'scrape', name: 'x', url, error_status: '(' }) as ScrapeProbeConfig;
    expect(() => scrapeProbe(config, { now: () => 0 })).toThrow(ProbeError);
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
