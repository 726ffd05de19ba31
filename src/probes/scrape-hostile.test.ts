/**
 * Hostile /metrics against the real scrape probe over real HTTP (bench/chaos/hostile-metrics-server.ts):
 * a release whose cardinality explodes must not take the guard's memory, and must not stop the
 * probe from reading the families it needs. Correctness and the caps are asserted here; the
 * guard's RSS and event-loop blocking are measured by `npm run chaos` (hostile-metrics), never
 * asserted in a unit test.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { probeSchema, type ScrapeProbeConfig } from '../config/schema.js';
import type { Sample } from '../core/types.js';
import { evaluateErrorRate, type RuleInput } from '../core/rules.js';
import { EXPECTED_P95_MS, ERRORS_PER_BATCH, REQUESTS_PER_BATCH, startHostileServer, type HostileMode, type HostileServer } from '../../bench/chaos/hostile-metrics-server.js';
import { scrapeProbe } from './scrape.js';
import type { Probe } from './types.js';

let server: HostileServer | undefined;
let probe: Probe | undefined;
afterEach(async () => {
  await probe?.close?.();
  await server?.close();
  probe = undefined;
  server = undefined;
});

async function against(mode: HostileMode, extra: Record<string, unknown> = {}, serverOptions: { series?: number } = {}) {
  server = await startHostileServer(mode, serverOptions);
  const config = probeSchema.parse({ type: 'scrape', name: 'traffic', url: server.url, ...extra }) as ScrapeProbeConfig;
  probe = scrapeProbe(config, { now: () => Date.now() });
  return { server, probe };
}

const sample = (p: Probe) => p.sample(Date.now(), new AbortController().signal);

/** A failed sample: no interval values, no traffic (never a breach of the traffic rules by itself). */
function expectFailedWithoutTraffic(s: Sample, error: RegExp) {
  expect(s.ok, s.error).toBe(false);
  expect(s.error).toMatch(error);
  expect(s.traffic).toBeUndefined();
  expect(s.values).not.toHaveProperty('requests');
  expect(s.values).not.toHaveProperty('error_ratio');
}

describe('scrape probe against a hostile /metrics: series explosions', () => {
  it('500,000 series of another metric (~8 MB) every 250 ms: the real families are read right, every time', async () => {
    const { probe: p, server: s } = await against('cardinality', { timeout: '5s' });
    const samples: Sample[] = [];
    for (let i = 0; i < 8; i++) {
      const started = Date.now();
      samples.push(await sample(p));
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 250 - (Date.now() - started))));
    }
    expect(s.written).toBeGreaterThan(8_000_000 * 8);
    expect(samples[0]).toMatchObject({ ok: true, error: 'first scrape: base taken; values from the next interval' });
    for (const later of samples.slice(1)) {
      expect(later.ok, later.error).toBe(true);
      expect(later.error).toBeUndefined();
      // Keep-alive scrapes between two samples also served batches: whole batches, never a part.
      const batches = later.traffic!.requests / REQUESTS_PER_BATCH;
      expect(Number.isInteger(batches) && batches >= 1).toBe(true);
      expect(later.traffic!.errors).toBe(batches * ERRORS_PER_BATCH);
      expect(later.values.error_ratio).toBeCloseTo(ERRORS_PER_BATCH / REQUESTS_PER_BATCH, 12);
      expect(later.values.p95_ms).toBeCloseTo(EXPECTED_P95_MS, 9);
      expect(later.traffic!.latency?.map((b) => b.count)).toEqual([20, 36, 40, 40].map((n) => n * batches));
    }
  }, 60_000);

  it('http_requests_total itself exploded past max_series: a failed sample naming the cap and the count', async () => {
    const { probe: p } = await against('own-cardinality', { max_series: 1000 }, { series: 5000 });
    const s = await sample(p);
    expectFailedWithoutTraffic(s, /^scrape: metric http_requests_total has 5001 series in one scrape, over max_series 1000$/);
    expect(s.unavailable).toBeUndefined();
  });
});

