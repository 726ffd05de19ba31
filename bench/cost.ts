/**
 * What release-guard costs the box it guards, read from /proc of the guard process:
 * - one service (the bench's full config: health check, traffic scrape, pm2 process readings,
 *   the database query; six rules) under 50 req/s, while stable (1 s interval), early in a
 *   release window (250 ms fast probing of health and traffic) and, in full runs, 4 min into the
 *   window (retained samples, and so heap and evaluation work, grow through a window);
 * - 200 http endpoints at a 1 s interval, with the delay of each probe launch against its
 *   schedule (the spacing of consecutive requests to one endpoint minus the interval), measured
 *   by the endpoint server, a separate process.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { DB_PASSWORD_ENV, GuardProcess, guardConfig } from './guard.js';
import { RATE } from './guard-runner.js';
import type { BenchDb } from './mariadb.js';
import { readProc, sleep, spawnTracked, stopChild, waitFor, withTimeout, type ProcReading } from './proc.js';
import { percentile, summarize } from './results.js';
import { BASE_LATENCY_MS, INSTANCES } from './scenarios.js';
import { startTraffic, type Traffic } from './traffic.js';
import { APP, SETUP_TIMEOUT_MS, World } from './world.js';
import type { ChildProcess } from 'node:child_process';

export interface UsageWindow {
  label: string;
  seconds: number;
  /** CPU seconds per wall second (1 = one core). */
  cpuShare: number;
  rssMedianMb: number;
  rssMaxMb: number;
}

export interface CostResult {
  oneService: UsageWindow[];
  endpoints: (UsageWindow & { count: number; intervalMs: number; launches: number; delayP50Ms: number | null; delayP99Ms: number | null; delayMaxMs: number | null }) | null;
  errors: string[];
}

/** Samples the process every second for `seconds`; CPU share over the whole window. */
export async function measureUsage(pid: number, label: string, seconds: number): Promise<UsageWindow> {
  const readings: ProcReading[] = [];
  const first = await readProc(pid);
  if (!first) throw new Error(`process ${pid} is gone`);
  readings.push(first);
  const end = first.at + seconds * 1000;
  while (Date.now() < end) {
    await sleep(Math.min(1000, end - Date.now()));
    const r = await readProc(pid);
    if (!r) throw new Error(`process ${pid} exited during the measurement`);
    readings.push(r);
  }
  const last = readings.at(-1)!;
  const rss = summarize(readings.map((r) => r.rssBytes / 1024 / 1024));
  return {
    label,
    seconds: (last.at - first.at) / 1000,
    cpuShare: (last.cpuSeconds - first.cpuSeconds) / ((last.at - first.at) / 1000),
    rssMedianMb: rss.median!,
    rssMaxMb: rss.max!,
  };
}

/** How far into a release window the last one-service measurement starts (full runs). */
const LATER_MS = 4 * 60_000;

async function oneService(db: BenchDb | undefined, seconds: number, long: boolean, log: (m: string) => void): Promise<UsageWindow[]> {
  const good = { baseLatencyMs: BASE_LATENCY_MS };
  const world = await World.create({ execMode: 'cluster', instances: INSTANCES, releases: { v1: good, v2: good } });
  let guard: GuardProcess | null = null;
  let traffic: Traffic | null = null;
  try {
    traffic = startTraffic(world.apiUrl, RATE, (3 * seconds + 120) * 1000 + (long ? LATER_MS : 0));
    const stateDir = path.join(world.root, 'state');
    await mkdir(stateDir, { recursive: true });
    guard = await GuardProcess.start(world.root, guardConfig(world, { stateDir, port: await GuardProcess.freePort(), ...(db ? { db } : {}) }), db ? { [DB_PASSWORD_ENV]: db.probePassword } : {});
    const g = guard;
    await waitFor('v1 stable', async () => (await g.state())?.stable === 'v1', SETUP_TIMEOUT_MS, 100);
    await waitFor('the v1 baseline', () => g.hasBaseline('v1'), SETUP_TIMEOUT_MS, 200);
    await sleep(3000);
    log(`  cost: one service, stable, ${seconds} s`);
    const stable = await measureUsage(g.pid, 'one service, stable (1 s interval)', seconds);
    await world.deploy('v2');
    await waitFor('the window for v2', async () => (await g.state())?.phase === 'guarding', SETUP_TIMEOUT_MS, 50);
    const windowAt = Date.now();
    await sleep(1000);
    const fast = Math.min(seconds, 15);
    log(`  cost: one service, release window (fast probing), ${fast} s`);
    const guarding = await measureUsage(g.pid, 'one service, release window (250 ms fast probing)', fast);
    if (!long) return [stable, guarding];
    // Samples are retained 15 min: the heap and the work per evaluation grow through a window.
    const later = windowAt + LATER_MS;
    if (later > Date.now()) await sleep(later - Date.now());
    log(`  cost: one service, ${LATER_MS / 60_000} min into the window, ${seconds} s`);
    const settled = await measureUsage(g.pid, `one service, ${LATER_MS / 60_000} min into a release window (1 s interval)`, seconds);
    return [stable, guarding, settled];
  } finally {
    await traffic?.stop().catch(() => undefined);
    await guard?.stop().catch(() => undefined);
    await world.cleanup().catch(() => undefined);
  }
}

