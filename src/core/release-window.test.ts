/**
 * Whole release windows through the pure core, with simulated time: probes produce samples from a
 * scenario, rules judge them, the machine decides. Ten minutes of window run in milliseconds.
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { observe, runningSinceAfter, type ObserveContext } from './observe.js';
import type { RuleMemo } from './rules.js';
import { windowLooks } from './sequential.js';
import { policyFrom, probeIntervalMs } from './schedule.js';
import { initialState, transition } from './transition.js';
import type { Effect, Event, GuardState, Sample } from './types.js';

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);

function config(overrides: Record<string, unknown> = {}): Config {
  return validateConfig({
    service: 'web',
    probes: [
      { name: 'health', type: 'http', url: 'http://127.0.0.1:3000/health', version_path: 'version', timeout: '1s' },
      { name: 'host', type: 'system' },
    ],
    release: { version_probe: 'health', window: '10m', initial_delay: '30s' },
    rules: {
      health: { probe: 'health' },
      error_rate: { probe: 'health', min_samples: 20 },
      latency_ratio: { probe: 'health' },
      latency_max: { probe: 'health', threshold: '2s' },
      cpu: { probe: 'host', for: '60s' },
      memory: { probe: 'host', for: '60s' },
    },
    rollback: { steps: [{ type: 'releases', dir: '/srv/web', pm2_app: 'web' }] },
    verification: { probe: 'health', passes: 3 },
    ...overrides,
  });
}

/** What the app looks like at a moment: health check result and latency, host load. */
interface World {
  version: string;
  ok: boolean;
  latencyMs: number;
  cpu: number;
  memory: number;
}

interface Run {
  state: GuardState;
  effects: Effect[];
  /** Phases in order of entry. */
  phases: string[];
}

/**
 * Drives the machine from `from` to `to` (ms after T0): launches probes on the machine's own
 * schedule, feeds results, evaluates rules, ticks, and answers rollback effects by switching the
 * world to the rollback target (`rollbackWorks` false: the plan fails).
 */
function simulate(
  cfg: Config,
  world: (t: number, rolledBackTo: string | null) => World,
  untilMs: number,
  opts: { start?: GuardState; rollbackWorks?: boolean; events?: [number, Event][] } = {},
): Run {
  const policy = policyFrom(cfg);
  let state = opts.start ?? initialState(T0);
  const effects: Effect[] = [];
  const phases: string[] = [state.phase];
  const memo: RuleMemo = new Map();
  const health: Sample[] = [];
  const host: Sample[] = [];
  const samples = new Map<string, Sample[]>([
    ['health', health],
    ['host', host],
  ]);
  let rolledBackTo: string | null = null;
  let runningSince = T0;
  const pending = [...(opts.events ?? [])];
  // The daemon's routing (core/observe.ts), with the daemon's baseline of the previous version.
  const ctx: ObserveContext = {
    rules: cfg.rules,
    versionProbe: cfg.release.version_probe,
    verificationProbe: cfg.verification.probe,
    initialDelayMs: cfg.release.initial_delay,
    probeTypes: new Map([['health', 'http'], ['host', 'system']]),
    looks: windowLooks({ windowMs: cfg.release.window, fastForMs: cfg.schedule.fast_for, fastIntervalMs: cfg.schedule.fast_interval, intervalMs: cfg.schedule.interval }),
  };
  const baselines = { v1: { health: { p95Ms: 20 } }, v2: { health: { p95Ms: 20 } } };
  const feed = (event: Event) => {
    const next = transition(state, event, policy);
    runningSince = runningSinceAfter(state, next.state, event.at, runningSince);
    if (next.state.phase !== state.phase) phases.push(next.state.phase);
    state = next.state;
    effects.push(...next.effects);
    for (const effect of next.effects) {
      if (effect.type === 'rollback') {
        if (opts.rollbackWorks === false) feed({ type: 'rollbackExecuted', ok: false, error: 'step 1 failed', at: event.at + 500 });
        else {
          rolledBackTo = effect.to;
          feed({ type: 'rollbackExecuted', ok: true, at: event.at + 500 });
        }
      }
    }
  };
  let nextProbe = T0;
  let nextHost = T0;
  for (let t = T0; t <= T0 + untilMs; t += 50) {
    for (let due = pending[0]; due !== undefined && T0 + due[0] <= t; due = pending[0]) {
      pending.shift();
      feed(due[1]);
    }
    const w = world(t - T0, rolledBackTo);
    if (t >= nextProbe) {
      const latency = w.ok ? w.latencyMs : 1000; // a failing probe here is a timeout
      const sample: Sample = {
        probe: 'health',
        startedAt: t,
        at: t + latency,
        ok: w.ok,
        values: { latency_ms: latency },
        version: w.version,
        ...(w.ok ? {} : { error: 'timeout after 1000ms' }),
      };
      health.push(sample);
      for (const event of observe(state, { type: 'sample', probe: 'health', sample }, ctx)) feed(event);
      nextProbe = t + probeIntervalMs(state, t, cfg.schedule, 'http', !w.ok);
    }
    if (t >= nextHost) {
      host.push({ probe: 'host', startedAt: t, at: t, ok: true, values: { cpu: w.cpu, memory: w.memory } });
      nextHost = t + 5000;
    }
    if (t % 250 === 0) {
      for (const event of observe(state, { type: 'evaluate', at: t, samples, baselines, runningSince, memo }, ctx)) feed(event);
      for (const event of observe(state, { type: 'tick', at: t }, ctx)) feed(event);
    }
  }
  return { state, effects, phases };
}

