/**
 * Guards on a redis store for the HA, fleet and degraded-store integration tests: a config for a
 * pm2 app in a sandbox, a guard run in-process (startDaemon) or as a child process that can be
 * SIGKILLed with everything it started (its own process group, like a host dying), and a
 * read-only look at what the guards keep in Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';
import { createLogger } from '../../src/log.js';
import { startDaemon, type RunningDaemon } from '../../src/shell/daemon.js';
import { RedisStore } from '../../src/store/redis-store.js';
import type { Pm2Sandbox } from './pm2-sandbox.js';
import { freePort } from './pm2-sandbox.js';
import type { RedisInfo } from './services.js';
import { readdirSync, readFileSync } from 'node:fs';

export const TOKEN = 'test-token-0123456789';

export interface GuardSpec {
  sandbox: Pm2Sandbox;
  /** The pm2 app this host guards. */
  app: string;
  /** The service (default: app); hosts of one fleet share it. */
  service?: string;
  /** Deploy root of this host's releases (default: the sandbox's). */
  deployDir?: string;
  appPort: number;
  redis: RedisInfo;
  keyPrefix: string;
  hostId: string;
  window?: string;
  leaseTtl?: string;
  fleetWait?: string;
  /** Rollback steps run before the releases swap (e.g. command steps that leave a trace). */
  stepsBefore?: Record<string, unknown>[];
  /** More keys of the redis store section (e.g. shared_dir). */
  storeExtra?: Record<string, unknown>;
}

export interface GuardFiles {
  stateDir: string;
  guardPort: number;
  yaml: string;
  configFile: string;
  logs: string[];
}

/** A unique key prefix for one test. */
export function uniquePrefix(): string {
  return `rg-it:${randomBytes(5).toString('hex')}:`;
}

export async function guardFiles(spec: GuardSpec): Promise<GuardFiles> {
  const stateDir = await mkdtemp(join(tmpdir(), `rg-state-${spec.hostId}-`));
  const guardPort = await freePort();
  process.env.RG_TEST_TOKEN = TOKEN;
  const yaml = stringify({
    service: spec.service ?? spec.app,
    state_dir: stateDir,
    host_id: spec.hostId,
    store: {
      type: 'redis',
      host: spec.redis.host,
      port: spec.redis.port,
      key_prefix: spec.keyPrefix,
      lease_ttl: spec.leaseTtl ?? '3s',
      fleet_wait: spec.fleetWait ?? '30s',
      ...spec.storeExtra,
    },
    server: { host: '127.0.0.1', port: guardPort, token_env: 'RG_TEST_TOKEN' },
    log: { level: 'debug', format: 'json' },
    pm2: { home: spec.sandbox.home, app: spec.app },
    probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${spec.appPort}/health`, timeout: '1s', version_path: 'version' }],
    schedule: { interval: '300ms', fast_interval: '100ms', fast_for: '1m' },
    release: { version_probe: 'health', window: spec.window ?? '30s', initial_delay: '2s', settle: '1m' },
    rules: { health: { probe: 'health', consecutive: 3 } },
    rollback: {
      cooldown: 0,
      steps: [...(spec.stepsBefore ?? []), { type: 'releases', dir: spec.deployDir ?? spec.sandbox.dir, pm2_app: spec.app, restart_mode: 'reload', timeout: '30s' }],
    },
    verification: { probe: 'health', passes: 3, timeout: '20s' },
  });
  const configFile = join(stateDir, 'config.yaml');
  await writeFile(configFile, yaml);
  return { stateDir, guardPort, yaml, configFile, logs: [] };
}

/** A guard in this process; its JSON log lines land in `files.logs`. */
export function inProcessGuard(files: GuardFiles, sandbox: Pm2Sandbox): Promise<RunningDaemon> {
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => files.logs.push(...chunk.toString().trim().split('\n')));
  return startDaemon(parseConfigText(files.yaml, 'test'), { log: createLogger({ level: 'debug', format: 'json', stream }), pm2: sandbox.client });
}

export interface ChildGuard {
  child: ChildProcess;
  /** SIGKILL the guard and everything it started (its process group), as if its host died. */
  killHost(): Promise<void>;
}

/** Every live descendant of `root` (by the parent pids in /proc). */
function descendantsOf(root: number): number[] {
  const parents = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // Gone meanwhile.
    }
  }
  const found: number[] = [];
  let frontier = [root];
  while (frontier.length > 0) {
    const next = [...parents].filter(([, ppid]) => frontier.includes(ppid)).map(([pid]) => pid);
    found.push(...next);
    frontier = next;
  }
  return found;
}

/** `release-guard start` in a child process, leader of its own process group. */
export function spawnGuard(files: GuardFiles): ChildGuard {
  const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli/main.ts'), 'start', '--config', files.configFile], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, RG_TEST_TOKEN: TOKEN },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  child.stderr!.on('data', (chunk: Buffer) => files.logs.push(...chunk.toString().trim().split('\n')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    async killHost() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // Step programs lead process groups of their own: a dying host takes them too, so they
      // are found (the guard's descendants) before the guard's group is killed. The guard is
      // stopped first, so it cannot spawn a step between the look and the kill.
      try {
        process.kill(child.pid!, 'SIGSTOP');
      } catch {
        // Gone already: its descendants are still found below.
      }
      const descendants = descendantsOf(child.pid!);
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      for (const pid of descendants) {
        for (const target of [-pid, pid]) {
          try {
            process.kill(target, 'SIGKILL');
          } catch {
            // Not a group leader, or gone.
          }
        }
      }
      await exited;
    },
  };
}

/** Reads what the guards of `hostId` keep in Redis, without ever taking a lease or writing. */
export async function observe(redis: RedisInfo, keyPrefix: string, hostId: string): Promise<RedisStore> {
  return new RedisStore({ host: redis.host, port: redis.port, password: redis.password, db: 0, keyPrefix, hostId }).open();
}

/** Deletes every key under `keyPrefix`. */
export async function deleteKeys(redis: RedisInfo, keyPrefix: string): Promise<void> {
  const admin = new Redis({ host: redis.host, port: redis.port, ...(redis.password ? { password: redis.password } : {}), lazyConnect: true, maxRetriesPerRequest: 0 });
  admin.on('error', () => undefined);
  try {
    await admin.connect();
    const keys = await admin.keys(`${keyPrefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  } finally {
    admin.disconnect();
  }
}

/** GET a guard's /status. */
export async function status(url: string): Promise<Record<string, unknown> & { phase: string; lease?: { leader: boolean; holder: string | null; token: number | null }; store?: { up: boolean; error: string | null } }> {
  const response = await fetch(`${url}/status`, { signal: AbortSignal.timeout(2000) });
  return (await response.json()) as never;
}
