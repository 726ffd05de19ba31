/**
 * `release-guard start`: wires config, store, probes, strategies, pm2, metrics and the API around
 * a Guard, then runs until SIGTERM/SIGINT, when it lets a running rollback step finish, persists
 * and exits 0.
 */
import { hostname } from 'node:os';
import { startApiServer, type ApiServer } from '../api/server.js';
import { readToken } from '../api/token.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { createLogger, type Logger } from '../log.js';
import { GuardMetrics } from '../metrics.js';
import type { Pm2Client } from '../pm2/client.js';
import { createProbes } from '../probes/index.js';
import { createStrategy } from '../strategies/index.js';
import { openStore, type OpenedStore } from '../store/index.js';
import type { Probe } from '../probes/types.js';
import { errorMessage, GuardError } from '../errors.js';
import { loadVerificationCheckRunners } from '../verification/suite.js';
import { systemClock, type Clock } from './clock.js';
import { NotificationDispatcher, routesFromConfig } from '../notify/dispatcher.js';
import { Guard } from './guard.js';
import { Leadership } from './leadership.js';
import { claimSharedDir } from './shared-dir.js';
import { ProcessRunner } from './process-runner.js';
import { GroupRegistry } from './process-group.js';
import { join } from 'node:path';
import type { PlanStep } from './rollback-runner.js';
import { lockStateDir, type StateDirLock } from './state-dir-lock.js';
import { LoopLiveness } from './loop-liveness.js';

export interface RunningDaemon {
  guard: Guard;
  url: string;
  stop(): Promise<void>;
}

/** Whether anything in the config talks to pm2. */
function needsPm2(config: Config): boolean {
  return (
    Boolean(config.pm2) ||
    config.probes.some((p) => p.type === 'process' && p.pm2_app !== undefined) ||
    config.rollback.steps.some((s) => s.type === 'releases' || s.type === 'pm2')
  );
}

/** A client of the pm2 daemon the config names (pm2's API is loaded here, not at start-up). */
async function openPm2Client(config: Config): Promise<Pm2Client> {
  const { Pm2ApiClient } = await import('../pm2/pm2-api-client.js');
  return new Pm2ApiClient(config.pm2?.home ? { home: config.pm2.home } : {});
}

/**
 * Builds and starts everything; the caller decides when to stop. In this order, so that a guard
 * that cannot run alone never starts probing or acting: the state dir's lock first (one guard per
 * state dir), then the API port, and only then the guard (probes, tick loop, resuming an
 * interrupted plan). Any failure on the way stops what had started and rethrows.
 */
export async function startDaemon(config: Config, options: { log: Logger; clock?: Clock; pm2?: Pm2Client }): Promise<RunningDaemon> {
  const { log } = options;
  const clock = options.clock ?? systemClock;
  const parts: Started = {};
  try {
    parts.lock = await lockStateDir(config.state_dir, { clock });
    const token = await readToken(config.server);
    if (!token) log.warn('no API token configured: POST endpoints will refuse every request', { component: 'api', token_env: config.server.token_env });
    const opened = (parts.store = await openStore(config));
    const { store } = opened;
    // A shared store (redis): only the guard holding the lease acts; the others stand by.
    const leadership = opened.lease ? new Leadership(store, { ttlMs: opened.lease.ttlMs, clock, log, hostId: opened.hostId }) : undefined;
    // HA: the directory where every guard of this instance keeps prepared data (shared-dir.ts).
    if (config.store.type === 'redis' && config.store.shared_dir) {
      await claimSharedDir(config.store.shared_dir, (store as { holder?: string }).holder ?? `${hostname()}/${process.pid}`, clock.now());
    }
    // pm2's API (and each probe's and strategy's client library) is loaded only when the config uses it.
    const pm2 = (parts.pm2 = options.pm2 ?? (needsPm2(config) ? await openPm2Client(config) : undefined));
    const metrics = new GuardMetrics();
    const probes = (parts.probes = await createProbes(config.probes, { now: () => clock.now(), ...(pm2 ? { pm2 } : {}) }));
    // After the lock (a refused second guard must not touch the first one's steps), before anything
    // can resume an interrupted plan: stop what a killed predecessor's step left running.
    const registry = new GroupRegistry(join(config.state_dir, 'step-processes'));
    await registry.stopOrphans(log, clock);
    const run = new ProcessRunner({ registry, clock });
    const plan: PlanStep[] = [];
    for (const step of config.rollback.steps) plan.push({ config: step, strategy: await createStrategy(step, { pm2: pm2!, run, clock }) });
    // Now rather than when a rollback is being verified.
    await loadVerificationCheckRunners(config.verification.checks);
    const notifications = (parts.notifications = new NotificationDispatcher(routesFromConfig(config.notifiers), {
      log: (level, message, fields) => log.log(level, message, { component: 'notify', ...fields }),
      clock,
    }));
    const guard = new Guard({ config, store, clock, log, metrics, probes, plan, notify: (event) => notifications.publish(event), ...(pm2 ? { pm2 } : {}), ...(leadership ? { leadership } : {}), ...(opened.fleet ? { fleet: opened.fleet } : {}) });
    // The port before the guard: a guard that cannot serve its API never probes or acts.
    let started = false;
    const server = (parts.server = await startApiServer({
      host: config.server.host,
      port: config.server.port,
      token,
      control: guard,
      ready: () => started,
      liveness: () => parts.liveness?.check() ?? { ok: true, reason: null },
      preflightCacheMs: config.server.preflight_cache,
      clock,
      log: (level, message, fields) => log.log(level, message, { component: 'api', ...fields }),
    }));
    parts.lock.describe({ url: server.url });
    parts.guard = guard;
    await guard.start();
    parts.liveness = new LoopLiveness({ clock, windowMs: config.server.liveness, lastTickAt: () => guard.lastTickAt }).start();
    started = true;
    // Scheduled drills (seed: rehearse rollbacks regularly); a refused or failed drill is logged.
    parts.drills = config.drill.schedule
      ? (await import('node-cron')).default.schedule(config.drill.schedule, async () => {
          const result = await guard.drill('schedule').catch((error: unknown) => ({ ok: false as const, error: String(error) }));
          if (!result.ok) log.warn(`scheduled drill not run: ${result.error}`, { component: 'drill' });
        })
      : undefined;
    log.info('release-guard running', { component: 'daemon', service: config.service, url: server.url, state_dir: config.state_dir });
    return { guard, url: server.url, stop: () => stopStarted(parts, log) };
  } catch (error) {
    await stopStarted(parts, log);
    throw error;
  }
}

