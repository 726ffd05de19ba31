import type { FleetVerdict, GuardState, RollbackRecord } from '../core/types.js';
import type { HistoryPage, RecordSummary } from '../records/history-page.js';

export type { FleetVerdict };

/** Baseline latency per version and probe, kept while each version was stable. */
export type Baselines = Record<string, Record<string, { p95Ms: number; errorRatio?: number; samples: number; at: number }>>;

/**
 * Where the guard keeps what must survive a restart. `saveState` is atomic: after it resolves,
 * a crash leaves either the old or the new snapshot, never a torn one.
 */
export interface StateStore {
  /** The saved state, or null on first start. */
  loadState(): Promise<GuardState | null>;
  saveState(state: GuardState): Promise<void>;
  loadBaselines(): Promise<Baselines>;
  saveBaselines(baselines: Baselines): Promise<void>;
  /** Writes `<id>.json`, `<id>.md` and, when given, the timeline picture `<id>.svg`; returns their paths. */
  writeRecord(record: RollbackRecord, markdown: string, extra: Record<string, unknown>, svg?: string): Promise<{ json: string; markdown: string }>;
  listRecords(): Promise<(RollbackRecord & Record<string, unknown>)[]>;
  /**
   * A page of record summaries, newest first, from an index kept at write time (never by reading
   * every record); `more` when older ones exist. Only records whose JSON is written are listed.
   */
  recordPage(page: HistoryPage): Promise<{ items: RecordSummary[]; more: boolean }>;
  /** The record, its Markdown and its timeline picture (when one was written). */
  readRecord(id: string): Promise<{ json: RollbackRecord & Record<string, unknown>; markdown: string; svg?: string } | null>;
  /** Writes `drills/<id>.json` and `.md`; returns the Markdown path. */
  writeDrill(id: string, json: unknown, markdown: string): Promise<string>;
  /** The JSON of the drill written last (drills are written as they finish), or null when none was. */
  latestDrill(): Promise<unknown>;

  // ---- Lease (optional): which of several guards sharing this store may act ----
  // A store without these methods is a single guard's own: that guard always acts.

  /**
   * Takes the lease for `ttlMs` if nobody holds it, or extends it if this store already does.
   * Resolves to the lease (with its fencing token, which only ever grows) or to null when another
   * holder has it. Once held, every write of this store is fenced: it is refused with a StoreError
   * (`store_not_leader` / `store_fenced`) unless this store still holds that lease.
   */
  acquireLease?(ttlMs: number): Promise<Lease | null>;
  /** Extends the lease this store holds; false when it is gone (expired, taken, or the data lost). */
  renewLease?(ttlMs: number): Promise<boolean>;
  /** Gives the lease up if this store still holds it, so a standby takes over at once. */
  releaseLease?(): Promise<void>;
  /** Who holds the lease now, or null when nobody does. */
  leaseHolder?(): Promise<Lease | null>;
}

/** A lease on a store: `token` is its fencing token, strictly greater than any earlier one. */
export interface Lease {
  token: number;
  /** Who holds it: `<hostname>/<pid>/<random>` of the guard process. */
  holder: string;
}

/**
 * Release verdicts shared by the hosts of a fleet (the redis store). Each host reports what its
 * window of a release came to; every host reads the others' to follow a rollback and to promote
 * only when every host's window ended clean.
 */
export interface FleetBoard {
  /** This host's id (config `host_id`). */
  readonly hostId: string;
  report(version: string, verdict: FleetVerdict, at: number): Promise<void>;
  /** Every host's verdict on `version`, and the hosts that are alive now (a guard holds their lease). */
  read(version: string): Promise<{ verdicts: Record<string, { verdict: FleetVerdict; at: number }>; live: string[] }>;
}
