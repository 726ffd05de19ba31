/**
 * `release-guard release <version> --wait`: follows the release window through the daemon's
 * /status and ends with the window's outcome, so a deploy script or a CI job can gate on it.
 *
 * Exit codes (documented in docs/operations.md, "Gate a deploy on the guard"):
 *   0  the release was promoted
 *   1  the release was rolled back (automatically or by hand) and the rollback was verified
 *   3  the rollback failed: automation is frozen, a human must look
 *   4  no verdict on this release: another release replaced it, it went away by itself, the
 *      daemon could not be followed, or --timeout passed
 * (2 stays commander's usage error.)
 */
import type { StatusView } from '../api/types.js';

export const WAIT_EXIT = { promoted: 0, rolledBack: 1, rollbackFailed: 3, noVerdict: 4 } as const;

/** The outcome's name in `release --wait --json` (stable, for scripts). */
export type WaitOutcome = 'promoted' | 'rolled_back' | 'rollback_failed' | 'no_verdict';

export function waitOutcome(code: number): WaitOutcome {
  switch (code) {
    case WAIT_EXIT.promoted:
      return 'promoted';
    case WAIT_EXIT.rolledBack:
      return 'rolled_back';
    case WAIT_EXIT.rollbackFailed:
      return 'rollback_failed';
    default:
      return 'no_verdict';
  }
}

export type WaitStep =
  | { done: true; code: number; message: string }
  | { done: false; progress: string };

/**
 * What one status view says about `version`'s window. `since` is when the window was asked for:
 * a rollback record or promotion older than that belongs to an earlier window of the version.
 */
export function judgeWindow(view: StatusView, version: string, since: number): WaitStep {
  const last = view.lastRollback;
  const rolledBackNow = last !== null && last.from === version && Date.parse(last.finishedAt) >= since;
  switch (view.phase) {
    case 'guarding': {
      if (view.release?.version !== version) {
        return { done: true, code: WAIT_EXIT.noVerdict, message: `release ${view.release?.version ?? '?'} replaced ${version} before its window ended` };
      }
      const left = view.release.windowEndsAt === null ? null : Math.max(0, Date.parse(view.release.windowEndsAt) - Date.parse(view.now));
      const failing = view.rules.filter((r) => r.outcome === 'fail').map((r) => r.rule);
      const paused = view.paused ? ', automation paused' : '';
      const rules = failing.length > 0 ? `failing: ${failing.join(', ')}` : 'no rule failing';
      return { done: false, progress: `guarding ${version}${left === null ? '' : `, ${Math.ceil(left / 1000)} s of the window left`}, ${rules}${paused}` };
    }
    case 'rolling_back':
    case 'verifying':
      return { done: false, progress: `${view.phase.replace('_', ' ')}: ${view.rollback?.from ?? version} -> ${view.rollback?.to ?? '?'} (${view.rollback?.reason ?? ''})` };
    case 'failed':
      return { done: true, code: WAIT_EXIT.rollbackFailed, message: `the rollback of ${version} FAILED: ${view.failure ?? 'see release-guard status'}; automation is frozen until release-guard resume` };
    case 'rolled_back':
    case 'promoted':
    case 'stable':
      if (rolledBackNow) return { done: true, code: WAIT_EXIT.rolledBack, message: `${version} was rolled back to ${last.to} (record ${last.id})` };
      if (view.stable === version && view.phase !== 'rolled_back') return { done: true, code: WAIT_EXIT.promoted, message: `${version} promoted` };
      return { done: true, code: WAIT_EXIT.noVerdict, message: `the window of ${version} ended without a verdict: ${view.running ?? 'nothing'} runs, ${view.stable ?? 'nothing'} is stable` };
  }
}
