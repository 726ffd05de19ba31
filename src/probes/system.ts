/**
 * System probe: host CPU, memory and disk usage as 0..1 ratios, read from /proc and statfs.
 *
 * CPU is a rate, so it needs two readings: each sample reports the busy share of the time since
 * the previous sample. The first sample of a probe has no previous reading and therefore carries
 * no `cpu` value at all, rather than sleeping inside the probe or inventing a number.
 */
import { readFile, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { SystemProbeConfig } from '../config/schema.js';
import type { Sample } from '../core/types.js';
import { errorMessage } from '../errors.js';
import type { ProbeFactory } from './types.js';

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
  let previousCpu: CpuTimes | undefined;

  return {
    name: config.name,
    type: 'system',
    async sample(startedAt, signal) {
      const [proc, disk] = await Promise.all([readProc(procRoot, signal), readDisk(config.disk_path)]);
      const values: Record<string, number> = {};
      const sample: Sample = { probe: config.name, startedAt, at: deps.now(), ok: true, values };

      if (proc.ok) {
        const cpu = previousCpu === undefined ? undefined : cpuBetween(previousCpu, proc.value.cpu);
        previousCpu = proc.value.cpu;
        if (cpu !== undefined) values.cpu = cpu;
        values.memory = proc.value.memory;
      }
      if (disk.ok) values.disk = disk.value;

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
