/**
 * A throwaway Prometheus for integration tests, and the exporter it scrapes (the demo app,
 * test/fixtures/demo-app/server.cjs, as a plain child process).
 *
 * `startPrometheus` installs the Debian package when the binary is missing and we are root (CI
 * runs on a fresh machine), writes a prometheus.yml into a temp dir, starts the server on a free
 * loopback port with its TSDB in that dir, and waits for /-/ready. `stop()` ends it (SIGTERM, then
 * SIGKILL) and removes the dir. Every child started here is also SIGKILLed on process exit, so a
 * failing test leaves no process behind.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { constants, rmSync } from 'node:fs';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { DEMO_APP, freePort } from '../fixtures/demo-app/releases.js';

export interface PrometheusOptions {
  /** `host:port` of each target, all in one job named `app`. */
  targets: string[];
  /** Scrape and evaluation interval; also the scrape timeout. Default 1000. */
  scrapeIntervalMs?: number;
  /** Default /metrics. */
  metricsPath?: string;
}

export interface RunningPrometheus {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  /** Kills the server and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** Children to SIGKILL and directories to remove if the test process exits without cleaning up. */
const leftovers = { children: new Set<ChildProcess>(), dirs: new Set<string>() };
let exitHookInstalled = false;
function trackForExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of leftovers.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const dir of leftovers.dirs) rmSync(dir, { recursive: true, force: true });
  });
}

const installing = new Map<string, Promise<string>>();

/** `binary` from Debian package `pkg`, installed with apt-get first when missing and we are root. */
function ensureProgram(binary: string, pkg: string): Promise<string> {
  let pending = installing.get(binary);
  if (pending) return pending;
  pending = (async () => {
    const found = await which(binary);
    if (found) return found;
    if (process.platform !== 'linux' || process.getuid?.() !== 0 || !(await which('apt-get'))) {
      throw new Error(
        `${binary} is not installed and cannot be installed here (needs root and apt-get); ` +
          `install it with: sudo apt-get install -y --no-install-recommends ${pkg}`,
      );
    }
    const install = ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', pkg];
    try {
      await run('apt-get', install);
    } catch {
      // A fresh machine may have no package lists yet.
      await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update']);
      await run('apt-get', install);
    }
    const installed = await which(binary);
    if (!installed) throw new Error(`apt-get installed ${pkg} but no ${binary} binary is on PATH`);
    return installed;
  })();
  installing.set(binary, pending);
  // A failed attempt may be retried by the next caller.
  pending.catch(() => installing.delete(binary));
  return pending;
}

/** The prometheus binary, installed with apt-get first when it is missing and we are root. */
export function ensurePrometheus(): Promise<string> {
  return ensureProgram('prometheus', 'prometheus');
}

/** Ends a server started here and removes its directory; idempotent. */
function stopper(child: ChildProcess, dir: string): () => Promise<void> {
  let stopped = false;
  return async () => {
    if (stopped) return;
    stopped = true;
    await terminate(child);
    leftovers.children.delete(child);
    await rm(dir, { recursive: true, force: true });
    leftovers.dirs.delete(dir);
  };
}

export interface RunningAlertmanager {
  url: string;
  stop(): Promise<void>;
}

/**
 * A throwaway Alertmanager (Debian package prometheus-alertmanager) whose one route sends every
 * alert to `webhook` with a bearer token, grouped by alertname with the shortest waits it allows.
 */
