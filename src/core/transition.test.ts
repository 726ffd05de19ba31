import { describe, expect, it } from 'vitest';
import { testPolicy } from '../../test/helpers/policy.js';
import { finishedRollbackRecord, initialState, rollbackTarget, transition } from './transition.js';
import type { Effect, Event, GuardState, Phase, Policy, RuleVerdict, StateIn } from './types.js';

const policy: Policy = testPolicy;

const fail: RuleVerdict = { rule: 'health', outcome: 'fail', observed: 3, threshold: 3, unit: 'failures', message: 'health: 3 consecutive failures >= 3', since: 5 };
const pass: RuleVerdict = { ...fail, outcome: 'pass', observed: 0, message: 'health: 0 consecutive failures < 3' };

function run(events: Event[], start: GuardState = initialState(0)) {
  let state = start;
  const all = [];
  for (const e of events) {
    const t = transition(state, e, policy);
    state = t.state;
    all.push(t);
  }
  return { state, all };
}

/** The state, narrowed to `phase`; fails the test when the machine is elsewhere. */
function inPhase<P extends Phase>(state: GuardState, phase: P): StateIn<P> {
  if (state.phase !== phase) throw new Error(`expected phase ${phase}, got ${state.phase}`);
  return state as StateIn<P>;
}

const guardingV2 = () =>
  inPhase(
    run([
      { type: 'versionObserved', version: 'v1', at: 1 },
      { type: 'versionObserved', version: 'v2', at: 2 },
    ]).state,
    'guarding',
  );

describe('transition: windows and no-op events', () => {
  it('first version seen becomes stable and is recorded', () => {
    const { state } = run([{ type: 'versionObserved', version: 'v1', at: 1 }]);
    expect(state).toMatchObject({ phase: 'stable', stable: 'v1', running: 'v1' });
    expect(state.history).toEqual([{ version: 'v1', at: 1, status: 'success', deployedBy: 'observed at start' }]);
  });

  it('a version change opens a window with the previous stable version', () => {
    expect(guardingV2()).toMatchObject({ phase: 'guarding', release: { version: 'v2', previous: 'v1', source: 'detected' } });
  });

  it('the previous version answering during a rolling deploy is not a rollback; after the grace it is', () => {
    const grace = { ...policy, rolloutGraceMs: 30_000 };
    const state = guardingV2();
    expect(transition(state, { type: 'versionObserved', version: 'v1', at: 5_000 }, grace).state).toBe(state);
    const later = transition(state, { type: 'versionObserved', version: 'v1', at: 40_000 }, grace);
    expect(later.state).toMatchObject({ phase: 'stable', running: 'v1' });
    expect(later.state.history.at(-1)).toMatchObject({ version: 'v2', status: 'rolled_back', note: 'rolled back outside release-guard' });
  });

  it('returns the same object for no-op events so the shell persists only changes', () => {
    const state = guardingV2();
    expect(transition(state, { type: 'evaluated', verdicts: [pass], at: 3 }, policy).state).toBe(state);
    expect(transition(state, { type: 'tick', at: 3 }, policy).state).toBe(state);
  });

  it('an evaluation that changes nothing returns the identical state and no effects, whatever the readings', () => {
    const vetoPolicy = { ...policy, vetoMs: 60_000 };
    const blind: RuleVerdict = { rule: 'error_rate', outcome: 'inconclusive', observed: null, threshold: 0.05, unit: 'ratio', message: 'error_rate: 2 samples in window < min_samples 20' };
    // Same outcomes, new observed values and messages: what every sample of a long window brings.
    const failAgain: RuleVerdict = { ...fail, observed: 4, message: 'health: 4 consecutive failures >= 3', since: 6 };
    const passAgain: RuleVerdict = { ...pass, observed: 1, message: 'health: 1 consecutive failures < 3' };
    const blindAgain: RuleVerdict = { ...blind, message: 'error_rate: 7 samples in window < min_samples 20' };
    const same = (state: GuardState, verdicts: RuleVerdict[], p: Policy = policy) => {
      const t = transition(state, { type: 'evaluated', verdicts, at: 50_000 }, p);
      expect(t.state).toBe(state);
      expect(t.effects).toEqual([]);
    };
    const evaluated = (state: GuardState, verdicts: RuleVerdict[], p: Policy = policy) => transition(state, { type: 'evaluated', verdicts, at: 40_000 }, p).state;

    same(guardingV2(), [passAgain]);
    // A rule still blind, another still passing.
    same(evaluated(guardingV2(), [pass, blind]), [passAgain, blindAgain]);
    // Paused: the breach was reported once as "would roll back".
    const paused = transition(guardingV2(), { type: 'pauseRequested', by: 'ops', at: 3 }, policy).state;
    const would = evaluated(paused, [fail]);
    expect(would.wouldRollBack).not.toBeNull();
    same(would, [failAgain]);
    // A decided rollback waiting out its veto window.
    const pending = evaluated(guardingV2(), [fail], vetoPolicy);
    expect(pending.pending).not.toBeNull();
    same(pending, [failAgain], vetoPolicy);
    // Outside a window a breached rule that stays breached alerts once.
    const breached = evaluated(run([{ type: 'versionObserved', version: 'v1', at: 1 }]).state, [fail]);
    expect(breached).toMatchObject({ phase: 'stable', breached: ['health'] });
    same(breached, [failAgain]);
    // Rolling back: evaluations are not its business.
    same(evaluated(guardingV2(), [fail]), [failAgain, blind]);
  });
});

