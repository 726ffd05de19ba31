/**
 * System probe: host CPU, memory and disk usage as 0..1 ratios, read from /proc and statfs.
 *
 * CPU is a rate, so it needs two readings: each sample reports the busy share of the time since
 * the previous sample. The first sample of a probe has no previous reading and therefore carries
 * no `cpu` value at all, rather than sleeping inside the probe or inventing a number.
 *
 * `disk_io` is a rate too (same rule for the first sample): the share of the time since the previous
 * sample during which the busiest whole disk had I/O in flight (io_ticks of /proc/diskstats, the
 * figure `iostat` shows as %util). It is best-effort: absent when /proc/diskstats cannot be read or
 * lists no disk, without failing the sample.
 */
import { readdir, readFile, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { SystemProbeConfig } from '../config/schema.js';
import type { Sample } from '../core/types.js';
import { errorMessage } from '../errors.js';
import type { BuiltInSampleValues, ProbeFactory } from './types.js';

/** Cumulative jiffies of the aggregate `cpu` line of /proc/stat. */
export interface CpuTimes {
  busy: number;
  total: number;
}

type Reading<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Takes one sample per call. /proc unreadable or malformed → `ok: false, unavailable: true` (no
 * data, not a bad release). `disk_path` not statable → `ok: false` with the readings that did
 * succeed. `values` always holds whatever was observed. Never throws, never logs.
 */
export const systemProbe: ProbeFactory<SystemProbeConfig> = (config, deps) => {
  const procRoot = deps.procRoot ?? '/proc';
  // /sys/block describes the real machine: it is only consulted with the real /proc, never with a
  // fixture one (tests then get the name rule of wholeDisks).
  const sysBlock = deps.procRoot === undefined ? '/sys/block' : undefined;
  let previousCpu: CpuTimes | undefined;
  let previousIo: DiskIoReading | undefined;

  return {
    name: config.name,
    type: 'system',
    async sample(startedAt, signal) {
      const [proc, disk, io] = await Promise.all([
        readProc(procRoot, signal),
        readDisk(config.disk_path),
        readDiskIo(procRoot, sysBlock, signal),
      ]);
      const values: BuiltInSampleValues = {};
      const sample: Sample = { probe: config.name, startedAt, at: deps.now(), ok: true, values };

      if (proc.ok) {
        const cpu = previousCpu === undefined ? undefined : cpuBetween(previousCpu, proc.value.cpu);
        previousCpu = proc.value.cpu;
        if (cpu !== undefined) values.cpu = cpu;
        values.memory = proc.value.memory;
      }
      if (disk.ok) values.disk = disk.value;
      if (io !== undefined) {
        const reading: DiskIoReading = { at: sample.at, ...io };
        const diskIo = previousIo === undefined ? undefined : diskIoBetween(previousIo, reading);
        previousIo = reading;
        if (diskIo !== undefined) values.disk_io = diskIo;
      }

      if (signal.aborted) return { ...sample, ok: false, error: 'aborted' };
      if (!proc.ok) return { ...sample, ok: false, unavailable: true, error: proc.error };
      if (!disk.ok) return { ...sample, ok: false, error: disk.error };
      return sample;
    },
  };
};

async function readProc(root: string, signal: AbortSignal): Promise<Reading<{ cpu: CpuTimes; memory: number }>> {
  const statPath = join(root, 'stat');
  const meminfoPath = join(root, 'meminfo');
  let stat: string;
  let meminfo: string;
  try {
    [stat, meminfo] = await Promise.all([
      readFile(statPath, { encoding: 'utf8', signal }),
      readFile(meminfoPath, { encoding: 'utf8', signal }),
    ]);
  } catch (error) {
    return { ok: false, error: `cannot read ${root}: ${errorMessage(error)}` };
  }
  const cpu = parseProcStat(stat);
  if (cpu === undefined) return { ok: false, error: `${statPath}: no well-formed aggregate "cpu" line` };
  const memory = memoryUsed(meminfo);
  if (memory === undefined) return { ok: false, error: `${meminfoPath}: no usable MemTotal and MemAvailable` };
  return { ok: true, value: { cpu, memory } };
}

/** Used share of the filesystem as `df` computes it: blocks reserved for root count as neither. */
async function readDisk(path: string): Promise<Reading<number>> {
  let stats: Awaited<ReturnType<typeof statfs>>;
  try {
    stats = await statfs(path);
  } catch (error) {
    return { ok: false, error: `disk_path ${path}: ${errorMessage(error)}` };
  }
  const used = stats.blocks - stats.bfree;
  const capacity = used + stats.bavail;
  if (capacity <= 0) return { ok: false, error: `disk_path ${path}: filesystem reports no blocks` };
  return { ok: true, value: used / capacity };
}

/**
 * Parses the aggregate `cpu` line: user nice system idle iowait irq softirq steal [guest
 * guest_nice]. Idle time is idle + iowait. guest and guest_nice are left out of the total because
 * the kernel already counts them inside user and nice. Returns undefined when malformed.
 */
export function parseProcStat(text: string): CpuTimes | undefined {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (line === undefined) return undefined;
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (fields.length < 4 || fields.some((n) => !Number.isFinite(n) || n < 0)) return undefined;
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { busy: total - idle - iowait, total };
}

/**
 * Busy share between two readings, or undefined when no time elapsed or the counters went
 * backwards (e.g. a different /proc): no value is better than a made-up one.
 */
export function cpuBetween(previous: CpuTimes, next: CpuTimes): number | undefined {
  const total = next.total - previous.total;
  const busy = next.busy - previous.busy;
  if (total <= 0 || busy < 0 || busy > total) return undefined;
  return busy / total;
}

/** 1 - MemAvailable / MemTotal; undefined when either line is missing or MemTotal is 0. */
export function memoryUsed(meminfo: string): number | undefined {
  const kb = (key: string): number | undefined => {
    const match = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(meminfo);
    return match ? Number(match[1]) : undefined;
  };
  const total = kb('MemTotal');
  const available = kb('MemAvailable');
  if (total === undefined || available === undefined || total <= 0 || available > total) return undefined;
  return 1 - available / total;
}

/** Cumulative io_ticks per whole disk, taken at `at` (deps.now, epoch ms). */
export interface DiskIoReading {
  at: number;
  /** Disk name → milliseconds spent with I/O in flight since boot. */
  ioTicks: Map<string, number>;
}

/** Reads /proc/diskstats (and /sys/block when given); undefined when there is nothing usable. */
async function readDiskIo(
  procRoot: string,
  sysBlock: string | undefined,
  signal: AbortSignal,
): Promise<Omit<DiskIoReading, 'at'> | undefined> {
  let text: string;
  try {
    text = await readFile(join(procRoot, 'diskstats'), { encoding: 'utf8', signal });
  } catch {
    // Best-effort by design (see the file comment): no diskstats means no disk_io, not a failure.
    return undefined;
  }
  const all = parseDiskstats(text);
  const disks = wholeDisks(all.keys(), sysBlock === undefined ? undefined : await readBlockDevices(sysBlock));
  const ioTicks = new Map([...all].filter(([name]) => disks.has(name)));
  return ioTicks.size === 0 ? undefined : { ioTicks };
}

/** Names listed in /sys/block (exactly the whole block devices); undefined when unreadable. */
export async function readBlockDevices(dir: string): Promise<Set<string> | undefined> {
  try {
    return new Set(await readdir(dir));
  } catch {
    return undefined; // no sysfs (some containers): wholeDisks falls back to its name rule
  }
}

/**
 * Parses /proc/diskstats: `major minor name` then the counters; io_ticks (ms with I/O in flight) is
 * the 10th counter, i.e. the 13th column. Malformed lines are skipped.
 */
export function parseDiskstats(text: string): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    const name = fields[2];
    const ioTicks = Number(fields[12]);
    if (name === undefined || fields[12] === undefined || !Number.isFinite(ioTicks) || ioTicks < 0) continue;
    ticks.set(name, ioTicks);
  }
  return ticks;
}

