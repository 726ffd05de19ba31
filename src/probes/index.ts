/**
 * The probe registry, keyed by the config's `type`. A new probe is one file plus one line here;
 * `satisfies` makes the compiler reject a registry that misses a type or pairs it wrongly.
 */
import type { ProbeConfig } from '../config/schema.js';
import { ProbeError } from '../errors.js';
import { httpProbe } from './http.js';
import { mysqlProbe } from './mysql.js';
import { processProbe } from './process.js';
import { prometheusProbe } from './prometheus.js';
import { redisProbe } from './redis.js';
import { scrapeProbe } from './scrape.js';
import { systemProbe } from './system.js';
import type { Probe, ProbeDeps, ProbeFactory } from './types.js';

export const probeFactories = {
  http: httpProbe,
  system: systemProbe,
  process: processProbe,
  prometheus: prometheusProbe,
  scrape: scrapeProbe,
  mysql: mysqlProbe,
  redis: redisProbe,
} satisfies { [K in ProbeConfig['type']]: ProbeFactory<Extract<ProbeConfig, { type: K }>> };

/** Builds the probe for one validated config entry. */
export function createProbe(config: ProbeConfig, deps: ProbeDeps): Probe {
  switch (config.type) {
    case 'http':
      return probeFactories.http(config, deps);
    case 'system':
      return probeFactories.system(config, deps);
    case 'process':
      return probeFactories.process(config, deps);
    case 'prometheus':
      return probeFactories.prometheus(config, deps);
    case 'scrape':
      return probeFactories.scrape(config, deps);
    case 'mysql':
      return probeFactories.mysql(config, deps);
    case 'redis':
      return probeFactories.redis(config, deps);
    default: {
      // Unreachable for a config that passed the schema; the `never` makes a new type a compile error.
      const unknown: never = config;
      throw new ProbeError(
        `unknown probe type "${(unknown as { type?: unknown }).type}"`,
        'probe_unknown_type',
        `use one of: ${Object.keys(probeFactories).join(', ')}`,
      );
    }
  }
}
