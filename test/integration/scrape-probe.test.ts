/**
 * The scrape probe against real demo app processes (no Prometheus) under steady load: it sees the
 * injected error ratio, sees none on a healthy app, and rides out an app restart on the same port
 * (a new process behind a new connection) without a false fault.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { probeSchema, type ScrapeProbeConfig } from '../../src/config/schema.js';
import type { Sample } from '../../src/core/types.js';
import { startLoad, type Load } from '../../demo/load.js';
import { scrapeProbe } from '../../src/probes/scrape.js';
import type { Probe } from '../../src/probes/types.js';
import { startDemoApp, type DemoApp } from '../helpers/prometheus.js';

const INTERVAL_MS = 500;
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function app(options: Parameters<typeof startDemoApp>[0] = {}): Promise<DemoApp> {
  const started = await startDemoApp(options);
  cleanups.push(() => started.stop());
  return started;
}

function load(target: DemoApp, maxMs: number): Load {
  const running = startLoad(`${target.url}/api/x`, 50, maxMs);
  cleanups.push(() => running.stop());
  return running;
}

function probeFor(target: DemoApp): Probe {
  const config = probeSchema.parse({ type: 'scrape', name: 'app', url: `${target.url}/metrics`, timeout: '1s' });
  const probe = scrapeProbe(config as ScrapeProbeConfig, { now: () => Date.now() });
  cleanups.push(async () => probe.close?.());
  return probe;
}

/** Launches a sample every INTERVAL_MS, as the scheduler does, without waiting for the previous one. */
function scrapeEvery(probe: Probe): { stop(): Promise<Sample[]> } {
  const pending: Promise<Sample>[] = [];
  const launch = () => pending.push(probe.sample(Date.now(), AbortSignal.timeout(2000)));
  launch();
  const timer = setInterval(launch, INTERVAL_MS);
  return {
    async stop() {
      clearInterval(timer);
      return Promise.all(pending);
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Error ratio over all intervals, weighted by their requests. */
function overallRatio(samples: Sample[]): number {
  let requests = 0;
  let errors = 0;
  for (const s of samples) {
    if (s.values.error_ratio === undefined || s.values.requests === undefined) continue;
    requests += s.values.requests;
    errors += s.values.error_ratio * s.values.requests;
  }
  return errors / requests;
}

describe('scrape probe against the demo app', () => {
  it('sees about 10 % errors with APP_FAULT=error_ratio', async () => {
    const target = await app({ fault: 'error_ratio', env: { APP_ERROR_RATIO: '0.1' } });
    load(target, 20_000);
    await sleep(300);
    const samples = await (async () => {
      const run = scrapeEvery(probeFor(target));
      await sleep(5000);
      return run.stop();
    })();

    expect(samples.every((s) => s.ok)).toBe(true);
    expect(samples[0]?.error).toBe('first scrape: base taken; values from the next interval');
    const intervals = samples.filter((s) => s.values.error_ratio !== undefined);
    expect(intervals.length).toBeGreaterThanOrEqual(8);
    expect(overallRatio(intervals)).toBeGreaterThan(0.08);
    expect(overallRatio(intervals)).toBeLessThan(0.12);
    // ~25 requests per interval: 2 or 3 errors each, never far off.
    for (const s of intervals) if ((s.values.requests ?? 0) >= 15) expect(s.values.error_ratio).toBeLessThan(0.25);
    for (const s of intervals) {
      expect(s.values.rps).toBeGreaterThan(25);
      expect(s.values.rps).toBeLessThan(75);
      expect(s.values.p95_ms).toBeLessThan(100);
    }
  }, 30_000);

  it('sees 0 errors on a healthy app', async () => {
    const target = await app();
    load(target, 20_000);
    await sleep(300);
    const run = scrapeEvery(probeFor(target));
    await sleep(4000);
    const samples = await run.stop();

    expect(samples.every((s) => s.ok)).toBe(true);
    const intervals = samples.filter((s) => s.values.error_ratio !== undefined);
    expect(intervals.length).toBeGreaterThanOrEqual(6);
    for (const s of intervals) expect(s.values.error_ratio).toBe(0);
  }, 30_000);

  it('an app restart on the same port re-bases the probe, not a fault', async () => {
    const target = await app();
    const port = target.port;
    const probe = probeFor(target);
    load(target, 20_000);
    await sleep(300);
    const run = scrapeEvery(probe);
    await sleep(2500);

    const closedAt = Date.now();
    await target.stop(); // SIGKILL: a crash
    await sleep(1000);
    await app({ port }); // the restarted process, stopped with the others after the test
    const openAt = Date.now();
    await sleep(3000);
    const samples = await run.stop();

    const healthyView = samples.filter((s) => (s.values.error_ratio ?? 0) > 0.05);
    expect(healthyView).toEqual([]);
    const failed = samples.filter((s) => !s.ok);
    expect(failed.length).toBeGreaterThan(0); // the downtime is seen...
    for (const s of failed) {
      // ...but only while the port was actually closed.
      expect(s.startedAt <= openAt && s.at >= closedAt, JSON.stringify(s)).toBe(true);
      expect(s.unavailable).toBeUndefined();
    }
    // The restart cost the kept-alive connection: the new process is a new base, never a delta.
    expect(samples.some((s) => s.error === 'new connection (it may reach another worker): base taken again; interval skipped')).toBe(true);
    const after = samples.filter((s) => s.startedAt > openAt + INTERVAL_MS);
    expect(after.length).toBeGreaterThanOrEqual(4);
    for (const s of after) expect(s).toMatchObject({ ok: true, values: { error_ratio: 0 } });
  }, 30_000);
});