describe('transition: rollback targets and resumption', () => {
  it.each<[string, Event, string]>([
    ['manual release while rolling back', { type: 'releaseRequested', version: 'v3', deployedBy: 'ci', at: 10 }, 'rollback is in progress'],
    ['second rollback while rolling back', { type: 'rollbackRequested', reason: 'x', by: 'ops', at: 10 }, 'already in progress'],
    ['promote while rolling back', { type: 'promoteRequested', by: 'ops', at: 10 }, 'no release under guard'],
  ])('rejects %s', (_name, event, why) => {
    const rolling = transition(guardingV2(), { type: 'evaluated', verdicts: [fail], at: 5 }, policy).state;
    expect(rolling.phase).toBe('rolling_back');
    const t = transition(rolling, event, policy);
    expect(t.state).toBe(rolling);
    expect(t.rejected).toContain(why);
  });

  it('never targets a failed version, even when asked', () => {
    const { state } = run([
      { type: 'versionObserved', version: 'v1', at: 1 },
      { type: 'versionObserved', version: 'v2', at: 2 },
      { type: 'evaluated', verdicts: [fail], at: 3 },
      { type: 'rollbackExecuted', ok: true, at: 4 },
      { type: 'verifySample', ok: true, version: 'v1', at: 5 },
      { type: 'verifySample', ok: true, version: 'v1', at: 6 },
      { type: 'verifySample', ok: true, version: 'v1', at: 7 },
    ]);
    expect(state.phase).toBe('rolled_back');
    expect(rollbackTarget(state, 'v1', 'v2')).toBeNull();
    const refused = transition(state, { type: 'rollbackRequested', to: 'v2', reason: 'try', by: 'ops', at: 8 }, policy);
    expect(refused.rejected).toMatch(/recorded as failed/);
  });

  it('counts verification passes in launch order: a late failure of an earlier check cancels nothing after it', () => {
    let state = transition(guardingV2(), { type: 'evaluated', verdicts: [fail], at: 5 }, policy).state;
    state = transition(state, { type: 'rollbackExecuted', ok: true, at: 10 }, policy).state;
    const verify = (ok: boolean, startedAt: number, at: number) =>
      (state = transition(state, { type: 'verifySample', ok, version: 'v1', startedAt, at }, policy).state);
    // Launched at 10 into the replaced (hung) process, it fails at 60 — after two later-launched passes arrived.
    verify(true, 20, 21);
    verify(true, 30, 31);
    verify(false, 10, 60);
    expect(state).toMatchObject({ phase: 'verifying', rollback: { verifyPasses: 2 } });
    // A pass launched before the latest failure is stale evidence and is not counted.
    verify(false, 40, 62);
    expect(state.rollback?.verifyPasses).toBe(0);
    verify(true, 35, 63);
    expect(state.rollback?.verifyPasses).toBe(0);
    verify(true, 50, 64);
    verify(true, 55, 65);
    expect(state.phase).toBe('verifying');
    verify(true, 58, 66);
    expect(state.phase).toBe('rolled_back');
    expect(state.rollback?.verifyPasses).toBe(policy.verifyPasses);
  });

  it('a restarted daemon resumes an interrupted rollback, and gives up after maxAttempts', () => {
    let state = transition(guardingV2(), { type: 'evaluated', verdicts: [fail], at: 5 }, policy).state;
    const resumed = transition(state, { type: 'daemonStarted', at: 6 }, policy);
    expect(resumed.effects.filter((e) => e.type === 'rollback')).toMatchObject([{ from: 'v2', to: 'v1', attempt: 2 }]);
    state = resumed.state;
    state = transition(state, { type: 'daemonStarted', at: 7 }, policy).state;
    const gaveUp = transition(state, { type: 'daemonStarted', at: 8 }, policy);
    expect(gaveUp.state.phase).toBe('failed');
    expect(gaveUp.effects.filter((e) => e.type === 'rollback')).toHaveLength(0);
  });
});

