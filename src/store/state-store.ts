import type { GuardState, RollbackRecord } from '../core/types.js';

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
  readRecord(id: string): Promise<{ json: RollbackRecord & Record<string, unknown>; markdown: string } | null>;
  /** Writes `drills/<id>.json` and `.md`; returns the Markdown path. */
  writeDrill(id: string, json: unknown, markdown: string): Promise<string>;
}
