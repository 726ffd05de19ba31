/**
 * Process probe: the guarded pm2 app's CPU and memory, all its instances (cluster workers) summed,
 * as shares of the host so they compare with the same thresholds as the system probe.
 */
import os from 'node:os';
import type { ProcessProbeConfig } from '../config/schema.js';
import type { Sample } from '../core/types.js';
import type { Pm2ProcessInfo } from '../pm2/client.js';
import { errorMessage } from '../errors.js';
import type { ProbeFactory } from './types.js';

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
export function summarize(instances: readonly Pm2ProcessInfo[], host: HostCapacity): Record<string, number> {
  const values: Record<string, number> = {
    instances: instances.length,
    online: instances.filter((i) => i.status === 'online').length,
    restarts: instances.reduce((sum, i) => sum + (Number.isFinite(i.restarts) ? i.restarts : 0), 0),
  };
  if (instances.every((i) => Number.isFinite(i.cpuPercent))) {
    values.cpu = instances.reduce((sum, i) => sum + i.cpuPercent, 0) / 100 / host.cpus;
  }
  if (instances.every((i) => Number.isFinite(i.memoryBytes))) {
    values.memory_bytes = instances.reduce((sum, i) => sum + i.memoryBytes, 0);
    values.memory = values.memory_bytes / host.memoryBytes;
  }
  return values;
}

/**
 * Takes one sample per call via `deps.pm2.describe(pm2_app)`. No online instance → `ok: false`.
 * No pm2 client, or pm2 unreachable (describe rejects) → `ok: false, unavailable: true`: no data,
 * not a bad release. Never throws, never logs.
 */
export const processProbe: ProbeFactory<ProcessProbeConfig> = (config, deps) => ({
  name: config.name,
  type: 'process',
  async sample(startedAt, signal) {
    const base = { probe: config.name, startedAt, values: {} };
    const app = config.pm2_app;
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
