/**
 * The schedule's pure decisions: which probes run fast, and how long an http check may take then.
 */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { FAST_TIMEOUT_FLOOR_MS, probesFast, probeTimeoutMs } from './schedule.js';
import { initialState } from './transition.js';
import type { GuardState } from './types.js';

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);

function schedule(extra: Record<string, unknown> = {}): Config['schedule'] {
  return validateConfig({
    service: 'web',
    probes: [{ name: 'health', type: 'http', url: 'http://127.0.0.1:3000/health', version_path: 'version' }],
    release: { version_probe: 'health' },
    rules: { health: { probe: 'health' } },
    rollback: { steps: [{ type: 'releases', dir: '/srv/web', pm2_app: 'web' }] },
    verification: { probe: 'health' },
    schedule: { fast_for: '2m', ...extra },
  }).schedule;
}

function guarding(startedAt: number): GuardState {
  return {
    ...initialState(T0),
    phase: 'guarding',
    running: 'v2',
    stable: 'v1',
    release: { version: 'v2', previous: 'v1', startedAt, source: 'detected' },
  } as GuardState;
}

describe('probesFast', () => {
  it('runs checks fast early in a window, during an open failure streak and while verifying, never host readings', () => {
    const s = schedule();
    expect(probesFast(guarding(T0), T0 + 10_000, s, 'http')).toBe(true);
    expect(probesFast(guarding(T0), T0 + 10_000, s, 'scrape')).toBe(true);
    expect(probesFast(guarding(T0), T0 + 10_000, s, 'system')).toBe(false);
    expect(probesFast(guarding(T0), T0 + 200_000, s, 'http')).toBe(false);
    expect(probesFast(guarding(T0), T0 + 200_000, s, 'http', true)).toBe(true);
    expect(probesFast({ ...guarding(T0), phase: 'verifying' } as GuardState, T0 + 200_000, s, 'http')).toBe(true);
    expect(probesFast(initialState(T0), T0, s, 'http', true)).toBe(false);
  });
});

describe('probeTimeoutMs', () => {
  it("keeps the probe's own timeout at the normal interval", () => {
    expect(probeTimeoutMs(2000, schedule(), false, 3)).toBe(2000);
    expect(probeTimeoutMs(2000, schedule({ fast_timeout: '300ms' }), false, 3)).toBe(2000);
  });

  it("auto: ten times the stable version's p99, at least the floor, at most the probe's timeout", () => {
    const s = schedule();
    expect(s.fast_timeout).toBe('auto');
    expect(probeTimeoutMs(2000, s, true, 3)).toBe(FAST_TIMEOUT_FLOOR_MS);
    expect(probeTimeoutMs(2000, s, true, 80)).toBe(800);
    expect(probeTimeoutMs(2000, s, true, 80.01)).toBe(801);
    expect(probeTimeoutMs(2000, s, true, 450)).toBe(2000);
    expect(probeTimeoutMs(300, s, true, 3)).toBe(300);
  });

  it("auto without a learnt p99 (a fresh guard, no stable checks yet) keeps the probe's timeout", () => {
    expect(probeTimeoutMs(2000, schedule(), true, null)).toBe(2000);
    expect(probeTimeoutMs(2000, schedule(), true, Number.NaN)).toBe(2000);
  });

  it("a fixed fast_timeout applies at the fast interval, capped by the probe's timeout", () => {
    expect(probeTimeoutMs(2000, schedule({ fast_timeout: '300ms' }), true, null)).toBe(300);
    expect(probeTimeoutMs(200, schedule({ fast_timeout: '300ms' }), true, 3)).toBe(200);
  });

  it('rejects a fast_timeout that is neither auto nor a duration, saying what is allowed', () => {
    expect(() => schedule({ fast_timeout: 'soon' })).toThrow(/fast_timeout/);
  });
});