const healthy = (version: string): World => ({ version, ok: true, latencyMs: 20, cpu: 0.2, memory: 0.4 });

/** v1 runs until `deployAt`, then v2 with `fault` from `faultAt` on (both ms after T0). */
function release(fault: (w: World, sinceFault: number) => World, deployAt = 60_000, faultAt = 90_000) {
  return (t: number, rolledBackTo: string | null): World => {
    if (rolledBackTo) return healthy(rolledBackTo);
    if (t < deployAt) return healthy('v1');
    const w = healthy('v2');
    return t >= faultAt ? fault(w, t - faultAt) : w;
  };
}

const rollbacks = (run: Run) => run.effects.filter((e) => e.type === 'rollback');

describe('release windows: promotion and detection', () => {
  it('promotes a good release when the window ends', () => {
    const run = simulate(config(), release((w) => w), 60_000 + 10 * 60_000 + 1000);
    expect(run.phases).toEqual(['stable', 'guarding', 'promoted']);
    expect(run.state.stable).toBe('v2');
    expect(rollbacks(run)).toHaveLength(0);
    expect(run.state.history.map((h) => [h.version, h.status])).toEqual([
      ['v1', 'success'],
      ['v2', 'success'],
    ]);
  });

  it.each([
    ['5xx / failing health', (w: World) => ({ ...w, ok: false }), ['health']],
    ['latency 4x baseline', (w: World) => ({ ...w, latencyMs: 80 }), ['latency_ratio']],
    ['cpu sustained above 70%', (w: World) => ({ ...w, cpu: 0.95 }), ['cpu']],
    ['memory sustained above 80%', (w: World) => ({ ...w, memory: 0.9 }), ['memory']],
  ])('rolls back on %s and verifies the previous version', (_name, fault, rules) => {
    const run = simulate(config(), release(fault), 300_000);
    expect(run.phases).toEqual(['stable', 'guarding', 'rolling_back', 'verifying', 'rolled_back', 'stable']);
    const [rollback] = rollbacks(run);
    expect(rollback).toMatchObject({ from: 'v2', to: 'v1', breach: { trigger: 'rule' } });
    expect(rollback?.type === 'rollback' && rollback.breach.rules).toEqual(expect.arrayContaining(rules));
    expect(run.state.running).toBe('v1');
    expect(run.state.history.at(-1)).toMatchObject({ version: 'v2', status: 'rolled_back' });
    const record = run.effects.find((e) => e.type === 'writeRecord');
    expect(record).toMatchObject({ record: { from: 'v2', to: 'v1', outcome: 'rolled_back' } });
  });

  it('detects 3 consecutive health failures in the fast part of the window within 3 fast intervals', () => {
    const run = simulate(config(), release((w) => ({ ...w, ok: false })), 120_000);
    const [rollback] = rollbacks(run);
    if (rollback?.type !== 'rollback') throw new Error('expected a rollback');
    // Fault at 90 s; probes every 250 ms; three failures → decided by 90 s + 3 × 250 ms (+ eval step).
    expect(rollback.breach.decidedAt - (T0 + 90_000)).toBeLessThanOrEqual(1000);
    expect(rollback.breach.faultAt).toBe(T0 + 90_000);
  });

  it('later in the window, a failure streak is probed fast: a hang is judged in seconds, not 3 slow intervals', () => {
    // Fast probing ends 2 min into the window; the fault comes at 5 min, when checks run every 1 s.
    const run = simulate(config(), release((w) => ({ ...w, ok: false }), 60_000, 360_000), 400_000);
    const [rollback] = rollbacks(run);
    if (rollback?.type !== 'rollback') throw new Error('expected a rollback');
    // First failing check ≤ 1 s after the fault, then two more 250 ms apart (+ evaluation step).
    expect(rollback.breach.decidedAt - (T0 + 360_000)).toBeLessThanOrEqual(1_750);
  });

  it('rolls back at once on a crash of the new version', () => {
    const run = simulate(config(), release((w) => w), 120_000, {
      events: [[70_000, { type: 'crashed', detail: 'web exited with code 1', at: T0 + 70_000 }]],
    });
    const [rollback] = rollbacks(run);
    expect(rollback).toMatchObject({ breach: { trigger: 'crash', decidedAt: T0 + 70_000 } });
  });
});

