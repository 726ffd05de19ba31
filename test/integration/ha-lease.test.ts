/**
 * Two guards on one instance sharing a real Redis (issue 6, high availability): exactly one acts
 * on a bad release; when the leader's host dies in the middle of the rollback (SIGKILL of its
 * process group), the standby takes the lease within its TTL and finishes the plan, and no step
 * runs to completion twice — shown by the steps' persisted attempt numbers and by command steps
 * that append to a file.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { GuardState } from '../../src/core/types.js';
import type { RunningDaemon } from '../../src/shell/daemon.js';
import { buildRelease, createPm2Sandbox, freePort, getJson, pointCurrent, waitFor, type Pm2Sandbox } from '../helpers/pm2-sandbox.js';
import { deleteKeys, guardFiles, inProcessGuard, observe, spawnGuard, status, uniquePrefix, type GuardSpec } from '../helpers/redis-guards.js';
import { redisConfig } from '../helpers/services.js';

const APP = 'web';
const HOST = 'web-1';
const TTL_MS = 3000;

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  cleanups = [];
});

async function setup(stepsBefore: (trace: string) => Record<string, unknown>[]) {
  const sandbox = await createPm2Sandbox();
  cleanups.push(() => sandbox.cleanup());
  const appPort = await freePort();
  await buildRelease(sandbox.dir, 'v1');
  await pointCurrent(sandbox.dir, 'v1');
  await sandbox.client.start({ name: APP, script: join(sandbox.dir, 'current', 'server.cjs'), execMode: 'cluster', instances: 1, env: { PORT: String(appPort) } });
  await waitFor(async () => (await getJson(`http://127.0.0.1:${appPort}/health`).catch(() => null))?.status === 200, 15_000);
  const redis = redisConfig();
  const keyPrefix = uniquePrefix();
  cleanups.push(() => deleteKeys(redis, keyPrefix));
  const trace = join(sandbox.dir, 'steps.trace');
  const spec: GuardSpec = { sandbox, app: APP, appPort, redis, keyPrefix, hostId: HOST, leaseTtl: `${TTL_MS}ms`, stepsBefore: stepsBefore(trace) };
  const files = async () => {
    const f = await guardFiles(spec);
    cleanups.push(() => rm(f.stateDir, { recursive: true, force: true }));
    return f;
  };
  const observer = await observe(redis, keyPrefix, HOST);
  cleanups.push(() => observer.close());
  return { sandbox, appPort, trace, files, observer };
}

async function deploy(sandbox: Pm2Sandbox, version: string, manifest: Parameters<typeof buildRelease>[2] = {}) {
  await buildRelease(sandbox.dir, version, manifest);
  await pointCurrent(sandbox.dir, version);
  await sandbox.client.reload(APP);
}

const traceLines = async (trace: string) => (await readFile(trace, 'utf8').catch(() => '')).split('\n').filter(Boolean);
const stepsOf = (state: GuardState | null) => state?.rollback?.steps.map((s) => [s.index, s.ok, s.attempt]);
const appVersion = async (port: number) => ((await getJson(`http://127.0.0.1:${port}/health`)).body as { version: string }).version;

async function keep(daemon: Promise<RunningDaemon>): Promise<RunningDaemon> {
  const running = await daemon;
  cleanups.push(() => running.stop());
  return running;
}

describe('two guards on one instance (redis store, lease)', () => {
  it('exactly one acts on a bad release: one rollback, one run of each step, one record', async () => {
    const { sandbox, appPort, trace, files, observer } = await setup((file) => [{ type: 'command', command: ['sh', '-c', `echo step1 >> ${file}`] }]);
    const filesA = await files();
    const a = await keep(inProcessGuard(filesA, sandbox));
    expect(a.guard.status().lease).toMatchObject({ leader: true, hostId: HOST });
    const filesB = await files();
    const b = await keep(inProcessGuard(filesB, sandbox));
    const standby = await status(b.url);
    expect(standby.lease).toMatchObject({ leader: false, holder: a.guard.status().lease!.holder });
    expect(await (await fetch(`${a.url}/metrics`)).text()).toMatch(/^release_guard_leader 1$/m);
    expect(await (await fetch(`${b.url}/metrics`)).text()).toMatch(/^release_guard_leader 0$/m);
    // A standby changes nothing, even when asked, and says who acts.
    const refused = await b.guard.control({ action: 'pause', by: 'test' });
    expect(refused).toMatchObject({ ok: false, error: expect.stringContaining('stands by') });

    await waitFor(async () => (await observer.loadState())?.stable === 'v1', 10_000);
    await deploy(sandbox, 'v2', { fault: '5xx', faultAfterMs: 1500 });
    const state = await waitFor(async () => {
      const s = await observer.loadState();
      return s?.phase === 'rolled_back' ? s : null;
    }, 30_000);

    expect(state).toMatchObject({ running: 'v1', stable: 'v1', rollback: { from: 'v2', to: 'v1', attempt: 1 } });
    expect(stepsOf(state)).toEqual([[0, true, 1], [1, true, 1]]);
    expect(state.autoRollbacks.filter((r) => r.version === 'v2')).toHaveLength(1);
    expect(await appVersion(appPort)).toBe('v1');
    await waitFor(async () => (await observer.listRecords()).length === 1, 5000);
    // The standby follows the leader's state, warm, and never ran anything.
    await waitFor(() => b.guard.current.phase === 'rolled_back', 5000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await traceLines(trace)).toEqual(['step1']);
    expect(await observer.listRecords()).toHaveLength(1);
    expect(filesB.logs.join('\n')).not.toMatch(/"component":"rollback"/);
    expect(filesA.logs.join('\n')).toMatch(/rollback v2 -> v1/);
    expect(b.guard.status().rules.length).toBeGreaterThan(0);
  });

  it('the leader host dies mid-rollback: the standby takes over within the lease TTL and finishes; no step runs twice', async () => {
    const { sandbox, appPort, trace, files, observer } = await setup((file) => [
      { type: 'command', command: ['sh', '-c', `echo step1 >> ${file}`] },
      // Slow: the leader's host dies while this one runs (before it wrote its line).
      { type: 'command', command: ['sh', '-c', `sleep 3 && echo step2 >> ${file}`], timeout: '20s' },
    ]);
    const filesA = await files();
    const leader = spawnGuard(filesA);
    cleanups.push(() => leader.killHost());
    const first = await waitFor(async () => (await observer.leaseHolder()) ?? null, 20_000);
    await waitFor(async () => (await observer.loadState())?.stable === 'v1', 20_000);
    const filesB = await files();
    const b = await keep(inProcessGuard(filesB, sandbox));
    expect(b.guard.status().lease).toMatchObject({ leader: false, holder: first.holder, token: first.token });

    await deploy(sandbox, 'v2', { fault: '5xx', faultAfterMs: 1000 });
    // Kill the leader's host the moment step 2 is persisted as started.
    await waitFor(async () => {
      const s = await observer.loadState();
      return s?.phase === 'rolling_back' && s.rollback!.steps.some((step) => step.index === 1 && step.finishedAt === undefined);
    }, 30_000, 20);
    const killedAt = Date.now();
    await leader.killHost();
    expect(await traceLines(trace)).toEqual(['step1']);

    await waitFor(() => b.guard.status().lease?.leader === true, TTL_MS + 3000, 50);
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).toBeLessThanOrEqual(TTL_MS + 1500);
    const second = (await observer.leaseHolder())!;
    expect(second.token).toBeGreaterThan(first.token);
    expect(second.holder).not.toBe(first.holder);

    const state = await waitFor(async () => {
      const s = await observer.loadState();
      return s?.phase === 'rolled_back' ? s : null;
    }, 30_000);
    expect(state).toMatchObject({ running: 'v1', stable: 'v1', rollback: { from: 'v2', to: 'v1', attempt: 2 } });
    // Step 1 finished under the first leader and was not run again; step 2, interrupted, ran to
    // completion once, under the second; the swap ran once.
    expect(stepsOf(state)).toEqual([[0, true, 1], [1, true, 2], [2, true, 2]]);
    expect(await traceLines(trace)).toEqual(['step1', 'step2']);
    expect(state.autoRollbacks.filter((r) => r.version === 'v2')).toHaveLength(1);
    expect(state.history.filter((h) => h.version === 'v2')).toEqual([expect.objectContaining({ status: 'rolled_back' })]);
    expect(await appVersion(appPort)).toBe('v1');
    const records = await waitFor(async () => {
      const list = await observer.listRecords();
      return list.length === 1 ? list : null;
    }, 5000);
    expect(records[0]).toMatchObject({ from: 'v2', to: 'v1', outcome: 'rolled_back', attempts: 2 });
    expect(filesB.logs.join('\n')).toMatch(/took over: this guard holds the lease and acts/);
    expect(filesB.logs.join('\n')).toMatch(/resuming interrupted rollback v2 -> v1 at step 2 \(attempt 2\)/);
    const meta = await observer.stateMeta();
    expect(meta).toMatchObject({ fence: second.token, holder: second.holder });
  });
});
