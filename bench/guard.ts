/**
 * release-guard as users run it: `node dist/cli/main.js start --config FILE`, a separate process
 * (so its own CPU, memory and timing are what is measured), configured for a bench world. The
 * bench only reads what the guard writes anyway (state.json, baselines.json, rollback records)
 * and its /status, so watching it costs the guard nothing.
 */
import { createWriteStream } from 'node:fs';
import { createRequire } from 'node:module';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { freePort, PROJECT_ROOT } from '../test/fixtures/demo-app/releases.js';
import type { BenchDb } from './mariadb.js';
import { spawnTracked, stopChild, waitFor } from './proc.js';
import { FAST_FOR_MS, FAST_INTERVAL_MS, INITIAL_DELAY_MS, INTERVAL_MS, WINDOW_MS, type TrafficSource } from './scenarios.js';
import { APP, SETUP_TIMEOUT_MS, type World } from './world.js';
import type { ChildProcess } from 'node:child_process';

/** The built product, as users run it (`npm run bench` builds it first). */
export const GUARD_CLI = path.join(PROJECT_ROOT, 'dist', 'cli', 'main.js');

/** The node flags the guard runs with where it really runs (the pm2 ecosystem file; the systemd
 * unit gives the same, a test checks it), so the bench measures the guard as users run it. */
export function launcherNodeFlags(): string[] {
  const ecosystem = createRequire(import.meta.url)(path.join(PROJECT_ROOT, 'ecosystem.config.cjs')) as { apps: { node_args?: string[] }[] };
  return ecosystem.apps[0]?.node_args ?? [];
}
export const TOKEN_ENV = 'RG_BENCH_TOKEN';
export const DB_PASSWORD_ENV = 'RG_BENCH_DB_PASSWORD';
/** The API token the bench's guards get (in TOKEN_ENV). */
export const TOKEN = 'bench-token-0123456789abcdef';

/** App memory threshold of the bench: 512 MB, written as the share of the host the rule takes. */
export const MEMORY_LIMIT_BYTES = 512 * 1024 * 1024;

/** The guard's traffic probe: the app's own /metrics, or nginx's access log in front of it. */
export function trafficProbe(world: World, source: TrafficSource, accessLog?: string): Record<string, unknown> {
  if (source === 'scrape') return { name: 'traffic', type: 'scrape', url: `http://127.0.0.1:${world.appPort}/metrics`, timeout: '1s' };
  if (!accessLog) throw new Error('the access_log source needs nginx in front of the app (its access log)');
  return { name: 'traffic', type: 'access_log', ...ACCESS_LOG_KEYS(accessLog) };
}

/** The access_log probe's keys: nginx's timed format is its default (bench/nginx.ts writes it). */
const ACCESS_LOG_KEYS = (file: string): Record<string, unknown> => ({ path: file, format: 'nginx' });

/**
 * The bench's guard config for a world: one service, every rule the runbook names. The traffic
 * rules use the product's defaults (sequential test: threshold, tolerance, budget, min_span), on
 * the traffic source of the run.
 */
export function guardConfig(
  world: World,
  options: { stateDir: string; port: number; db?: BenchDb; source?: TrafficSource; accessLog?: string },
): Record<string, unknown> {
  const base = `http://127.0.0.1:${world.appPort}`;
  const ms = (n: number) => `${n}ms`;
  return {
    service: APP,
    state_dir: options.stateDir,
    server: { host: '127.0.0.1', port: options.port, token_env: TOKEN_ENV },
    log: { level: 'info', format: 'json' },
    pm2: { home: world.pm2Home, app: APP, crash_exits: 1, crash_window: '60s' },
    probes: [
      { name: 'health', type: 'http', url: `${base}/health`, timeout: '1s', version_path: 'version', json_field: { path: 'status', equals: 'ok' } },
      trafficProbe(world, options.source ?? 'scrape', options.accessLog),
      { name: 'app', type: 'process', pm2_app: APP },
      ...(options.db
        ? [
            {
              name: 'db',
              type: 'mysql',
              host: options.db.host,
              port: options.db.port,
              user: options.db.probeUser,
              password_env: DB_PASSWORD_ENV,
              database: options.db.database,
              query: 'SELECT COUNT(*) FROM items',
              timeout: '2s',
            },
          ]
        : []),
    ],
    schedule: { interval: ms(INTERVAL_MS), fast_interval: ms(FAST_INTERVAL_MS), fast_for: ms(FAST_FOR_MS), max_in_flight: 8 },
    release: { version_probe: 'health', window: ms(WINDOW_MS), initial_delay: ms(INITIAL_DELAY_MS), settle: '30s' },
    rules: {
      health: { probe: 'health', consecutive: 3 },
      error_rate: { probe: 'traffic', threshold: 0.05 },
      latency_ratio: { probe: 'traffic', ratio: 3, floor: '50ms' },
      cpu: { probe: 'app', threshold: 0.7, for: '10s' },
      memory: { probe: 'app', threshold: Number((MEMORY_LIMIT_BYTES / os.totalmem()).toFixed(4)), for: '10s' },
      ...(options.db ? { db_latency: { probe: 'db', threshold: '100ms', for: '10s' } } : {}),
    },
    rollback: {
      automatic: true,
      max_per_hour: 3,
      steps: [{ type: 'releases', dir: world.deployDir, pm2_app: APP, restart_mode: 'reload', timeout: '30s' }],
    },
    verification: { probe: 'health', passes: 3, timeout: '20s' },
  };
}

