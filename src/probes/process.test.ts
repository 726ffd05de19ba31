import os from 'node:os';
import { describe, expect, it } from 'vitest';
import type { ProcessProbeConfig } from '../config/schema.js';
import type { Pm2Client, Pm2ProcessInfo } from '../pm2/client.js';
import { processProbe, summarize } from './process.js';

const config: ProcessProbeConfig = { type: 'process', name: 'app', pm2_app: 'web' };
const never = () => new AbortController().signal;

function instance(overrides: Partial<Pm2ProcessInfo>): Pm2ProcessInfo {
  return { name: 'web', pmId: 0, pid: 100, status: 'online', cpuPercent: 0, memoryBytes: 0, restarts: 0, ...overrides };
}

/** Only `describe` is used by the probe; the rest of the client is deliberately absent. */
function fakePm2(describe: (app: string) => Promise<Pm2ProcessInfo[]>): Pm2Client {
  return { describe } as unknown as Pm2Client;
}

describe('summarize', () => {
  it('sums every instance as shares of the host', () => {
    const values = summarize(
      [
        instance({ cpuPercent: 50, memoryBytes: 100, restarts: 2 }),
        instance({ pmId: 1, cpuPercent: 30, memoryBytes: 300, restarts: 1 }),
        instance({ pmId: 2, status: 'errored', cpuPercent: 20, memoryBytes: 100, restarts: 7 }),
      ],
      { cpus: 4, memoryBytes: 1_000 },
    );
    expect(values).toEqual({ instances: 3, online: 2, restarts: 10, cpu: 0.25, memory: 0.5, memory_bytes: 500 });
  });

  it('omits cpu and memory instead of summing a partial picture', () => {
    const values = summarize([instance({ cpuPercent: Number.NaN, memoryBytes: Number.NaN })], {
      cpus: 1,
      memoryBytes: 1,
    });
    expect(values).toEqual({ instances: 1, online: 1, restarts: 0 });
  });
});

describe('processProbe', () => {
  it('asks pm2 for the configured app and reports the sums against this host', async () => {
    const asked: string[] = [];
    const pm2 = fakePm2(async (app) => {
      asked.push(app);
      return [
        instance({ cpuPercent: 40, memoryBytes: 64 * 1024 * 1024, restarts: 1 }),
        instance({ pmId: 1, cpuPercent: 60, memoryBytes: 32 * 1024 * 1024, restarts: 2 }),
      ];
    });
    const sample = await processProbe(config, { now: () => 9, pm2 }).sample(5, never());
    expect(asked).toEqual(['web']);
    expect(sample).toMatchObject({ probe: 'app', startedAt: 5, at: 9, ok: true });
    expect(sample.error).toBeUndefined();
    expect(sample.values).toEqual({
      instances: 2,
      online: 2,
      restarts: 3,
      cpu: 1 / os.availableParallelism(),
      memory_bytes: 96 * 1024 * 1024,
      memory: (96 * 1024 * 1024) / os.totalmem(),
    });
  });

  it('fails when no instance is online, naming the statuses', async () => {
    const pm2 = fakePm2(async () => [
      instance({ status: 'errored' }),
      instance({ pmId: 1, status: 'stopped' }),
      instance({ pmId: 2, status: 'errored' }),
    ]);
    const sample = await processProbe(config, { now: () => 0, pm2 }).sample(0, never());
    expect(sample.ok).toBe(false);
    expect(sample.unavailable).toBeUndefined();
    expect(sample.error).toBe('pm2 app "web" has no online instance (statuses: errored, stopped)');
    expect(sample.values.online).toBe(0);
    expect(sample.values.instances).toBe(3);
  });

  it('fails when pm2 does not know the app', async () => {
    const sample = await processProbe(config, { now: () => 0, pm2: fakePm2(async () => []) }).sample(0, never());
    expect(sample).toMatchObject({ ok: false, error: 'pm2 app "web" has no instance' });
    expect(sample.unavailable).toBeUndefined();
  });

  it('is unavailable when pm2 cannot be reached', async () => {
    const pm2 = fakePm2(async () => {
      throw new Error('connect ENOENT /root/.pm2/rpc.sock');
    });
    const sample = await processProbe(config, { now: () => 0, pm2 }).sample(0, never());
    expect(sample).toMatchObject({
      ok: false,
      unavailable: true,
      error: 'pm2 unreachable: connect ENOENT /root/.pm2/rpc.sock',
      values: {},
    });
  });

  it('is unavailable when describe throws synchronously', async () => {
    const pm2 = { describe: () => { throw new Error('not connected'); } } as unknown as Pm2Client;
    const sample = await processProbe(config, { now: () => 0, pm2 }).sample(0, never());
    expect(sample).toMatchObject({ ok: false, unavailable: true, error: 'pm2 unreachable: not connected' });
  });

  it('is unavailable without a pm2 client', async () => {
    const sample = await processProbe(config, { now: () => 0 }).sample(0, never());
    expect(sample).toMatchObject({ ok: false, unavailable: true });
  });

  it('stops waiting when the signal aborts, even if pm2 never answers', async () => {
    const controller = new AbortController();
    const pm2 = fakePm2(() => new Promise(() => undefined));
    setTimeout(() => controller.abort(), 50);
    const sample = await processProbe(config, { now: () => 0, pm2 }).sample(0, controller.signal);
    expect(sample).toMatchObject({ ok: false, error: 'aborted' });
    expect(sample.unavailable).toBeUndefined();
  });
});
