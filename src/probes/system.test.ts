import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SystemProbeConfig } from '../config/schema.js';
import { cpuBetween, memoryUsed, parseProcStat, systemProbe } from './system.js';

const config: SystemProbeConfig = { type: 'system', name: 'host', disk_path: '/' };
const never = () => new AbortController().signal;

/** A /proc/stat with the given aggregate line (user nice system idle iowait irq softirq steal guest guest_nice). */
const stat = (fields: number[]) => `cpu  ${fields.join(' ')}\ncpu0 ${fields.join(' ')}\nintr 1 2 3\nctxt 99\n`;
const meminfo = (totalKb: number, availableKb: number) =>
  `MemTotal:       ${totalKb} kB\nMemFree:         1000 kB\nMemAvailable:   ${availableKb} kB\nBuffers:           10 kB\n`;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'release-guard-proc-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('systemProbe with a fixture /proc', () => {
  it('reports no cpu on the first sample, then the exact busy share between snapshots', async () => {
    await writeFile(join(dir, 'meminfo'), meminfo(8_000_000, 2_000_000));
    await writeFile(join(dir, 'stat'), stat([100, 0, 50, 800, 50, 0, 0, 0, 30, 0]));
    const probe = systemProbe(config, { now: () => 7, procRoot: dir });

    const first = await probe.sample(3, never());
    expect(first).toMatchObject({ probe: 'host', startedAt: 3, at: 7, ok: true });
    expect(first.values.cpu).toBeUndefined();
    expect(first.values.memory).toBe(0.75);

    // +300 busy (user 200, system 50, irq 25, steal 25), +100 idle (idle 60, iowait 40);
    // guest +100 is already inside user and must not be counted twice.
    await writeFile(join(dir, 'stat'), stat([300, 0, 100, 860, 90, 25, 0, 25, 130, 0]));
    const second = await probe.sample(4, never());
    expect(second.ok).toBe(true);
    expect(second.values.cpu).toBe(0.75);
    expect(second.error).toBeUndefined();
  });

  it('omits cpu rather than inventing one when no time passed between snapshots', async () => {
    await writeFile(join(dir, 'meminfo'), meminfo(1_000, 1_000));
    await writeFile(join(dir, 'stat'), stat([1, 2, 3, 4, 5, 6, 7, 8, 0, 0]));
    const probe = systemProbe(config, { now: () => 0, procRoot: dir });
    await probe.sample(0, never());
    const second = await probe.sample(0, never());
    expect(second.values.cpu).toBeUndefined();
    expect(second.values.memory).toBe(0);
  });

  it('is unavailable when /proc cannot be read', async () => {
    const probe = systemProbe(config, { now: () => 0, procRoot: join(dir, 'missing') });
    const sample = await probe.sample(0, never());
    expect(sample.ok).toBe(false);
    expect(sample.unavailable).toBe(true);
    expect(sample.error).toContain(`cannot read ${join(dir, 'missing')}`);
    expect(sample.values.cpu).toBeUndefined();
    expect(sample.values.memory).toBeUndefined();
  });

  it('is unavailable when meminfo lacks MemAvailable', async () => {
    await writeFile(join(dir, 'meminfo'), 'MemTotal: 1000 kB\nMemFree: 10 kB\n');
    await writeFile(join(dir, 'stat'), stat([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
    const sample = await systemProbe(config, { now: () => 0, procRoot: dir }).sample(0, never());
    expect(sample).toMatchObject({ ok: false, unavailable: true });
    expect(sample.error).toContain('MemAvailable');
  });

  it('fails, but keeps cpu and memory, when disk_path does not exist', async () => {
    await writeFile(join(dir, 'meminfo'), meminfo(4, 1));
    await writeFile(join(dir, 'stat'), stat([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
    const probe = systemProbe({ ...config, disk_path: join(dir, 'nope') }, { now: () => 0, procRoot: dir });
    const sample = await probe.sample(0, never());
    expect(sample.ok).toBe(false);
    expect(sample.unavailable).toBeUndefined();
    expect(sample.error).toContain(`disk_path ${join(dir, 'nope')}`);
    expect(sample.values).toEqual({ memory: 0.75 });
  });
});

describe('systemProbe against the real /proc', () => {
  it('reports cpu, memory and disk within 0..1', async () => {
    const probe = systemProbe(config, { now: () => 0 });
    await probe.sample(0, never());
    await new Promise((resolve) => setTimeout(resolve, 150));
    const sample = await probe.sample(0, never());
    expect(sample.ok).toBe(true);
    for (const key of ['cpu', 'memory', 'disk']) {
      expect(sample.values[key]).toBeGreaterThanOrEqual(0);
      expect(sample.values[key]).toBeLessThanOrEqual(1);
    }
  });
});

describe('parsers', () => {
  it('parses the aggregate cpu line, idle = idle + iowait, guests excluded', () => {
    expect(parseProcStat(stat([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]))).toEqual({ busy: 270, total: 360 });
  });

  it.each(['', 'cpu0 1 2 3 4\n', 'cpu  1 2 x 4\n', 'cpu  1 2\n'])('rejects malformed /proc/stat %j', (text) => {
    expect(parseProcStat(text)).toBeUndefined();
  });

  it.each([
    [{ busy: 10, total: 20 }, { busy: 10, total: 20 }, undefined],
    [{ busy: 10, total: 20 }, { busy: 5, total: 30 }, undefined],
    [{ busy: 10, total: 20 }, { busy: 11, total: 24 }, 0.25],
    [{ busy: 0, total: 0 }, { busy: 8, total: 8 }, 1],
  ])('cpuBetween(%j, %j) = %s', (previous, next, expected) => {
    expect(cpuBetween(previous, next)).toBe(expected);
  });

  it.each([
    [meminfo(1000, 250), 0.75],
    [meminfo(0, 0), undefined],
    [meminfo(100, 200), undefined],
    ['MemAvailable: 5 kB\n', undefined],
  ])('memoryUsed(%j) = %s', (text, expected) => {
    expect(memoryUsed(text)).toBe(expected);
  });
});
