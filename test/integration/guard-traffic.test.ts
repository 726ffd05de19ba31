/**
 * Judging releases by real traffic, end to end: a real app under pm2 (fork mode: one process,
 * so its own /metrics are the whole truth) under steady load at 50 req/s, a real Prometheus
 * scraping it (or the scrape probe reading /metrics directly), the guard in-process deciding.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { startLoad, type Load } from '../../demo/load.js';
import { createLogger } from '../../src/log.js';
import { startDaemon, type RunningDaemon } from '../../src/shell/daemon.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, pointCurrent, waitFor, type Pm2Sandbox, type ReleaseManifest } from '../helpers/pm2-sandbox.js';
import { startPrometheus, type RunningPrometheus } from '../helpers/prometheus.js';

const APP = 'shop';

interface World {
  sandbox: Pm2Sandbox;
  stateDir: string;
  appPort: number;
  load: Load;
  prometheus?: RunningPrometheus;
}

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

async function world(v1: ReleaseManifest = {}, options: { prometheus?: boolean } = {}): Promise<World> {
  const sandbox = await createPm2Sandbox();
  cleanups.push(() => sandbox.cleanup());
  const stateDir = await mkdtemp(join(tmpdir(), 'rg-traffic-'));
  cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
  const appPort = await freePort();
  await buildRelease(sandbox.dir, 'v1', v1);
  await pointCurrent(sandbox.dir, 'v1');
  await sandbox.client.start({ name: APP, script: join(sandbox.dir, 'current', 'server.cjs'), execMode: 'fork', env: { PORT: String(appPort) } });
  await waitFor(async () => (await getJson(`http://127.0.0.1:${appPort}/health`).catch(() => null))?.status === 200, 15_000);
  const load = startLoad(`http://127.0.0.1:${appPort}/api/items`, 50, 90_000);
  cleanups.push(() => load.stop());
  const w: World = { sandbox, stateDir, appPort, load };
  if (options.prometheus) {
    w.prometheus = await startPrometheus({ targets: [`127.0.0.1:${appPort}`], scrapeIntervalMs: 1000 });
    cleanups.push(() => w.prometheus!.stop());
  }
  return w;
}

function trafficProbe(w: World, source: 'scrape' | 'prometheus', queries?: Record<string, string>) {
  if (source === 'scrape') return { name: 'traffic', type: 'scrape', url: `http://127.0.0.1:${w.appPort}/metrics` };
  return {
    name: 'traffic',
    type: 'prometheus',
    url: w.prometheus!.url,
    queries: queries ?? {
      error_ratio: '(sum(rate(http_requests_total{status=~"5.."}[5s])) or vector(0)) / sum(rate(http_requests_total[5s]))',
      p95_ms: 'histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[5s])) by (le)) * 1000',
    },
  };
}

async function guard(w: World, traffic: object, options: { window?: string; stateDir?: string } = {}): Promise<RunningDaemon> {
  const yaml = stringify({
    service: APP,
    state_dir: options.stateDir ?? w.stateDir,
    server: { port: 0 },
    log: { level: 'debug', format: 'json' },
    pm2: { home: w.sandbox.home, app: APP },
    probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${w.appPort}/health`, version_path: 'version' }, traffic],
    schedule: { interval: '500ms', fast_interval: '250ms', fast_for: '1m' },
    release: { version_probe: 'health', window: options.window ?? '40s', initial_delay: '2s', settle: '1m' },
    rules: {
      health: { probe: 'health' },
      error_rate: { probe: 'traffic' },
      latency_ratio: { probe: 'traffic' },
    },
    rollback: { steps: [{ type: 'releases', dir: w.sandbox.dir, pm2_app: APP, restart_mode: 'reload' }] },
    verification: { probe: 'health', passes: 3 },
  });
  const stream = new PassThrough();
  stream.resume();
  const daemon = await startDaemon(parseConfigText(yaml, 'test'), { log: createLogger({ level: 'debug', format: 'json', stream }), pm2: w.sandbox.client });
  cleanups.push(() => daemon.stop());
  await waitFor(() => daemon.guard.current.stable === 'v1', 10_000);
  return daemon;
}

async function deploy(w: World, manifest: ReleaseManifest) {
  await buildRelease(w.sandbox.dir, 'v2', manifest);
  await pointCurrent(w.sandbox.dir, 'v2');
  await w.sandbox.client.reload(APP);
}

const served = async (w: World) => ((await getJson(`http://127.0.0.1:${w.appPort}/health`)).body as { version: string }).version;

describe('judging by real traffic', () => {
  it('scrape: 10 % errors on traffic → error_rate breach and automatic rollback', async () => {
    const w = await world();
    const daemon = await guard(w, trafficProbe(w, 'scrape'));
    await deploy(w, { fault: 'error_ratio', errorRatio: 0.1, faultAfterMs: 1000 });
    await waitFor(() => daemon.guard.current.phase === 'rolled_back', 40_000);
    const breach = daemon.guard.current.rollback!.breach;
    expect(breach.rules).toEqual(['error_rate']);
    expect(breach.reason).toMatch(/error_rate: \d+(\.\d)?% \(\d+\/\d+ requests since the evidence began\) > 5%: evidence [\d.]+ >= [\d.]+ \(budget 0.1%, tolerance 2%\)/);
    expect(await served(w)).toBe('v1');
  });

  it('scrape: 2 % errors and a restart of the app (counter reset) → promoted, no rollback', async () => {
    const w = await world();
    const daemon = await guard(w, trafficProbe(w, 'scrape'), { window: '12s' });
    await deploy(w, { fault: 'error_ratio', errorRatio: 0.02 });
    await waitFor(() => daemon.guard.current.phase === 'guarding', 10_000);
    await new Promise((r) => setTimeout(r, 4000));
    // The same version restarted: its counters start from zero again.
    await w.sandbox.client.restart(APP);
    await waitFor(() => daemon.guard.current.phase === 'promoted', 30_000);
    expect(daemon.guard.current.history.at(-1)).toMatchObject({ version: 'v2', status: 'success' });
    expect(daemon.guard.current.autoRollbacks).toEqual([]);
  });

  it('scrape: p95 raised 4× over the stable baseline → latency_ratio breach; the baseline survives a restart of the guard', async () => {
    const w = await world({ fault: 'slow', slowMs: 20 });
    const first = await guard(w, trafficProbe(w, 'scrape'));
    const baseline = await waitFor(() => first.guard.baseline('v1', 'traffic'), 20_000);
    // About 24 ms on an idle machine (every request takes 20 ms); more on a busy one.
    expect(baseline).toBeGreaterThan(15);
    expect(baseline).toBeLessThan(100);
    await first.stop();

    // A new daemon on the same state dir knows v1's baseline before it has seen a single sample.
    const daemon = await guard(w, trafficProbe(w, 'scrape'));
    expect(daemon.guard.baseline('v1', 'traffic')).toBe(baseline);
    // Every request 600 ms slower: beyond the bucket bound (250 or 500 ms) at or above 3 × the
    // baseline, however busy the machine makes the baseline.
    await deploy(w, { fault: 'slow', slowMs: 600 });
    await waitFor(() => daemon.guard.current.phase === 'rolled_back', 40_000);
    const breach = daemon.guard.current.rollback!.breach;
    expect(breach.rules).toContain('latency_ratio');
    expect(breach.reason).toMatch(/latency_ratio: \d+(\.\d)?% slower than [\d.]+ms \(\d+(\.\d)?\/\d+ requests since the evidence began\) > 5%/);
  });

  it('prometheus: 10 % errors on traffic → error_rate breach and automatic rollback', async () => {
    const w = await world({}, { prometheus: true });
    const daemon = await guard(w, trafficProbe(w, 'prometheus'));
    // Let Prometheus gather enough scrapes of v1 for rate() to answer.
    await waitFor(() => daemon.guard.status().rules.find((r) => r.rule === 'error_rate')?.outcome === 'pass', 20_000);
    await deploy(w, { fault: 'error_ratio', errorRatio: 0.1, faultAfterMs: 1000 });
    await waitFor(() => daemon.guard.current.phase === 'rolled_back', 45_000);
    expect(daemon.guard.current.rollback!.breach.rules).toContain('error_rate');
    expect(await served(w)).toBe('v1');
  });

  it('prometheus: no data is inconclusive, never healthy — the release is neither promoted nor rolled back', async () => {
    const w = await world({}, { prometheus: true });
    const traffic = trafficProbe(w, 'prometheus', { error_ratio: 'sum(rate(no_such_metric_total[5s]))' });
    const daemon = await guard(w, traffic, { window: '6s' });
    await deploy(w, { fault: 'error_ratio', errorRatio: 0.5, faultAfterMs: 60_000 });
    await waitFor(() => daemon.guard.current.phase === 'guarding', 10_000);
    const verdict = await waitFor(() => daemon.guard.status().rules.find((r) => r.rule === 'error_rate' && r.outcome === 'inconclusive'), 10_000);
    expect(verdict.message).toMatch(/traffic samples in window < min_samples 1/);
    await waitFor(() => daemon.guard.current.phase === 'stable', 15_000);
    expect(daemon.guard.current).toMatchObject({ stable: 'v1', running: 'v2', autoRollbacks: [] });
    expect(daemon.guard.current.history.map((h) => h.version)).toEqual(['v1']);
    const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
    expect(metrics).toMatch(/release_guard_rule_inconclusive\{rule="error_rate"\} 1/);
  });
});
