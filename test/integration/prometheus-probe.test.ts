/**
 * The prometheus probe against a real Prometheus (the Debian package, installed when missing)
 * scraping real demo app processes under steady load: one with 10 % errors, one healthy, one slow.
 * One Prometheus scrapes all three every second; queries select an app by its `instance` label.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeSchema, type PrometheusProbeConfig } from '../../src/config/schema.js';
import type { Sample } from '../../src/core/types.js';
import { startLoad, type Load } from '../../demo/load.js';
import { prometheusProbe } from '../../src/probes/prometheus.js';
import { startDemoApp, startPrometheus, type DemoApp, type RunningPrometheus } from '../helpers/prometheus.js';

let prometheus: RunningPrometheus | undefined;
const apps: DemoApp[] = [];
const loads: Load[] = [];
let faulty: DemoApp;
let healthy: DemoApp;
let slow: DemoApp;

beforeAll(async () => {
  faulty = await startDemoApp({ fault: 'error_ratio', env: { APP_ERROR_RATIO: '0.1' } });
  apps.push(faulty);
  healthy = await startDemoApp();
  apps.push(healthy);
  slow = await startDemoApp({ fault: 'slow', env: { APP_SLOW_MS: '200' } });
  apps.push(slow);
  // Bounded: each load stops by itself after 60 s even if afterAll never runs.
  for (const app of apps) loads.push(startLoad(`${app.url}/api/x`, 50, 60_000));
  prometheus = await startPrometheus({ targets: apps.map((a) => a.target), scrapeIntervalMs: 1000 });
}, 300_000); // the first run on a fresh machine installs the package

afterAll(async () => {
  await Promise.all(loads.map((l) => l.stop()));
  await prometheus?.stop();
  await Promise.all(apps.map((a) => a.stop()));
});

function probeFor(queries: Record<string, string>) {
  const config = probeSchema.parse({ type: 'prometheus', name: 'prom', url: prometheus?.url, queries, timeout: '2s' });
  return prometheusProbe(config as PrometheusProbeConfig, { now: () => Date.now() });
}

/** Samples every 500 ms until `done` holds; fails with the last sample after `timeoutMs`. */
async function sampleUntil(queries: Record<string, string>, done: (s: Sample) => boolean, timeoutMs = 20_000): Promise<Sample> {
  const probe = probeFor(queries);
  const deadline = Date.now() + timeoutMs;
  let last: Sample | undefined;
  try {
    while (Date.now() < deadline) {
      last = await probe.sample(Date.now(), AbortSignal.timeout(5000));
      if (done(last)) return last;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } finally {
    await probe.close?.();
  }
  throw new Error(`condition not met within ${timeoutMs} ms; last sample: ${JSON.stringify(last)}`);
}

const errorRatio = (target: string) =>
  `sum(rate(http_requests_total{instance="${target}",status=~"5.."}[10s])) / sum(rate(http_requests_total{instance="${target}"}[10s]))`;

describe('prometheus probe against a real Prometheus', () => {
  it('sees the 10 % error ratio of the faulty app', async () => {
    const s = await sampleUntil({ error_ratio: errorRatio(faulty.target) }, (x) => x.values.error_ratio !== undefined);
    expect(s.ok).toBe(true);
    expect(s.values.error_ratio).toBeGreaterThan(0.05);
    expect(s.values.error_ratio).toBeLessThan(0.2);
  }, 30_000);

  it('healthy app: no 5xx series at all is no data; `or vector(0)` makes it 0', async () => {
    // First make sure Prometheus has the app's traffic, so "absent" is not just "too early".
    const rate = await sampleUntil({ rps: `sum(rate(http_requests_total{instance="${healthy.target}"}[10s]))` }, (x) => (x.values.rps ?? 0) > 0);
    // Early on the 10 s window is only partly filled, and rate() divides by the whole range.
    expect(rate.values.rps).toBeGreaterThan(0);

    const s = await sampleUntil(
      {
        error_ratio: errorRatio(healthy.target),
        error_ratio_or_zero: `(sum(rate(http_requests_total{instance="${healthy.target}",status=~"5.."}[10s])) or vector(0)) / sum(rate(http_requests_total{instance="${healthy.target}"}[10s]))`,
      },
      () => true,
    );
    expect(s.ok).toBe(true);
    expect(s.values).not.toHaveProperty('error_ratio');
    expect(s.error).toBe('error_ratio: empty result (no traffic or no such series)');
    expect(s.values.error_ratio_or_zero).toBe(0);
  }, 30_000);

  it('a series that does not exist is no data, never 0; 0/0 (NaN) likewise', async () => {
    const s = await sampleUntil({ missing: 'sum(rate(no_such_metric_total[10s]))', nan: 'vector(0) / vector(0)' }, () => true);
    expect(s.ok).toBe(true);
    expect(s.unavailable).toBeUndefined();
    expect(s.values).not.toHaveProperty('missing');
    expect(s.values).not.toHaveProperty('nan');
    expect(s.error).toBe('missing: empty result (no traffic or no such series); nan: NaN (no data, e.g. 0/0 without traffic)');
  }, 30_000);

  it('sees p95 >= 150 ms on the slow app (APP_SLOW_MS=200)', async () => {
    const query = `histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{instance="${slow.target}"}[10s])) by (le)) * 1000`;
    const s = await sampleUntil({ p95_ms: query }, (x) => x.values.p95_ms !== undefined);
    expect(s.ok).toBe(true);
    expect(s.values.p95_ms).toBeGreaterThanOrEqual(150);
    expect(s.values.p95_ms).toBeLessThan(1000);
  }, 30_000);

  it('several series and bad PromQL are unavailable, not a failed release', async () => {
    const s = await sampleUntil(
      { per_instance: 'sum by (instance) (rate(http_requests_total[10s]))', broken: 'sum(rate(http_requests_total[10s])' },
      (x) => x.error?.includes('series returned') === true,
    );
    expect(s).toMatchObject({ ok: false, unavailable: true });
    expect(s.error).toContain('per_instance: 3 series returned; aggregate the query to one series, e.g. sum(...)');
    expect(s.error).toMatch(/broken: prometheus error \(bad_data\): .*parse error/);
  }, 30_000);
});
