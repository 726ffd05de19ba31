/**
 * The scrape probe against a real pm2 cluster of 2 demo app workers whose /metrics carry no
 * worker label: pm2 hands each new connection to the next worker, so the two workers' counters
 * are read through one port. One worker is first given ~2000 more requests than the other, so
 * any delta taken across the two workers is either hugely positive or negative (a fake counter
 * reset). The probe must never take one — also when its connection is lost mid-scrape and the
 * next one may reach the other worker — and the traffic rules must not breach on the 2 % errors
 * the app really serves.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema, probeSchema, type ScrapeProbeConfig } from '../../src/config/schema.js';
import { evaluateErrorRate, evaluateLatencyMax } from '../../src/core/rules.js';
import type { Sample } from '../../src/core/types.js';
import { scrapeProbe } from '../../src/probes/scrape.js';
import { createPm2Sandbox, DEMO_APP, freePort, waitFor, type Pm2Sandbox } from '../helpers/pm2-sandbox.js';

const APP = 'cluster-metrics';
const SKEW = 2000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let sandbox: Pm2Sandbox;
let port: number;

/** One GET; resolves with the body, or null on any failure (load must not stop on one error). */
function get(path: string, agent: http.Agent | false): Promise<string | null> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, timeout: 2000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(null));
  });
}

/** The unlabelled total of http_requests_total in an exposition. */
function totalRequests(text: string): number {
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith('http_requests_total{')) total += Number(line.split(' ').at(-1));
  return total;
}

beforeAll(async () => {
  sandbox = await createPm2Sandbox();
  port = await freePort();
  await sandbox.client.start({
    name: APP,
    script: DEMO_APP,
    execMode: 'cluster',
    instances: 2,
    // Every 50th /api request of each worker is a 500: 2 %, below the 5 % threshold.
    env: { PORT: String(port), APP_VERSION: 'v1', APP_FAULT: 'error_ratio', APP_ERROR_RATIO: '0.02' },
  });
  await waitFor(async () => {
    const workers = await sandbox.client.describe(APP);
    return workers.length === 2 && workers.every((w) => w.status === 'online') && (await get('/health', false)) !== null;
  }, 20_000);
  // All over one kept-alive connection: one worker alone serves them.
  const oneConnection = new http.Agent({ keepAlive: true, maxSockets: 1 });
  await Promise.all(Array.from({ length: SKEW }, () => get('/api/skew', oneConnection)));
  oneConnection.destroy();
}, 60_000);

afterAll(async () => {
  await sandbox?.cleanup();
}, 30_000);

describe('scrape probe on a pm2 cluster (2 workers, no worker label)', () => {
  it('never takes a delta across two workers, even when its connection is lost', async () => {
    // The control: scrapes over new connections do read two workers whose totals differ by ~SKEW.
    const naive: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      const body = await get('/metrics', false);
      if (body !== null) naive.push(totalRequests(body));
    }
    const naiveJumps = naive.slice(1).map((total, i) => total - naive[i]!);
    expect(naiveJumps.some((jump) => Math.abs(jump) > SKEW / 2), `naive totals ${naive.join(', ')}`).toBe(true);

    // Balanced traffic: a new connection per request, round-robin over both workers.
    let loadSent = 0;
    let loadRunning = true;
    const loadDone: Promise<unknown>[] = [];
    const load = setInterval(() => {
      if (!loadRunning) return;
      loadSent += 1;
      loadDone.push(get('/api/x', false));
    }, 25);

    const probe = scrapeProbe(
      probeSchema.parse({ type: 'scrape', name: 'traffic', url: `http://127.0.0.1:${port}/metrics`, timeout: '1s' }) as ScrapeProbeConfig,
      { now: () => Date.now() },
    );
    const pending: Promise<Sample>[] = [];
    let launches = 0;
    const scrape = () => {
      launches += 1;
      const controller = new AbortController();
      pending.push(probe.sample(Date.now(), controller.signal));
      // Every 5th scrape is cut off mid-exchange: its connection is destroyed, and the next
      // scrape's new connection may reach the other worker.
      if (launches % 5 === 0) setImmediate(() => controller.abort());
    };
    try {
      scrape();
      const timer = setInterval(scrape, 250);
      await sleep(8000);
      clearInterval(timer);
    } finally {
      loadRunning = false;
      clearInterval(load);
    }
    const samples = await Promise.all(pending);
    await Promise.all(loadDone);
    await probe.close?.();

    const counted = samples.filter((s) => s.values.requests !== undefined);
    const rebased = samples.filter((s) => s.error?.startsWith('new connection'));
    expect(counted.length, JSON.stringify(samples.map((s) => s.error ?? 'counted'))).toBeGreaterThanOrEqual(15);
    // A delta across workers would be ~SKEW, or negative and read as a counter reset.
    expect(samples.filter((s) => s.error?.includes('counter reset'))).toEqual([]);
    for (const s of counted) {
      expect(s.values.requests, JSON.stringify(s)).toBeGreaterThanOrEqual(0);
      expect(s.values.requests, JSON.stringify(s)).toBeLessThanOrEqual(loadSent);
      expect(s.traffic).toMatchObject({ requests: s.values.requests });
      expect(s.traffic!.errors).toBeLessThanOrEqual(s.traffic!.requests);
    }
    // Intervals carry one worker's share of the balanced traffic, never both workers' or more.
    const countedRequests = counted.reduce((sum, s) => sum + s.values.requests!, 0);
    expect(countedRequests).toBeGreaterThan(0);
    expect(countedRequests).toBeLessThan(loadSent);
    // The cut-off scrapes did cost the connection, and the probe started over rather than differencing.
    expect(rebased.length).toBeGreaterThanOrEqual(1);
    // Only samples without an interval may lack traffic, and all of them say why.
    for (const s of samples.filter((x) => x.ok && x.values.requests === undefined)) {
      expect(s.traffic).toBeUndefined();
      expect(s.error).toMatch(/^(first scrape|new connection)/);
    }

    // The guard's traffic rules, evaluated as each sample arrived: 2 % errors never breach.
    const rules = configSchema.shape.rules.parse({
      error_rate: { probe: 'traffic', min_requests: 40 },
      latency_max: { probe: 'traffic' },
    });
    const input = (now: number, upTo: Sample[]) => ({
      samples: new Map([['traffic', upTo]]),
      now,
      since: null,
      releaseStartedAt: null,
      initialDelayMs: 0,
      baselineP95: new Map<string, number>(),
      probeTypes: new Map([['traffic', 'scrape' as const]]),
      looks: 960,
    });
    const ordered = [...samples].sort((a, b) => a.startedAt - b.startedAt);
    const outcomes = new Set<string>();
    for (let i = 0; i < ordered.length; i += 1) {
      const at = ordered[i]!.at;
      for (const verdict of [evaluateErrorRate(rules.error_rate!, input(at, ordered.slice(0, i + 1))), evaluateLatencyMax(rules.latency_max!, input(at, ordered.slice(0, i + 1)))]) {
        expect(verdict.outcome, verdict.message).not.toBe('fail');
        outcomes.add(`${verdict.rule}:${verdict.outcome}`);
      }
    }
    // The rules did judge (not only inconclusive), so "never fail" means something.
    expect(outcomes).toContain('error_rate:pass');
  }, 60_000);
});
