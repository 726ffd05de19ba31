import { describe, expect, it } from 'vitest';
import { testPolicy } from '../../test/helpers/policy.js';
import { initialState, transition } from './transition.js';
import type { Effect, Event, GuardState, Policy, RuleVerdict } from './types.js';

const policy: Policy = testPolicy;
const fail: RuleVerdict = { rule: 'health', outcome: 'fail', observed: 3, threshold: 3, unit: 'failures', message: 'health: 3 consecutive failures >= 3', since: 5 };

const FLEET_WAIT_MS = 120_000;
const fleet: Policy = { ...policy, fleetWaitMs: FLEET_WAIT_MS };
const step = (state: GuardState, event: Event, p: Policy = fleet) => transition(state, event, p);
const guarding = () =>
  [
    { type: 'versionObserved', version: 'v1', at: 1 },
    { type: 'versionObserved', version: 'v2', at: 2 },
  ].reduce<GuardState>((s, e) => step(s, e as Event).state, initialState(0));
const verdicts = (effects: Effect[]) => effects.flatMap((e) => (e.type === 'fleetVerdict' ? [[e.version, e.verdict]] : []));
const windowEnd = 2 + fleet.windowMs;

describe('transition: fleets, waiting for every host', () => {
  it('reports guarding when a window opens, and nothing without a fleet', () => {
    const opened = step(step(initialState(0), { type: 'versionObserved', version: 'v1', at: 1 }).state, { type: 'versionObserved', version: 'v2', at: 2 });
    expect(verdicts(opened.effects)).toEqual([['v2', 'guarding']]);
    const alone = transition(transition(initialState(0), { type: 'versionObserved', version: 'v1', at: 1 }, policy).state, { type: 'versionObserved', version: 'v2', at: 2 }, policy);
    expect(verdicts(alone.effects)).toEqual([]);
  });

  it('a clean window waits for the fleet, still guarding, and promotes when every host ended clean', () => {
    const ended = step(guarding(), { type: 'tick', at: windowEnd });
    expect(ended.state).toMatchObject({ phase: 'guarding', stable: 'v1', fleetWait: { version: 'v2', since: windowEnd } });
    expect(verdicts(ended.effects)).toEqual([['v2', 'clean']]);
    // Later ticks inside the wait change nothing.
    expect(step(ended.state, { type: 'tick', at: windowEnd + 1000 }).state).toBe(ended.state);
    // A promotion signal for another version is ignored.
    expect(step(ended.state, { type: 'fleetCleared', version: 'v3', at: windowEnd + 1500 }).state).toBe(ended.state);
    const promoted = step(ended.state, { type: 'fleetCleared', version: 'v2', at: windowEnd + 2000 });
    expect(promoted.state).toMatchObject({ phase: 'promoted', stable: 'v2' });
    expect(promoted.state.fleetWait).toBeUndefined();
    expect(promoted.effects.find((e) => e.type === 'notify')).toMatchObject({ kind: 'promoted', message: expect.stringContaining('every host of the fleet') });
  });

  it('fleetCleared before this host ended its window does not promote', () => {
    const state = guarding();
    expect(step(state, { type: 'fleetCleared', version: 'v2', at: 10 }).state).toBe(state);
  });

  it('gives up after the fleet wait: not promoted, the previous version stays known-good, the others are told', () => {
    const waiting = step(guarding(), { type: 'tick', at: windowEnd }).state;
    const gaveUp = step(waiting, { type: 'tick', at: windowEnd + FLEET_WAIT_MS });
    expect(gaveUp.state).toMatchObject({ phase: 'stable', stable: 'v1', running: 'v2', release: null });
    expect(gaveUp.state.fleetWait).toBeUndefined();
    expect(verdicts(gaveUp.effects)).toEqual([['v2', 'not_promoted']]);
    expect(gaveUp.effects.find((e) => e.type === 'notify')).toMatchObject({ kind: 'fleet', severity: 'critical' });
  });
});

