/**
 * Strategy cost: how long each way back takes to a *verified* old version, and what users see
 * meanwhile (50 req/s; both versions healthy, so every failed request is the switch's):
 * - releases: current -> releases/v1 + pm2 reload, cluster mode (2 instances) and fork mode;
 * - git: checkout the v1 tag + npm ci + npm run build + pm2 restart, cluster mode (2 instances),
 *   on an app with no dependencies and a copy-only build: a floor, real installs take longer.
 * Each is a manual rollback through the guard's API (`POST /rollback`): the guard runs the plan
 * and verifies (3 health checks reporting v1), as it would for a bad release. When this build of
 * release-guard has no git strategy, the same commands run from the bench instead (marked).
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DEMO_APP } from '../test/fixtures/demo-app/releases.js';
import { GuardProcess } from './guard.js';
import { RATE } from './guard-runner.js';
import { runOk, sleep, waitFor, withTimeout } from './proc.js';
import { BASE_LATENCY_MS, FAST_INTERVAL_MS } from './scenarios.js';
import { impactOf, startTraffic, type Traffic } from './traffic.js';
import { APP, World } from './world.js';

export interface StrategyRun {
  strategy: 'releases' | 'git';
  execMode: 'cluster' | 'fork';
  instances: number;
  run: number;
  /** Who ran the plan: the guard (manual rollback through its API), or the bench (fallback). */
  via: 'release-guard' | 'bench script';
  completed: boolean;
  error?: string;
  /** Rollback requested → plan done (guard: executedAt). */
  planMs: number | null;
  /** Rollback requested → verified on v1 (guard: 3 passing checks reporting v1). */
  verifiedMs: number | null;
  /** Rollback requested → every request answered by v1 (seen by the load). */
  servedMs: number | null;
  failedRequests: number;
  requests: number;
  steps?: { name?: string; durationMs?: number }[];
}

export interface StrategyVariant {
  strategy: 'releases' | 'git';
  execMode: 'cluster' | 'fork';
  instances: number;
}

export const VARIANTS: StrategyVariant[] = [
  { strategy: 'releases', execMode: 'cluster', instances: 2 },
  { strategy: 'releases', execMode: 'fork', instances: 1 },
  { strategy: 'git', execMode: 'cluster', instances: 2 },
];

const GIT = ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', '-c', 'advice.detachedHead=false'];

/** A git working tree with tags v1 and v2 of the demo app; `npm run build` copies it to dist/. */
async function prepareGitRepo(world: World): Promise<void> {
  const repo = gitDir(world);
  await mkdir(repo, { recursive: true });
  const git = (...args: string[]) => runOk('git', [...GIT, '-C', repo, ...args]);
  await git('init', '-q');
  await copyFile(DEMO_APP, path.join(repo, 'server.cjs'));
  const pkg = { name: 'bench-app', version: '1.0.0', private: true, scripts: { build: 'node build.cjs' } };
  await writeFile(path.join(repo, 'package.json'), JSON.stringify(pkg, null, 2));
  await writeFile(
    path.join(repo, 'package-lock.json'),
    JSON.stringify({ name: 'bench-app', version: '1.0.0', lockfileVersion: 3, requires: true, packages: { '': { name: 'bench-app', version: '1.0.0' } } }, null, 2),
  );
  await writeFile(
    path.join(repo, 'build.cjs'),
    "const fs = require('node:fs');\nfs.mkdirSync('dist', { recursive: true });\nfor (const f of ['server.cjs', 'release.json']) fs.copyFileSync(f, `dist/${f}`);\n",
  );
  await writeFile(path.join(repo, '.gitignore'), 'dist/\nnode_modules/\n');
  for (const version of ['v1', 'v2']) {
    await writeFile(path.join(repo, 'release.json'), JSON.stringify({ version, baseLatencyMs: BASE_LATENCY_MS }, null, 2));
    await git('add', '-A');
    await git('commit', '-q', '-m', `release ${version}`);
    await git('tag', version);
  }
  await checkoutAndBuild(repo, 'v1');
}

const gitDir = (world: World) => path.join(world.root, 'repo');

async function checkoutAndBuild(repo: string, version: string): Promise<void> {
  await runOk('git', [...GIT, '-C', repo, 'checkout', '-q', '--force', `refs/tags/${version}`]);
  await runOk('npm', ['ci', '--no-audit', '--no-fund'], { cwd: repo, timeoutMs: 300_000 });
  await runOk('npm', ['run', 'build'], { cwd: repo, timeoutMs: 300_000 });
}

