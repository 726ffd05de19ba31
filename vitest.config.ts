import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Throwaway MariaDB and Redis on free loopback ports (installed from Debian when missing),
    // stopped afterwards; Prometheus, pm2 and nginx are started by the tests that need them.
    globalSetup: ['./test/setup/services.ts'],
    // Integration tests start real pm2 daemons and app processes: give them room, and keep
    // the two cores from being oversubscribed.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