describe('transition: fleets, rolling back', () => {
  it('a breach while waiting for the fleet still rolls back, and tells the fleet', () => {
    const waiting = step(guarding(), { type: 'tick', at: windowEnd }).state;
    const rolled = step(waiting, { type: 'evaluated', verdicts: [fail], at: windowEnd + 10 });
    expect(rolled.state.phase).toBe('rolling_back');
    expect(rolled.state.fleetWait).toBeUndefined();
    expect(verdicts(rolled.effects)).toEqual([['v2', 'rolled_back']]);
  });

  it.each<[string, (s: GuardState) => GuardState]>([
    ['inside the window', (s) => s],
    ['while waiting for the fleet', (s) => step(s, { type: 'tick', at: windowEnd }).state],
  ])('another host rolled the release back: roll it back here too (%s)', (_name, prepare) => {
    const state = prepare(guarding());
    const t = step(state, { type: 'fleetRolledBack', version: 'v2', host: 'web-a', at: windowEnd + 5 });
    expect(t.state).toMatchObject({ phase: 'rolling_back', rollback: { from: 'v2', to: 'v1', breach: { trigger: 'fleet', reason: 'release v2 was rolled back on host web-a' } } });
    expect(t.state.autoRollbacks.map((r) => r.version)).toEqual(['v2']);
    expect(t.effects.filter((e) => e.type === 'rollback')).toHaveLength(1);
    expect(verdicts(t.effects)).toEqual([['v2', 'rolled_back']]);
  });

  it('a fleet rollback respects pause and the once-per-release limit', () => {
    const paused = step(guarding(), { type: 'pauseRequested', by: 'ops', at: 3 }).state;
    const t = step(paused, { type: 'fleetRolledBack', version: 'v2', host: 'web-a', at: 4 });
    expect(t.state.phase).toBe('guarding');
    expect(t.state.wouldRollBack?.trigger).toBe('fleet');
    expect(t.effects.filter((e) => e.type === 'rollback')).toHaveLength(0);
  });

  it('follows a fleet rollback after a window that was not promoted, or just promoted', () => {
    const waiting = step(guarding(), { type: 'tick', at: windowEnd }).state;
    const notPromoted = step(waiting, { type: 'tick', at: windowEnd + FLEET_WAIT_MS }).state;
    expect(step(notPromoted, { type: 'fleetRolledBack', version: 'v2', host: 'web-c', at: windowEnd + FLEET_WAIT_MS + 1 }).state).toMatchObject({
      phase: 'rolling_back',
      rollback: { from: 'v2', to: 'v1' },
    });
    const promoted = step(waiting, { type: 'fleetCleared', version: 'v2', at: windowEnd + 1 }).state;
    expect(step(promoted, { type: 'fleetRolledBack', version: 'v2', host: 'web-c', at: windowEnd + 2 }).state).toMatchObject({
      phase: 'rolling_back',
      rollback: { from: 'v2', to: 'v1' },
    });
  });

  it('never rolls back a settled known-good version, nor one that does not run here', () => {
    const waiting = step(guarding(), { type: 'tick', at: windowEnd }).state;
    const promoted = step(waiting, { type: 'fleetCleared', version: 'v2', at: windowEnd + 1 }).state;
    const settled = step(promoted, { type: 'tick', at: windowEnd + 1 + fleet.settleMs }).state;
    expect(settled).toMatchObject({ phase: 'stable', stable: 'v2', running: 'v2' });
    expect(step(settled, { type: 'fleetRolledBack', version: 'v2', host: 'web-c', at: windowEnd + 100_000 }).state).toBe(settled);
    expect(step(guarding(), { type: 'fleetRolledBack', version: 'v9', host: 'web-c', at: 10 }).effects).toEqual([]);
  });

  it('after a rollback here, later fleet news about the release changes nothing', () => {
    const rolling = step(guarding(), { type: 'fleetRolledBack', version: 'v2', host: 'web-a', at: 5 }).state;
    expect(step(rolling, { type: 'fleetRolledBack', version: 'v2', host: 'web-b', at: 6 }).state).toBe(rolling);
  });
});
