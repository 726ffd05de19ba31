/**
 * reloadOrRestart's order of calls, against a scripted pm2 (the real-pm2 behaviour is covered by
 * test/integration/releases-strategy.test.ts): an instance pm2 is already starting is let finish
 * before the reload, so a crash-looping app is not started twice.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../test/helpers/virtual-clock.js';
import { RollbackError } from '../errors.js';
import type { Pm2Client, Pm2ProcessInfo } from '../pm2/client.js';
import { reloadOrRestart, stepScope } from './step.js';
import type { RollbackContext } from './types.js';

function instance(status: string, pid: number, execMode = 'cluster_mode'): Pm2ProcessInfo {
  return { name: 'web', pmId: 0, pid, status, cpuPercent: 0, memoryBytes: 0, restarts: 0, execMode };
}

/** A pm2 whose describe() walks through `statuses`, then stays on the last one; logs every call. */
function scriptedPm2(statuses: string[], execMode = 'cluster_mode'): { pm2: Pm2Client; calls: string[] } {
  const calls: string[] = [];
  let n = 0;
  let pid = 100;
  const pm2 = {
    async describe() {
      const status = statuses[Math.min(n, statuses.length - 1)]!;
      n += 1;
      calls.push(`describe:${status}`);
      return [instance(status, pid, execMode)];
    },
    async reload() {
      calls.push('reload');
      pid += 1;
      n = statuses.length; // after the reload: the last (online) status
    },
    async restart() {
      calls.push('restart');
    },
  } as unknown as Pm2Client;
  return { pm2, calls };
}

function context(progress: string[]): RollbackContext {
  return { service: 'web', from: 'v2', to: 'v1', signal: new AbortController().signal, progress: (m) => progress.push(m), dataDir: '/tmp' };
}

describe('reloadOrRestart', () => {
  it('lets an instance pm2 is already starting (after a crash) finish before reloading', async () => {
    const { pm2, calls } = scriptedPm2(['launching', 'launching', 'online']);
    const progress: string[] = [];
    const clock = new VirtualClock(1_000);
    await reloadOrRestart(pm2, 'web', 'reload', stepScope(context(progress), 10_000, clock));
    // Two polls of 25 ms on the injected clock, and no real waiting.
    expect(clock.now() - 1_000).toBe(50);
    expect(calls.slice(0, 4)).toEqual(['describe:launching', 'describe:launching', 'describe:online', 'reload']);
    expect(progress).toContain('pm2 is starting instance 0 of web already; letting it finish first');
    expect(progress).toContain('pm2 reload web');
    expect(progress.at(-1)).toBe('web: 1/1 instance online');
  });

  it('reloads at once when every instance is online; after a cluster reload one look at pm2 suffices', async () => {
    const { pm2, calls } = scriptedPm2(['online']);
    const progress: string[] = [];
    await reloadOrRestart(pm2, 'web', 'reload', stepScope(context(progress), 10_000, new VirtualClock()));
    // pm2 answers a cluster reload once each new worker listens: no second look needed.
    expect(calls).toEqual(['describe:online', 'reload', 'describe:online']);
    expect(progress.some((line) => line.includes('letting it finish'))).toBe(false);
  });

  it('looks twice after a fork-mode reload or a restart (a process that dies at once must show)', async () => {
    const fork = scriptedPm2(['online'], 'fork_mode');
    await reloadOrRestart(fork.pm2, 'web', 'reload', stepScope(context([]), 10_000, new VirtualClock()));
    expect(fork.calls).toEqual(['describe:online', 'reload', 'describe:online', 'describe:online']);
    const restart = scriptedPm2(['online']);
    await reloadOrRestart(restart.pm2, 'web', 'restart', stepScope(context([]), 10_000, new VirtualClock()));
    expect(restart.calls).toEqual(['describe:online', 'restart', 'describe:online', 'describe:online']);
  });

  it('gives up when the step time budget passes on the injected clock', async () => {
    // Launching for ever: the reload waits LAUNCH_WAIT_MS (5 s) for the start to finish, then for the app to be online.
    const { pm2 } = scriptedPm2(['launching']);
    const clock = new VirtualClock();
    const error = await reloadOrRestart(pm2, 'web', 'reload', stepScope(context([]), 10_000, clock)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RollbackError);
    expect((error as RollbackError).message).toMatch(/timed out after 10000 ms/);
    expect(clock.now()).toBe(10_000);
  });
});
