import { defineConfig } from 'vitest/config';

/** Tests under test/ that need no database, Redis or pm2: the calibration's simulation, the
 * generated config docs, the file store's contract. */
const UNIT_UNDER_TEST_DIR = ['test/bench/calibrate.test.ts', 'test/ops/config-docs.test.ts', 'test/store/file-store.contract.test.ts'];
/** Tests beside the code they test, and the bench's pure parts. */
const UNIT = ['src/**/*.test.ts', 'bench/**/*.test.ts', ...UNIT_UNDER_TEST_DIR];
/** Tests under src/ that need more than the process they run in: the test MariaDB (the mysql
 * verification check) or a renderer installed from Debian (the timeline's PNG). */
const SRC_NEEDING_SERVICES = ['src/verification/suite.test.ts', 'src/records/timeline-svg.test.ts'];

export default defineConfig({
  test: {
    // Integration tests start real pm2 daemons and app processes: give them room, and keep
    // the two cores from being oversubscribed.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: UNIT,
          exclude: SRC_NEEDING_SERVICES,
          // Test files share a worker's module cache instead of each importing the product
          // afresh: a third less CPU (measured 43-48 s against 65 s), which is what a 2-core
          // machine pays. Unit tests leave no global state behind (servers closed, env restored).
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts', ...SRC_NEEDING_SERVICES],
          exclude: UNIT_UNDER_TEST_DIR,
          // Throwaway MariaDB and Redis on free loopback ports (installed from Debian when
          // missing), stopped afterwards; Prometheus, pm2 and nginx are started by the tests
          // that need them.
          globalSetup: ['./test/setup/services.ts'],
        },
      },
    ],
  },
});
