import { describe, expect, it } from 'vitest';
import { validateConfig } from '../config/load.js';
import { observe, runningSinceAfter, verdictsOf, type ObserveContext } from './observe.js';
import { initialState } from './transition.js';
import type { Breach, GuardState, RollbackInProgress, Sample } from './types.js';

const T0 = Date.UTC(2026, 11, 7, 6, 0, 0);

const ctx: ObserveContext = {
  rules: validateConfig({
    service: 'web',
    probes: [
      { name: 'health', type: 'http', url: 'http://127.0.0.1:3000/health', version_path: 'version' },
      { name: 'verify', type: 'http', url: 'http://127.0.0.1:3000/health', version_path: 'version' },
    ],
    release: { version_probe: 'health' },
    rules: { health: { probe: 'health' } },
    rollback: { steps: [{ type: 'pm2', pm2_app: 'web' }] },
    verification: { probe: 'verify' },
  }).rules,
  versionProbe: 'health',
  verificationProbe: 'verify',
  initialDelayMs: 30_000,
  probeTypes: new Map([['health', 'http'], ['verify', 'http'], ['host', 'system']]),
  looks: 1000,
};

const release = { id: 'w1', version: 'v2', previous: 'v1', startedAt: T0, deployedBy: 'ci', source: 'manual' as const };
const stable = { ...initialState(T0), running: 'v1', stable: 'v1' };
const guarding: GuardState = { ...stable, phase: 'guarding', release };
const breach: Breach = { trigger: 'rule', rules: ['health'], reason: 'health: 3 consecutive failures >= 3', verdicts: [], decidedAt: T0 + 5000, faultAt: T0 + 4000 };
const rollback: RollbackInProgress = { from: 'v2', to: 'v1', breach, startedAt: T0 + 5000, attempt: 1, steps: [], verifyPasses: 0, executedAt: T0 + 10_000 };
const verifying: GuardState = { ...stable, phase: 'verifying', since: T0 + 10_000, release, rollback };

const sample = (over: Partial<Sample> = {}): Sample => ({ probe: 'health', startedAt: T0 + 20_000, at: T0 + 20_050, ok: true, values: { latency_ms: 50 }, version: 'v1', ...over });

describe('observe: the sample routing', () => {
  it.each([
    ['a version sample reports the running version, at its launch', stable, 'health', sample(), [{ type: 'versionObserved', version: 'v1', at: T0 + 20_000 }]],
    ['a sample without a version reports nothing', stable, 'health', sample({ version: undefined }), []],
    ['another probe reports no version', stable, 'host', sample({ probe: 'host' }), []],
    ['the verification probe outside verifying proves nothing', guarding, 'verify', sample({ probe: 'verify' }), []],
    [
      'the verification probe while verifying is evidence, launched after the plan',
      verifying,
      'verify',
      sample({ probe: 'verify', ok: false, version: 'v2' }),
      [{ type: 'verifySample', ok: false, version: 'v2', at: T0 + 20_050, startedAt: T0 + 20_000 }],
    ],
    ['a verification sample launched before the plan ended is no evidence', verifying, 'verify', sample({ probe: 'verify', startedAt: T0 + 9_999 }), []],
  ])('%s', (_name, state, probe, s, events) => {
    expect(observe(state, { type: 'sample', probe, sample: s }, ctx)).toEqual(events);
  });

  it('a probe both reports the version and proves the rollback: version first', () => {
    const both = { ...ctx, verificationProbe: 'health' };
    expect(observe(verifying, { type: 'sample', probe: 'health', sample: sample() }, both).map((e) => e.type)).toEqual(['versionObserved', 'verifySample']);
  });

  it('a tick is a tick', () => {
    expect(observe(stable, { type: 'tick', at: T0 + 1 }, ctx)).toEqual([{ type: 'tick', at: T0 + 1 }]);
  });
});

describe('observe: what the rules judge', () => {
  const failing = (from: number, n: number) => Array.from({ length: n }, (_, i) => sample({ startedAt: from + i * 250, at: from + i * 250 + 10, ok: false, error: 'HTTP 500' }));
  const judge = (state: GuardState, list: Sample[], runningSince: number) =>
    verdictsOf(observe(state, { type: 'evaluate', at: T0 + 60_000, samples: new Map([['health', list]]), baselines: {}, runningSince }, ctx));

  it("inside a window, only the release's samples count", () => {
    expect(judge(guarding, failing(T0 - 10_000, 20), T0 - 60_000)[0]).toMatchObject({ rule: 'health', outcome: 'inconclusive' });
    expect(judge(guarding, failing(T0 + 1_000, 20), T0 - 60_000)[0]).toMatchObject({ rule: 'health', outcome: 'fail' });
  });

  it('outside a window, the samples since the running version last changed', () => {
    expect(judge(stable, failing(T0 + 1_000, 20), T0 + 10_000)[0]).toMatchObject({ outcome: 'inconclusive' });
    expect(judge(stable, failing(T0 + 1_000, 20), T0)[0]).toMatchObject({ outcome: 'fail' });
  });

  it('the running version changes, or a rollback enters verification: samples start afresh', () => {
    expect(runningSinceAfter(stable, { ...stable, running: 'v2' }, T0 + 5, T0)).toBe(T0 + 5);
    expect(runningSinceAfter(guarding, verifying, T0 + 5, T0)).toBe(T0 + 5);
    expect(runningSinceAfter(verifying, verifying, T0 + 5, T0)).toBe(T0);
    expect(runningSinceAfter(stable, guarding, T0 + 5, T0)).toBe(T0);
  });
});
