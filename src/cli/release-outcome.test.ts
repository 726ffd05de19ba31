import { describe, expect, it } from 'vitest';
import type { StatusView } from '../api/types.js';
import { judgeWindow, WAIT_EXIT } from './release-outcome.js';

const SINCE = Date.parse('2026-12-07T10:00:00Z');
const at = (seconds: number) => new Date(SINCE + seconds * 1000).toISOString();

function view(over: Partial<StatusView>): StatusView {
  return {
    service: 'web', phase: 'stable', paused: false, since: at(0), stable: 'v1', running: 'v1', release: null, rollback: null,
    wouldRollBack: null, pendingRollback: null, failure: null, rules: [], lastRollback: null, now: at(1), ...over,
  };
}
const guarding = (version: string, over: Partial<StatusView> = {}) =>
  view({ phase: 'guarding', running: version, release: { version, previous: 'v1', startedAt: at(0), deployedBy: 'ci', source: 'manual', windowEndsAt: at(600) }, ...over });

describe('judgeWindow', () => {
  it('keeps waiting while the window runs, and says what it sees', () => {
    expect(judgeWindow(guarding('v2'), 'v2', SINCE)).toEqual({ done: false, progress: 'guarding v2, 599 s of the window left, no rule failing' });
    const failing = guarding('v2', { paused: true, rules: [{ rule: 'error_rate', outcome: 'fail', observed: 0.1, threshold: 0.05, unit: 'ratio', message: '' }] });
    expect(judgeWindow(failing, 'v2', SINCE)).toMatchObject({ done: false, progress: expect.stringMatching(/failing: error_rate, automation paused$/) });
    expect(judgeWindow(view({ phase: 'rolling_back', rollback: { from: 'v2', to: 'v1', reason: '5xx', trigger: 'rule', startedAt: at(5), attempt: 1 } }), 'v2', SINCE))
      .toEqual({ done: false, progress: 'rolling back: v2 -> v1 (5xx)' });
  });

  it('0 promoted, 1 rolled back in this window, 3 rollback failed', () => {
    expect(judgeWindow(view({ phase: 'promoted', stable: 'v2', running: 'v2' }), 'v2', SINCE)).toMatchObject({ done: true, code: WAIT_EXIT.promoted });
    // After the settle time the phase is back to stable: still promoted.
    expect(judgeWindow(view({ phase: 'stable', stable: 'v2', running: 'v2' }), 'v2', SINCE)).toMatchObject({ done: true, code: WAIT_EXIT.promoted });
    const record = { id: 'r1', from: 'v2', to: 'v1', outcome: 'rolled_back', finishedAt: at(30) };
    expect(judgeWindow(view({ phase: 'rolled_back', lastRollback: record }), 'v2', SINCE)).toEqual({ done: true, code: WAIT_EXIT.rolledBack, message: 'v2 was rolled back to v1 (record r1)' });
    expect(judgeWindow(view({ phase: 'failed', failure: 'verification failed: admin-auth' }), 'v2', SINCE)).toMatchObject({ done: true, code: WAIT_EXIT.rollbackFailed, message: expect.stringMatching(/FAILED: verification failed: admin-auth/) });
  });

  it('4 when the window ends without a verdict on this release; an older rollback of the same version does not count', () => {
    expect(judgeWindow(guarding('v3'), 'v2', SINCE)).toMatchObject({ done: true, code: WAIT_EXIT.noVerdict, message: 'release v3 replaced v2 before its window ended' });
    const old = { id: 'r0', from: 'v2', to: 'v1', outcome: 'rolled_back', finishedAt: at(-3600) };
    expect(judgeWindow(view({ phase: 'stable', lastRollback: old }), 'v2', SINCE)).toMatchObject({ done: true, code: WAIT_EXIT.noVerdict });
  });
});
