/**
 * `release-guard start`: wires config, store, probes, strategies, pm2, metrics and the API around
 * a Guard, then runs until SIGTERM/SIGINT, when it lets a running rollback step finish, persists
 * and exits 0.
 */
import { startApiServer } from '../api/server.js';
import { readToken } from '../api/token.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { createLogger, type Logger } from '../log.js';
import { GuardMetrics } from '../metrics.js';
import type { Pm2Client } from '../pm2/client.js';
import { createProbes } from '../probes/index.js';
import { createStrategy } from '../strategies/index.js';
import { openStore } from '../store/index.js';
import { loadCheckRunners } from '../verification/suite.js';
import { systemClock, type Clock } from './clock.js';
import { NotificationDispatcher, routesFromConfig } from '../notify/dispatcher.js';
import { Guard } from './guard.js';
import { Leadership } from './leadership.js';
import { ProcessRunner } from './process-runner.js';
import { GroupRegistry } from './process-group.js';
import { join } from 'node:path';
import type { PlanStep } from './rollback-runner.js';

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

/** Builds and starts everything; the caller decides when to stop. */
export async function startDaemon(config: Config, options: { log: Logger; clock?: Clock; pm2?: Pm2Client }): Promise<RunningDaemon> {
  const { log } = options;
  const clock = options.clock ?? systemClock;
  const token = await readToken(config.server);
  if (!token) log.warn('no API token configured: POST endpoints will refuse every request', { component: 'api', token_env: config.server.token_env });
  const opened = await openStore(config);
  const { store } = opened;
  // A shared store (redis): only the guard holding the lease acts; the others stand by.
  const leadership = opened.lease ? new Leadership(store, { ttlMs: opened.lease.ttlMs, clock, log, hostId: opened.hostId }) : undefined;
  // pm2's API (and each probe's and strategy's client library) is loaded only when the config uses it.
  const pm2 = options.pm2 ?? (needsPm2(config) ? await openPm2Client(config) : undefined);
  const metrics = new GuardMetrics();
  const probes = await createProbes(config.probes, { now: () => clock.now(), ...(pm2 ? { pm2 } : {}) });
  // Before anything can resume an interrupted plan: stop what a killed predecessor's step left running.
  const registry = new GroupRegistry(join(config.state_dir, 'step-processes'));
  await registry.stopOrphans(log, clock);
  const run = new ProcessRunner({ registry });
  const plan: PlanStep[] = [];
  for (const step of config.rollback.steps) plan.push({ config: step, strategy: await createStrategy(step, { pm2: pm2!, run }) });
  // Now rather than when a rollback is being verified.
  await loadCheckRunners(config.verification.checks);
  const notifications = new NotificationDispatcher(routesFromConfig(config.notifiers), {
    log: (level, message, fields) => log.log(level, message, { component: 'notify', ...fields }),
    clock,
  });
  const guard = new Guard({ config, store, clock, log, metrics, probes, plan, notify: (event) => notifications.publish(event), ...(pm2 ? { pm2 } : {}), ...(leadership ? { leadership } : {}), ...(opened.fleet ? { fleet: opened.fleet } : {}) });
  await guard.start();
  const server = await startApiServer({
    host: config.server.host,
    port: config.server.port,
    token,
    control: guard,
    log: (level, message, fields) => log.log(level, message, { component: 'api', ...fields }),
  });
  // Scheduled drills (seed: rehearse rollbacks regularly); a refused or failed drill is logged.
  const drills = config.drill.schedule
    ? (await import('node-cron')).default.schedule(config.drill.schedule, async () => {
        const result = await guard.drill('schedule').catch((error: unknown) => ({ ok: false as const, error: String(error) }));
        if (!result.ok) log.warn(`scheduled drill not run: ${result.error}`, { component: 'drill' });
      })
    : null;
  log.info('release-guard running', { component: 'daemon', service: config.service, url: server.url, state_dir: config.state_dir });
  return {
    guard,
    url: server.url,
    async stop() {
      await drills?.stop();
      await server.close();
      await guard.stop();
      await notifications.close(5000);
      await pm2?.disconnect().catch(() => undefined);
      await opened.close().catch(() => undefined);
    },
  };
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
    throw error;
  }
  await stopRequested;
  await daemon.stop();
  log.end();
}
