import { describe, expect, it } from 'vitest';
import { testPolicy } from '../../test/helpers/policy.js';
import { parseStoredState } from '../store/state-schema.js';
import { ALLOWED_EDGES, failedVersions, initialState, transition } from './transition.js';
import type { Event, GuardState, Policy, RuleVerdict, Transition } from './types.js';

/**
 * Seeded random walks through the machine: whatever the events, every state it makes keeps the
 * invariants (legal edges, what each phase holds, the limits on automatic rollbacks) and is one
 * the stores load back.
 */
const policy: Policy = testPolicy;
const fail: RuleVerdict = { rule: 'health', outcome: 'fail', observed: 3, threshold: 3, unit: 'failures', message: 'health: 3 consecutive failures >= 3', since: 5 };
const pass: RuleVerdict = { ...fail, outcome: 'pass', observed: 0, message: 'health: 0 consecutive failures < 3' };
const check = { name: 'core-api', type: 'http', ok: true, detail: 'ok', durationMs: 3 };
const ROLLING = new Set(['rolling_back', 'verifying']);
const SEED = 42;

/** A small deterministic PRNG so a failure is reproducible from the seed. */
function seededRandom(seed: number) {
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = <T,>(items: readonly [T, ...T[]]) => items[Math.floor(random() * items.length)] ?? items[0];
  return { random, pick };
}
type Rng = ReturnType<typeof seededRandom>;

/** One random event at `at`. The order of the draws is part of the walk: keep it. */
function randomEvent({ random, pick }: Rng, state: GuardState, at: number): Event {
  // Bias towards the versions in play, so rollbacks get verified and suites run.
  const version = state.rollback && random() < 0.5 ? state.rollback.to : pick(['v1', 'v2', 'v3', 'v4']);
  const index = pick([0, 1, 2]);
  return pick<Event>([
    { type: 'versionObserved', version, at },
    { type: 'versionObserved', version, at },
    { type: 'releaseRequested', version, deployedBy: 'ci', at },
    { type: 'evaluated', verdicts: [pick([fail, pass])], at },
    { type: 'evaluated', verdicts: [fail], at },
    { type: 'crashed', detail: 'exit 1', at },
    { type: 'alertFiring', name: 'HighErrorRate', description: 'HighErrorRate{}', startsAt: at - 1, at },
    { type: 'alertResolved', name: 'HighErrorRate', description: 'HighErrorRate{}', at },
    { type: 'rollbackRequested', reason: 'by hand', by: 'ops', ...(random() < 0.5 ? { to: pick(['v1', 'v2', 'v3']) } : {}), at },
    { type: 'stepStarted', index, stepType: 'command', description: 'step', at },
    { type: 'stepFinished', index, ok: random() > 0.1, output: [], at },
    { type: 'rollbackExecuted', ok: random() > 0.2, at },
    { type: 'verifySample', ok: random() > 0.2, ...(random() < 0.9 ? { version } : {}), at },
    { type: 'verifySample', ok: true, version, at },
    { type: 'verificationFinished', ok: random() > 0.3, results: [check], at },
    { type: 'promoteRequested', by: 'ops', at },
    { type: 'pauseRequested', by: 'ops', at },
    { type: 'vetoRequested', by: 'ops', reason: 'x', at },
    { type: 'resumeRequested', by: 'ops', at },
    { type: 'drillStarted', by: 'ops', at },
    { type: 'drillFinished', ok: random() > 0.5, at },
    { type: 'daemonStarted', at },
    { type: 'tick', at },
    { type: 'tick', at },
  ]);
}

/** What one walk remembers to check the limits on automatic rollbacks, and that each record is written once. */
interface WalkLedger {
  autoByVersion: Map<string, number>;
  autoDecided: number[];
  lastAutoFinished: number;
  records: Set<string>;
}

const newLedger = (): WalkLedger => ({ autoByVersion: new Map(), autoDecided: [], lastAutoFinished: Number.NEGATIVE_INFINITY, records: new Set() });

/** The invariants on the state a step made, whatever its effects. */
function expectStateInvariants(before: GuardState, t: Transition, where: string): void {
  const { state } = t;
  // Every state the machine makes is one the stores load back (state-schema.ts), unchanged.
  if (state !== before) {
    const stored = JSON.parse(JSON.stringify(state)) as unknown;
    expect(parseStoredState(stored, 'state.json'), where).toEqual(stored);
  }
  // Every phase change is a legal edge.
  if (state.phase !== before.phase) expect(ALLOWED_EDGES[before.phase], where).toContain(state.phase);
  // A rejected request changes nothing.
  if (t.rejected) expect(t.state, where).toBe(before);
  // Shape of each phase.
  if (state.phase === 'guarding') expect(state.release, where).not.toBeNull();
  if (ROLLING.has(state.phase)) expect(state.rollback !== null && state.release !== null, where).toBe(true);
  if (state.phase === 'failed') expect(state.failure, where).toBeTruthy();
  if (state.pending) expect(state.phase, where).toBe('guarding');
  if (state.drill) expect(['stable', 'promoted', 'rolled_back'], where).toContain(state.phase);
  // While a drill runs, or while frozen, nothing but announcements happen.
  if (before.drill || before.phase === 'failed') {
    expect(t.effects.filter((e) => e.type !== 'notify'), where).toEqual([]);
  }
}