/** Memory-backed block devices: their "I/O" says nothing about the disks. */
const NOT_A_DISK = /^(loop|ram|zram)\d+$/;

/**
 * The whole disks among `names` (partitions would count their disk's I/O twice). With `sysBlock`
 * (the entries of /sys/block) a name is a disk when it is listed there. Without, a name is a
 * partition when another listed name followed by digits, optionally after a "p", equals it: sda1
 * of sda, nvme0n1p2 of nvme0n1, mmcblk0p1 of mmcblk0 (a plain "no trailing digit" rule would drop
 * nvme0n1 and keep nothing on NVMe machines). loop, ram and zram devices are never disks.
 */
export function wholeDisks(names: Iterable<string>, sysBlock?: ReadonlySet<string>): Set<string> {
  const listed = [...names];
  const all = new Set(listed);
  const isPartition = (name: string) => {
    // Every split whose tail is p?digits: "nvme0n1p2" tries "nvme0n1p", then "nvme0n1" (listed).
    for (let end = name.length - 1; end > 0 && /^p?\d+$/.test(name.slice(end)); end -= 1) {
      if (all.has(name.slice(0, end))) return true;
    }
    return false;
  };
  return new Set(
    listed.filter((name) => !NOT_A_DISK.test(name) && (sysBlock !== undefined ? sysBlock.has(name) : !isPartition(name))),
  );
}

/**
 * Utilisation of the busiest disk between two readings: max over disks present in both of
 * Δio_ticks / Δms, capped at 1 (the counters and the clock are read at slightly different
 * moments). Undefined when no time passed or no disk has counters that did not go backwards.
 */
export function diskIoBetween(previous: DiskIoReading, next: DiskIoReading): number | undefined {
  const elapsed = next.at - previous.at;
  if (elapsed <= 0) return undefined;
  let busiest: number | undefined;
  for (const [name, ticks] of next.ioTicks) {
    const before = previous.ioTicks.get(name);
    if (before === undefined || ticks < before) continue;
    busiest = Math.max(busiest ?? 0, Math.min(1, (ticks - before) / elapsed));
  }
  return busiest;
}