describe('release windows: no false alarms, pauses, repeats and failed rollbacks', () => {
  it.each([
    ['a single failed probe', (w: World, s: number) => (s < 250 ? { ...w, ok: false } : w)],
    ['2x latency', (w: World) => ({ ...w, latencyMs: 40 })],
    ['a CPU spike inside the initial delay', (w: World, s: number) => (s < 20_000 ? { ...w, cpu: 1 } : w)],
    ['a short CPU spike after the delay', (w: World, s: number) => (s > 40_000 && s < 70_000 ? { ...w, cpu: 1 } : w)],
  ])('does not roll back on %s', (_name, fault) => {
    // deploy at 60 s, fault at 61 s, so the CPU spike of 20 s falls inside the 30 s initial delay.
    const run = simulate(config(), release(fault, 60_000, 61_000), 60_000 + 10 * 60_000 + 1000);
    expect(rollbacks(run).map((r) => r.type === 'rollback' && r.breach.reason)).toEqual([]);
    expect(run.phases).toEqual(['stable', 'guarding', 'promoted']);
  });

  it('when paused, reports "would roll back" and never acts', () => {
    const run = simulate(config(), release((w) => ({ ...w, ok: false })), 60_000 + 10 * 60_000 + 1000, {
      events: [[1000, { type: 'pauseRequested', by: 'ops', at: T0 + 1000 }]],
    });
    expect(rollbacks(run)).toHaveLength(0);
    const would = run.effects.filter((e) => e.type === 'notify' && e.kind === 'would_roll_back');
    expect(would).toHaveLength(1);
    // Not promoted: the window ended with a breach, so v2 is recorded failed and v1 stays stable.
    expect(run.state.stable).toBe('v1');
    expect(run.state.history.at(-1)).toMatchObject({ version: 'v2', status: 'failed' });
  });

  it('never rolls the same release back automatically twice', () => {
    const first = simulate(config(), release((w) => ({ ...w, ok: false })), 300_000);
    expect(rollbacks(first)).toHaveLength(1);
    // v2 is deployed again and breaks again: alert only.
    const again = simulate(
      config(),
      (t) => (t < 10_000 ? healthy('v1') : { ...healthy('v2'), ok: t < 20_000 }),
      120_000,
      { start: first.state },
    );
    expect(rollbacks(again)).toHaveLength(0);
    expect(again.effects.some((e) => e.type === 'notify' && e.kind === 'would_roll_back' && /already rolled back/.test(e.message))).toBe(true);
  });

  it('a fault after the window (long-stable version) only alerts', () => {
    const promoted = simulate(config(), release((w) => w), 60_000 + 11 * 60_000);
    expect(promoted.state.stable).toBe('v2');
    const late = simulate(config(), () => ({ ...healthy('v2'), ok: false }), 30_000, { start: promoted.state });
    expect(rollbacks(late)).toHaveLength(0);
    expect(late.effects.some((e) => e.type === 'notify' && e.kind === 'rule_breached')).toBe(true);
  });

  it('a failed rollback plan ends in failed, records it, and freezes until resume', () => {
    const run = simulate(config(), release((w) => ({ ...w, ok: false })), 200_000, { rollbackWorks: false });
    expect(run.phases).toEqual(['stable', 'guarding', 'rolling_back', 'failed']);
    expect(run.state.failure).toMatch(/step 1 failed/);
    expect(run.effects.find((e) => e.type === 'writeRecord')).toMatchObject({ record: { outcome: 'failed' } });
    const resumed = transition(run.state, { type: 'resumeRequested', by: 'ops', at: T0 + 300_000 }, policyFrom(config()));
    expect(resumed.state.phase).toBe('stable');
  });

  it('verification that never sees the previous version ends in failed', () => {
    const cfg = config();
    const stuck = (t: number): World => (t < 60_000 ? healthy('v1') : { ...healthy('v2'), ok: t < 90_000 });
    const run = simulate(cfg, stuck, 300_000);
    expect(run.phases).toEqual(['stable', 'guarding', 'rolling_back', 'verifying', 'failed']);
    expect(run.state.failure).toMatch(/verification timed out/);
  });
});