/** The invariants on a step's effects; returns how many automatic rollbacks it decided. */
function expectEffectInvariants(before: GuardState, event: Event, t: Transition, p: Policy, ledger: WalkLedger, where: string): number {
  const { state } = t;
  let automatic = 0;
  for (const effect of t.effects) {
    if (effect.type === 'writeRecord') {
      // A record is written once, when a rollback ends.
      expect(ledger.records.has(effect.record.id), where).toBe(false);
      ledger.records.add(effect.record.id);
      expect(ROLLING.has(before.phase) && (state.phase === 'rolled_back' || state.phase === 'failed'), where).toBe(true);
    }
    if (effect.type === 'verify') expect(p.verificationSuite && state.phase === 'verifying', where).toBe(true);
    if (effect.type !== 'rollback') continue;
    expect(effect.to, where).not.toBe(effect.from);
    expect(before.drill, where).toBeNull();
    expect(before.phase, where).not.toBe('failed');
    if (effect.attempt > 1) {
      // Only a restart resumes, and resuming is the same rollback, not a new decision.
      expect(event.type, where).toBe('daemonStarted');
      expect(state.autoRollbacks, where).toEqual(before.autoRollbacks);
      continue;
    }
    expect(failedVersions(before).has(effect.to), where).toBe(false);
    if (effect.breach.trigger === 'manual') {
      expect(event.type, where).toBe('rollbackRequested');
      continue;
    }
    // Automatic: inside a window, not paused, allowed, once per release, within the limits.
    automatic++;
    expect(p.automatic, where).toBe(true);
    expect(before.phase, where).toBe('guarding');
    expect(before.paused, where).toBe(false);
    expect(before.vetoed, where).not.toContain(effect.from);
    const count = (ledger.autoByVersion.get(effect.from) ?? 0) + 1;
    ledger.autoByVersion.set(effect.from, count);
    expect(count, where).toBe(1);
    const decided = effect.breach.decidedAt;
    expect(ledger.autoDecided.filter((d) => decided - d < 3_600_000).length, where).toBeLessThan(p.maxRollbacksPerHour);
    expect(decided - ledger.lastAutoFinished, where).toBeGreaterThanOrEqual(p.cooldownMs);
    ledger.autoDecided.push(decided);
    expect(state.autoRollbacks.length, where).toBeGreaterThan(0);
  }
  return automatic;
}

/** One walk of 80 random events from the initial state; returns how many automatic rollbacks it decided. */
function walk(rng: Rng, p: Policy, trial: number): number {
  let state: GuardState = initialState(0);
  let at = 0;
  let automatic = 0;
  const ledger = newLedger();
  for (let step = 0; step < 80; step++) {
    at += 1 + Math.floor(rng.random() * 120_000);
    const event = randomEvent(rng, state, at);
    const before: GuardState = state;
    const t = transition(state, event, p);
    state = t.state;
    const where = `seed ${SEED}, trial ${trial}, step ${step}: ${before.phase} --${event.type}--> ${state.phase}`;

    expectStateInvariants(before, t, where);
    automatic += expectEffectInvariants(before, event, t, p, ledger, where);
    // An automatic rollback that ends starts the cooldown.
    if (ROLLING.has(before.phase) && !ROLLING.has(state.phase) && before.rollback?.breach.trigger !== 'manual') ledger.lastAutoFinished = at;
    if (!t.effects.some((e) => e.type === 'rollback' && e.attempt === 1 && e.breach.trigger !== 'manual')) {
      expect(state.autoRollbacks.length, where).toBeLessThanOrEqual(before.autoRollbacks.length);
    }
  }
  return automatic;
}

describe('transition: random event sequences keep the invariants', () => {
  const policies: [string, Policy][] = [
    ['act at once, health only', policy],
    ['veto window', { ...policy, vetoMs: 90_000 }],
    ['verification suite', { ...policy, verificationSuite: true }],
    ['veto + suite + cooldown + tight limit', { ...policy, vetoMs: 30_000, verificationSuite: true, cooldownMs: 300_000, maxRollbacksPerHour: 1 }],
    ['automation off', { ...policy, automatic: false }],
  ];

  it.each(policies)('%s', (_name, p) => {
    const rng = seededRandom(SEED);
    let automatic = 0;
    for (let trial = 0; trial < 300; trial++) automatic += walk(rng, p, trial);
    // The sequences reach automatic rollbacks at all (or the policy forbids them).
    if (p.automatic) expect(automatic).toBeGreaterThan(10);
    else expect(automatic).toBe(0);
  });
});
