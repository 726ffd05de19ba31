/**
 * The one contract every StateStore keeps (STYLE.md §3.9), run on each store by its own test file
 * (gatus's initStoresAndBaseScenarios): round trips, atomic replacement, records and drills, the
 * lease, and — for stores several guards share — compare-and-set and fencing.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initialState } from '../../src/core/transition.js';
import type { GuardState, GuardStateBase, RollbackRecord } from '../../src/core/types.js';
import { newRelease } from '../../src/core/windows.js';
import type { StateStore } from '../../src/store/state-store.js';

export interface StoreFixture {
  /** A fresh, empty store. */
  store: StateStore;
  /**
   * Another handle on the same data, as a second guard would open it; given only by stores that
   * several guards share (their lease must exclude one another).
   */
  another?: () => Promise<StateStore>;
  cleanup(): Promise<void>;
}

export type StoreFactory = () => Promise<StoreFixture>;

const state = (patch: Partial<GuardStateBase> = {}) => ({ ...initialState(1000), stable: 'v1', running: 'v1', ...patch });

function record(id: string, finishedAt: number): RollbackRecord {
  return {
    id,
    from: 'v2',
    to: 'v1',
    release: { id: '1970-01-01T00-00-00-001Z_v2', version: 'v2', previous: 'v1', startedAt: 1, deployedBy: 'ci', source: 'detected' },
    breach: { trigger: 'rule', rules: ['health'], reason: 'health: 3 consecutive failures >= 3', verdicts: [], decidedAt: 2, faultAt: 1 },
    outcome: 'rolled_back',
    startedAt: 2,
    executedAt: 3,
    finishedAt,
    attempts: 1,
    steps: [{ index: 0, type: 'command', description: 'echo', startedAt: 2, finishedAt: 3, ok: true, output: [], attempt: 1 }],
    verification: { healthPasses: 3, checks: [] },
  };
}

const codeOf = (promise: Promise<unknown>) => promise.then(() => 'resolved', (error: { code?: string }) => error.code ?? String(error));

