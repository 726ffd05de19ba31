/**
 * Three hosts of one service on one real Redis (issue 6, fleets): each host's guard is its own
 * process (`release-guard start`) watching its own instance (its own pm2, app, port and deploy
 * directory). What each host decided is read back from Redis. A release that breaks on one host
 * only is rolled back on all three and promoted on none; a good release, rolled out host after
 * host, is promoted everywhere only once every host's window ended clean.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { GuardState } from '../../src/core/types.js';
import type { RedisStore } from '../../src/store/redis-store.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, pointCurrent, waitFor, type Pm2Sandbox, type ReleaseManifest } from '../helpers/pm2-sandbox.js';
import { deleteKeys, guardFiles, observe, spawnGuard, status, uniquePrefix, type GuardFiles } from '../helpers/redis-guards.js';
import { redisConfig } from '../helpers/services.js';

const HOSTS = ['a', 'b', 'c'] as const;
type Host = (typeof HOSTS)[number];

interface Member {
  host: Host;
  /** Each host has its own pm2 (a reload on one host never waits for another's). */
  sandbox: Pm2Sandbox;
  app: string;
  dir: string;
  port: number;
  files: GuardFiles;
  /** This host's state as its guard persisted it. */
  store: RedisStore;
  url: string;
}

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

async function fleetOf(options: { window: string; fleetWait: string }) {
  const redis = redisConfig();
  const keyPrefix = uniquePrefix();
  cleanups.push(() => deleteKeys(redis, keyPrefix));
  const members: Member[] = [];
  for (const host of HOSTS) {
    const sandbox = await createPm2Sandbox();
    cleanups.push(() => sandbox.cleanup());
    const app = `web-${host}`;
    const dir = join(sandbox.dir, host);
    await mkdir(dir, { recursive: true });
    const port = await freePort();
    await buildRelease(dir, 'v1');
    await pointCurrent(dir, 'v1');
    await sandbox.client.start({ name: app, script: join(dir, 'current', 'server.cjs'), execMode: 'cluster', instances: 1, env: { PORT: String(port) } });
    await waitFor(async () => (await getJson(`http://127.0.0.1:${port}/health`).catch(() => null))?.status === 200, 15_000);
    const files = await guardFiles({ sandbox, app, service: 'web', deployDir: dir, appPort: port, redis, keyPrefix, hostId: host, window: options.window, fleetWait: options.fleetWait, leaseTtl: '3s' });
    cleanups.push(() => rm(files.stateDir, { recursive: true, force: true }));
    const guard = spawnGuard(files);
    cleanups.push(() => guard.killHost());
    const store = await observe(redis, keyPrefix, host);
    cleanups.push(() => store.close());
    members.push({ host, sandbox, app, dir, port, files, store, url: `http://127.0.0.1:${files.guardPort}` });
  }
  for (const m of members) await waitFor(async () => (await m.store.loadState())?.stable === 'v1', 20_000);
  return { members, observer: members[0]!.store };
}

async function deploy(m: Member, version: string, manifest: ReleaseManifest = {}) {
  await buildRelease(m.dir, version, manifest);
  await pointCurrent(m.dir, version);
  await m.sandbox.client.reload(m.app);
}

const versionOf = async (m: Member) => ((await getJson(`http://127.0.0.1:${m.port}/health`)).body as { version: string }).version;
const historyOf = (state: GuardState, version: string) => state.history.filter((h) => h.version === version).map((h) => h.status);
const stateOf = async (m: Member) => (await m.store.loadState())!;
const inPhase = (m: Member, phase: GuardState['phase'], timeoutMs: number) =>
  waitFor(async () => {
    const state = await m.store.loadState();
    return state?.phase === phase ? state : null;
  }, timeoutMs);

describe('a fleet of three hosts on one redis', () => {
  it('a fault on one host rolls the release back on all three; none promotes it', { timeout: 120_000 }, async () => {
    const { members, observer } = await fleetOf({ window: '30s', fleetWait: '30s' });
    const [a, b, c] = members as [Member, Member, Member];
    await deploy(a, 'v2', { fault: '5xx', faultAfterMs: 1500 });
    await deploy(b, 'v2');
    await deploy(c, 'v2');

    for (const m of members) await inPhase(m, 'rolled_back', 40_000);
    expect((await stateOf(a)).rollback).toMatchObject({ from: 'v2', to: 'v1', breach: { trigger: 'rule', rules: ['health'] } });
    for (const m of [b, c]) {
      expect((await stateOf(m)).rollback).toMatchObject({ from: 'v2', to: 'v1', breach: { trigger: 'fleet', reason: 'release v2 was rolled back on host a' } });
    }
    for (const m of members) {
      const state = await stateOf(m);
      expect(state).toMatchObject({ running: 'v1', stable: 'v1' });
      expect(historyOf(state, 'v2')).toEqual(['rolled_back']);
      expect(state.autoRollbacks.filter((r) => r.version === 'v2')).toHaveLength(1);
      expect(await versionOf(m)).toBe('v1');
    }
    const board = await observer.read('v2');
    expect(Object.fromEntries(Object.entries(board.verdicts).map(([h, v]) => [h, v.verdict]))).toEqual({ a: 'rolled_back', b: 'rolled_back', c: 'rolled_back' });
    expect(board.live).toEqual(['a', 'b', 'c']);
  });

  it('a good release rolled out host after host is promoted everywhere only when every window ended clean', { timeout: 120_000 }, async () => {
    const { members, observer } = await fleetOf({ window: '4s', fleetWait: '30s' });
    const [a, b, c] = members as [Member, Member, Member];
    await deploy(a, 'v2');
    await inPhase(a, 'guarding', 10_000);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await deploy(b, 'v2');
    await inPhase(b, 'guarding', 10_000);
    // A's window ends clean before B's and C's: it waits, still guarding, and says for whom.
    await waitFor(async () => (await stateOf(a)).fleetWait?.version === 'v2', 10_000);
    expect(await stateOf(a)).toMatchObject({ phase: 'guarding', stable: 'v1' });
    await waitFor(async () => {
      const waiting = (await status(a.url)).fleet as { waitingFor: string[] } | undefined;
      return waiting?.waitingFor.includes('b') && waiting.waitingFor.includes('c');
    }, 5000);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await deploy(c, 'v2');
    const cGuarding = await inPhase(c, 'guarding', 10_000);
    const cWindowEnds = cGuarding.release!.startedAt + 4000;
    expect((await stateOf(a)).phase).toBe('guarding');
    expect((await stateOf(b)).phase).toBe('guarding');

    for (const m of members) await inPhase(m, 'promoted', 30_000);
    for (const m of members) {
      const state = await stateOf(m);
      expect(state).toMatchObject({ stable: 'v2', running: 'v2' });
      expect(historyOf(state, 'v2')).toEqual(['success']);
      // Nobody promoted before the last host's window ended.
      expect(state.history.find((h) => h.version === 'v2')!.at).toBeGreaterThanOrEqual(cWindowEnds);
      expect(state.rollback).toBeNull();
      expect(await versionOf(m)).toBe('v2');
    }
    const board = await observer.read('v2');
    expect(Object.values(board.verdicts).map((v) => v.verdict)).toEqual(['clean', 'clean', 'clean']);
  });
});
