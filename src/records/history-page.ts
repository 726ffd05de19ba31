/**
 * GET /history's page of rollback records: a summary per record (what the list shows, never the
 * full record), newest first, `limit` at a time, older than the `before` cursor. Both stores
 * answer it from an index kept at write time, so a request never parses every full record.
 */
import type { RollbackRecord } from '../core/types.js';
import type { StateStore } from '../store/state-store.js';

export interface RecordSummary {
  id: string;
  from: string;
  to: string;
  outcome: string;
  /** ms since the epoch. */
  finishedAt: number;
  reason: string;
}

export interface HistoryPage {
  limit: number;
  /** Only records that finished strictly before this time (ms). */
  before?: number;
}

export const DEFAULT_HISTORY_LIMIT = 50;
export const MAX_HISTORY_LIMIT = 500;

export function summaryOf(record: RollbackRecord): RecordSummary {
  return { id: record.id, from: record.from, to: record.to, outcome: record.outcome, finishedAt: record.finishedAt, reason: record.breach.reason };
}

/** Newest first, the page asked for; `more`: whether older ones exist beyond it. */
export function pageOf(summaries: readonly RecordSummary[], page: HistoryPage): { items: RecordSummary[]; more: boolean } {
  const older = summaries
    .filter((s) => page.before === undefined || s.finishedAt < page.before)
    .sort((a, b) => b.finishedAt - a.finishedAt || (a.id < b.id ? 1 : -1));
  return { items: older.slice(0, page.limit), more: older.length > page.limit };
}

/**
 * `?limit=&before=` of GET /history: limit 1..MAX (default DEFAULT), before an ISO time or ms.
 * A bad value is an error naming it and what is allowed.
 */
export function parseHistoryQuery(query: URLSearchParams): HistoryPage | string {
  const rawLimit = query.get('limit');
  let limit = DEFAULT_HISTORY_LIMIT;
  if (rawLimit !== null) {
    limit = Number(rawLimit);
    if (!/^\d+$/.test(rawLimit) || limit < 1 || limit > MAX_HISTORY_LIMIT) return `limit=${rawLimit.slice(0, 40)} is not allowed: use a whole number from 1 to ${MAX_HISTORY_LIMIT}`;
  }
  const rawBefore = query.get('before');
  if (rawBefore === null) return { limit };
  const before = /^\d+$/.test(rawBefore) ? Number(rawBefore) : Date.parse(rawBefore);
  if (!Number.isFinite(before)) return `before=${rawBefore.slice(0, 40)} is not allowed: use an ISO time (the "next" of the previous page) or milliseconds since the epoch`;
  return { limit, before };
}

/** The newest record, found through the index (not by reading every record). */
export async function latestRecord(store: StateStore): Promise<RollbackRecord | null> {
  const newest = (await store.recordPage({ limit: 1 })).items[0];
  return newest ? ((await store.readRecord(newest.id))?.json ?? null) : null;
}