export function describeStateStore(name: string, factory: StoreFactory): void {
  describe(`StateStore contract: ${name}`, () => {
    let fixture: StoreFixture;
    let store: StateStore;
    beforeEach(async () => {
      fixture = await factory();
      store = fixture.store;
    });
    afterEach(() => fixture.cleanup());

    it('starts empty', async () => {
      expect(await store.loadState()).toBeNull();
      expect(await store.loadBaselines()).toEqual({});
      expect(await store.listRecords()).toEqual([]);
      expect(await store.readRecord('nope')).toBeNull();
    });

    it('round-trips the state; each save replaces the whole snapshot', async () => {
      const first = state({ history: [{ version: 'v1', at: 1, status: 'success', deployedBy: 'observed at start' }] });
      await store.saveState(first);
      expect(await store.loadState()).toEqual(first);
      const release = newRelease({ version: 'v2', previous: 'v1', startedAt: 2000, deployedBy: 'ci', source: 'manual' });
      const second: GuardState = { ...state({ running: 'v2', history: [] }), phase: 'guarding', release };
      await store.saveState(second);
      expect(await store.loadState()).toEqual(second);
    });

    it('round-trips baselines', async () => {
      const baselines = { v1: { health: { p95Ms: 12.5, samples: 40, at: 5 } } };
      await store.saveBaselines(baselines);
      expect(await store.loadBaselines()).toEqual(baselines);
    });

    it('writes records (JSON with extra fields, Markdown) and lists them oldest first', async () => {
      await store.writeRecord(record('2024-01-02T00-00-00-000Z_v3_to_v2', 20), '# second', { service: 'web' });
      const paths = await store.writeRecord(record('2024-01-01T00-00-00-000Z_v2_to_v1', 10), '# first', { service: 'web' }, '<svg/>');
      expect(paths.json).toBeTruthy();
      expect(paths.markdown).toBeTruthy();
      expect((await store.listRecords()).map((r) => [r.id, r.service])).toEqual([
        ['2024-01-01T00-00-00-000Z_v2_to_v1', 'web'],
        ['2024-01-02T00-00-00-000Z_v3_to_v2', 'web'],
      ]);
      const read = await store.readRecord('2024-01-01T00-00-00-000Z_v2_to_v1');
      expect(read?.markdown).toBe('# first');
      expect(read?.svg).toBe('<svg/>');
      expect((await store.readRecord('2024-01-02T00-00-00-000Z_v3_to_v2'))?.svg).toBeUndefined();
      expect(read?.json).toMatchObject({ from: 'v2', to: 'v1', outcome: 'rolled_back', steps: [{ attempt: 1 }] });
    });

    it('pages record summaries newest first from its index: limit, before, more', async () => {
      expect(await store.recordPage({ limit: 10 })).toEqual({ items: [], more: false });
      for (let i = 1; i <= 5; i++) await store.writeRecord(record(`2024-01-0${i}T00-00-00-000Z_r${i}`, i * 1000), `# ${i}`, { service: 'web', logs: ['x'.repeat(10_000)] });
      const first = await store.recordPage({ limit: 2 });
      expect(first.items.map((s) => s.id)).toEqual(['2024-01-05T00-00-00-000Z_r5', '2024-01-04T00-00-00-000Z_r4']);
      expect(first.more).toBe(true);
      // A summary is what the list shows, not the record (no steps, no logs).
      expect(first.items[0]).toEqual({ id: '2024-01-05T00-00-00-000Z_r5', from: 'v2', to: 'v1', outcome: 'rolled_back', finishedAt: 5000, reason: 'health: 3 consecutive failures >= 3' });
      const second = await store.recordPage({ limit: 2, before: first.items.at(-1)!.finishedAt });
      expect(second.items.map((s) => s.finishedAt)).toEqual([3000, 2000]);
      expect(second.more).toBe(true);
      const last = await store.recordPage({ limit: 2, before: 2000 });
      expect(last).toEqual({ items: [expect.objectContaining({ finishedAt: 1000 })], more: false });
      // Writing a record again (same id) does not list it twice.
      await store.writeRecord(record('2024-01-05T00-00-00-000Z_r5', 5000), '# 5 again', {});
      expect((await store.recordPage({ limit: 10 })).items).toHaveLength(5);
    });

    it('refuses record and drill ids that would escape their place', async () => {
      expect(await store.readRecord('../state')).toBeNull();
      await expect(store.writeRecord(record('../x', 1), '', {})).rejects.toThrow(/unsafe record id/);
      await expect(store.writeDrill('a/b', {}, '')).rejects.toThrow(/unsafe drill id/);
    });

    it('writes drills', async () => {
      expect(await store.latestDrill()).toBeNull();
      await store.writeDrill('2024-01-01T00-00-00-000Z_drill', { ok: false }, '# older drill');
      expect(await store.writeDrill('2024-01-02T00-00-00-000Z_drill', { ok: true }, '# drill')).toMatch(/2024-01-02T00-00-00-000Z_drill/);
      expect(await store.latestDrill()).toEqual({ ok: true });
    });

    it('has a lease: acquired, renewed, re-acquired by its holder with the same token, released', async () => {
      const lease = await store.acquireLease!(5000);
      expect(lease).not.toBeNull();
      expect(lease!.token).toBeGreaterThan(0);
      expect(await store.renewLease!(5000)).toBe(true);
      expect(await store.acquireLease!(5000)).toEqual(lease);
      expect((await store.leaseHolder!())?.holder).toBe(lease!.holder);
      // Writes go through while the lease is held.
      await store.saveState(state());
      await store.releaseLease!();
      const again = await store.acquireLease!(5000);
      expect(again!.token).toBeGreaterThanOrEqual(lease!.token);
    });

    describe('shared by several guards', () => {
      const other = () => {
        if (!fixture.another) return null;
        return fixture.another();
      };

      it('exactly one holds the lease; the other takes it when it is released, with a greater token', async (ctx) => {
        const b = await other();
        if (!b) return ctx.skip();
        const first = await store.acquireLease!(5000);
        expect(first).not.toBeNull();
        expect(await b.acquireLease!(5000)).toBeNull();
        expect(await b.renewLease!(5000)).toBe(false);
        expect((await b.leaseHolder!())?.token).toBe(first!.token);
        await store.releaseLease!();
        const second = await b.acquireLease!(5000);
        expect(second!.token).toBeGreaterThan(first!.token);
        expect(await store.acquireLease!(5000)).toBeNull();
      });

      it('the lease expires after its TTL when its holder stops renewing', async (ctx) => {
        const b = await other();
        if (!b) return ctx.skip();
        const first = await store.acquireLease!(300);
        expect(await b.acquireLease!(5000)).toBeNull();
        await new Promise((resolve) => setTimeout(resolve, 450));
        const second = await b.acquireLease!(5000);
        expect(second!.token).toBeGreaterThan(first!.token);
        expect(await store.renewLease!(5000)).toBe(false);
      });

      it('a deposed leader cannot write: its late state, baselines and records are refused', async (ctx) => {
        const b = await other();
        if (!b) return ctx.skip();
        await store.acquireLease!(300);
        await store.saveState(state({ running: 'v1' }));
        await new Promise((resolve) => setTimeout(resolve, 450));
        await b.acquireLease!(5000);
        await b.loadState();
        await b.saveState(state({ running: 'v2' }));
        // The old leader has not noticed yet and writes on.
        expect(await codeOf(store.saveState(state({ running: 'v3' })))).toBe('store_not_leader');
        expect(await codeOf(store.saveBaselines({ v3: {} }))).toBe('store_not_leader');
        expect(await codeOf(store.writeRecord(record('late', 1), '', {}))).toBe('store_not_leader');
        expect((await b.loadState())?.running).toBe('v2');
        expect(await b.listRecords()).toEqual([]);
      });

      it('a stale writer cannot overwrite a newer state (compare-and-set on the revision)', async (ctx) => {
        const b = await other();
        if (!b) return ctx.skip();
        await store.saveState(state({ running: 'v1' }));
        expect(await b.loadState()).toMatchObject({ running: 'v1' });
        await b.saveState(state({ running: 'v2' }));
        expect(await codeOf(store.saveState(state({ running: 'stale' })))).toBe('store_conflict');
        // Having read the newer state, it may write again.
        expect(await store.loadState()).toMatchObject({ running: 'v2' });
        await store.saveState(state({ running: 'v3' }));
        expect(await b.loadState()).toMatchObject({ running: 'v3' });
      });

      it('a state written under a lease is fenced: a writer without one cannot overwrite it', async (ctx) => {
        const b = await other();
        if (!b) return ctx.skip();
        await b.acquireLease!(5000);
        await b.saveState(state({ running: 'v2' }));
        await b.releaseLease!();
        await store.loadState();
        expect(await codeOf(store.saveState(state({ running: 'unfenced' })))).toBe('store_fenced');
        expect((await b.loadState())?.running).toBe('v2');
        // With the lease (a greater token) it may.
        await store.acquireLease!(5000);
        await store.saveState(state({ running: 'v3' }));
        expect((await b.loadState())?.running).toBe('v3');
      });

      it('while another holds the lease, a guard without it cannot write anything', async (ctx) => {
        const b = await other();
        if (!b) return ctx.skip();
        await b.acquireLease!(5000);
        expect(await codeOf(store.saveState(state()))).toBe('store_not_leader');
        expect(await codeOf(store.saveBaselines({}))).toBe('store_not_leader');
        expect(await b.loadState()).toBeNull();
      });
    });
  });
}
