/**
 * The throwaway MariaDB and Redis of the integration tests. The servers are started by
 * bench/services.ts (shared with the chaos scenarios); here, how a test reaches the two the
 * vitest globalSetup (test/setup/services.ts) started for the whole run.
 */
import { inject } from 'vitest';
import type { MysqlInfo, RedisInfo } from '../../bench/services.js';

export * from '../../bench/services.js';

/** The MariaDB started by the globalSetup (throws outside a run that registered it). */
export function mysqlConfig(): MysqlInfo {
  return inject('mysql');
}

/** The Redis started by the globalSetup (throws outside a run that registered it). */
export function redisConfig(): RedisInfo {
  return inject('redis');
}
