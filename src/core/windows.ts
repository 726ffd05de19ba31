/**
 * Release windows have ids: the data a rollback step prepared (a pre-release dump, a config
 * snapshot, a "migrate_down done" marker, the kubernetes revision before an undo) belongs to one
 * window, never to a version string. Deploying v2 a second time opens a new window with its own,
 * empty data, so its rollback restores its own backup and runs its own undo.
 *
 * The id is derived from what the event carries (the window's start time and its version), so
 * the core stays pure and a resumed guard derives the same id: `2026-01-24T10-00-00-123Z_v2`.
 * The time comes first so that sorting ids sorts windows by age (pruning keeps the newest).
 */
import type { GuardState, Release } from './types.js';

/** Ids are file names: the same characters as versions, and never `..`. */
export const WINDOW_ID = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9-]+Z_[A-Za-z0-9._+-]{1,100}$/;

export function windowId(startedAt: number, version: string): string {
  const time = Number.isFinite(startedAt) ? new Date(startedAt).toISOString().replace(/[:.]/g, '-') : '1970-01-01T00-00-00-000Z';
  // Versions are checked before they get here; a stored state from an older guard may not be.
  const name = version.replace(/[^A-Za-z0-9._+-]/g, '_').replace(/\.{2,}/g, '_').slice(0, 100) || '_';
  return `${time}_${name}`;
}

/** A release with its window id. */
export function newRelease(fields: Omit<Release, 'id'>): Release {
  return { ...fields, id: windowId(fields.startedAt, fields.version) };
}

/**
 * A rollback of `version` started outside its window (by hand, or following the fleet) acts on
 * the data of the last window that version had, when it was the latest window; otherwise it gets
 * a window of its own, with no prepared data (the steps then say there is no pre-release backup).
 */
export function releaseForRollback(state: GuardState, fields: Omit<Release, 'id'>): Release {
  const last = state.lastWindow;
  if (last && last.version === fields.version) return { ...fields, id: last.id };
  return newRelease(fields);
}

/**
 * States saved before windows had ids: the release gets the id it would have had, so a guard
 * upgraded mid-window keeps guarding (and finds that window's data, see adoptLegacyStepData).
 */
export function withWindowIds(state: GuardState): GuardState {
  if (!state.release || state.release.id) return state;
  const release = { ...state.release, id: windowId(state.release.startedAt, state.release.version) };
  return { ...state, release, lastWindow: state.lastWindow ?? { id: release.id, version: release.version } };
}

/** The window whose data a rollback of `from` started at `at` would use (for preflight). */
export function rollbackWindowId(state: GuardState, from: string, at: number): string {
  if (state.phase === 'guarding' && state.release?.version === from) return state.release.id;
  if (state.lastWindow?.version === from) return state.lastWindow.id;
  return windowId(at, from);
}

/** Whether going from `before` to `after` closed a window (it ended, or a newer one replaced it). */
export function closesWindow(before: GuardState, after: GuardState): boolean {
  return (after.phase === 'stable' && before.phase !== 'stable') || (after.release !== null && after.release.id !== before.release?.id);
}