export async function startAlertmanager(options: { webhook: string; token: string }): Promise<RunningAlertmanager> {
  const binary = await ensureProgram('prometheus-alertmanager', 'prometheus-alertmanager');
  trackForExit();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-alertmanager-'));
  leftovers.dirs.add(dir);
  const configFile = path.join(dir, 'alertmanager.yml');
  await writeFile(configFile, JSON.stringify({
    route: { receiver: 'guard', group_by: ['alertname'], group_wait: '0s', group_interval: '1s', repeat_interval: '1m' },
    receivers: [{ name: 'guard', webhook_configs: [{ url: options.webhook, send_resolved: true, http_config: { authorization: { type: 'Bearer', credentials: options.token } } }] }],
  }, null, 2));
  const port = await freePort();
  const child = spawn(binary, [`--config.file=${configFile}`, `--storage.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address=', '--log.level=warn'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  leftovers.children.add(child);
  const tail = captureTail(child);
  const url = `http://127.0.0.1:${port}`;
  const stop = stopper(child, dir);
  try {
    await waitReady(`${url}/-/ready`, child, 30_000);
  } catch (error) {
    await stop();
    throw new Error(`alertmanager did not start: ${(error as Error).message}\n--- stderr ---\n${tail()}`, { cause: error });
  }
  return { url, stop };
}

export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const binary = await ensurePrometheus();
  trackForExit();
  const interval = `${options.scrapeIntervalMs ?? 1000}ms`;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rg-prometheus-'));
  leftovers.dirs.add(dir);
  const configFile = path.join(dir, 'prometheus.yml');
  // JSON is YAML: no quoting rules to get wrong. The timeout may not exceed the interval.
  const config = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    scrape_configs: [
      { job_name: 'app', metrics_path: options.metricsPath ?? '/metrics', static_configs: [{ targets: options.targets }] },
    ],
  };
  await writeFile(configFile, JSON.stringify(config, null, 2));

  // The free port is only probably free when prometheus binds it: retry on a lost race.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(
      binary,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        '--storage.tsdb.retention.time=1h',
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    leftovers.children.add(child);
    const tail = captureTail(child);
    const url = `http://127.0.0.1:${port}`;
    const stop = stopper(child, dir);
    try {
      await waitReady(`${url}/-/ready`, child, 30_000);
      return { url, stop };
    } catch (error) {
      await terminate(child);
      leftovers.children.delete(child);
      lastError = new Error(`prometheus did not start: ${(error as Error).message}\n--- stderr ---\n${tail()}`);
      if (!/address already in use/i.test(tail())) break;
    }
  }
  await rm(dir, { recursive: true, force: true });
  leftovers.dirs.delete(dir);
  throw lastError;
}

export interface DemoAppOptions {
  /** Default: a free port. */
  port?: number;
  /** APP_FAULT: none | 5xx | slow | error_ratio | … Default none. */
  fault?: string;
  /** Other environment, e.g. { APP_ERROR_RATIO: '0.1' }. */
  env?: Record<string, string>;
}

export interface DemoApp {
  port: number;
  /** `127.0.0.1:<port>`, as a Prometheus target. */
  target: string;
  url: string;
  child: ChildProcess;
  /** SIGKILLs the app (a crash) and waits until it has exited. Idempotent. */
  stop(): Promise<void>;
}

/** Starts test/fixtures/demo-app/server.cjs as a plain process and waits until it listens. */
export async function startDemoApp(options: DemoAppOptions = {}): Promise<DemoApp> {
  trackForExit();
  const port = options.port ?? (await freePort());
  const child = spawn(process.execPath, [DEMO_APP], {
    env: { ...process.env, PORT: String(port), APP_VERSION: 'test', APP_FAULT: options.fault ?? 'none', ...options.env },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  leftovers.children.add(child);
  const tail = captureTail(child);
  const stop = async () => {
    child.kill('SIGKILL');
    await exited(child);
    leftovers.children.delete(child);
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('not ready within 10 s')), 10_000);
      child.once('message', () => (clearTimeout(timer), resolve()));
      child.once('exit', (code, signal) => (clearTimeout(timer), reject(new Error(`exited (${code ?? signal})`))));
    });
  } catch (error) {
    await stop();
    throw new Error(`demo app on port ${port}: ${(error as Error).message}\n${tail()}`, { cause: error });
  }
  child.channel?.unref();
  return { port, target: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}`, child, stop };
}

async function which(command: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const candidate = path.join(dir, command);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 },
      (error, _stdout, stderr) => {
        if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stderr.slice(-2000)}`, { cause: error }));
        else resolve();
      },
    );
  });
}

/** Keeps the last 4 KiB of a child's stderr, for error messages. */
function captureTail(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    text = (text + chunk).slice(-4096);
  });
  return () => text;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM, then SIGKILL after 5 s; resolves once the process is gone. */
async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = exited(child);
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

async function waitReady(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitedEarly = false;
  child.once('exit', () => (exitedEarly = true));
  while (Date.now() < deadline) {
    if (exitedEarly || child.exitCode !== null) throw new Error(`exited with ${child.exitCode ?? child.signalCode}`);
    if ((await statusOf(url)) === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms`);
}

function statusOf(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}
