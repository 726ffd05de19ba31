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
