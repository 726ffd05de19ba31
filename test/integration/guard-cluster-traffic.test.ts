/**
 * Judging releases by real traffic in the usual production shape, end to end: the demo app under
 * a real pm2 in cluster mode with 2 workers behind one port (its own /metrics per worker, no
 * worker label), 50 req/s of load, and the guard in-process with the traffic rules at their
 * defaults (the sequential test: no window, no min_requests) reading either the app's /metrics
 * (`scrape`) or the access log of a real nginx in front of the app (`access_log`; the load then
 * goes through nginx).
 *
 * What a user reported as false rollbacks must not roll back — a 0.5 s blip of 100 % 5xx (every
 * request, /health too) and 2 % errors for 15 s — while 10 % errors must. The faults follow a fault
 * file both workers read, switched on once the release window is open. Asserts the guard's state
 * and history, never how long anything took.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Nginx } from '../../bench/nginx.js';
import { parseConfigText } from '../../src/config/load.js';
import { startLoad } from '../../demo/load.js';
import { createLogger } from '../../src/log.js';
import { startDaemon, type RunningDaemon } from '../../src/shell/daemon.js';
import { ensureDebianPackage } from '../helpers/apt.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, pointCurrent, waitFor, type Pm2Sandbox, type ReleaseManifest } from '../helpers/pm2-sandbox.js';

const APP = 'shop';
const INSTANCES = 2;
const RATE = 50;
/** Every /api request takes this long, as in the bench: a baseline for the latency rule. */
const BASE_LATENCY_MS = 15;

type Source = 'scrape' | 'access_log';

interface World {
  sandbox: Pm2Sandbox;
  dir: string;
  appPort: number;
  faultFile: string;
  nginx: Nginx | null;
}

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

let nginxBin: string | null = null;
let nginxMissing = '';
beforeAll(async () => {
  try {
    nginxBin = (await ensureDebianPackage('nginx', 'nginx')).path;
  } catch (error) {
    nginxMissing = error instanceof Error ? error.message : String(error);
  }
}, 15 * 60_000);

async function world(source: Source): Promise<World> {
  const sandbox = await createPm2Sandbox();
  cleanups.push(() => sandbox.cleanup());
  const dir = await mkdtemp(join(tmpdir(), 'rg-cluster-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const appPort = await freePort();
  await buildRelease(sandbox.dir, 'v1', { baseLatencyMs: BASE_LATENCY_MS });
  await pointCurrent(sandbox.dir, 'v1');
  await sandbox.client.start({
    name: APP,
    script: join(sandbox.dir, 'current', 'server.cjs'),
    execMode: 'cluster',
    instances: INSTANCES,
    env: { PORT: String(appPort) },
  });
  await waitFor(async () => (await getJson(`http://127.0.0.1:${appPort}/health`).catch(() => null))?.status === 200, 15_000);
  let nginx: Nginx | null = null;
  if (source === 'access_log') {
    if (!nginxBin) throw new Error(`nginx is needed for the access_log source: ${nginxMissing}`);
    nginx = await Nginx.start(nginxBin, join(dir, 'nginx'), appPort);
    cleanups.push(() => nginx!.stop());
  }
  const target = nginx ? `${nginx.url}/api/items` : `http://127.0.0.1:${appPort}/api/items`;
  const load = startLoad(target, RATE, 120_000);
  cleanups.push(() => load.stop());
  return { sandbox, dir, appPort, faultFile: join(dir, 'FAULT'), nginx };
}

function trafficProbe(w: World, source: Source) {
  return source === 'scrape'
    ? { name: 'traffic', type: 'scrape', url: `http://127.0.0.1:${w.appPort}/metrics` }
    : { name: 'traffic', type: 'access_log', path: w.nginx!.accessLog };
}

async function guard(w: World, source: Source, window: string): Promise<RunningDaemon> {
  const stateDir = join(w.dir, 'state');
  const yaml = stringify({
    service: APP,
    state_dir: stateDir,
    server: { port: 0 },
    log: { level: 'debug', format: 'json' },
    pm2: { home: w.sandbox.home, app: APP },
    probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${w.appPort}/health`, version_path: 'version' }, trafficProbe(w, source)],
    schedule: { interval: '500ms', fast_interval: '250ms', fast_for: '1m' },
    release: { version_probe: 'health', window, initial_delay: '2s', settle: '1m' },
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
  await waitFor(() => daemon.guard.current.stable === 'v1', 15_000);
  return daemon;
}

/** v2 as a deploy script ships it; resolves once the guard has opened its release window. */
async function deploy(w: World, daemon: RunningDaemon, manifest: ReleaseManifest): Promise<void> {
  await buildRelease(w.sandbox.dir, 'v2', { baseLatencyMs: BASE_LATENCY_MS, ...manifest });
  await pointCurrent(w.sandbox.dir, 'v2');
  await w.sandbox.client.reload(APP);
  await waitFor(() => daemon.guard.current.phase === 'guarding' && daemon.guard.current.release?.version === 'v2', 20_000, 25);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Promoted at the end of a clean window: v2 recorded as a success, no automatic rollback. */
async function expectPromoted(daemon: RunningDaemon): Promise<void> {
  const done = await waitFor(() => {
    const state = daemon.guard.current;
    return state.phase !== 'guarding' ? state : null;
  }, 90_000);
  // The reason of a rollback, if any, in the failure message.
  expect({ phase: done.phase, breach: done.rollback?.breach.reason ?? null }).toEqual({ phase: 'promoted', breach: null });
  expect(done.autoRollbacks).toEqual([]);
  expect(done.history.map((h) => [h.version, h.status])).toEqual([
    ['v1', 'success'],
    ['v2', 'success'],
  ]);
}

describe.each<Source>(['scrape', 'access_log'])('pm2 cluster × 2, traffic judged by %s', (source) => {
  it('a 0.5 s blip of 100 % 5xx is not rolled back', async () => {
    const w = await world(source);
    const daemon = await guard(w, source, '12s');
    await deploy(w, daemon, { fault: '5xx', faultFile: w.faultFile });
    await sleep(3000);
    await writeFile(w.faultFile, 'blip\n');
    await sleep(500);
    await rm(w.faultFile, { force: true });
    await expectPromoted(daemon);
  }, 120_000);

  it('2 % errors for 15 s are not rolled back', async () => {
    const w = await world(source);
    const daemon = await guard(w, source, '20s');
    await deploy(w, daemon, { fault: 'error_ratio', errorRatio: 0.02, faultFile: w.faultFile });
    await sleep(1000);
    await writeFile(w.faultFile, '2 %\n');
    await sleep(15_000);
    await rm(w.faultFile, { force: true });
    await expectPromoted(daemon);
  }, 120_000);

  it('10 % errors are rolled back by error_rate', async () => {
    const w = await world(source);
    const daemon = await guard(w, source, '40s');
    await deploy(w, daemon, { fault: 'error_ratio', errorRatio: 0.1, faultFile: w.faultFile });
    await sleep(1000);
    await writeFile(w.faultFile, '10 %\n');
    await waitFor(() => daemon.guard.current.phase === 'rolled_back', 60_000);
    const breach = daemon.guard.current.rollback!.breach;
    expect(breach.rules).toEqual(['error_rate']);
    expect(daemon.guard.current.autoRollbacks.map((r) => r.version)).toEqual(['v2']);
    expect(daemon.guard.current.history.at(-1)).toMatchObject({ version: 'v2', status: 'rolled_back' });
    expect(((await getJson(`http://127.0.0.1:${w.appPort}/health`)).body as { version: string }).version).toBe('v1');
  }, 120_000);
});
