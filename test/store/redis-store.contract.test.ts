import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/store/redis-store.js';
import { initialState } from '../../src/core/transition.js';
import { redisConfig } from '../helpers/services.js';
import { describeStateStore } from './contract.js';

/** A store on the shared throwaway Redis under a prefix of its own; cleanup deletes its keys. */
async function openStores(hostId = 'h1') {
  const info = redisConfig();
  const keyPrefix = `rg-test:${randomBytes(6).toString('hex')}:`;
  const opened: RedisStore[] = [];
  const open = async () => {
    const store = await new RedisStore({ host: info.host, port: info.port, password: info.password, db: 0, keyPrefix, hostId }).open();
    opened.push(store);
    return store;
  };
  const cleanup = async () => {
    const admin = new Redis({ host: info.host, port: info.port, ...(info.password ? { password: info.password } : {}) });
    const keys = await admin.keys(`${keyPrefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
    await Promise.all(opened.map((s) => s.close()));
  };
  return { open, cleanup, keyPrefix };
}

describeStateStore('redis', async () => {
  const { open, cleanup } = await openStores();
  return { store: await open(), another: open, cleanup };
});

describe('RedisStore', () => {
  it('keeps one envelope per host under its prefix, with rev, fencing token and writer', async () => {
    const { open, cleanup, keyPrefix } = await openStores('web-1');
    try {
      const store = await open();
      const lease = await store.acquireLease(5000);
      await store.saveState({ ...initialState(1), stable: 'v1' });
      await store.saveState({ ...initialState(1), stable: 'v2' });
      expect(await store.stateMeta()).toMatchObject({ rev: 2, fence: lease!.token, holder: store.holder });
      const admin = new Redis({ host: redisConfig().host, port: redisConfig().port });
      expect((await admin.keys(`${keyPrefix}*`)).sort()).toEqual([
        `${keyPrefix}fleet:hosts`,
        `${keyPrefix}web-1:fence`,
        `${keyPrefix}web-1:lease`,
        `${keyPrefix}web-1:state`,
      ]);
      expect(await admin.pttl(`${keyPrefix}web-1:lease`)).toBeGreaterThan(4000);
      await admin.quit();
    } finally {
      await cleanup();
    }
  });

  it('after Redis lost its data, the leader re-syncs its state and the token stays ahead of it', async () => {
    const { open, cleanup, keyPrefix } = await openStores();
    try {
      const store = await open();
      await store.acquireLease(5000);
      await store.saveState({ ...initialState(1), stable: 'v1' });
      const admin = new Redis({ host: redisConfig().host, port: redisConfig().port });
      // Only the lease and the counter are lost: the next token must still be above the snapshot's.
      await admin.set(`${keyPrefix}h1:fence`, '0');
      await admin.del(`${keyPrefix}h1:lease`);
      const again = await store.acquireLease(5000);
      expect(again!.token).toBe(2);
      // Everything is lost: the state this guard kept is written back.
      await admin.del(`${keyPrefix}h1:state`);
      await store.saveState({ ...initialState(1), stable: 'v2' });
      expect((await store.loadState())?.stable).toBe('v2');
      await admin.quit();
    } finally {
      await cleanup();
    }
  });

  it('shares fleet verdicts; a host is live while a guard holds its lease', async () => {
    const a = await openStores('a');
    try {
      const storeA = await a.open();
      const storeB = await new RedisStore({ host: redisConfig().host, port: redisConfig().port, db: 0, keyPrefix: a.keyPrefix, hostId: 'b' }).open();
      try {
        await storeA.acquireLease(5000);
        await storeB.acquireLease(5000);
        await storeA.report('v2', 'guarding', 1);
        await storeB.report('v2', 'rolled_back', 2);
        await storeB.releaseLease();
        expect(await storeA.read('v2')).toEqual({
          verdicts: { a: { verdict: 'guarding', at: 1 }, b: { verdict: 'rolled_back', at: 2 } },
          live: ['a'],
        });
        // While another guard of host b holds its lease, this one cannot report for b.
        const otherB = await new RedisStore({ host: redisConfig().host, port: redisConfig().port, db: 0, keyPrefix: a.keyPrefix, hostId: 'b' }).open();
        await otherB.acquireLease(5000);
        await expect(storeB.report('v2', 'clean', 3)).rejects.toMatchObject({ code: 'store_not_leader' });
        await otherB.close();
      } finally {
        await storeB.close();
      }
    } finally {
      await a.cleanup();
    }
  });

  it('fails fast with a clear error when Redis cannot be reached', async () => {
    const store = new RedisStore({ host: '127.0.0.1', port: 1, db: 0, keyPrefix: 'x:', hostId: 'h' });
    await expect(store.open()).rejects.toThrow(/cannot reach the redis store 127\.0\.0\.1:1/);
  });
});
