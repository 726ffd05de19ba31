/**
 * The version manager, derived from deployment history (seed §3): the latest status of each
 * version decides. Rollback candidates are versions whose latest record is a success, newest first.
 */
import type { DeploymentEntry, DeploymentStatus } from './types.js';

/** Latest status per version. */
export function latestStatus(history: readonly DeploymentEntry[]): Map<string, DeploymentStatus> {
  const latest = new Map<string, DeploymentStatus>();
  for (const entry of history) latest.set(entry.version, entry.status);
  return latest;
}

/** Successful versions, newest first, each once. */
export function candidates(history: readonly DeploymentEntry[]): string[] {
  const latest = latestStatus(history);
  const seen = new Set<string>();
  const out: string[] = [];
  for (let i = history.length - 1; i >= 0; i--) {
    const { version } = history[i]!;
    if (seen.has(version)) continue;
    seen.add(version);
    if (latest.get(version) === 'success') out.push(version);
  }
  return out;
}
