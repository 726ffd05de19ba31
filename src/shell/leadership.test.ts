import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../log.js';
import type { StateStore } from '../store/state-store.js';
import { FakeClock } from '../../test/helpers/guard-fakes.js';
import { Leadership } from './leadership.js';

const log = createLogger({ level: 'error', format: 'json', stream: new PassThrough() });

/** A lease store whose renewals answer at once, or hang until let go. */
function leaseStore() {
  let hanging: ((renewed: boolean) => void) | null = null;
  const store = {
    hang: false,
    acquireLease: async () => ({ token: 1, holder: 'this guard' }),
    renewLease: () => (store.hang ? new Promise<boolean>((resolve) => (hanging = resolve)) : Promise.resolve(true)),
    releaseLease: async () => undefined,
    letGo: () => hanging?.(false),
  };
  return store;
}

describe('Leadership on the guard clock', () => {
  it('a renewal that hangs ends the leadership when the lease runs out on the clock (ttl minus the margin), not before', async () => {
    const clock = new FakeClock(0);
    const store = leaseStore();
    const leadership = new Leadership(store as unknown as StateStore, { ttlMs: 3000, clock, log, hostId: 'web' });
    expect(await leadership.tryAcquire()).toBe(true);
    const lost: string[] = [];
    leadership.run({ gained: async () => undefined, lost: (why) => lost.push(why), storeAnswered: () => undefined });
    // Renewed at 1 s and 2 s; the renewal at 3 s hangs, so the lease renewed at 2 s runs out at 2 s + 3 s - 300 ms.
    await clock.advance(2500);
    store.hang = true;
    await clock.advance(2199);
    expect(lost).toEqual([]);
    expect(leadership.isLeader).toBe(true);
    await clock.advance(1);
    expect(lost).toEqual(['it could not be renewed in time']);
    expect(leadership.signal.aborted).toBe(true);
    store.letGo();
    await leadership.stop({ release: false });
  });
});
