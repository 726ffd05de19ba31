/**
 * The daemon's face to the HTTP API: what the server may read and ask. The server knows nothing
 * of probes or strategies; the daemon implements this interface.
 */
import type { AlertmanagerPayload } from './alertmanager-payload.js';
import type { DeploymentEntry, GuardState, Phase, RuleVerdict } from '../core/types.js';
import type { DrillRecord } from '../shell/drill.js';
import type { HistoryPage } from '../records/history-page.js';
import type { TimelineInput } from '../records/timeline-svg.js';

/** GET /status (and `release-guard status --json`): stable field names for scripts. */
export interface StatusView {
  service: string;
  phase: Phase;
  paused: boolean;
  since: string;
  stable: string | null;
  running: string | null;
  release: {
    version: string;
    previous: string | null;
    startedAt: string;
    deployedBy: string;
    source: 'detected' | 'manual';
    /** When the window ends (guarding only). */
    windowEndsAt: string | null;
  } | null;
  rollback: { from: string; to: string; reason: string; trigger: string; startedAt: string; attempt: number } | null;
  wouldRollBack: string | null;
  /** A decided rollback waiting out the veto window: `release-guard veto` stops it. */
  pendingRollback: { to: string; reason: string; at: string } | null;
  failure: string | null;
  /** The latest verdict of every rule. */
  rules: RuleVerdict[];
  lastRollback: { id: string; from: string; to: string; outcome: string; finishedAt: string } | null;
  now: string;
  /**
   * Who acts. `leader`: this guard holds the lease and acts; false: it stands by (or cannot reach
   * its store). `holder`/`token`: the lease as last seen (this guard's or the acting guard's).
   */
  lease?: { leader: boolean; holder: string | null; token: number | null; hostId: string | null };
  /** Whether the state store answers; while it does not, the guard observes and does not act. */
  store?: { type: 'file' | 'redis'; up: boolean; error: string | null };
  /** Fleets: this host's id and the hosts whose clean window it still waits for before promoting. */
  fleet?: { hostId: string; waitingFor: string[] };
}

/** GET /history. */
export interface HistoryView {
  service: string;
  deployments: (Omit<DeploymentEntry, 'at'> & { at: string })[];
  /** Rollback candidates: successful versions, newest first. */
  candidates: string[];
  previousStable: string | null;
  /** Rollback records, newest first, one page (`?limit=`, default 50, at most 500). */
  rollbacks: { id: string; from: string; to: string; outcome: string; finishedAt: string; reason: string }[];
  /** The `before=` of the next (older) page, or null when this page is the last. */
  next?: string | null;
}

export type ControlRequest =
  | { action: 'release'; version: string; deployedBy: string }
  | { action: 'rollback'; to?: string; reason: string; by: string }
  | { action: 'promote'; by: string }
  | { action: 'veto'; by: string; reason: string }
  | { action: 'pause'; by: string }
  | { action: 'resume'; by: string };

export type ControlResult = { ok: true; state: GuardState } | { ok: false; error: string };

/** GET /preflight: can the running release be rolled back right now? */
export interface PreflightView {
  ready: boolean;
  from: string | null;
  to: string | null;
  /** Problems not tied to a step (no target version, …). */
  problems: string[];
  steps: { index: number; type: string; description: string; problems: string[] }[];
  checkedAt: string;
}

export interface GuardControl {
  status(): StatusView;
  history(page?: HistoryPage): Promise<HistoryView>;
  /** The newest drill's record, from the store (null when none ran). */
  lastDrill(): Promise<DrillRecord | null>;
  /** Runs a rollback drill (back to the previous version and forward again) and records it. */
  drill(by: string): Promise<{ ok: true; record: DrillRecord } | { ok: false; error: string }>;
  /** Runs every rollback step's readiness check (read-only). */
  preflight(): Promise<PreflightView>;
  /** The last preflight's result, whoever asked for it (null before the first); runs nothing. */
  lastPreflight(): PreflightView | null;
  /** Prometheus text exposition and its content type. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Feeds the request into the state machine; `ok: false` carries why it was refused. */
  control(request: ControlRequest): Promise<ControlResult>;
  /** The current window's series and events, as the record's timeline draws them (the page's live chart). */
  liveTimeline(): TimelineInput;
  /** One rollback record's Markdown and timeline SVG (when written), or null when there is no such record. */
  recordDocument(id: string): Promise<{ markdown: string; svg: string | null } | null>;
  /** Takes an Alertmanager webhook message (triggers.alertmanager); `ok: false` when not configured. */
  alertmanager(payload: AlertmanagerPayload): Promise<{ ok: true; alerts: number; matched: number } | { ok: false; error: string }>;
}