describe('transition: rollback steps, verification suite and records', () => {
  it('persists each step; a resumed plan skips finished steps and re-runs the interrupted one', () => {
    let state = transition(guardingV2(), { type: 'evaluated', verdicts: [fail], at: 5 }, policy).state;
    for (const event of [
      { type: 'stepStarted', index: 0, stepType: 'config', description: 'restore .env', at: 6 },
      { type: 'stepFinished', index: 0, ok: true, output: ['restored .env'], at: 7 },
      { type: 'stepStarted', index: 1, stepType: 'releases', description: 'swap current', at: 8 },
    ] as Event[]) state = transition(state, event, policy).state;
    // The daemon dies here, in the middle of step 2.
    const resumed = transition(state, { type: 'daemonStarted', at: 20 }, policy);
    expect(resumed.effects.find((e) => e.type === 'rollback')).toMatchObject({ attempt: 2, fromStep: 1 });
    state = resumed.state;
    for (const event of [
      { type: 'stepStarted', index: 1, stepType: 'releases', description: 'swap current', at: 21 },
      { type: 'stepFinished', index: 1, ok: true, output: ['swapped'], at: 22 },
      { type: 'rollbackExecuted', ok: true, at: 22 },
      ...[23, 24, 25].map((at) => ({ type: 'verifySample', ok: true, version: 'v1', at })),
    ] as Event[]) state = transition(state, event, policy).state;
    expect(state.phase).toBe('rolled_back');
    expect(state.rollback?.steps.map((s) => [s.index, s.ok, s.attempt])).toEqual([[0, true, 1], [1, true, 2]]);
  });

  it('with a verification suite, health passes lead to the suite, and a failed check ends in failed', () => {
    const suitePolicy = { ...policy, verificationSuite: true };
    let state = transition(guardingV2(), { type: 'evaluated', verdicts: [fail], at: 5 }, suitePolicy).state;
    state = transition(state, { type: 'rollbackExecuted', ok: true, at: 6 }, suitePolicy).state;
    let effects: Effect[] = [];
    for (const at of [7, 8, 9]) ({ state, effects } = transition(state, { type: 'verifySample', ok: true, version: 'v1', at }, suitePolicy));
    expect(state.phase).toBe('verifying');
    expect(effects).toContainEqual(expect.objectContaining({ type: 'verify' }));
    const results = [{ name: 'admin requires a token', type: 'security', ok: false, detail: 'GET /admin without a token answered 200, expected 401 or 403', durationMs: 3 }];
    const end = transition(state, { type: 'verificationFinished', ok: false, results, at: 10 }, suitePolicy);
    expect(end.state.phase).toBe('failed');
    expect(end.state.failure).toMatch(/verification failed: admin requires a token: GET \/admin without a token answered 200/);
    expect(end.effects.find((e) => e.type === 'writeRecord')).toMatchObject({ record: { outcome: 'failed', verification: { checks: results } } });
  });

  it('rebuilds the record of a finished rollback from the persisted state alone (a crash may fall between state and record)', () => {
    let state = transition(guardingV2(), { type: 'evaluated', verdicts: [fail], at: 5 }, policy).state;
    expect(finishedRollbackRecord(state)).toBeNull();
    state = transition(state, { type: 'stepStarted', index: 0, stepType: 'command', description: 'purge', at: 6 }, policy).state;
    state = transition(state, { type: 'stepFinished', index: 0, ok: true, output: ['ok'], at: 7 }, policy).state;
    state = transition(state, { type: 'rollbackExecuted', ok: true, at: 8 }, policy).state;
    let last = transition(state, { type: 'verifySample', ok: true, version: 'v1', at: 9 }, policy);
    for (const at of [10, 11]) last = transition(last.state, { type: 'verifySample', ok: true, version: 'v1', at }, policy);
    expect(last.state.phase).toBe('rolled_back');
    const written = last.effects.find((e) => e.type === 'writeRecord');
    expect(written).toBeDefined();
    expect(finishedRollbackRecord(structuredClone(last.state))).toEqual(written?.type === 'writeRecord' ? written.record : null);

    const failed = transition(state, { type: 'tick', at: 8 + policy.verifyTimeoutMs }, policy);
    expect(failed.state.phase).toBe('failed');
    const failedRecord = failed.effects.find((e) => e.type === 'writeRecord');
    expect(finishedRollbackRecord(failed.state)).toEqual(failedRecord?.type === 'writeRecord' ? failedRecord.record : null);
    expect(finishedRollbackRecord(failed.state)).toMatchObject({ outcome: 'failed', failure: expect.stringMatching(/verification timed out/) });

    // Nothing is owed once the machine moved on, nor for a failure without a rollback.
    expect(finishedRollbackRecord(transition(last.state, { type: 'tick', at: 11 + policy.settleMs }, policy).state)).toBeNull();
    expect(finishedRollbackRecord(transition(failed.state, { type: 'resumeRequested', by: 'ops', at: 99_999 }, policy).state)).toBeNull();
  });
});

