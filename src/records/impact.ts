/**
 * The impact a rollback record states (seed §4.3, 影响范围): the requests the release served and
 * how many of them failed, from its start until the previous version was verified, as counted by
 * the traffic source the rules judge. Pure: a function of the samples.
 */
import type { Sample } from '../core/types.js';

export interface TrafficImpact {
  probe: string;
  from: number;
  to: number;
  requests: number;
  errors: number;
  /** Intervals in the span the probe could not count (first scrape, a change of process, …). */
  uncounted: number;
}

export function trafficImpact(samples: readonly Sample[], probe: string, from: number, to: number): TrafficImpact {
  const impact: TrafficImpact = { probe, from, to, requests: 0, errors: 0, uncounted: 0 };
  for (const s of samples) {
    if (s.startedAt < from || s.startedAt > to) continue;
    if (!s.traffic) {
      if (!s.unavailable) impact.uncounted++;
      continue;
    }
    impact.requests += s.traffic.requests;
    impact.errors += s.traffic.errors;
  }
  return impact;
}
