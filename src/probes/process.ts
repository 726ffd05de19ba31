/**
 * Process probe: the guarded app's CPU and memory as shares of the host, so they compare with the
 * same thresholds as the system probe. Two sources, chosen by the config:
 * - `pm2_app`: all the app's pm2 instances (cluster workers) summed, as pm2 reports them;
 * - `pid_file`: one process read from /proc/<pid> (for apps not run by pm2).
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import type { ProcessProbeConfig } from '../config/schema.js';
import type { Sample } from '../core/types.js';
import type { Pm2ProcessInfo } from '../pm2/client.js';
import { errorMessage, ProbeError } from '../errors.js';
import type { BuiltInSampleValues, Probe, ProbeDeps, ProbeFactory } from './types.js';

/** What the host offers, passed in so `summarize` stays pure. */
export interface HostCapacity {
  /** Logical CPUs the process may use (os.availableParallelism()). */
  cpus: number;
  /** os.totalmem(). */
  memoryBytes: number;
}

/**
 * Pure: sums the instances. `cpu` = Σ cpuPercent / 100 / cpus and `memory` = Σ memoryBytes /
 * host memory, both 0..1 of the host. `cpu`, `memory` and `memory_bytes` are left out when any
 * instance reports a non-finite figure, rather than summing a partial picture.
 */
export function summarize(instances: readonly Pm2ProcessInfo[], host: HostCapacity): BuiltInSampleValues {
  const values: BuiltInSampleValues = {
    instances: instances.length,
    online: instances.filter((i) => i.status === 'online').length,
    restarts: instances.reduce((sum, i) => sum + (Number.isFinite(i.restarts) ? i.restarts : 0), 0),
  };
  if (instances.every((i) => Number.isFinite(i.cpuPercent))) {
    // A share of the cores the app can use: each Node process runs on one core, so a single
    // worker on a 4-core host pinned at 100 % is a saturated app, not 25 % load.
    const usable = Math.max(1, Math.min(instances.length, host.cpus));
    values.cpu = instances.reduce((sum, i) => sum + i.cpuPercent, 0) / 100 / usable;
  }
  if (instances.every((i) => Number.isFinite(i.memoryBytes))) {
    const memoryBytes = instances.reduce((sum, i) => sum + i.memoryBytes, 0);
    values.memory_bytes = memoryBytes;
    values.memory = memoryBytes / host.memoryBytes;
  }
  return values;
}

/**
 * The probe for `pm2_app` or for `pid_file`, whichever the config sets (the schema requires
 * exactly one). Never throws from `sample`, never logs.
 */
export const processProbe: ProbeFactory<ProcessProbeConfig> = (config, deps) => {
  if (config.pid_file !== undefined) return pidFileProbe(config.name, config.pid_file, deps);
  if (config.pm2_app !== undefined) return pm2Probe(config.name, config.pm2_app, deps);
  throw new ProbeError(`probe "${config.name}": set exactly one of pm2_app or pid_file`, 'probe_config_invalid');
};

/**
 * Takes one sample per call via `deps.pm2.describe(app)`. No online instance → `ok: false`.
 * No pm2 client, or pm2 unreachable (describe rejects) → `ok: false, unavailable: true`: no data,
 * not a bad release.
 */
const pm2Probe = (name: string, app: string, deps: ProbeDeps): Probe => ({
  name,
  type: 'process',
  async sample(startedAt, signal) {
    const base = { probe: name, startedAt, values: {} };
    if (deps.pm2 === undefined) {
      return { ...base, at: deps.now(), ok: false, unavailable: true, error: 'no pm2 client available' };
    }
    if (signal.aborted) return { ...base, at: deps.now(), ok: false, error: 'aborted' };

    const pm2 = deps.pm2;
    // Wrapped so a client that throws synchronously is handled like one that rejects.
    const described = await untilAborted(new Promise<Pm2ProcessInfo[]>((resolve) => resolve(pm2.describe(app))), signal);
    const at = deps.now();
    if (described.kind === 'aborted') return { ...base, at, ok: false, error: 'aborted' };
    if (described.kind === 'failed') {
      return { ...base, at, ok: false, unavailable: true, error: `pm2 unreachable: ${errorMessage(described.error)}` };
    }

    const instances = described.value;
    const values = summarize(instances, { cpus: os.availableParallelism(), memoryBytes: os.totalmem() });
    const sample: Sample = { ...base, at, ok: true, values };
    if (instances.length === 0) return { ...sample, ok: false, error: `pm2 app "${app}" has no instance` };
    if (values.online === 0) {
      const statuses = [...new Set(instances.map((i) => i.status))].join(', ');
      return { ...sample, ok: false, error: `pm2 app "${app}" has no online instance (statuses: ${statuses})` };
    }
    return sample;
  },
});

