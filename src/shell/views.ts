/**
 * The guard seen from the API: pure translations between the state and what /status, /history
 * and the control endpoints speak. No I/O, so they are the same for every store and host.
 */
import type { ControlRequest, HistoryView, StatusView } from '../api/types.js';
import type { Event, GuardState, RollbackRecord, RuleVerdict } from '../core/types.js';
import { candidates } from '../core/versions.js';
import type { RecordSummary } from '../records/history-page.js';

const iso = (ms: number) => new Date(ms).toISOString();

/** The machine event a control request stands for. */
export function controlEvent(request: ControlRequest, at: number): Event {
  switch (request.action) {
    case 'release':
      return { type: 'releaseRequested', version: request.version, deployedBy: request.deployedBy, at };
    case 'rollback':
      return { type: 'rollbackRequested', ...(request.to ? { to: request.to } : {}), reason: request.reason, by: request.by, at };
    case 'promote':
      return { type: 'promoteRequested', by: request.by, at };
    case 'veto':
      return { type: 'vetoRequested', by: request.by, reason: request.reason, at };
    case 'pause':
      return { type: 'pauseRequested', by: request.by, at };
    case 'resume':
      return { type: 'resumeRequested', by: request.by, at };
  }
}

export interface StatusInput {
  service: string;
  state: GuardState;
  windowMs: number;
  verdicts: RuleVerdict[];
  lastRecord: RollbackRecord | null;
  now: number;
}

/** GET /status without the host-specific parts (lease, store health, fleet), which the guard adds. */
export function statusView({ service, state: s, windowMs, verdicts, lastRecord, now }: StatusInput): StatusView {
  return {
    service,
    phase: s.phase,
    paused: s.paused,
    since: iso(s.since),
    stable: s.stable,
    running: s.running,
    release: s.release
      ? {
          version: s.release.version,
          previous: s.release.previous,
          startedAt: iso(s.release.startedAt),
          deployedBy: s.release.deployedBy,
          source: s.release.source,
          windowEndsAt: s.phase === 'guarding' ? iso(s.release.startedAt + windowMs) : null,
        }
      : null,
    rollback: s.rollback
      ? { from: s.rollback.from, to: s.rollback.to, reason: s.rollback.breach.reason, trigger: s.rollback.breach.trigger, startedAt: iso(s.rollback.startedAt), attempt: s.rollback.attempt }
      : null,
    wouldRollBack: s.wouldRollBack?.reason ?? null,
    pendingRollback: s.pending ? { to: s.pending.to, reason: s.pending.breach.reason, at: iso(s.pending.until) } : null,
    failure: s.failure,
    rules: verdicts,
    lastRollback: lastRecord
      ? { id: lastRecord.id, from: lastRecord.from, to: lastRecord.to, outcome: lastRecord.outcome, finishedAt: iso(lastRecord.finishedAt) }
      : null,
    now: iso(now),
  };
}

/** GET /history: deployments, the version manager's view, and one page of rollback records (newest first). */
export function historyView(service: string, state: GuardState, page: { items: readonly RecordSummary[]; more: boolean }): HistoryView {
  const last = page.items.at(-1);
  return {
    service,
    deployments: state.history.map((h) => ({ ...h, at: iso(h.at) })),
    candidates: candidates(state.history),
    previousStable: state.stable,
    rollbacks: page.items.map((r) => ({ id: r.id, from: r.from, to: r.to, outcome: r.outcome, finishedAt: iso(r.finishedAt), reason: r.reason })),
    next: page.more && last ? iso(last.finishedAt) : null,
  };
}
