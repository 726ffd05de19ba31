/**
 * Issue 13, "a second guard on the same config runs headless": `release-guard start` run twice with
 * one config. The second must exit non-zero within seconds with one clear line, never probe the app
 * (it sees one guard's probes), and leave the first running. A second start with its own state dir
 * but the same port fails on the port before it probes. After kill -9 of the first, a new start
 * takes the state dir over at once (the lock dies with its holder).
 *
 * Real processes: the guards run as the CLI (`node --import tsx src/cli/main.ts start`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cliLines,
  guardStarted,
  sleep,
  spawnGuard,
  startCountingApp,
  waitHealthy,
  writeGuardConfig,
  type CountingApp,
  type GuardProcess,
} from '../../bench/chaos/second-guard.js';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';
import { freePort, waitFor } from '../helpers/pm2-sandbox.js';
import { createServer as createNetServer } from 'node:net';
import { Redis } from 'ioredis';
import { redisConfig } from '../helpers/services.js';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startDaemon } from '../../src/shell/daemon.js';
import { PassThrough } from 'node:stream';
import { readFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';

let dir: string;
let app: CountingApp;
const guards: GuardProcess[] = [];
const apps: CountingApp[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-second-guard-'));
  app = await startCountingApp();
});

afterAll(async () => {
  for (const guard of guards) if (guard.child.exitCode === null && guard.child.signalCode === null) guard.child.kill('SIGKILL');
  await Promise.all(guards.map((g) => g.exited));
  await app?.close();
  await Promise.all(apps.map((a) => a.close()));
  await rm(dir, { recursive: true, force: true });
});

function start(config: string): GuardProcess {
  const guard = spawnGuard(PROJECT_ROOT, config);
  guards.push(guard);
  return guard;
}

/** Probes per second the app receives over `ms`. */
async function probeRate(ms: number): Promise<number> {
  const before = app.hits();
  const t0 = Date.now();
  await sleep(ms);
  return ((app.hits() - before) * 1000) / (Date.now() - t0);
}

describe('a second guard on one config', () => {
  it('is refused at once; the first keeps running alone; after kill -9 of the first a new start takes over', async () => {
    const apiPort = await freePort();
    const config = await writeGuardConfig(join(dir, 'a'), { appPort: app.port, apiPort });
    const first = start(config);
    expect(await waitHealthy(apiPort, 30_000), first.stderr()).toBe(true);
    await sleep(1000);
    const alone = await probeRate(2000);
    expect(alone).toBeGreaterThan(2);

    // Same config: refused on the state dir's lock, before anything else starts.
    const hitsBefore = app.hits();
    const t0 = Date.now();
    const second = start(config);
    const ended = await Promise.race([second.exited, sleep(15_000).then(() => null)]);
    const during = ((app.hits() - hitsBefore) * 1000) / (Date.now() - t0);
    expect(ended, `the second guard is still running: ${second.stderr().slice(-800)}`).not.toBeNull();
    expect(ended!.code).not.toBe(0);
    expect(ended!.at - second.startedAt).toBeLessThan(15_000);
    const lines = cliLines(second.stderr());
    expect(lines, second.stderr()).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^release-guard: cannot start: state_dir \\S+ is in use by another release-guard \\(pid ${first.child.pid}, since \\S+, API http://127\\.0\\.0\\.1:${apiPort}\\)`));
    // It never started its guard: no probes of its own, no log of a guard starting.
    expect(guardStarted(second.stderr())).toBe(false);
    expect(during).toBeLessThan(alone * 1.5);

    // Own state dir, same port: the port is bound before the guard starts, so it fails there.
    const other = start(await writeGuardConfig(join(dir, 'b'), { appPort: app.port, apiPort }));
    const otherEnded = await Promise.race([other.exited, sleep(15_000).then(() => null)]);
    expect(otherEnded, `the guard on the taken port is still running: ${other.stderr().slice(-800)}`).not.toBeNull();
    expect(otherEnded!.code).not.toBe(0);
    const otherLines = cliLines(other.stderr());
    expect(otherLines, other.stderr()).toHaveLength(1);
    expect(otherLines[0]).toMatch(/^release-guard: cannot start: cannot listen on 127\.0\.0\.1:\d+: the address is already in use/);
    expect(guardStarted(other.stderr())).toBe(false);

    // The first is still there and still the only one probing.
    expect(first.child.exitCode).toBeNull();
    expect(await waitHealthy(apiPort, 2000)).toBe(true);
    expect(await probeRate(2000)).toBeLessThan(alone * 1.5);

    // kill -9: no stale lock to wait out.
    first.child.kill('SIGKILL');
    await first.exited;
    const third = start(config);
    expect(await waitHealthy(apiPort, 30_000), third.stderr()).toBe(true);
    expect(guardStarted(third.stderr())).toBe(true);
  }, 120_000);

  it('under the redis store too (the lease arbitrates acting, but one state dir still has one guard)', async () => {
    const redis = redisConfig();
    const file = await writeGuardConfig(join(dir, 'redis'), { appPort: app.port, apiPort: 0 });
    const config = { ...(parse(await readFile(file, 'utf8')) as Record<string, unknown>), store: { type: 'redis', host: redis.host, port: redis.port, key_prefix: `rg-second-${Date.now()}:` } };
    const start = () => startDaemon(parseConfigText(stringify(config), 'redis.yaml'), { log: createLogger({ level: 'debug', format: 'json', stream: new PassThrough() }) });
    const first = await start();
    try {
      await expect(start()).rejects.toMatchObject({ code: 'state_dir_locked', message: expect.stringMatching(new RegExp(`is in use by another release-guard \\(pid ${process.pid}, since \\S+, API ${first.url.replace(/\./g, '\\.')}\\)`)) });
      // The first still serves and probes.
      expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    } finally {
      await first.stop();
    }
    // Stopped: the lock is released, a new guard starts on the same dir.
    const again = await start();
    await again.stop();
  }, 60_000);

  it('a start-up failure after the store is open (the port is taken) closes the store connection again', async () => {
    const redis = redisConfig();
    const admin = new Redis({ host: redis.host, port: redis.port, lazyConnect: true });
    await admin.connect();
    const clients = async () => String(await admin.call('CLIENT', 'LIST')).split('\n').filter(Boolean).length;
    const taken = createNetServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as { port: number }).port;
      // An app of its own: the guard left running by the first test probes the shared one.
      const own = await startCountingApp();
      apps.push(own);
      const file = await writeGuardConfig(join(dir, 'taken'), { appPort: own.port, apiPort: port });
      const config = { ...(parse(await readFile(file, 'utf8')) as Record<string, unknown>), store: { type: 'redis', host: redis.host, port: redis.port, key_prefix: `rg-taken-${Date.now()}:` } };
      const before = await clients();
      const hits = own.hits();
      await expect(startDaemon(parseConfigText(stringify(config), 'taken.yaml'), { log: createLogger({ level: 'debug', format: 'json', stream: new PassThrough() }) })).rejects.toThrow(
        /cannot listen on 127\.0\.0\.1:\d+: the address is already in use/,
      );
      // The store's connection was opened before the port failed, and is closed again.
      await waitFor(async () => (await clients()) === before, 5000);
      await sleep(1000);
      // Its probes never started.
      expect(own.hits()).toBe(hits);
    } finally {
      taken.close();
      admin.disconnect();
    }
  }, 60_000);
});
