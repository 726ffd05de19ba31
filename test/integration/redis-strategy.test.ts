/**
 * The redis strategy against a real Redis of this file's own (startRedis: its dir is a temp dir
 * Redis can write to, so BGSAVE works; `save ""` only turns off automatic saves), with a password
 * so the credentials path is exercised too.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { strategySchema, type RedisStrategyConfig } from '../../src/config/schema.js';
import { freePort } from '../fixtures/demo-app/releases.js';
import { ProcessRunner } from '../../src/shell/process-runner.js';
import { createStrategy } from '../../src/strategies/index.js';
import { REDIS_RDB_COPY, REDIS_SNAPSHOT_FILE, type RedisSnapshotRecord } from '../../src/strategies/redis-snapshot.js';
import type { ReleaseContext, RollbackContext, RollbackStrategy } from '../../src/strategies/types.js';
import type { Pm2Client } from '../../src/pm2/client.js';
import { startRedis, type RedisInfo, type RunningService } from '../helpers/services.js';
import { systemClock } from '../../src/shell/clock.js';

const PASSWORD_ENV = 'RG_TEST_REDIS_STRATEGY_PASSWORD';

describe('redis strategy (real Redis)', () => {
  let server: RunningService<RedisInfo>;
  let admin: Redis;
  let password: string;
  let dataDir: string;
  let progress: string[];

  // The redis strategy needs neither pm2 nor external programs.
  const deps = { pm2: {} as Pm2Client, run: new ProcessRunner(), clock: systemClock };

  const strategyOf = (input: Partial<Record<keyof RedisStrategyConfig, unknown>> = {}): Promise<RollbackStrategy> => {
    const config = strategySchema.parse({ type: 'redis', host: '127.0.0.1', port: server.port, password_env: PASSWORD_ENV, timeout: '30s', ...input });
    return createStrategy(config, deps);
  };
  const releaseContext = (): ReleaseContext => ({
    service: 'shop',
    version: 'v2',
    previous: 'v1',
    signal: new AbortController().signal,
    progress: (message) => progress.push(message),
    dataDir,
  });
  const rollbackContext = (): RollbackContext => ({
    service: 'shop',
    from: 'v2',
    to: 'v1',
    signal: new AbortController().signal,
    progress: (message) => progress.push(message),
    dataDir,
  });
  const record = async () => JSON.parse(await readFile(path.join(dataDir, REDIS_SNAPSHOT_FILE), 'utf8')) as RedisSnapshotRecord;

  beforeAll(async () => {
    password = `pw-${randomBytes(12).toString('hex')}`;
    server = await startRedis({ password });
    process.env[PASSWORD_ENV] = password;
    admin = new Redis({ host: '127.0.0.1', port: server.port, password });
    await admin.set('session:1', 'ada');
  });

  afterAll(async () => {
    delete process.env[PASSWORD_ENV];
    admin?.disconnect();
    await server?.stop();
  });

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'rg-redis-step-'));
    progress = [];
  });

  afterEach(async () => {
    try {
      expect(progress.join('\n')).not.toContain(password);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('prepare: BGSAVE advances LASTSAVE, dump.rdb is written and copied, redis.json records it; check passes; execute reports it', async () => {
    const before = await admin.lastsave();
    await admin.set('cart:42', 'three items');
    const strategy = await strategyOf();
    await strategy.prepare!(releaseContext());

    const after = await admin.lastsave();
    expect(after).toBeGreaterThan(before);
    const rdb = path.join(server.dir, 'dump.rdb');
    const rdbBytes = (await stat(rdb)).size;
    expect(rdbBytes).toBeGreaterThan(0);
    expect(await record()).toEqual({
      version: 'v2',
      server: `127.0.0.1:${server.port}`,
      lastsave: after,
      takenAt: new Date(after * 1000).toISOString(),
      rdb,
      copy: path.join(dataDir, REDIS_RDB_COPY),
      copyBytes: rdbBytes,
    });
    // The copy survives Redis's later saves (which replace dump.rdb) and holds the data.
    expect((await readFile(path.join(dataDir, REDIS_RDB_COPY))).toString('latin1')).toContain('three items');
    expect(progress).toContain('BGSAVE: Background saving started');

    expect(await strategy.checkReadiness(rollbackContext())).toEqual([]);

    progress = [];
    await strategy.execute(rollbackContext());
    expect(progress).toEqual([
      expect.stringMatching(/^Redis is not restored automatically: restoring means stopping 127\.0\.0\.1:\d+, .*an operator's decision$/),
      `pre-release Redis snapshot: ${path.join(dataDir, REDIS_RDB_COPY)}, taken at ${new Date(after * 1000).toISOString()} (LASTSAVE ${after})`,
    ]);

    // A second prepare of the same release keeps the pre-release snapshot.
    progress = [];
    await strategy.prepare!(releaseContext());
    expect(progress).toEqual([`pre-release Redis snapshot for v2 already taken at ${new Date(after * 1000).toISOString()}; keeping it`]);
    expect(await admin.lastsave()).toBe(after);
  });

  it('waits for a BGSAVE already in progress, then takes its own', async () => {
    // Slow saves down (a debug setting: microseconds per key) so one is still running when prepare starts.
    const keys = Array.from({ length: 24 }, (_, i) => [`slow:${i}`, 'x']).flat();
    await admin.mset(...keys);
    await admin.config('SET', 'rdb-key-save-delay', '25000');
    try {
      // Start theirs in a later second than the last save, so its completion moves LASTSAVE.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect(await admin.bgsave()).toMatch(/started/i);
      const theirsStarted = await admin.lastsave();
      await (await strategyOf()).prepare!(releaseContext());

      expect(progress).toContain('a BGSAVE is already in progress; waiting for it, then taking ours');
      expect(progress).toContain('BGSAVE: Background saving started');
      const info = await admin.info('persistence');
      expect(info).toMatch(/rdb_bgsave_in_progress:0/);
      expect(info).toMatch(/rdb_last_bgsave_status:ok/);
      // Two saves completed: theirs, then ours, each moving LASTSAVE.
      expect((await record()).lastsave).toBeGreaterThanOrEqual(theirsStarted + 2);
      expect(Number(/rdb_saves:(\d+)/.exec(info)?.[1])).toBeGreaterThanOrEqual(2);
    } finally {
      await admin.config('SET', 'rdb-key-save-delay', '0');
      await admin.del(...keys.filter((_, i) => i % 2 === 0));
    }
  });

  it('without a snapshot: check lists it, execute warns and does not fail', async () => {
    const strategy = await strategyOf();
    expect(await strategy.checkReadiness(rollbackContext())).toEqual([
      `no pre-release Redis snapshot for v2 (${path.join(dataDir, REDIS_SNAPSHOT_FILE)} missing)`,
    ]);
    await strategy.execute(rollbackContext());
    expect(progress).toEqual([expect.stringMatching(/^warning: no pre-release Redis snapshot was taken for v2 .*there is no restore point for Redis$/)]);
  });

  it('check reports a Redis that does not answer or refuses the password, without showing it', async () => {
    const closed = await freePort();
    const down = await (await strategyOf({ port: closed })).checkReadiness(rollbackContext());
    expect(down[0]).toMatch(new RegExp(`^redis 127\\.0\\.0\\.1:${closed} does not answer PING: .*ECONNREFUSED`));

    const WRONG_ENV = 'RG_TEST_REDIS_STRATEGY_WRONG_PASSWORD';
    process.env[WRONG_ENV] = `${password}-wrong`;
    try {
      const refused = await (await strategyOf({ password_env: WRONG_ENV })).checkReadiness(rollbackContext());
      expect(refused[0]).toMatch(/does not answer PING: .*(WRONGPASS|invalid)/i);
      expect(refused.join('\n')).not.toContain(process.env[WRONG_ENV]);
      const failed = await (await strategyOf({ password_env: WRONG_ENV })).prepare!(releaseContext()).catch((e: unknown) => e);
      expect(String(failed)).toMatch(/WRONGPASS|invalid/i);
      expect(String(failed)).not.toContain(process.env[WRONG_ENV]);
    } finally {
      delete process.env[WRONG_ENV];
    }
  });
});
