/**
 * The redis store stopped mid-window (issue 6, degraded dependencies): the guard keeps probing and
 * evaluating and reports the degradation (log, release_guard_store_up 0, /status), does not act
 * on a state it cannot persist — a release that breaks while Redis is down is not rolled back —
 * and when Redis is back (restarted empty, as a server without persistence comes back) it takes
 * the lease again, writes back the state it kept, and rolls the broken release back.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildRelease, createPm2Sandbox, freePort, getJson, pointCurrent, waitFor } from '../helpers/pm2-sandbox.js';
import { deleteKeys, guardFiles, inProcessGuard, observe, status, uniquePrefix } from '../helpers/redis-guards.js';
import { startRedis, type RedisInfo, type RunningService } from '../helpers/services.js';

const APP = 'web';

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

const metric = async (url: string, name: string) => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};

describe('redis store stopped mid-window', () => {
  it('keeps guarding, reports the degradation, acts on nothing it cannot persist, and recovers', { timeout: 120_000 }, async () => {
    let redis: RunningService<RedisInfo> = await startRedis();
    cleanups.push(() => redis.stop({ graceMs: 0 }));
    const sandbox = await createPm2Sandbox();
    cleanups.push(() => sandbox.cleanup());
    const appPort = await freePort();
    await buildRelease(sandbox.dir, 'v1');
    await pointCurrent(sandbox.dir, 'v1');
    await sandbox.client.start({ name: APP, script: join(sandbox.dir, 'current', 'server.cjs'), execMode: 'cluster', instances: 1, env: { PORT: String(appPort) } });
    await waitFor(async () => (await getJson(`http://127.0.0.1:${appPort}/health`).catch(() => null))?.status === 200, 15_000);
    const keyPrefix = uniquePrefix();
    cleanups.push(() => deleteKeys(redis.info, keyPrefix));
    const trace = join(sandbox.dir, 'steps.trace');
    const files = await guardFiles({
      sandbox,
      app: APP,
      appPort,
      redis: redis.info,
      keyPrefix,
      hostId: 'web-1',
      leaseTtl: '3s',
      window: '2m',
      stepsBefore: [{ type: 'command', command: ['sh', '-c', `echo ran >> ${trace}`] }],
    });
    cleanups.push(() => rm(files.stateDir, { recursive: true, force: true }));
    const daemon = await inProcessGuard(files, sandbox);
    cleanups.push(() => daemon.stop());
    const observer = await observe(redis.info, keyPrefix, 'web-1');
    cleanups.push(() => observer.close());
    await waitFor(async () => (await observer.loadState())?.stable === 'v1', 10_000);
    const firstToken = (await observer.leaseHolder())!.token;

    // v2 is healthy for 6 s, then fails; Redis goes away before that.
    await buildRelease(sandbox.dir, 'v2', { fault: '5xx', faultAfterMs: 6000 });
    await pointCurrent(sandbox.dir, 'v2');
    await sandbox.client.reload(APP);
    await waitFor(async () => (await observer.loadState())?.phase === 'guarding', 10_000);
    await observer.close();
    const port = redis.port;
    await redis.stop({ graceMs: 0 });

    // Degraded: said in the log, the metrics and /status; no longer acting.
    await waitFor(() => files.logs.some((l) => l.includes('DEGRADED: state store unreachable')), 5000);
    await waitFor(async () => (await metric(daemon.url, 'release_guard_store_up')) === 0, 5000);
    await waitFor(async () => (await metric(daemon.url, 'release_guard_leader')) === 0, 5000);
    const degraded = await status(daemon.url);
    expect(degraded.store).toMatchObject({ up: false, error: expect.any(String) });
    expect(degraded.lease?.leader).toBe(false);

    // Still guarding: the fault is seen (the health rule fails, probes keep running)…
    const probesBefore = await metric(daemon.url, 'release_guard_probe_duration_seconds_count');
    await waitFor(() => daemon.guard.status().rules.some((r) => r.rule === 'health' && r.outcome === 'fail'), 15_000);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await metric(daemon.url, 'release_guard_probe_duration_seconds_count')).toBeGreaterThan(probesBefore ?? 0);
    // …but nothing is done on a state that cannot be kept.
    expect(daemon.guard.current).toMatchObject({ phase: 'guarding', running: 'v2', release: { version: 'v2' } });
    expect(((await getJson(`http://127.0.0.1:${appPort}/health`)).body as { version: string }).version).toBe('v2');
    expect(await readFile(trace, 'utf8').catch(() => '')).toBe('');
    const refused = await daemon.guard.control({ action: 'pause', by: 'test' });
    expect(refused).toMatchObject({ ok: false, error: expect.stringContaining('state store is unreachable') });

    // Redis is back, empty: the guard takes the lease again, writes back what it kept, and acts.
    redis = await startRedis({ port });
    const back = await observe(redis.info, keyPrefix, 'web-1');
    cleanups.push(() => back.close());
    await waitFor(async () => (await metric(daemon.url, 'release_guard_store_up')) === 1, 10_000);
    const state = await waitFor(async () => {
      const s = await back.loadState();
      return s?.phase === 'rolled_back' ? s : null;
    }, 30_000);
    expect(state).toMatchObject({ running: 'v1', rollback: { from: 'v2', to: 'v1', attempt: 1 } });
    expect(state.history.map((h) => [h.version, h.status])).toEqual([['v1', 'success'], ['v2', 'rolled_back']]);
    expect(((await getJson(`http://127.0.0.1:${appPort}/health`)).body as { version: string }).version).toBe('v1');
    expect((await readFile(trace, 'utf8')).trim().split('\n')).toEqual(['ran']);
    expect(await metric(daemon.url, 'release_guard_leader')).toBe(1);
    expect((await status(daemon.url)).store).toMatchObject({ up: true, error: null });
    const logs = files.logs.join('\n');
    expect(logs).toMatch(/state store reachable again/);
    expect(logs).toMatch(/writing back the state this guard kept/);
    // Redis lost its counter too; a new lease still gets a token (the fence check is per snapshot).
    expect((await back.leaseHolder())?.token).toBeGreaterThan(0);
    expect(firstToken).toBeGreaterThan(0);
  });
});
