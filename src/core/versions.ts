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
  for (const { version } of [...history].reverse()) {
    if (seen.has(version)) continue;
    seen.add(version);
    if (latest.get(version) === 'success') out.push(version);
  }
  return out;
}

/** The most characters a version may have: it becomes a file name and a program argument. */
export const MAX_VERSION_LENGTH = 128;
const VERSION_CHARS = /^[A-Za-z0-9._+-]+$/;

/**
 * Why `version` is not a safe identifier, or null when it is. Versions become directory names,
 * pm2 app names and arguments of programs (migrate_down, docker, git), so the one rule is:
 * letters, digits, `.`, `_`, `+`, `-`, at most 128 characters, not starting with `-` (a program
 * would read it as an option) or `.` (a hidden or relative path), and no `..` anywhere.
 * Every entry point (API, CLI, probes, stored state, strategies) asks this one function.
 */
export function versionProblem(version: unknown): string | null {
  const allowed = `use 1-${MAX_VERSION_LENGTH} letters, digits, ".", "_", "+" or "-", not starting with "-" or "." and without ".."`;
  if (typeof version !== 'string') return `a version must be a string (${allowed})`;
  const shown = JSON.stringify(version.length > 60 ? `${version.slice(0, 57)}...` : version);
  if (version.length === 0 || version.length > MAX_VERSION_LENGTH || !VERSION_CHARS.test(version) || version.startsWith('-') || version.startsWith('.') || version.includes('..')) {
    return `version ${shown} is not allowed: ${allowed}`;
  }
  return null;
}

export function isSafeVersion(version: unknown): version is string {
  return versionProblem(version) === null;
}
