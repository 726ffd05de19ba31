import { describe, expect, it } from 'vitest';
import { initialState } from '../core/transition.js';
import type { Breach, GuardState, Sample } from '../core/types.js';
import { liveWindowTimeline, thin } from './window-series.js';

const T = Date.parse('2026-01-01T12:00:00Z');
const release = { id: 'w1', version: 'v2', previous: 'v1', startedAt: T, deployedBy: 'ci', source: 'detected' as const };
const breach: Breach = { trigger: 'rule', rules: ['health'], reason: 'health: 3 consecutive failures >= 3', verdicts: [], decidedAt: T + 6000, faultAt: T + 4000 };
const rollback = { from: 'v2', to: 'v1', breach, startedAt: T + 6000, attempt: 1, steps: [], verifyPasses: 0 };

const check = (at: number, ok: boolean): Sample => ({ probe: 'health', startedAt: at, at: at + 5, ok, values: ok ? { latency_ms: 10 } : {} });
const samples = new Map([['health', Array.from({ length: 40 }, (_, i) => check(T - 5000 + i * 500, i < 18)) ]]);
const types = new Map([['health', 'http']]);

// Each case gives its phase with the fields that phase has (release, rollback), as the union requires.
const state = (patch: Partial<GuardState>): GuardState => ({ ...initialState(T - 60_000), stable: 'v1', running: 'v2', release, ...patch }) as GuardState;
const kinds = (s: GuardState, now: number) => liveWindowTimeline(s, samples, types, 'web', now).events.map((e) => [e.kind, e.label]);

describe('liveWindowTimeline', () => {
  it.each([
    ['guarding', state({ phase: 'guarding', since: T }), [['release', 'release v2']]],
    ['rolling back', state({ phase: 'rolling_back', since: T + 6000, rollback }), [['release', 'release v2'], ['breach', 'breach: health']]],
    ['verifying', state({ phase: 'verifying', since: T + 8000, rollback: { ...rollback, executedAt: T + 8000 } }), [['release', 'release v2'], ['breach', 'breach: health'], ['rollback', 'rolled back to v1, verifying']]],
    ['rolled back', state({ phase: 'rolled_back', since: T + 9000, rollback: { ...rollback, executedAt: T + 8000 } }), [['release', 'release v2'], ['breach', 'breach: health'], ['rollback', 'rolled back to v1, verifying'], ['verified', 'verified']]],
    ['failed', state({ phase: 'failed', since: T + 9000, rollback }), [['release', 'release v2'], ['breach', 'breach: health'], ['failed', 'failed']]],
    ['a pending rollback (veto window)', state({ phase: 'guarding', since: T, pending: { breach, to: 'v1', until: T + 16_000 } }), [['release', 'release v2'], ['breach', 'breach: health']]],
  ])('marks what happened so far: %s', (_name, s, expected) => {
    expect(kinds(s, T + 10_000)).toEqual(expected);
  });

  it('draws from just before the release to now, with the same series as the record', () => {
    const timeline = liveWindowTimeline(state({ phase: 'guarding', since: T }), samples, types, 'web', T + 12_000);
    expect([timeline.from, timeline.to]).toEqual([T - 10_000, T + 12_000]);
    expect(timeline.series.map((s) => s.name)).toEqual(['error ratio (checks)', 'latency (checks)', 'cpu', 'memory']);
    // Checks every 500 ms from T - 5 s, failing from T + 4 s: samples after `now` are not drawn.
    expect([timeline.series[0]!.points[0], timeline.series[0]!.points.at(-1)]).toEqual([[T - 5000, 0], [T + 12_000, 1]]);
    expect(timeline.title).toBe('web: window of v2 (guarding)');
  });

  it('shows the last five minutes when no release is under guard, and at most 15 minutes of an old one', () => {
    expect(liveWindowTimeline(state({ release: null }), samples, types, 'web', T).from).toBe(T - 300_000);
    expect(liveWindowTimeline(state({ phase: 'guarding' }), samples, types, 'web', T + 3_600_000).from).toBe(T + 3_600_000 - 900_000);
  });
});

describe('thin', () => {
  it('keeps short series as they are', () => {
    expect(thin([[1, 1], [2, 2]], 0, 10, 5)).toEqual([[1, 1], [2, 2]]);
  });

  it('keeps the largest value of each slice, so a spike survives', () => {
    const points: [number, number][] = Array.from({ length: 1000 }, (_, i) => [i, i === 537 ? 99 : 1]);
    const thinned = thin(points, 0, 1000, 100);
    expect(thinned).toHaveLength(100);
    expect(thinned).toContainEqual([537, 99]);
    expect(thinned.map(([t]) => t)).toEqual([...thinned.map(([t]) => t)].sort((a, b) => a - b));
  });
});