describe('scrape probe against a hostile /metrics: endless, huge and slow bodies', () => {
  it('an endless body: stopped at max_body_bytes, a failed sample naming the cap and the bytes read', async () => {
    const { probe: p, server: s } = await against('endless', { max_body_bytes: 2 * 1024 * 1024, timeout: '10s' });
    const result = await sample(p);
    expectFailedWithoutTraffic(result, /^scrape: body larger than max_body_bytes 2097152 \(\d+ bytes read when it was stopped\)$/);
    const read = Number(/\((\d+) bytes/.exec(result.error!)![1]);
    expect(read).toBeGreaterThan(2 * 1024 * 1024);
    expect(read).toBeLessThan(2 * 1024 * 1024 + 256 * 1024);
    // The server was stopped too: it wrote no more than the socket buffers hold past the cap.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(s.written).toBeLessThan(16 * 1024 * 1024);
  });

  it('a declared content-length over max_body_bytes: failed before a byte of the body is read, naming both', async () => {
    const { probe: p } = await against('cardinality', { max_body_bytes: 1024 * 1024 });
    const s = await sample(p);
    expectFailedWithoutTraffic(s, /^scrape: body larger than max_body_bytes 1048576 \(content-length 8\d{6}\)$/);
  });

  it('one 50 MB line: stopped at max_body_bytes (default 8 MiB), a failed sample', async () => {
    const { probe: p } = await against('long-line', { timeout: '10s' });
    expectFailedWithoutTraffic(await sample(p), /^scrape: body larger than max_body_bytes 8388608 \(\d+ bytes read when it was stopped\)$/);
  });

  it('one 50 MB line under a 64 MiB cap: skipped without being kept, the real families after it still read', async () => {
    const { probe: p } = await against('long-line', { timeout: '20s', max_body_bytes: 64 * 1024 * 1024 });
    const first = await sample(p);
    expect(first).toMatchObject({ ok: true, error: 'first scrape: base taken; values from the next interval' });
    const second = await sample(p);
    expect(second.ok, second.error).toBe(true);
    expect(second.values.error_ratio).toBeCloseTo(0.1, 12);
  }, 60_000);

  it('binary garbage: a failed sample saying the body is not the text format', async () => {
    const { probe: p } = await against('garbage', { timeout: '10s' });
    expectFailedWithoutTraffic(await sample(p), /^scrape: body is not in the Prometheus text format \(\d+ unreadable lines, e\.g\. ".*"\)$/s);
  });

  it('a slow-loris body trickling a byte every 200 ms: a failed sample at the timeout', async () => {
    const { probe: p } = await against('slow-loris', { timeout: '1s' });
    expectFailedWithoutTraffic(await sample(p), /^scrape failed: timeout after 1000ms$/);
  });
});

describe('scrape probe against a hostile /metrics: breaches and recovery', () => {
  it('a run of over-cap samples is never an error_rate breach by itself (no traffic counted)', async () => {
    const { probe: p } = await against('own-cardinality', { max_series: 100 }, { series: 150 });
    const samples: Sample[] = [];
    for (let i = 0; i < 40; i++) samples.push(await sample(p));
    expect(samples.every((s) => !s.ok && s.error!.includes('over max_series 100'))).toBe(true);
    const input: RuleInput = {
      samples: new Map([['traffic', samples]]),
      now: Date.now(),
      since: null,
      releaseStartedAt: null,
      initialDelayMs: 0,
      baselineP95: new Map([['traffic', 20]]),
      probeTypes: new Map([['traffic', 'scrape']]),
      looks: 960,
    };
    const verdict = evaluateErrorRate({ enabled: true, probe: 'traffic', threshold: 0.05, window: 60_000, budget: 0.001, min_span: 1000 }, input);
    expect(verdict).toMatchObject({ outcome: 'inconclusive', message: expect.stringContaining('0 traffic samples with requests') });
  });

  it('after a hostile body, a good one is read again (the probe recovers)', async () => {
    const { probe: p } = await against('own-cardinality', { max_series: 100 }, { series: 150 });
    expect((await sample(p)).ok).toBe(false);
    await probe!.close?.();
    await server!.close();
    const good = await against('own-cardinality', { max_series: 200 }, { series: 150 });
    expect(await sample(good.probe)).toMatchObject({ ok: true, error: 'first scrape: base taken; values from the next interval' });
    const next = await sample(good.probe);
    expect(next.ok, next.error).toBe(true);
    expect(next.traffic).toMatchObject({ requests: REQUESTS_PER_BATCH, errors: ERRORS_PER_BATCH });
  });
});