type Outcome<T> = { kind: 'value'; value: T } | { kind: 'failed'; error: unknown } | { kind: 'aborted' };

/**
 * pm2's API takes no AbortSignal, so abort cannot cancel the call; it only stops the wait. The
 * call's eventual result or rejection is turned into data here, so a late rejection after an abort
 * is neither unhandled nor thrown anywhere.
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<Outcome<T>> {
  const settled = work.then(
    (value): Outcome<T> => ({ kind: 'value', value }),
    (error: unknown): Outcome<T> => ({ kind: 'failed', error }),
  );
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<Outcome<T>>((resolve) => {
    onAbort = () => resolve({ kind: 'aborted' });
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([settled, aborted]).finally(() => {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  });
}

/**
 * Clock ticks per second of the CPU times in /proc/<pid>/stat (USER_HZ). It is part of the kernel's
 * user ABI and 100 on every architecture Node supports; Node has no sysconf(_SC_CLK_TCK) to ask.
 */
export const USER_HZ = 100;

/** The parts of /proc/<pid>/stat the probe uses. */
export interface PidStat {
  /** R, S, D, Z, X, … */
  state: string;
  /** utime + stime, in USER_HZ ticks. */
  cpuTicks: number;
  /** Ticks after boot when the process started: with the pid, it identifies the process. */
  startTime: number;
}

/**
 * Parses /proc/<pid>/stat. The command name (field 2) is in parentheses and may itself contain
 * spaces and parentheses, so fields are counted from the last ")". Undefined when malformed.
 */
export function parsePidStat(text: string): PidStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  // fields[0] is field 3 (state); utime, stime and starttime are fields 14, 15 and 22.
  const fields = text.slice(close + 1).trim().split(/\s+/);
  const state = fields[0];
  const [utime, stime, startTime] = [fields[11], fields[12], fields[19]].map(Number);
  if (state === undefined || !/^[A-Za-z]$/.test(state)) return undefined;
  if (![utime, stime, startTime].every((n) => n !== undefined && Number.isInteger(n) && n >= 0)) return undefined;
  return { state, cpuTicks: utime! + stime!, startTime: startTime! };
}

/** Resident memory in bytes from /proc/<pid>/status (`VmRSS: N kB`); undefined when absent. */
export function parseVmRss(status: string): number | undefined {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

/** A pid file holds one positive integer, perhaps followed by a newline. */
export function parsePid(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^\d{1,10}$/.test(trimmed)) return undefined;
  const pid = Number(trimmed);
  return pid > 0 && pid <= 0x3fffffff ? pid : undefined;
}

/** One CPU reading of one process, with the time (deps.now) it was taken. */
export interface CpuReading {
  pid: number;
  startTime: number;
  cpuTicks: number;
  at: number;
}

/**
 * Share of the host's CPUs the process used between two readings (0..1; one busy core of four is
 * 0.25; capped at 1, as tick rounding can overshoot over short intervals). Undefined when the readings are of different processes (pid reused, or restarted under
 * the same pid file), when no time passed or when the counters went backwards.
 */
export function pidCpuBetween(previous: CpuReading, next: CpuReading, cpus: number): number | undefined {
  if (previous.pid !== next.pid || previous.startTime !== next.startTime) return undefined;
  const elapsedMs = next.at - previous.at;
  const ticks = next.cpuTicks - previous.cpuTicks;
  if (elapsedMs <= 0 || ticks < 0 || cpus <= 0) return undefined;
  return Math.min(1, (ticks / USER_HZ) / (elapsedMs / 1000) / cpus);
}

