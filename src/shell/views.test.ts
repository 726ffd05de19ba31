import { describe, expect, it } from 'vitest';
import type { ControlRequest } from '../api/types.js';
import { initialState } from '../core/transition.js';
import { controlEvent, historyView, statusView } from './views.js';

describe('views', () => {
  it.each<[ControlRequest, string]>([
    [{ action: 'release', version: 'v2', deployedBy: 'ci' }, 'releaseRequested'],
    [{ action: 'rollback', reason: 'x', by: 'ops' }, 'rollbackRequested'],
    [{ action: 'promote', by: 'ops' }, 'promoteRequested'],
    [{ action: 'veto', by: 'ops', reason: 'blip' }, 'vetoRequested'],
    [{ action: 'pause', by: 'ops' }, 'pauseRequested'],
    [{ action: 'resume', by: 'ops' }, 'resumeRequested'],
  ])('maps %j to a %s event', (request, type) => {
    expect(controlEvent(request, 42)).toMatchObject({ type, at: 42 });
  });

  it('history: candidates are the successful versions, newest first', () => {
    const state = {
      ...initialState(0),
      stable: 'v3',
      history: [
        { version: 'v1', at: 1, status: 'success' as const, deployedBy: 'ci' },
        { version: 'v2', at: 2, status: 'rolled_back' as const, deployedBy: 'ci' },
        { version: 'v3', at: 3, status: 'success' as const, deployedBy: 'ci' },
      ],
    };
    const view = historyView('web', state, { items: [], more: false });
    expect(view.candidates).toEqual(['v3', 'v1']);
    expect(view.deployments[1]).toMatchObject({ version: 'v2', status: 'rolled_back', at: '1970-01-01T00:00:00.002Z' });
  });

  it('status: the window end is shown only while guarding', () => {
    const release = { id: '1970-01-01T00-00-01-000Z_v2', version: 'v2', previous: 'v1', startedAt: 1000, deployedBy: 'ci', source: 'manual' as const };
    const guarding = statusView({ service: 'web', state: { ...initialState(0), phase: 'guarding', release }, windowMs: 60_000, verdicts: [], lastRecord: null, now: 2000 });
    expect(guarding.release?.windowEndsAt).toBe('1970-01-01T00:01:01.000Z');
    const promoted = statusView({ service: 'web', state: { ...initialState(0), phase: 'promoted', release }, windowMs: 60_000, verdicts: [], lastRecord: null, now: 2000 });
    expect(promoted.release?.windowEndsAt).toBeNull();
  });
});
