/**
 * vitest globalSetup: one throwaway MariaDB and one throwaway Redis for the whole run (see
 * test/helpers/services.ts), on free loopback ports, never the machine's own servers. Tests read
 * their connection info with `mysqlConfig()` / `redisConfig()` (or `inject('mysql' | 'redis')`).
 * The returned teardown stops both and removes their directories, whatever the test results.
 */
import type { TestProject } from 'vitest/node';
import {
  startMariaDb,
  startRedis,
  sweepStaleServiceDirs,
  type MysqlInfo,
  type RedisInfo,
  type RunningService,
} from '../helpers/services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    mysql: MysqlInfo;
    redis: RedisInfo;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await sweepStaleServiceDirs();
  const results = await Promise.allSettled([startMariaDb(), startRedis()]);
  const running = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value as RunningService<unknown>] : []));
  const stopAll = async () => {
    const stopped = await Promise.allSettled(running.map((service) => service.stop()));
    const failures = stopped.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (failures.length > 0) throw new AggregateError(failures, 'test services: teardown failed');
  };

  const [db, redis] = results;
  if (db.status === 'rejected' || redis.status === 'rejected') {
    // Do not leave the one that did start running behind a failed setup.
    await stopAll().catch(() => undefined);
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    throw failures.length === 1 ? failures[0] : new AggregateError(failures, 'test services: start-up failed');
  }

  project.provide('mysql', db.value.info);
  project.provide('redis', redis.value.info);
  process.stderr.write(
    `test services: MariaDB 127.0.0.1:${db.value.port} ready in ${Math.round(db.value.startupMs)}ms, ` +
      `Redis 127.0.0.1:${redis.value.port} in ${Math.round(redis.value.startupMs)}ms\n`,
  );
  return stopAll;
}