function guardConfigFor(world: World, variant: StrategyVariant, stateDir: string, port: number): Record<string, unknown> {
  const step =
    variant.strategy === 'releases'
      ? { type: 'releases', dir: world.deployDir, pm2_app: APP, restart_mode: 'reload', timeout: '60s' }
      : { type: 'git', dir: gitDir(world), install: ['npm', 'ci', '--no-audit', '--no-fund'], build: ['npm', 'run', 'build'], pm2_app: APP, timeout: '5m' };
  return {
    service: APP,
    state_dir: stateDir,
    server: { host: '127.0.0.1', port, token_env: 'RG_BENCH_TOKEN' },
    log: { level: 'info', format: 'json' },
    pm2: { home: world.pm2Home, app: APP },
    probes: [{ name: 'health', type: 'http', url: world.healthUrl, timeout: '1s', version_path: 'version', json_field: { path: 'status', equals: 'ok' } }],
    schedule: { interval: '1s', fast_interval: `${FAST_INTERVAL_MS}ms`, fast_for: '2m' },
    release: { version_probe: 'health', window: '10m', initial_delay: '10s', settle: '30s' },
    rules: { health: { probe: 'health', consecutive: 3 } },
    rollback: { steps: [step] },
    verification: { probe: 'health', passes: 3, timeout: '60s' },
  };
}

export async function runStrategy(variant: StrategyVariant, run: number, log: (m: string) => void): Promise<StrategyRun> {
  const result: StrategyRun = { ...variant, run, via: 'release-guard', completed: false, planMs: null, verifiedMs: null, servedMs: null, failedRequests: 0, requests: 0 };
  const git = variant.strategy === 'git';
  const good = { baseLatencyMs: BASE_LATENCY_MS };
  let world: World | null = null;
  let guard: GuardProcess | null = null;
  let traffic: Traffic | null = null;
  try {
    await withTimeout(`strategy ${variant.strategy} ${variant.execMode} run ${run}`, 240_000, (async () => {
      world = await World.create({
        execMode: variant.execMode,
        instances: variant.instances,
        releases: git ? {} : { v1: good, v2: good },
        ...(git ? { prepare: prepareGitRepo, script: (x: World) => path.join(gitDir(x), 'dist', 'server.cjs'), startVersion: 'v1' } : {}),
      });
      const w: World = world;
      traffic = startTraffic(w.apiUrl, RATE, 200_000);
      const stateDir = path.join(w.root, 'state');
      await mkdir(stateDir, { recursive: true });
      try {
        guard = await GuardProcess.start(w.root, guardConfigFor(w, variant, stateDir, await GuardProcess.freePort()));
      } catch (error) {
        if (!git) throw error;
        result.via = 'bench script';
        log(`    the guard did not start with a git step (${String(error).split('\n')[0]}); running the same commands from the bench`);
      }
      if (guard) {
        const g: GuardProcess = guard;
        await waitFor('v1 stable', async () => (await g.state())?.stable === 'v1', 20_000, 100);
      }
      // Deploy v2 as the strategy's own deploy would.
      if (git) {
        await checkoutAndBuild(gitDir(w), 'v2');
        await w.pm2(['reload', APP]);
        await w.waitForVersion('v2', 30_000);
      } else await w.deploy('v2');
      if (guard) {
        const g: GuardProcess = guard;
        await waitFor('the window for v2', async () => (await g.state())?.phase === 'guarding', 20_000, 50);
      }
      await sleep(2000);

      const requestedAt = Date.now();
      if (guard) {
        const g: GuardProcess = guard;
        const answer = await g.post('/rollback', { reason: 'strategy cost benchmark', by: 'bench' });
        if (answer.status !== 200) throw new Error(`POST /rollback: ${answer.status} ${JSON.stringify(answer.body)}`);
        const done = await waitFor('the rollback to be verified', async () => {
          const s = await g.state();
          return s && (s.phase === 'rolled_back' || s.phase === 'failed') ? s : null;
        }, 200_000, 25);
        if (done.phase !== 'rolled_back') throw new Error(`rollback ended ${done.phase}: ${await g.logTail(10)}`);
        // The record is written as an effect right after the transition.
        const record = await waitFor('the rollback record', async () => (await g.records())[0] ?? null, 10_000, 50);
        result.planMs = record.executedAt !== null ? record.executedAt - requestedAt : null;
        result.verifiedMs = record.finishedAt - requestedAt;
        if (record.steps) result.steps = record.steps;
      } else {
        await checkoutAndBuild(gitDir(w), 'v1');
        await w.pm2(['restart', APP]);
        result.planMs = Date.now() - requestedAt;
        let passes = 0;
        await waitFor('3 checks on v1', async () => {
          passes = (await w.version()) === 'v1' ? passes + 1 : 0;
          return passes >= 3;
        }, 60_000, FAST_INTERVAL_MS);
        result.verifiedMs = Date.now() - requestedAt;
      }
      await sleep(2000);
      const records = await traffic.stop();
      const impact = impactOf(records, requestedAt, 'v1');
      result.servedMs = impact.recoveredAt === null ? null : impact.recoveredAt - requestedAt;
      result.failedRequests = impact.failedAfterFault;
      result.requests = impact.sentAfterFault;
      result.completed = true;
    })());
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
  } finally {
    await (traffic as Traffic | null)?.stop().catch(() => undefined);
    await (guard as GuardProcess | null)?.stop().catch(() => undefined);
    await (world as World | null)?.cleanup().catch(() => undefined);
  }
  return result;
}