/** What startDaemon has started so far: what stopping it must stop. */
interface Started {
  lock?: StateDirLock;
  store?: OpenedStore;
  pm2?: Pm2Client | undefined;
  probes?: Probe[];
  notifications?: NotificationDispatcher;
  server?: ApiServer;
  /** Set once guard.start() was called (it may have started probe loops before failing). */
  guard?: Guard;
  drills?: { stop(): unknown } | undefined;
  liveness?: LoopLiveness;
}

/**
 * Stops whatever started, newest first, the API before the guard (no control request reaches a
 * stopping guard). Each part is stopped even when another fails to; the lock goes last, so no other
 * guard starts on this state dir while a rollback step of this one still runs.
 */
async function stopStarted(parts: Started, log: Logger): Promise<void> {
  const attempt = async (what: string, stop: () => unknown) => {
    try {
      await stop();
    } catch (error) {
      log.warn(`could not stop the ${what} cleanly`, { component: 'daemon', error: errorMessage(error) });
    }
  };
  parts.liveness?.stop();
  if (parts.drills) await attempt('drill schedule', () => parts.drills!.stop());
  if (parts.server) await attempt('API server', () => parts.server!.close());
  // guard.stop() closes the probes; before the guard has started, they are closed here.
  if (parts.guard) await attempt('guard', () => parts.guard!.stop());
  else if (parts.probes) await attempt('probes', () => Promise.allSettled(parts.probes!.map((p) => p.close?.())));
  if (parts.notifications) await attempt('notifier', () => parts.notifications!.close(5000));
  if (parts.pm2) await attempt('pm2 connection', () => parts.pm2!.disconnect());
  if (parts.store) await attempt('store', () => parts.store!.close());
  if (parts.lock) await attempt('state dir lock', () => parts.lock!.release());
}

export async function runDaemon(options: { configPath: string }): Promise<void> {
  const config = await loadConfig(options.configPath);
  const log = createLogger(config.log);
  // Listen before starting: start-up may already resume an interrupted rollback, and a SIGTERM
  // arriving then must let the running step finish, not kill the process mid-step by default.
  let onSignal!: (signal: NodeJS.Signals) => void;
  const stopRequested = new Promise<void>((resolve) => {
    onSignal = (signal) => {
      log.info(`received ${signal}: finishing the current step and stopping`, { component: 'daemon' });
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  let daemon: RunningDaemon;
  try {
    daemon = await startDaemon(config, { log });
  } catch (error) {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    // Everything started has been stopped; the CLI prints one line (the details are in the log).
    log.debug('start-up failed', { component: 'daemon', error: error instanceof Error ? error.stack : String(error) });
    log.end();
    throw startFailure(error);
  }
  await stopRequested;
  await daemon.stop();
  log.end();
}

/** A start-up failure as one line: what failed and, when known, what to do about it. */
function startFailure(error: unknown): GuardError {
  const hint = error instanceof GuardError && error.hint ? `; ${error.hint}` : '';
  const message = `cannot start: ${errorMessage(error)}${hint}`.replace(/\s*\n\s*/g, '; ');
  return new GuardError(message, error instanceof GuardError ? error.code : 'start_failed', undefined, { cause: error });
}
