/**
 * What a latency probe of a server (mysql, redis) learns from one try, and the sample it makes:
 * done with a latency, failed (the server answered wrongly or too slowly: a signal), or
 * unavailable (it could not be reached: no data, never a failed release).
 */
import type { Sample } from '../core/types.js';

export type LatencyOutcome =
  | { kind: 'done'; latencyMs: number }
  | { kind: 'unavailable'; error: string }
  | { kind: 'failed'; error: string };

export function latencySample(probe: string, startedAt: number, at: number, outcome: LatencyOutcome): Sample {
  const sample: Sample = { probe, startedAt, at, ok: outcome.kind === 'done', values: {} };
  if (outcome.kind === 'done') sample.values.latency_ms = outcome.latencyMs;
  else sample.error = outcome.error;
  if (outcome.kind === 'unavailable') sample.unavailable = true;
  return sample;
}

/** One sample's end: 'aborted' or 'timeout', whichever comes first. */
export interface SampleDeadline {
  reached: Promise<'aborted' | 'timeout'>;
  /** Removes the timer and the abort listener once the sample has its outcome. */
  clear(): void;
}

/** The one timer of `timeoutMs` that bounds a whole sample, and the caller's abort. */
export function sampleDeadline(signal: AbortSignal, timeoutMs: number): SampleDeadline {
  let onAbort: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const reached = new Promise<'aborted' | 'timeout'>((resolve) => {
    onAbort = () => resolve('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  return {
    reached,
    clear() {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
    },
  };
}
