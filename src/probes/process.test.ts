import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ProcessProbeConfig } from '../config/schema.js';
import { ProbeError } from '../errors.js';
import type { Pm2Client, Pm2ProcessInfo } from '../pm2/client.js';
import { parsePid, parsePidStat, parseVmRss, pidCpuBetween, processProbe, summarize } from './process.js';

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
  it('sums every instance: cpu as a share of the cores the instances can use, memory of the host', () => {
    const values = summarize(
      [
        instance({ cpuPercent: 50, memoryBytes: 100, restarts: 2 }),
        instance({ pmId: 1, cpuPercent: 30, memoryBytes: 300, restarts: 1 }),
        instance({ pmId: 2, status: 'errored', cpuPercent: 20, memoryBytes: 100, restarts: 7 }),
      ],
      { cpus: 4, memoryBytes: 1_000 },
    );
    // 100 % of CPU over 3 single-threaded instances on a 4-core host: 3 usable cores.
    expect(values).toEqual({ instances: 3, online: 2, restarts: 10, cpu: 1 / 3, memory: 0.5, memory_bytes: 500 });
  });

  it('one worker pinned at 100 % on a many-core host is a saturated app', () => {
    expect(summarize([instance({ cpuPercent: 100, memoryBytes: 1 })], { cpus: 8, memoryBytes: 10 }).cpu).toBe(1);
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

/** A /proc/<pid>/stat line; the command name holds ") " to prove fields are counted from the last ")". */
const pidStat = (pid: number, o: { utime: number; stime: number; start?: number; state?: string }) =>
  `${pid} (node (app) x) ${o.state ?? 'S'} 1 ${pid} ${pid} 0 -1 4194304 100 0 0 0 ${o.utime} ${o.stime} 0 0 20 0 1 0 ` +
  `${o.start ?? 5000} 1000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n`;
const pidStatus = (rssKb?: number) =>
  `Name:\tnode\nState:\tS (sleeping)\nPid:\t4242\n${rssKb === undefined ? '' : `VmRSS:\t   ${rssKb} kB\n`}Threads:\t7\n`;

let dir: string;
let proc: string;
let pidFile: string;
let now: number;
const pidConfig = (): ProcessProbeConfig => ({ type: 'process', name: 'app', pid_file: pidFile });
const make = () => processProbe(pidConfig(), { now: () => now, procRoot: proc });
async function writeProc(pid: number, stat: string, status: string) {
  await mkdir(join(proc, String(pid)), { recursive: true });
  await writeFile(join(proc, String(pid), 'stat'), stat);
  await writeFile(join(proc, String(pid), 'status'), status);
}

/** A fresh temporary directory per test, holding the pid file and a fixture /proc. */
function usePidFixture() {
  beforeEach(async () => {
    dir = await mkdtemp(join(os.tmpdir(), 'release-guard-pid-'));
    proc = join(dir, 'proc');
    pidFile = join(dir, 'app.pid');
    now = 1_000;
    await mkdir(proc);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
}

describe('processProbe with a pid_file and a fixture /proc: readings', () => {
  usePidFixture();

  it('reports memory at once and cpu from the second sample on', async () => {
    await writeFile(pidFile, '4242\n');
    await writeProc(4242, pidStat(4242, { utime: 300, stime: 100 }), pidStatus(51_200));
    const probe = make();

    const first = await probe.sample(3, never());
    expect(first).toMatchObject({ probe: 'app', startedAt: 3, at: 1_000, ok: true });
    expect(first.error).toBeUndefined();
    expect(first.values).toEqual({ memory_bytes: 51_200 * 1024, memory: (51_200 * 1024) / os.totalmem() });

    // 2 s later, +150 user and +50 system ticks: 2 s of CPU in 2 s = one busy core.
    now = 3_000;
    await writeProc(4242, pidStat(4242, { utime: 450, stime: 150 }), pidStatus(60_000));
    const second = await probe.sample(4, never());
    expect(second.ok).toBe(true);
    expect(second.values.cpu).toBeCloseTo(1 / os.availableParallelism(), 10);
    expect(second.values.memory_bytes).toBe(60_000 * 1024);
  });

  it('does not compare CPU counters of two different processes', async () => {
    await writeFile(pidFile, '4242');
    await writeProc(4242, pidStat(4242, { utime: 300, stime: 100, start: 5000 }), pidStatus(1));
    const probe = make();
    await probe.sample(0, never());

    // Restarted under the same pid (new start time): no cpu until two readings of the new one.
    now = 2_000;
    await writeProc(4242, pidStat(4242, { utime: 10, stime: 0, start: 9000 }), pidStatus(1));
    expect((await probe.sample(1, never())).values.cpu).toBeUndefined();
    now = 3_000;
    await writeProc(4242, pidStat(4242, { utime: 20, stime: 0, start: 9000 }), pidStatus(1));
    expect((await probe.sample(2, never())).values.cpu).toBeCloseTo(0.1 / os.availableParallelism(), 10);
  });
});

describe('processProbe with a pid_file and a fixture /proc: failures and the real /proc', () => {
  usePidFixture();

  it('fails when the pid file is missing', async () => {
    const sample = await make().sample(0, never());
    expect(sample).toMatchObject({ ok: false, error: `pid_file ${pidFile}: no such file (is the process running?)`, values: {} });
    expect(sample.unavailable).toBeUndefined();
  });

  it('fails when the pid file does not hold a pid', async () => {
    await writeFile(pidFile, 'not-a-pid\n');
    const sample = await make().sample(0, never());
    expect(sample).toMatchObject({ ok: false, error: `pid_file ${pidFile}: "not-a-pid" is not a process id` });
  });

  it('fails when the process is gone', async () => {
    await writeFile(pidFile, '4243\n');
    const sample = await make().sample(0, never());
    expect(sample).toMatchObject({ ok: false, error: `process 4243 (from pid_file ${pidFile}) is not running`, values: {} });
    expect(sample.unavailable).toBeUndefined();
  });

  it('fails when the process is a zombie', async () => {
    await writeFile(pidFile, '4242\n');
    await writeProc(4242, pidStat(4242, { utime: 1, stime: 1, state: 'Z' }), pidStatus());
    const sample = await make().sample(0, never());
    expect(sample.ok).toBe(false);
    expect(sample.error).toContain('process 4242');
    expect(sample.error).toContain('is not running (state Z');
  });

  it('is unavailable when /proc/<pid>/stat is malformed', async () => {
    await writeFile(pidFile, '4242\n');
    await writeProc(4242, 'garbage\n', pidStatus(1));
    const sample = await make().sample(0, never());
    expect(sample).toMatchObject({ ok: false, unavailable: true });
  });

  it('reads this very test process from the real /proc', async () => {
    await writeFile(pidFile, `${process.pid}\n`);
    const probe = processProbe(pidConfig(), { now: () => Date.now() });
    expect((await probe.sample(0, never())).ok).toBe(true);
    const end = Date.now() + 100;
    while (Date.now() < end) Math.sqrt(Math.random()); // burn some CPU between the samples
    const sample = await probe.sample(1, never());
    expect(sample.ok).toBe(true);
    expect(sample.values.memory_bytes).toBeGreaterThan(1024 * 1024);
    expect(sample.values.cpu).toBeGreaterThan(0);
    expect(sample.values.cpu).toBeLessThanOrEqual(1);
  });

  it('refuses a config with neither pm2_app nor pid_file', () => {
    expect(() => processProbe({ type: 'process', name: 'x' } as ProcessProbeConfig, { now: () => 0 })).toThrow(ProbeError);
  });
});

describe('pid parsers', () => {
  it('parses /proc/<pid>/stat from the last ")"', () => {
    expect(parsePidStat(pidStat(7, { utime: 11, stime: 22, start: 44 }))).toEqual({ state: 'S', cpuTicks: 33, startTime: 44 });
  });

  it.each(['', '7 (x S 1 2', '7 (x) S 1 2 3\n', '7 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0 0 20 0 1 0 5\n'])(
    'rejects malformed stat %j',
    (text) => {
      expect(parsePidStat(text)).toBeUndefined();
    },
  );

  it.each([
    ['VmPeak:\t 9 kB\nVmRSS:\t  12 kB\n', 12 * 1024],
    ['Name: kthreadd\n', undefined],
  ])('parseVmRss(%j) = %s', (text, expected) => {
    expect(parseVmRss(text)).toBe(expected);
  });

  it.each([
    ['123\n', 123],
    [' 9 ', 9],
    ['0', undefined],
    ['-4', undefined],
    ['12abc', undefined],
    ['', undefined],
    ['99999999999', undefined],
  ])('parsePid(%j) = %s', (text, expected) => {
    expect(parsePid(text)).toBe(expected);
  });

  const reading = (o: Partial<{ pid: number; startTime: number; cpuTicks: number; at: number }>) => ({
    pid: 1,
    startTime: 10,
    cpuTicks: 0,
    at: 0,
    ...o,
  });
  it.each([
    [reading({}), reading({ cpuTicks: 50, at: 1000 }), 2, 0.25],
    [reading({}), reading({ cpuTicks: 500, at: 1000 }), 2, 1],
    [reading({}), reading({ cpuTicks: 50, at: 0 }), 2, undefined],
    [reading({ cpuTicks: 9 }), reading({ cpuTicks: 5, at: 1000 }), 2, undefined],
    [reading({}), reading({ pid: 2, cpuTicks: 50, at: 1000 }), 2, undefined],
    [reading({}), reading({ startTime: 11, cpuTicks: 50, at: 1000 }), 2, undefined],
  ])('pidCpuBetween(%j, %j, %i cpus) = %s', (previous, next, cpus, expected) => {
    expect(pidCpuBetween(previous, next, cpus)).toBe(expected);
  });
});