type Read<T> = { ok: true; value: T } | { ok: false; error: string; unavailable?: true; aborted?: true };

/**
 * Takes one sample per call: reads the pid from `pidFile`, then /proc/<pid>/stat and status.
 * `cpu` (0..1 of the host, from the utime+stime delta since the previous sample of the same
 * process) is absent on the first sample; `memory_bytes` (VmRSS) and `memory` (of os.totalmem())
 * are on every sample. Missing or malformed pid file, or a process that is gone or a zombie →
 * `ok: false`. /proc unreadable for another reason → `ok: false, unavailable: true`.
 */
const pidFileProbe = (name: string, pidFile: string, deps: ProbeDeps): Probe => {
  const procRoot = deps.procRoot ?? '/proc';
  let previous: CpuReading | undefined;

  async function read(signal: AbortSignal): Promise<Read<{ reading: Omit<CpuReading, 'at'>; rssBytes?: number }>> {
    let pidText: string;
    try {
      pidText = await readFile(pidFile, { encoding: 'utf8', signal });
    } catch (error) {
      if (signal.aborted) return { ok: false, error: 'aborted', aborted: true };
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file (is the process running?)' : `cannot be read: ${errorMessage(error)}`;
      return { ok: false, error: `pid_file ${pidFile}: ${why}` };
    }
    const pid = parsePid(pidText);
    if (pid === undefined) {
      return { ok: false, error: `pid_file ${pidFile}: ${JSON.stringify(pidText.trim().slice(0, 40))} is not a process id` };
    }
    const dir = join(procRoot, String(pid));
    const who = `process ${pid} (from pid_file ${pidFile})`;
    let stat: string;
    let status: string;
    try {
      [stat, status] = await Promise.all([
        readFile(join(dir, 'stat'), { encoding: 'utf8', signal }),
        readFile(join(dir, 'status'), { encoding: 'utf8', signal }),
      ]);
    } catch (error) {
      if (signal.aborted) return { ok: false, error: 'aborted', aborted: true };
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ESRCH') return { ok: false, error: `${who} is not running` };
      return { ok: false, unavailable: true, error: `cannot read ${dir}: ${errorMessage(error)}` };
    }
    const parsed = parsePidStat(stat);
    if (parsed === undefined) return { ok: false, unavailable: true, error: `${join(dir, 'stat')}: malformed` };
    if (parsed.state === 'Z' || parsed.state === 'X') {
      return { ok: false, error: `${who} is not running (state ${parsed.state}: exited, not yet reaped)` };
    }
    const rssBytes = parseVmRss(status);
    return {
      ok: true,
      value: { reading: { pid, startTime: parsed.startTime, cpuTicks: parsed.cpuTicks }, ...(rssBytes !== undefined ? { rssBytes } : {}) },
    };
  }

  return {
    name,
    type: 'process',
    async sample(startedAt, signal) {
      const base: Sample = { probe: name, startedAt, at: 0, ok: false, values: {} };
      if (signal.aborted) return { ...base, at: deps.now(), error: 'aborted' };
      const result = await read(signal);
      const at = deps.now();
      if (!result.ok) {
        // A process that is gone must not lend its CPU counters to the next one.
        if (!result.aborted) previous = undefined;
        return { ...base, at, error: result.error, ...(result.unavailable ? { unavailable: true } : {}) };
      }
      const reading: CpuReading = { ...result.value.reading, at };
      const values: BuiltInSampleValues = {};
      const cpu = previous === undefined ? undefined : pidCpuBetween(previous, reading, os.availableParallelism());
      previous = reading;
      if (cpu !== undefined) values.cpu = cpu;
      if (result.value.rssBytes !== undefined) {
        values.memory_bytes = result.value.rssBytes;
        values.memory = result.value.rssBytes / os.totalmem();
      }
      return { ...base, at, ok: true, values };
    },
  };
};