describe('transition: window end, veto and rate limit', () => {
  it('stale samples of the rolled-back version do not open a new window', () => {
    const { state } = run([
      { type: 'versionObserved', version: 'v1', at: 1 },
      { type: 'versionObserved', version: 'v2', at: 2 },
      { type: 'evaluated', verdicts: [fail], at: 3 },
      { type: 'rollbackExecuted', ok: true, at: 4 },
      ...[5, 6, 7].map((at): Event => ({ type: 'verifySample', ok: true, version: 'v1', at })),
      { type: 'versionObserved', version: 'v2', at: 8 },
    ]);
    expect(state.phase).toBe('rolled_back');
  });

  it('a window that ends with rules blind (no data) neither promotes nor rolls back', () => {
    const blind: RuleVerdict = { rule: 'error_rate', outcome: 'inconclusive', observed: null, threshold: 0.05, unit: 'ratio', message: 'error_rate: 0 traffic samples in window < min_samples 1' };
    let state = transition(guardingV2(), { type: 'evaluated', verdicts: [pass, blind], at: 3 }, policy).state;
    expect(state.blind).toEqual(['error_rate']);
    const end = transition(state, { type: 'tick', at: 2 + policy.windowMs }, policy);
    state = end.state;
    expect(state).toMatchObject({ phase: 'stable', stable: 'v1', running: 'v2' });
    expect(state.history.map((h) => h.version)).toEqual(['v1']);
    expect(end.effects).toContainEqual(expect.objectContaining({ kind: 'rule_blind', message: expect.stringMatching(/v2 not promoted: .*no data for error_rate/) }));
  });

  it('with a veto window, announces the rollback, acts when it ends, and a veto stops it for good', () => {
    const vetoPolicy = { ...policy, vetoMs: 60_000 };
    const decided = transition(guardingV2(), { type: 'evaluated', verdicts: [fail], at: 5 }, vetoPolicy);
    expect(decided.state).toMatchObject({ phase: 'guarding', pending: { to: 'v1', until: 60_005 } });
    expect(decided.effects).toContainEqual(expect.objectContaining({ kind: 'rollback_pending', message: expect.stringMatching(/in 60s unless vetoed/) }));
    expect(transition(decided.state, { type: 'tick', at: 30_000 }, vetoPolicy).state).toBe(decided.state);
    const acted = transition(decided.state, { type: 'tick', at: 60_005 }, vetoPolicy);
    expect(acted.state.phase).toBe('rolling_back');
    expect(acted.effects.filter((e) => e.type === 'rollback')).toHaveLength(1);

    const vetoed = transition(decided.state, { type: 'vetoRequested', by: 'alice', reason: 'known blip', at: 10_000 }, vetoPolicy);
    expect(vetoed.state).toMatchObject({ pending: null, vetoed: ['v2'] });
    const later = transition(vetoed.state, { type: 'evaluated', verdicts: [fail], at: 90_000 }, vetoPolicy);
    expect(later.effects.filter((e) => e.type === 'rollback')).toHaveLength(0);
    expect(transition(vetoed.state, { type: 'tick', at: 70_000 }, vetoPolicy).state.phase).toBe('guarding');
    expect(transition(guardingV2(), { type: 'vetoRequested', by: 'alice', reason: 'x', at: 1 }, vetoPolicy).rejected).toMatch(/no rollback is waiting/);
  });

  it('rate-limits automatic rollbacks per hour', () => {
    const state: GuardState = {
      ...guardingV2(),
      autoRollbacks: [1, 2, 3].map((n) => ({ version: `old${n}`, at: n })),
    };
    const t = transition(state, { type: 'evaluated', verdicts: [fail], at: 1000 }, policy);
    expect(t.state.phase).toBe('guarding');
    expect(t.effects).toContainEqual(expect.objectContaining({ kind: 'would_roll_back', message: expect.stringMatching(/rate limit/) }));
  });
});

