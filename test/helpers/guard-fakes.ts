/**
 * In-memory stand-ins for what a Guard talks to, so the shell runs whole release windows in
 * milliseconds with no service: a clock that moves only when told, a state store in a Map, a pm2
 * bus the test emits on, probes that read a scripted world, and rollback steps that move it.
 */
import type { StrategyConfig } from '../../src/config/schema.js';
import type { FleetVerdict, GuardState, RollbackRecord, Sample } from '../../src/core/types.js';
import type { Pm2Client, Pm2ProcessEvent } from '../../src/pm2/client.js';
import type { Probe } from '../../src/probes/types.js';
import { summaryOf } from '../../src/records/history-page.js';
import type { Clock } from '../../src/shell/clock.js';
import type { PlanStep } from '../../src/shell/rollback-runner.js';
import type { Baselines, FleetBoard, StateStore } from '../../src/store/state-store.js';
import type { RollbackContext } from '../../src/strategies/types.js';

/** Lets every promise chain that is ready run (one macrotask turn drains the microtasks before it). */
export const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Time that moves only in advance(): each sleeper wakes at its own instant, in order, and what it
 * starts runs before time moves on (xstate's SimulatedClock idea).
 */
export class FakeClock implements Clock {
  private sleepers: { until: number; wake: () => void }[] = [];

  constructor(private time: number) {}

  now(): number {
    return this.time;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const sleeper = {
        until: this.time + Math.max(0, ms),
        wake: () => {
          this.sleepers = this.sleepers.filter((s) => s !== sleeper);
          signal?.removeEventListener('abort', sleeper.wake);
          resolve();
        },
      };
      this.sleepers.push(sleeper);
      signal?.addEventListener('abort', sleeper.wake, { once: true });
    });
  }

  /** Moves time forward by `ms`, waking each sleeper at its instant and letting it run. */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    for (;;) {
      await settle();
      const next = this.sleepers.reduce<{ until: number; wake: () => void } | null>((a, s) => (a === null || s.until < a.until ? s : a), null);
      if (next === null || next.until > target) break;
      this.time = Math.max(this.time, next.until);
      next.wake();
    }
    this.time = target;
    await settle();
  }

  /** Advances in `stepMs` steps until `done()` holds; fails after `maxMs` of simulated time. */
  async until(what: string, done: () => boolean, maxMs = 600_000, stepMs = 250): Promise<void> {
    for (let waited = 0; !done(); waited += stepMs) {
      if (waited >= maxMs) throw new Error(`${what}: not reached within ${maxMs} ms of simulated time`);
      await this.advance(stepMs);
    }
  }
}

/** The state store in memory: what a guard would have persisted, readable by the test. */
export class MemoryStore implements StateStore {
  state: GuardState | null = null;
  baselines: Baselines = {};
  readonly records = new Map<string, { json: RollbackRecord & Record<string, unknown>; markdown: string; svg?: string }>();
  readonly drills = new Map<string, { json: unknown; markdown: string }>();
  /** Every state saved, in order. */
  readonly saved: GuardState[] = [];
  /** While set, saving a state fails as an unreachable store would. */
  down = false;

  async loadState() {
    return this.state;
  }
  async saveState(state: GuardState) {
    if (this.down) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
    this.state = state;
    this.saved.push(state);
  }
  async loadBaselines() {
    return this.baselines;
  }
  async saveBaselines(baselines: Baselines) {
    this.baselines = baselines;
  }
  async writeRecord(record: RollbackRecord, markdown: string, extra: Record<string, unknown>, svg?: string) {
    this.records.set(record.id, { json: { ...record, ...extra }, markdown, ...(svg ? { svg } : {}) });
    return { json: `${record.id}.json`, markdown: `${record.id}.md` };
  }
  async listRecords() {
    return [...this.records.values()].map((r) => r.json);
  }
  async recordPage() {
    return { items: [...this.records.values()].map((r) => summaryOf(r.json)).reverse(), more: false };
  }
  async readRecord(id: string) {
    const r = this.records.get(id);
    return r ? { json: r.json, markdown: r.markdown } : null;
  }
  async writeDrill(id: string, json: unknown, markdown: string) {
    this.drills.set(id, { json, markdown });
    return `drills/${id}.md`;
  }

  async latestDrill() {
    return [...this.drills.values()].at(-1)?.json ?? null;
  }
}

/** The app as the probes see it: which version answers, and whether it answers well. */
export interface World {
  version: string;
  healthy: boolean;
}

/** An http health probe of the world: each sample comes back at once, taking no simulated time. */
export function healthProbe(name: string, world: World, clock: Clock): Probe {
  return {
    name,
    type: 'http',
    async sample(startedAt: number): Promise<Sample> {
      const ok = world.healthy;
      return { probe: name, startedAt, at: clock.now(), ok, values: { latency_ms: 5 }, version: world.version, ...(ok ? {} : { error: 'HTTP 500' }) };
    },
  };
}

/**
 * A rollback step that switches the world to the version it rolls to (healthy), recording each
 * call; `fails` makes it throw instead, for plans that fail.
 */
export function worldStep(config: StrategyConfig, world: World, calls: { from: string; to: string }[], fails: (to: string) => boolean = () => false): PlanStep {
  return {
    config,
    strategy: {
      type: config.type,
      describe: ({ from, to }) => `switch the world ${from} -> ${to}`,
      checkReadiness: async () => [],
      async execute(ctx: RollbackContext) {
        calls.push({ from: ctx.from, to: ctx.to });
        if (fails(ctx.to)) throw new Error(`cannot switch to ${ctx.to}`);
        world.version = ctx.to;
        world.healthy = true;
      },
    },
  };
}

/** A pm2 bus the test emits on, and a log tail to read; nothing else of pm2 is used by a guard. */
export class FakePm2 implements Pick<Pm2Client, 'connect' | 'onProcessEvent' | 'logTail'> {
  private listeners = new Set<(event: Pm2ProcessEvent) => void>();
  readonly tails: string[] = [];

  async connect() {}
  async onProcessEvent(listener: (event: Pm2ProcessEvent) => void) {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }
  async logTail(app: string) {
    this.tails.push(app);
    return [`${app}: Error: boom`];
  }
  emit(event: Pm2ProcessEvent) {
    for (const listener of this.listeners) listener(event);
  }
  /** As a Pm2Client: the guard calls only the methods above. */
  asClient(): Pm2Client {
    return this as unknown as Pm2Client;
  }
}

/** The fleet's shared verdicts in memory: the test writes other hosts' verdicts, the guard its own. */
export class MemoryFleet implements FleetBoard {
  readonly verdicts = new Map<string, Record<string, { verdict: FleetVerdict; at: number }>>();

  constructor(readonly hostId: string) {}

  async report(version: string, verdict: FleetVerdict, at: number) {
    this.verdicts.set(version, { ...this.verdicts.get(version), [this.hostId]: { verdict, at } });
  }
  /** Another host's verdict. */
  reportFor(host: string, version: string, verdict: FleetVerdict, at: number) {
    this.verdicts.set(version, { ...this.verdicts.get(version), [host]: { verdict, at } });
  }
  async read(version: string) {
    const verdicts = this.verdicts.get(version) ?? {};
    return { verdicts, live: Object.keys(verdicts) };
  }
}
