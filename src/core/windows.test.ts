import { describe, expect, it } from 'vitest';
import { testPolicy } from '../../test/helpers/policy.js';
import { initialState, transition } from './transition.js';
import type { GuardState, Policy } from './types.js';
import { closesWindow, rollbackWindowId, WINDOW_ID, windowId } from './windows.js';

const policy: Policy = testPolicy;

describe('release window ids', () => {
  it('are derived from the start time and the version, sort by age, and are safe file names', () => {
    const a = windowId(Date.parse('2026-01-24T10:00:00.123Z'), 'v2');
    const b = windowId(Date.parse('2026-01-24T10:00:01.000Z'), 'v1');
    expect(a).toBe('2026-01-24T10-00-00-123Z_v2');
    expect([b, a].sort()).toEqual([a, b]);
    // Only an older stored state can carry such a version; the id still stays a plain name.
    for (const version of ['../../etc', '--help', 'a/b', '..']) expect(windowId(0, version)).toMatch(WINDOW_ID);
  });

  it('a version deployed again gets a window of its own; a rollback by hand after the window uses the last one', () => {
    let state: GuardState = transition(initialState(0), { type: 'versionObserved', version: 'v1', at: 1 }, policy).state;
    state = transition(state, { type: 'releaseRequested', version: 'v2', deployedBy: 'ci', at: 1000 }, policy).state;
    const first = state.release?.id;
    state = transition(state, { type: 'rollbackRequested', reason: 'bad', by: 'ops', at: 2000 }, policy).state;
    expect(state.rollback).toMatchObject({ from: 'v2', to: 'v1' });
    state = transition(state, { type: 'rollbackExecuted', ok: true, at: 3000 }, policy).state;
    for (let i = 0; i < policy.verifyPasses; i++) state = transition(state, { type: 'verifySample', ok: true, version: 'v1', at: 4000 + i }, policy).state;
    expect(state.phase).toBe('rolled_back');
    const opened = transition(state, { type: 'releaseRequested', version: 'v2', deployedBy: 'ci', at: 60_000 }, policy);
    expect(closesWindow(state, opened.state)).toBe(true);
    expect(opened.state.release?.id).not.toBe(first);
    expect(opened.effects).toContainEqual({ type: 'prepareRelease', release: opened.state.release });
    // Promoted and settled: a rollback by hand of v2 acts on the data of v2's last window.
    let settled = transition(opened.state, { type: 'promoteRequested', by: 'ops', at: 70_000 }, policy).state;
    settled = transition(settled, { type: 'tick', at: 70_000 + policy.settleMs }, policy).state;
    expect(settled).toMatchObject({ phase: 'stable', release: null, lastWindow: { id: opened.state.release?.id, version: 'v2' } });
    expect(rollbackWindowId(settled, 'v2', 80_000)).toBe(opened.state.release?.id);
    const manual = transition(settled, { type: 'rollbackRequested', reason: 'late bug', by: 'ops', at: 80_000 }, policy).state;
    expect(manual.release?.id).toBe(opened.state.release?.id);
  });
});
