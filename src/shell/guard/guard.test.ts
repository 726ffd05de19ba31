/**
 * The shell without services: a Guard wired to a fake clock, an in-memory store, a fake pm2 bus,
 * probes that read a scripted world and rollback steps that move it (test/helpers/guard-fakes.ts).
 * Whole release windows — detect, breach, roll back, verify, record, notify, drill — run in
 * simulated time; only the data directory (state_dir) is a real temp dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../config/load.js';
import { createLogger } from '../../log.js';
import { GuardMetrics } from '../../metrics.js';
import type { NotificationEvent } from '../../notify/types.js';
import { Guard } from '../guard.js';
import { FakeClock, FakePm2, healthProbe, MemoryFleet, MemoryStore, worldStep, type World } from '../../../test/helpers/guard-fakes.js';

const T0 = Date.UTC(2026, 11, 7, 6, 0, 0);

interface Rig {
  guard: Guard;
  clock: FakeClock;
  store: MemoryStore;
  pm2: FakePm2;
  world: World;
  notes: NotificationEvent[];
  /** Every rollback step execution, in order. */
  steps: { from: string; to: string }[];
}

let stateDir: string;
let running: Guard[] = [];

beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'guard-unit-'));
});

afterEach(async () => {
  await Promise.all(running.map((g) => g.stop()));
  running = [];
  rmSync(stateDir, { recursive: true, force: true });
});

function rig(options: { stepFails?: (to: string) => boolean; fleet?: MemoryFleet } = {}): Rig {
  const config = validateConfig({
    service: 'web',
    environment: 'staging',
    state_dir: stateDir,
    probes: [{ name: 'health', type: 'http', url: 'http://127.0.0.1:1/health', version_path: 'version' }],
    release: { version_probe: 'health', window: '1m' },
    rules: { health: { probe: 'health' } },
    // The step's deadline runs on the fake clock, which moves on while runPlan creates the step's
    // data dir on the real disk: a long one keeps a slow disk from timing the fake step out.
    rollback: { steps: [{ type: 'pm2', pm2_app: 'web', timeout: '1h' }] },
    verification: { probe: 'health', passes: 3 },
    pm2: { app: 'web' },
  });
  const clock = new FakeClock(T0);
  const store = new MemoryStore();
  const pm2 = new FakePm2();
  const world: World = { version: 'v1', healthy: true };
  const notes: NotificationEvent[] = [];
  const steps: { from: string; to: string }[] = [];
  const guard = new Guard({
    config,
    store,
    clock,
    log: createLogger({ level: 'error', format: 'json', stream: new PassThrough() }),
    metrics: new GuardMetrics(),
    probes: [healthProbe('health', world, clock)],
    plan: [worldStep(config.rollback.steps[0]!, world, steps, options.stepFails)],
    pm2: pm2.asClient(),
    notify: (event) => notes.push(event),
    ...(options.fleet ? { fleet: options.fleet } : {}),
  });
  running.push(guard);
  return { guard, clock, store, pm2, world, notes, steps };
}

/** v1 becomes known good, then v2 is deployed and its window opens. */
async function deployV2(r: Rig): Promise<void> {
  await r.guard.start();
  await r.clock.until('v1 known good', () => r.guard.current.stable === 'v1');
  r.world.version = 'v2';
  await r.clock.until('the window of v2', () => r.guard.current.phase === 'guarding');
}

/** v2 is promoted after a clean window, then a drill runs v2 -> v1 -> v2 while time moves. */
async function drillAfterPromotion(r: Rig): ReturnType<Guard['drill']> {
  await deployV2(r);
  await r.clock.until('v2 promoted', () => r.guard.current.stable === 'v2', 120_000);
  let result: Awaited<ReturnType<Guard['drill']>> | undefined;
  void r.guard.drill('ops').then((x) => (result = x));
  await r.clock.until('the drill', () => result !== undefined);
  return result!;
}

const kinds = (r: Rig) => r.notes.map((n) => `${n.severity} ${n.kind}`);

