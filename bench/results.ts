/**
 * What one run of one scenario measured, the same way for release-guard and monit, and the
 * median/range summaries the report shows.
 */
import type { Scenario } from './scenarios.js';
import { impactOf, type Outcome, type RequestRecord } from './traffic.js';

export type Tool = 'release-guard' | 'monit';

export interface RunResult {
  scenario: string;
  tool: Tool;
  run: number;
  /** release-guard: where its traffic rules read real traffic (absent in older results: scrape). */
  source?: 'scrape' | 'access_log';
  /** release-guard, fault scenarios: it rolled the release back before the fault was switched on (a false rollback). */
  rolledBackBeforeFault?: boolean;
  /** False when the run itself broke (setup failed, hard timeout); see `error`. */
  completed: boolean;
  error?: string;
  /** Whether a rollback was started (guard: decided; monit: its script ran). */
  rolledBack: boolean;
  /** Guard: trigger and reason of its breach; monit: the check that fired. */
  trigger?: string;
  reason?: string;
  /** Fault injected → rollback decided (guard) / rollback script started (monit). */
  detectionMs: number | null;
  /** Fault injected → the previous version answering every request, seen by the load. */
  recoveryMs: number | null;
  /** Rollback decided → plan (symlink swap + pm2 reload) done. */
  switchMs: number | null;
  /** Guard only: its own "verified" after the load saw recovery (negative: before). */
  verifiedLagMs: number | null;
  /** Requests that failed from the fault on. */
  failedRequests: number;
  failedByOutcome: Partial<Record<Outcome, number>>;
  /** Failures between the decision and the end that the fault itself does not cause; null where
   * the fault's own failures look the same (connection errors of a crash or hang). */
  switchFailures: number | null;
  requestsAfterFault: number;
  notes: string[];
}

/** Turns the load's records into the user-visible part of a RunResult. */
export function measure(
  scenario: Scenario,
  records: readonly RequestRecord[],
  faultAt: number,
  decidedAt: number | null,
  extraRecoveryAt: number | null = null,
): Pick<RunResult, 'recoveryMs' | 'failedRequests' | 'failedByOutcome' | 'switchFailures' | 'requestsAfterFault'> & { recoveredAt: number | null } {
  const impact = impactOf(records, faultAt, 'v1');
  let recoveredAt = impact.recoveredAt;
  if (recoveredAt !== null && extraRecoveryAt !== null) recoveredAt = Math.max(recoveredAt, extraRecoveryAt);
  if (extraRecoveryAt === null && scenario.needsDb) recoveredAt = null;
  const ownConn = scenario.faultOutcomes.includes('conn');
  const switchFailures =
    decidedAt === null || ownConn
      ? null
      : records.filter((r) => r.outcome !== 'ok' && r.doneAt >= decidedAt && !scenario.faultOutcomes.includes(r.outcome)).length;
  return {
    recoveredAt,
    recoveryMs: recoveredAt === null ? null : recoveredAt - faultAt,
    failedRequests: impact.failedAfterFault,
    failedByOutcome: impact.failedByOutcome,
    switchFailures,
    requestsAfterFault: impact.sentAfterFault,
  };
}

export interface Summary {
  n: number;
  median: number | null;
  min: number | null;
  max: number | null;
}

export function summarize(values: readonly (number | null | undefined)[]): Summary {
  const xs = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return { n: 0, median: null, min: null, max: null };
  const mid = Math.floor(xs.length / 2);
  const median = xs.length % 2 === 1 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
  return { n: xs.length, median, min: xs[0]!, max: xs.at(-1)! };
}

/** The p-th percentile (0..100), nearest rank. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function emptyResult(scenario: string, tool: Tool, run: number): RunResult {
  return {
    scenario,
    tool,
    run,
    completed: false,
    rolledBack: false,
    detectionMs: null,
    recoveryMs: null,
    switchMs: null,
    verifiedLagMs: null,
    failedRequests: 0,
    failedByOutcome: {},
    switchFailures: null,
    requestsAfterFault: 0,
    notes: [],
  };
}