const ENDPOINTS_SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'endpoints-server.js');

async function endpoints(count: number, seconds: number, log: (m: string) => void): Promise<NonNullable<CostResult['endpoints']>> {
  let server: ChildProcess | null = null;
  let guard: GuardProcess | null = null;
  // A world only for its temp dir and a releases layout the (never used) rollback step can name.
  const world = await World.create({ execMode: 'fork', instances: 1, releases: { v1: {} } });
  try {
    server = spawnTracked(process.execPath, [ENDPOINTS_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve, reject) => {
      const lines = createInterface({ input: server!.stdout! });
      lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
      server!.once('exit', () => reject(new Error('endpoint server exited')));
    });
    const base = `http://127.0.0.1:${port}`;
    const names = Array.from({ length: count }, (_, i) => `ep${String(i).padStart(3, '0')}`);
    const stateDir = path.join(world.root, 'state-endpoints');
    await mkdir(stateDir, { recursive: true });
    const config = {
      service: 'many',
      state_dir: stateDir,
      server: { host: '127.0.0.1', port: await GuardProcess.freePort() },
      log: { level: 'info', format: 'json' },
      probes: names.map((name, i) => ({ name, type: 'http', url: `${base}/${name}`, timeout: '1s', ...(i === 0 ? { version_path: 'version' } : {}) })),
      schedule: { interval: '1s', fast_interval: '250ms', fast_for: '2m', max_in_flight: 8 },
      release: { version_probe: names[0], window: '10m' },
      rules: {
        health: { probe: names[0], consecutive: 3 },
        error_rate: { probe: names[1], threshold: 0.05, window: '60s' },
        latency_max: { probe: names[2], threshold: '500ms', window: '30s' },
      },
      rollback: { steps: [{ type: 'releases', dir: world.deployDir, pm2_app: APP }] },
      verification: { probe: names[0], passes: 3 },
    };
    guard = await GuardProcess.start(world.root, config);
    const g = guard;
    await waitFor('v1 stable', async () => (await g.state())?.stable === 'v1', SETUP_TIMEOUT_MS, 100);
    await sleep(5000);
    log(`  cost: ${count} endpoints at 1 s, ${seconds} s`);
    const from = Date.now();
    const usage = await measureUsage(g.pid, `${count} endpoints, 1 s interval`, seconds);
    const to = Date.now();
    const stats = (await (await fetch(`${base}/__stats`)).json()) as Record<string, number[]>;
    const delays: number[] = [];
    let launches = 0;
    for (const name of names) {
      const times = (stats[`/${name}`] ?? []).filter((t) => t >= from && t <= to);
      launches += times.length;
      for (let i = 1; i < times.length; i++) delays.push(times[i]! - times[i - 1]! - 1000);
    }
    return {
      ...usage,
      count,
      intervalMs: 1000,
      launches,
      delayP50Ms: percentile(delays, 50),
      delayP99Ms: percentile(delays, 99),
      delayMaxMs: delays.length ? Math.max(...delays) : null,
    };
  } finally {
    await guard?.stop().catch(() => undefined);
    await stopChild(server, 2000).catch(() => undefined);
    await world.cleanup().catch(() => undefined);
  }
}

export async function measureCost(options: { db?: BenchDb; seconds: number; endpoints: number; long: boolean; log: (m: string) => void }): Promise<CostResult> {
  const result: CostResult = { oneService: [], endpoints: null, errors: [] };
  try {
    result.oneService = await withTimeout('cost: one service', options.seconds * 3 * 1000 + 120_000 + (options.long ? LATER_MS : 0), oneService(options.db, options.seconds, options.long, options.log));
  } catch (error) {
    result.errors.push(`one service: ${String(error)}`);
  }
  try {
    result.endpoints = await withTimeout('cost: endpoints', options.seconds * 1000 + 120_000, endpoints(options.endpoints, options.seconds, options.log));
  } catch (error) {
    result.errors.push(`${options.endpoints} endpoints: ${String(error)}`);
  }
  return result;
}