describe('Guard (fake clock, in-memory store, pm2 and steps): rollbacks', () => {
  it('a release that breaks is detected, rolled back, verified, recorded and announced', async () => {
    const r = rig();
    await deployV2(r);
    expect(r.guard.current.release).toMatchObject({ version: 'v2', previous: 'v1', source: 'detected' });
    const opened = r.clock.now();

    r.world.healthy = false;
    await r.clock.until('back to stable', () => r.guard.current.phase === 'stable' && r.guard.current.running === 'v1');

    expect(r.steps).toEqual([{ from: 'v2', to: 'v1' }]);
    // Three failing fast checks (250 ms apart) are the breach: decided within seconds of simulated time.
    const rollback = r.store.saved.find((s) => s.phase === 'rolling_back')!.rollback!;
    expect(rollback.breach).toMatchObject({ trigger: 'rule', rules: ['health'] });
    expect(rollback.breach.decidedAt - opened).toBeLessThan(5_000);
    // Every phase was persisted, in order, before its effects ran.
    const phases = r.store.saved.map((s) => s.phase).filter((p, i, all) => p !== all[i - 1]);
    expect(phases).toEqual(['stable', 'guarding', 'rolling_back', 'verifying', 'rolled_back', 'stable']);
    // The record, with the app's log tail from pm2 and the timeline picture.
    await r.clock.until('the record', () => r.store.records.size === 1);
    const [record] = [...r.store.records.values()];
    expect(record!.json).toMatchObject({ from: 'v2', to: 'v1', outcome: 'rolled_back', logs: ['web: Error: boom'] });
    expect(record!.svg).toContain('<svg');
    expect(r.pm2.tails).toEqual(['web']);
    expect(kinds(r)).toEqual(['info release_detected', 'warning rule_breached', 'critical rollback_started', 'warning rollback_finished']);
    expect(r.guard.status()).toMatchObject({ phase: 'stable', lastRollback: { outcome: 'rolled_back' } });
  });

  it('an unplanned exit on the pm2 bus inside the window rolls back at once, before any probe fails', async () => {
    const r = rig();
    await deployV2(r);
    r.pm2.emit({ app: 'web', pmId: 0, event: 'exit', manually: false, at: r.clock.now() });
    await r.clock.until('the rollback', () => r.steps.length === 1);
    expect(r.store.saved.find((s) => s.phase === 'rolling_back')!.rollback!.breach).toMatchObject({ trigger: 'crash' });
    // A manual restart is not a crash.
    r.pm2.emit({ app: 'web', pmId: 0, event: 'exit', manually: true, at: r.clock.now() });
    await r.clock.until('stable again', () => r.guard.current.phase === 'stable');
    expect(r.steps).toHaveLength(1);
  });

  it('a breach the store cannot keep is not acted on; once the store answers, the rollback runs', async () => {
    const r = rig();
    await deployV2(r);
    r.store.down = true;
    r.world.healthy = false;
    await r.clock.advance(5_000);
    expect(r.steps).toEqual([]);
    expect(r.guard.current.phase).toBe('guarding');
    expect(r.guard.status().store).toMatchObject({ up: false, error: expect.stringContaining('ECONNREFUSED') });
    r.store.down = false;
    // No time limit of note: the plan creates the step's data dir on the real disk first.
    await r.clock.until('the rollback', () => r.steps.length === 1);
    expect(r.guard.status().store).toMatchObject({ up: true, error: null });
  });

  it("another host's rollback of the release rolls it back here too, and this host says so on the board", async () => {
    const fleet = new MemoryFleet('host-a');
    const r = rig({ fleet });
    await deployV2(r);
    fleet.reportFor('host-b', 'v2', 'rolled_back', r.clock.now());
    await r.clock.until('the rollback', () => r.steps.length === 1);
    expect(r.store.saved.find((s) => s.phase === 'rolling_back')!.rollback!.breach).toMatchObject({ trigger: 'fleet', reason: expect.stringContaining('host-b') });
    await r.clock.until('stable again', () => r.guard.current.phase === 'stable');
    expect(fleet.verdicts.get('v2')?.['host-a']?.verdict).toBe('rolled_back');
  });

  it('a failed plan ends in failed, is recorded as failed, and a critical notification says so', async () => {
    const r = rig({ stepFails: () => true });
    await deployV2(r);
    r.world.healthy = false;
    await r.clock.until('failed', () => r.guard.current.phase === 'failed');
    await r.clock.until('the record', () => r.store.records.size === 1);
    expect([...r.store.records.values()][0]!.json).toMatchObject({ outcome: 'failed' });
    expect(r.notes.some((n) => n.severity === 'critical' && n.kind === 'rollback_failed')).toBe(true);
  });
});

describe('Guard (fake clock, in-memory store, pm2 and steps): drills', () => {
  it('a drill that passes is announced as passed, never as a critical failure', async () => {
    const r = rig();
    const result = await drillAfterPromotion(r);

    expect(result, JSON.stringify(result)).toMatchObject({ ok: true, record: { ok: true } });
    expect(r.steps).toEqual([{ from: 'v2', to: 'v1' }, { from: 'v1', to: 'v2' }]);
    const drillNotes = r.notes.filter((n) => n.kind === 'drill');
    expect(drillNotes.map((n) => [n.severity, n.message])).toEqual([
      ['info', 'rollback drill started by ops: v2 -> v1 -> v2'],
      ['info', 'rollback drill v2 -> v1 -> v2 passed'],
    ]);
    expect(r.store.drills.size).toBe(1);
    expect(r.guard.current.drill).toBeNull();
  });

  it('a drill whose way back fails is announced as a critical FAILED', async () => {
    const r = rig({ stepFails: (to) => to === 'v1' });
    const result = await drillAfterPromotion(r);

    expect(result).toMatchObject({ ok: true, record: { ok: false } });
    expect(r.notes.filter((n) => n.kind === 'drill').at(-1)).toMatchObject({ severity: 'critical', message: 'rollback drill v2 -> v1 -> v2 FAILED' });
  });
});