/** What the bench reads of the guard's persisted state. */
export interface GuardStateFile {
  phase: string;
  stable: string | null;
  running: string | null;
  release: { version: string; previous: string | null; startedAt: number } | null;
  rollback: { breach: { decidedAt: number; faultAt: number; reason: string; trigger: string; rules?: string[] }; executedAt?: number } | null;
}

export interface RecordFile {
  id: string;
  from: string;
  to: string;
  outcome: string;
  startedAt: number;
  executedAt: number | null;
  finishedAt: number;
  breach: { trigger: string; rules: string[]; reason: string; decidedAt: number; faultAt: number };
  steps?: { name?: string; durationMs?: number }[];
}

export class GuardProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly stateDir: string,
    readonly url: string,
    readonly logFile: string,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  /** Writes the config next to the state dir and starts the daemon; resolves once /healthz answers. */
  /**
   * `launch.prefix` runs the guard under a program (e.g. `unshare … sh -c …`), `launch.nodeFlags`
   * adds node flags (e.g. `--import` of a module): the chaos scenarios' hostile hosts.
   */
  static async start(dir: string, config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}, launch: { prefix?: string[]; nodeFlags?: string[] } = {}): Promise<GuardProcess> {
    const configFile = path.join(dir, 'release-guard.yaml');
    await writeFile(configFile, stringify(config), { mode: 0o600 });
    const logFile = path.join(dir, 'guard.log');
    const out = createWriteStream(logFile);
    const [program, ...args] = [...(launch.prefix ?? []), process.execPath, ...launcherNodeFlags(), ...(launch.nodeFlags ?? []), GUARD_CLI, 'start', '--config', configFile];
    const child = spawnTracked(program!, args, {
      env: { ...process.env, ...env, [TOKEN_ENV]: TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    const server = config.server as { port: number };
    const guard = new GuardProcess(child, String(config.state_dir), `http://127.0.0.1:${server.port}`, logFile);
    try {
      await waitFor(
        'release-guard to answer /healthz',
        async () => {
          if (child.exitCode !== null) throw new Error(`release-guard exited with code ${child.exitCode}: ${await guard.logTail()}`);
          return (await fetch(`${guard.url}/healthz`, { signal: AbortSignal.timeout(500) })).ok;
        },
        SETUP_TIMEOUT_MS,
        100,
      );
    } catch (error) {
      await guard.stop();
      throw new Error(`${String(error)}\n${await guard.logTail()}`, { cause: error });
    }
    return guard;
  }

  static freePort = freePort;

  async logTail(lines = 20): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }

  async state(): Promise<GuardStateFile | null> {
    try {
      return JSON.parse(await readFile(path.join(this.stateDir, 'state.json'), 'utf8')) as GuardStateFile;
    } catch {
      return null; // not written yet, or being replaced (atomic rename: retry)
    }
  }

  /** Whether the guard has learnt the traffic baseline (p95) of `version`. */
  async hasBaseline(version: string, probe = 'traffic'): Promise<boolean> {
    try {
      const baselines = JSON.parse(await readFile(path.join(this.stateDir, 'baselines.json'), 'utf8')) as Record<string, Record<string, unknown>>;
      return Boolean(baselines[version]?.[probe]);
    } catch {
      return false;
    }
  }

  /** Whether the guard has learnt how fast `version` passes its checks (schedule.fast_timeout: auto). */
  async hasCheckLatency(version: string): Promise<boolean> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    return text.split('\n').some((line) => line.includes('"stable check latency learnt"') && line.includes(`"version":"${version}"`));
  }

  async records(): Promise<RecordFile[]> {
    const dir = path.join(this.stateDir, 'rollbacks');
    const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort();
    return Promise.all(names.map(async (n) => JSON.parse(await readFile(path.join(dir, n), 'utf8')) as RecordFile));
  }

  /** POST to the control API with the bench's token. */
  async post(route: string, body: Record<string, unknown>): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${this.url}${route}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    return { status: response.status, body: await response.json().catch(() => null) };
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 10_000);
  }
}