describe('transition: Alertmanager alerts', () => {
  it('an Alertmanager alert begun inside the window is a breach of rule alert; one begun before, or outside a window, is only reported', () => {
    const state = guardingV2(); // release started at 2
    const firing = transition(state, { type: 'alertFiring', name: 'HighErrorRate', description: 'HighErrorRate{service="web"}', startsAt: 10, at: 20 }, policy);
    expect(firing.state).toMatchObject({ phase: 'rolling_back', rollback: { from: 'v2', to: 'v1', breach: { trigger: 'alert', rules: ['alert'], faultAt: 10 } } });
    expect(firing.state.rollback?.breach.verdicts).toEqual([expect.objectContaining({ rule: 'alert', outcome: 'fail', message: 'alert: HighErrorRate{service="web"} firing (Alertmanager)' })]);

    const before = transition(state, { type: 'alertFiring', name: 'DiskFull', description: 'DiskFull{}', startsAt: 1, at: 20 }, policy);
    expect(before.state).toBe(state);
    expect(before.effects).toEqual([expect.objectContaining({ kind: 'alert', severity: 'warning', message: expect.stringMatching(/since before release v2 began: not counted/) })]);

    const stable = run([{ type: 'versionObserved', version: 'v1', at: 1 }]).state;
    const outside = transition(stable, { type: 'alertFiring', name: 'HighErrorRate', description: 'HighErrorRate{}', startsAt: 5, at: 6 }, policy);
    expect(outside.state).toBe(stable);
    expect(outside.effects).toEqual([expect.objectContaining({ kind: 'alert', message: expect.stringMatching(/outside a release window \(reported only\)/) })]);
  });

  it('a resolved alert drops the breach it left waiting while paused, never a decided rollback', () => {
    const paused = { ...guardingV2(), paused: true };
    const waiting = transition(paused, { type: 'alertFiring', name: 'HighErrorRate', description: 'HighErrorRate{}', startsAt: 10, at: 20 }, policy).state;
    expect(waiting.wouldRollBack).toMatchObject({ trigger: 'alert' });
    expect(transition(waiting, { type: 'alertResolved', name: 'Other', description: 'Other{}', at: 30 }, policy).state).toBe(waiting);
    const resolved = transition(waiting, { type: 'alertResolved', name: 'HighErrorRate', description: 'HighErrorRate{}', at: 30 }, policy);
    expect(resolved.state).toMatchObject({ phase: 'guarding', wouldRollBack: null });

    const veto = { ...policy, vetoMs: 60_000 };
    const pending = transition(guardingV2(), { type: 'alertFiring', name: 'HighErrorRate', description: 'HighErrorRate{}', startsAt: 10, at: 20 }, veto).state;
    expect(pending.pending).not.toBeNull();
    expect(transition(pending, { type: 'alertResolved', name: 'HighErrorRate', description: 'HighErrorRate{}', at: 30 }, veto).state).toBe(pending);
  });
});

