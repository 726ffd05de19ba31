import type { ProbeConfig } from '../config/schema.js';
import type { Pm2Client } from '../pm2/client.js';
import type { Sample } from '../core/types.js';

/** What a probe needs from the outside world, injected so tests can replace it. */
export interface ProbeDeps {
  /** Epoch milliseconds. */
  now(): number;
  /** Only the process probe uses it. */
  pm2?: Pm2Client;
  /** Root of the proc filesystem (tests point it at a fixture directory). */
  procRoot?: string;
}

/** Per-launch settings the scheduler may give; a probe without a use for one ignores it. */
export interface SampleOptions {
  /** Give up sooner than the probe's configured timeout (http checks at the fast interval). */
  timeoutMs?: number;
}

/**
 * One probe: takes one sample. Must honour `signal` (abort = stop at once) and must never throw:
 * every failure becomes `ok: false` with `error`, or `unavailable: true` when nothing could be
 * observed at all. `startedAt` is the launch time given by the scheduler.
 */
export interface Probe {
  readonly name: string;
  readonly type: ProbeConfig['type'];
  sample(startedAt: number, signal: AbortSignal, options?: SampleOptions): Promise<Sample>;
  /** Release sockets and handles. */
  close?(): Promise<void>;
}

export type ProbeFactory<C extends ProbeConfig> = (config: C, deps: ProbeDeps) => Probe;

/** The names probes write their readings under, shared with the rules (src/core/rule-catalog.ts). */
export type { BuiltInSampleValues, SampleValueKey } from '../core/rule-catalog.js';
