import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SystemProbeConfig } from '../config/schema.js';
import {
  cpuBetween,
  diskIoBetween,
  memoryUsed,
  parseDiskstats,
  parseProcStat,
  readBlockDevices,
  systemProbe,
  wholeDisks,
} from './system.js';

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
    // Present wherever the host has a real disk in /proc/diskstats (not in every container).
    if (sample.values.disk_io !== undefined) {
      expect(sample.values.disk_io).toBeGreaterThanOrEqual(0);
      expect(sample.values.disk_io).toBeLessThanOrEqual(1);
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

/** One /proc/diskstats line: 11 counters after the name, io_ticks being the 10th. */
const diskLine = (major: number, minor: number, name: string, ioTicks: number) =>
  `${String(major).padStart(4)} ${String(minor).padStart(7)} ${name} 10 0 80 5 20 0 160 9 0 ${ioTicks} 14 0 0 0 0 0 0`;
const diskstats = (ticks: Record<string, number>) =>
  Object.entries(ticks)
    .map(([name, value], index) => diskLine(8, index, name, value))
    .join('\n') + '\n';

describe('systemProbe disk_io with a fixture /proc/diskstats', () => {
  it('reports the busiest whole disk from the second sample on, ignoring partitions and memory devices', async () => {
    await writeFile(join(dir, 'meminfo'), meminfo(1_000, 500));
    await writeFile(join(dir, 'stat'), stat([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
    const before = { loop0: 0, zram0: 0, ram0: 0, sda: 1_000, sda1: 1_000, nvme0n1: 5_000, nvme0n1p1: 5_000, 'dm-0': 100 };
    await writeFile(join(dir, 'diskstats'), diskstats(before));
    let now = 10_000;
    const probe = systemProbe(config, { now: () => now, procRoot: dir });

    const first = await probe.sample(0, never());
    expect(first.ok).toBe(true);
    expect(first.values.disk_io).toBeUndefined();

    // 2 s later: sda busy 500 ms (0.25), nvme0n1 800 ms (0.4), dm-0 300 ms (0.15). The partitions
    // and the loop/zram/ram devices are busier, and must not count.
    now = 12_000;
    const after = { loop0: 2_000, zram0: 2_000, ram0: 2_000, sda: 1_500, sda1: 3_000, nvme0n1: 5_800, nvme0n1p1: 7_000, 'dm-0': 400 };
    await writeFile(join(dir, 'diskstats'), diskstats(after));
    const second = await probe.sample(1, never());
    expect(second.ok).toBe(true);
    expect(second.values.disk_io).toBe(0.4);
  });

  it('leaves disk_io out, without failing, when /proc/diskstats is missing', async () => {
    await writeFile(join(dir, 'meminfo'), meminfo(1_000, 500));
    await writeFile(join(dir, 'stat'), stat([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
    let now = 0;
    const probe = systemProbe(config, { now: () => now, procRoot: dir });
    await probe.sample(0, never());
    now = 1_000;
    const sample = await probe.sample(1, never());
    expect(sample.ok).toBe(true);
    expect(sample.values.disk_io).toBeUndefined();
  });
});

describe('disk I/O helpers', () => {
  it('parses io_ticks per device and skips malformed lines', () => {
    const text = `${diskLine(8, 0, 'sda', 1234)}\n   8 1 short 1 2 3\n${diskLine(8, 2, 'sdb', 0)}\n\n`;
    expect(parseDiskstats(text)).toEqual(new Map([['sda', 1234], ['sdb', 0]]));
  });

  it.each([
    [['sda', 'sda1', 'sda15', 'sdb'], ['sda', 'sdb']],
    [['nvme0n1', 'nvme0n1p1', 'nvme0n1p2', 'nvme1n1'], ['nvme0n1', 'nvme1n1']],
    [['mmcblk0', 'mmcblk0p1', 'mmcblk0boot0'], ['mmcblk0', 'mmcblk0boot0']],
    [['vda', 'vda1', 'loop0', 'loop12', 'ram0', 'zram0', 'dm-0', 'md127', 'sr0'], ['vda', 'dm-0', 'md127', 'sr0']],
  ])('wholeDisks by name: %j → %j', (names, expected) => {
    expect([...wholeDisks(names)]).toEqual(expected);
  });

  it('trusts /sys/block when it is known, still without memory devices', () => {
    const sysBlock = new Set(['sda', 'loop0', 'weird7']);
    expect([...wholeDisks(['sda', 'sda1', 'loop0', 'weird7', 'weird'], sysBlock)]).toEqual(['sda', 'weird7']);
  });

  it('reads /sys/block entries, and gives undefined when there is none', async () => {
    const sysBlock = join(dir, 'sys', 'block');
    await mkdir(join(sysBlock, 'sda'), { recursive: true });
    await mkdir(join(sysBlock, 'nvme0n1'));
    expect(await readBlockDevices(sysBlock)).toEqual(new Set(['sda', 'nvme0n1']));
    expect(await readBlockDevices(join(dir, 'missing'))).toBeUndefined();
  });

  const io = (at: number, ticks: Record<string, number>) => ({ at, ioTicks: new Map(Object.entries(ticks)) });
  it.each([
    [io(0, { sda: 0, sdb: 0 }), io(1000, { sda: 250, sdb: 500 }), 0.5],
    [io(0, { sda: 0 }), io(1000, { sda: 1010 }), 1],
    [io(0, { sda: 0 }), io(0, { sda: 10 }), undefined],
    [io(0, { sda: 500 }), io(1000, { sda: 10 }), undefined],
    [io(0, { sda: 500 }), io(1000, { sda: 10, sdb: 100 }), undefined],
    [io(0, { sda: 500, sdb: 0 }), io(1000, { sda: 10, sdb: 100 }), 0.1],
  ])('diskIoBetween(%j, %j) = %s', (previous, next, expected) => {
    expect(diskIoBetween(previous, next)).toBe(expected);
  });
});