describe('transition: flap protection', () => {
  const MIN = 60_000;
  const cooldown = { ...policy, cooldownMs: 5 * MIN, maxRollbacksPerHour: 10 };
  /** Guarding v3 (previous v1) at `now`, after an automatic rollback of `old` decided at `at` and finished at `finishedAt`. */
  const after = (entry: GuardState['autoRollbacks'][number], now: number): GuardState => {
    const base = guardingV2();
    return {
      ...base,
      release: { ...base.release, version: 'v3', startedAt: now - 1000 },
      running: 'v3',
      since: now - 1000,
      autoRollbacks: [entry],
    };
  };
  const breachAt = (state: GuardState, at: number, p: Policy) => transition(state, { type: 'evaluated', verdicts: [fail], at }, p);

  it.each<[string, GuardState['autoRollbacks'][number], number, Policy, RegExp | null]>([
    ['within the cooldown after the previous one finished', { version: 'v2', at: 0, finishedAt: MIN }, 2 * MIN, cooldown, /cooldown: the automatic rollback of v2 finished 1m ago \(rollback.cooldown 5m\)/],
    ['just before the cooldown ends', { version: 'v2', at: 0, finishedAt: MIN }, 6 * MIN - 1, cooldown, /cooldown/],
    ['once the cooldown has passed', { version: 'v2', at: 0, finishedAt: MIN }, 6 * MIN, cooldown, null],
    ['counted from the finish, not the decision', { version: 'v2', at: 0, finishedAt: 10 * MIN }, 12 * MIN, cooldown, /cooldown: .*finished 2m ago/],
    ['a legacy entry without finishedAt counts from its decision', { version: 'v2', at: 0 }, 4 * MIN, cooldown, /cooldown/],
    ['a legacy entry past the cooldown', { version: 'v2', at: 0 }, 5 * MIN, cooldown, null],
    ['cooldown 0 disables it', { version: 'v2', at: 0, finishedAt: MIN }, MIN + 1, { ...cooldown, cooldownMs: 0 }, null],
    ['the hourly limit still applies after the cooldown', { version: 'v2', at: 0, finishedAt: MIN }, 7 * MIN, { ...cooldown, maxRollbacksPerHour: 1 }, /rate limit: 1 automatic rollbacks in the last hour/],
    ['the same release is never rolled back automatically twice', { version: 'v3', at: 0, finishedAt: MIN }, 30 * MIN, cooldown, /already rolled back automatically once/],
  ])('%s', (_name, entry, now, p, blocked) => {
    const t = breachAt(after(entry, now), now, p);
    if (blocked === null) {
      expect(t.state.phase).toBe('rolling_back');
      expect(t.effects.filter((e) => e.type === 'rollback')).toHaveLength(1);
    } else {
      expect(t.state.phase).toBe('guarding');
      expect(t.effects.filter((e) => e.type === 'rollback')).toHaveLength(0);
      expect(t.effects).toContainEqual(expect.objectContaining({ kind: 'would_roll_back', message: expect.stringMatching(blocked) }));
      expect(t.state.wouldRollBack).not.toBeNull();
    }
  });

  it('records when an automatic rollback finished (verified or failed); a manual one starts no cooldown', () => {
    let state = breachAt(guardingV2(), 5, cooldown).state;
    state = transition(state, { type: 'rollbackExecuted', ok: true, at: 10 }, cooldown).state;
    for (const at of [11, 12, 13]) state = transition(state, { type: 'verifySample', ok: true, version: 'v1', at }, cooldown).state;
    expect(state.phase).toBe('rolled_back');
    expect(state.autoRollbacks).toEqual([{ version: 'v2', at: 5, finishedAt: 13 }]);

    let failed = breachAt(guardingV2(), 5, cooldown).state;
    failed = transition(failed, { type: 'rollbackExecuted', ok: false, error: 'step 1 failed', at: 20 }, cooldown).state;
    expect(failed).toMatchObject({ phase: 'failed', autoRollbacks: [{ version: 'v2', at: 5, finishedAt: 20 }] });

    // A manual rollback: no autoRollbacks entry, so the next release is judged without a cooldown.
    let manual = transition(guardingV2(), { type: 'rollbackRequested', reason: 'ops', by: 'alice', at: 5 }, cooldown).state;
    manual = transition(manual, { type: 'rollbackExecuted', ok: true, at: 6 }, cooldown).state;
    for (const at of [7, 8, 9]) manual = transition(manual, { type: 'verifySample', ok: true, version: 'v1', at }, cooldown).state;
    expect(manual).toMatchObject({ phase: 'rolled_back', autoRollbacks: [] });
    const next = transition(manual, { type: 'versionObserved', version: 'v3', at: 10 }, cooldown).state;
    expect(breachAt(next, 11, cooldown).state.phase).toBe('rolling_back');
  });

  it('a release deployed again and again is rolled back once, then only reported (no flapping)', () => {
    let state: GuardState = guardingV2();
    let rollbacks = 0;
    let at = 10;
    for (let round = 0; round < 5; round++) {
      const t = breachAt(state, (at += 1000), cooldown);
      rollbacks += t.effects.filter((e) => e.type === 'rollback').length;
      state = t.state;
      if (state.phase === 'rolling_back') {
        state = transition(state, { type: 'rollbackExecuted', ok: true, at: (at += 1000) }, cooldown).state;
        for (let i = 0; i < 3; i++) state = transition(state, { type: 'verifySample', ok: true, version: 'v1', at: (at += 100) }, cooldown).state;
      }
      // The deploy pipeline puts v2 back.
      state = transition(state, { type: 'versionObserved', version: 'v2', at: (at += 60 * MIN) }, cooldown).state;
      if (state.phase === 'rolled_back') state = transition(state, { type: 'tick', at: (at += 60 * MIN) }, cooldown).state;
      state = transition(state, { type: 'versionObserved', version: 'v2', at: (at += 1000) }, cooldown).state;
    }
    expect(rollbacks).toBe(1);
  });
});
