/**
 * redisProbe against real Redis servers: the shared one from the globalSetup, and servers of its
 * own that are stopped and restarted under the probe's feet.
 */
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RedisProbeConfig } from '../../src/config/schema.js';
import { freePort } from '../fixtures/demo-app/releases.js';
import { reconnectDelay, redisProbe } from '../../src/probes/redis.js';
import type { Probe } from '../../src/probes/types.js';
import { redisConfig, startRedis, type RedisInfo } from '../helpers/services.js';

const never = () => new AbortController().signal;

function configFor(info: Pick<RedisInfo, 'host' | 'port'>, overrides: Partial<RedisProbeConfig> = {}): RedisProbeConfig {
  return { type: 'redis', name: 'cache', host: info.host, port: info.port, db: 0, timeout: 1000, ...overrides };
}

/** Every probe made here is closed after its test, pass or fail. */
const open: Probe[] = [];
function probe(config: RedisProbeConfig): Probe {
  const created = redisProbe(config, { now: () => 42 });
  open.push(created);
  return created;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close?.()));
});

/** Nothing may be printed by the client (ioredis prints unhandled 'error' events). */
let printed: ReturnType<typeof vi.spyOn>[] = [];
beforeAll(() => {
  printed = [vi.spyOn(console, 'error'), vi.spyOn(console, 'warn'), vi.spyOn(console, 'log')];
});
afterAll(() => {
  for (const spy of printed) {
    expect(spy).not.toHaveBeenCalled();
    spy.mockRestore();
  }
});

describe('redisProbe against the shared Redis', () => {
  it('PINGs and reports the round trip', async () => {
    const p = probe(configFor(redisConfig()));
    const sample = await p.sample(7, never());
    expect(sample).toMatchObject({ probe: 'cache', startedAt: 7, at: 42, ok: true });
    expect(sample.error).toBeUndefined();
    expect(sample.unavailable).toBeUndefined();
    expect(sample.values.latency_ms).toBeGreaterThanOrEqual(0);
    expect(sample.values.latency_ms).toBeLessThan(1000);
    // The connection is kept: the next sample is one round trip on it.
    expect((await p.sample(8, never())).ok).toBe(true);
  });

  it('selects the configured database', async () => {
    expect((await probe(configFor(redisConfig(), { db: 3 })).sample(0, never())).ok).toBe(true);
  });
});

describe('redisProbe when the server is not there', () => {
  it('is unavailable at once when nothing listens, naming host:port and the code', async () => {
    const port = await freePort();
    const started = performance.now();
    const sample = await probe(configFor({ host: '127.0.0.1', port })).sample(0, never());
    expect(performance.now() - started).toBeLessThan(1500);
    expect(sample).toMatchObject({ ok: false, unavailable: true, values: {} });
    expect(sample.error).toContain(`redis 127.0.0.1:${port}`);
    expect(sample.error).toContain('ECONNREFUSED');
  });

  it('is unavailable when the server accepts connections but never answers', async () => {
    const sockets = new Set<net.Socket>();
    const mute = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    const port = (mute.address() as net.AddressInfo).port;
    try {
      const started = performance.now();
      const sample = await probe(configFor({ host: '127.0.0.1', port }, { timeout: 300 })).sample(0, never());
      expect(performance.now() - started).toBeLessThan(1000);
      expect(sample).toMatchObject({ ok: false, unavailable: true });
      expect(sample.error).toContain(`redis 127.0.0.1:${port}`);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => mute.close(resolve));
    }
  });

  it('stops waiting when the signal aborts', async () => {
    const controller = new AbortController();
    controller.abort();
    const sample = await probe(configFor(redisConfig())).sample(0, controller.signal);
    expect(sample).toMatchObject({ ok: false, error: 'aborted' });
  });
});

describe('redisProbe with a password', () => {
  const ENV = 'RG_TEST_REDIS_PASSWORD';
  const password = `pw-${process.pid}-${Date.now()}`;
  afterAll(() => {
    delete process.env[ENV];
  });

  it('authenticates from password_env, and a wrong password is unavailable without showing it', async () => {
    const server = await startRedis({ password });
    try {
      process.env[ENV] = password;
      expect((await probe(configFor(server.info, { password_env: ENV })).sample(0, never())).ok).toBe(true);

      const wrong = `wrong-${password}`;
      process.env[ENV] = wrong;
      const sample = await probe(configFor(server.info, { password_env: ENV })).sample(0, never());
      expect(sample).toMatchObject({ ok: false, unavailable: true });
      expect(sample.error).toContain(`redis 127.0.0.1:${server.port}`);
      expect(sample.error).not.toContain(wrong);
      expect(sample.error).not.toContain(password);
    } finally {
      await server.stop();
    }
  });
});

describe('redisProbe when its server goes away mid-run', () => {
  it.each([
    ['shut down (SIGTERM)', 10_000],
    ['killed (SIGKILL)', 0],
  ])('is unavailable while the server is %s, and ok again once it is back on the same port', async (_how, graceMs) => {
    let server = await startRedis();
    const port = server.port;
    try {
      const p = probe(configFor(server.info));
      expect((await p.sample(0, never())).ok).toBe(true);

      await server.stop({ graceMs });
      for (let i = 1; i <= 3; i += 1) {
        const started = performance.now();
        const sample = await p.sample(i, never());
        expect(performance.now() - started).toBeLessThan(1500);
        expect(sample).toMatchObject({ ok: false, unavailable: true, values: {} });
        expect(sample.error).toContain(`redis 127.0.0.1:${port}`);
      }

      server = await startRedis({ port });
      // Background reconnects back off to at most 2 s: the probe must be ok again soon after.
      const back = await vi.waitFor(
        async () => {
          const sample = await p.sample(10, never());
          if (!sample.ok) throw new Error(`still failing: ${sample.error}`);
          return sample;
        },
        { timeout: 10_000, interval: 200 },
      );
      expect(back.values.latency_ms).toBeGreaterThanOrEqual(0);
    } finally {
      await server.stop({ graceMs: 0 });
    }
  });
});

describe('reconnectDelay', () => {
  it.each([
    [1, 100],
    [2, 200],
    [4, 800],
    [6, 2000],
    [50, 2000],
  ])('attempt %i waits %i ms', (attempt, ms) => {
    expect(reconnectDelay(attempt)).toBe(ms);
  });
});
